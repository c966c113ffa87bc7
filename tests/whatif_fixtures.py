"""Shared by the what-if tests (test_whatif, test_intervals, test_safety, test_explain): a tiny
trained bundle on the demo cohort, window picking, and a hand-set DoseNet that reads only glucose."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from insulin_core.whatif import engine as W
from insulin_core.prep.dataset import load_cohort
from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.models.model import DoseNet, ModelConfig
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment
from insulin_core.bundles.registry import ModelBundle
from insulin_core.data.source import DataSource
from insulin_core.models.train import TrainConfig
from insulin_core.prep.windows import WindowConfig

L = 6
NOW = {n: i for i, n in enumerate(NOW_FEATURES)}
SEQ = {n: i for i, n in enumerate(SEQ_FEATURES)}


@pytest.fixture(scope="session")
def setup():
    """A tiny model trained for 3 epochs on the 5-patient demo cohort, as an in-memory bundle:
    trained once per test session (tests/conftest.py imports this fixture) and only read by tests."""
    cohort = load_cohort(DataSource("demo", demo_patients=5))
    exp = ExperimentConfig(WindowConfig(length=L))
    train_cfg = TrainConfig(epochs=3, batch=128, lr=1e-2, threads=1)
    sizes = dict(lstm_hidden=8, gru_hidden=8, dense=(16,), patient_embedding=2, dropout=0.0)
    result = run_experiment(cohort.features, exp, sizes, train_cfg, baselines=[])
    meta = bundle_meta(result, exp, train_cfg, cohort.source.label, cohort.fingerprint)
    meta["model_config"] = result.training.model.cfg.to_dict()
    prepared = result.prepared
    meta["conformal"] = prepared.predictor(result.training.model).calibrated(prepared.ws, prepared.val_idx).conformal
    bundle = ModelBundle("tiny", result.training.model, meta)
    return cohort, result, bundle, W.WhatIf(bundle, cohort.events, cohort.features)


def sample_windows(result, n=25, seed=0):
    ws = result.prepared.ws
    return ws, np.random.default_rng(seed).choice(len(ws), n, replace=False)


def scenario_at(ws, i, **edits):
    ctx = ws.context.iloc[i]
    return W.Scenario(int(ctx["patient_id"]), ctx["timestamp"], **edits)


def glucose_only_model(sign: float = 1.0, dose_bias: float = 10.0, amount_bias: float = 0.0) -> DoseNet:
    """A DoseNet that reads only the glucose now: amount = softplus(4 * sign * g_scaled + bias)."""
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=5, window=L,
                      lstm_hidden=4, gru_hidden=4, dense=(2,), dropout=0.0, patient_embedding=2, now_bins=0, members=1)
    model = DoseNet(cfg)
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        w = model.members[0].mlp[0].weight  # (2, gru_hidden + n_now + emb)
        g = cfg.gru_hidden + NOW["glucose"]
        if sign > 0:
            w[0, g] = 1.0
        else:  # relu(1 - g): falls as glucose rises
            w[0, g], model.members[0].mlp[0].bias[0] = -1.0, 1.0
        model.members[0].amount.weight[0, 0] = 4.0
        model.members[0].amount.bias[0] = amount_bias
        model.members[0].dose.bias[0] = dose_bias
    return model.eval()
