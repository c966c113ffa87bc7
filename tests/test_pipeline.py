"""The experiment pipeline: honest splits and scalers, evaluation beside every baseline."""
from __future__ import annotations

import numpy as np
import pytest

from insulin_core.prep.features import add_features
from insulin_core.prep.timeline import TIMELINE_COLUMNS
import torch

from insulin_core.models.arrays import predict_raw
from insulin_core.models.baselines import BASELINES
from insulin_core.prep.dataset import load_cohort
from insulin_core.evaluation.pipeline import (
    DEFAULT_SIZES, ExperimentConfig, bundle_meta, model_config_for, prepare, run_experiment, select_patients,
)
from insulin_core.bundles.registry import load_bundle, save_bundle
from insulin_core.bundles.serving import baseline_table, bundle_experiment, check_bundle_fits, metrics_of, predictions_table
from insulin_core.data.source import DataSource
from insulin_core.models.train import TrainConfig
from insulin_core.prep.windows import WindowConfig

TINY = {"lstm_hidden": 8, "gru_hidden": 8, "dense": (8,), "patient_embedding": 2}
FAST = TrainConfig(epochs=3, patience=2, batch=256, threads=1)


@pytest.fixture(scope="module")
def cohort():
    return load_cohort(DataSource("demo", demo_patients=5))


def test_scalers_are_fit_on_the_training_part_only(cohort):
    prepared = prepare(cohort.features, ExperimentConfig())
    train = prepared.ws.now[prepared.train_idx]
    assert np.allclose(prepared.scaling.now.low, train.min(axis=0))
    assert np.allclose(prepared.scaling.now.high, train.max(axis=0))
    everything = prepared.ws.now
    assert not np.allclose(prepared.scaling.now.high, everything.max(axis=0)) or \
        np.allclose(train.max(axis=0), everything.max(axis=0))


def test_implausible_targets_are_left_out_of_training_but_kept_in_test(cohort):
    features = cohort.features.copy()
    rows = prepare(features, ExperimentConfig()).ws.context["row"].to_numpy()
    features.loc[rows[::50], "regular"] = 344.0  # typing errors spread over time
    features = add_features(features[TIMELINE_COLUMNS])  # the decision doses follow the edited timeline
    prepared = prepare(features, ExperimentConfig())
    implausible = prepared.ws.context["implausible"].to_numpy()
    assert implausible.sum() > 5
    assert not implausible[prepared.train_idx].any() and not implausible[prepared.val_idx].any()
    assert implausible[prepared.split.test].any()
    kept = prepare(features, ExperimentConfig(exclude_implausible=False))
    assert implausible[kept.train_idx].any()


def test_patients_split_maps_unseen_patients_to_unknown(cohort):
    prepared = prepare(cohort.features, ExperimentConfig(split="patients"))
    test_part = prepared.part(prepared.split.test)
    assert (test_part.patient == 0).all()
    assert (prepared.part(prepared.train_idx).patient > 0).all()


def test_model_config_takes_its_data_fields_from_the_windows(cohort):
    prepared = prepare(cohort.features, ExperimentConfig(WindowConfig(length=6)))
    cfg = model_config_for(prepared, lstm_hidden=12)
    assert cfg.window == 6 and cfg.lstm_hidden == 12 and cfg.gru_hidden == DEFAULT_SIZES["gru_hidden"]
    assert cfg.n_seq_features == prepared.ws.seq.shape[2] and cfg.n_now_features == prepared.ws.now.shape[1]
    assert cfg.n_patients == 5


def test_unknown_patients_are_refused(cohort):
    with pytest.raises(ValueError, match="Unknown patient"):
        select_patients(cohort.features, (1, 99))


def test_run_experiment_reports_the_model_beside_every_baseline(cohort, tmp_path):
    exp = ExperimentConfig(patients=(1, 2, 3))
    result = run_experiment(cohort.features, exp, TINY, FAST)
    names = set(result.evaluation.metrics["name"])
    assert names == {"model", *BASELINES}
    assert set(result.evaluation.metrics["rows"]) == {"all", "without implausible"}
    preds = result.evaluation.predictions
    assert len(preds) == len(result.prepared.split.test) and set(preds["patient_id"]) <= {1, 2, 3}
    assert (preds["predicted"] >= 0).all() and (preds["predicted"] == preds["predicted"].round()).all()

    meta = bundle_meta(result, exp, FAST, cohort.source.label, cohort.fingerprint)
    bundle = load_bundle(save_bundle(result.training.model, meta, "t", tmp_path))
    assert check_bundle_fits(bundle, cohort)[0].startswith("Patients the model never saw (4, 5)")
    table = predictions_table(bundle, cohort, baselines=["previous_row"])
    test = table[(table["part"] == "test") & table["patient_id"].isin([1, 2, 3])]
    assert np.array_equal(test["predicted"].to_numpy(), preds["predicted"].to_numpy())  # same model, same rows
    assert list(metrics_of(table)["name"]) == ["model", "previous_row"]
    # baselines fit once for the data and experiment serve any bundle of them: the same table
    reused = baseline_table(cohort, bundle_experiment(bundle), ["previous_row", "ridge"])
    both = predictions_table(bundle, cohort, baseline_columns=reused)
    assert both.drop(columns=["ridge", "ridge_low", "ridge_high"]).equals(table)
    assert list(metrics_of(both)["name"]) == ["model", "previous_row", "ridge"]


def test_same_seed_same_numbers(cohort):
    torch.set_num_threads(1)
    a = run_experiment(cohort.features, ExperimentConfig(patients=(1, 2)), TINY, FAST, baselines=[])
    b = run_experiment(cohort.features, ExperimentConfig(patients=(1, 2)), TINY, FAST, baselines=[])
    assert a.evaluation.metrics.equals(b.evaluation.metrics)


def test_multi_output_predicts_three_doses_and_reports_regular(cohort, tmp_path):
    exp = ExperimentConfig(WindowConfig(multi_output=True), patients=(1, 2, 3))
    result = run_experiment(cohort.features, exp, TINY, FAST, baselines=["previous_row"])
    assert result.training.model.cfg.n_targets == 3
    test_part = result.prepared.part(result.prepared.split.test)
    assert predict_raw(result.training.model, test_part)[0].shape == (len(test_part.y), 3)
    assert list(result.evaluation.predictions["actual"]) == list(result.prepared.ws.y[result.prepared.split.test, 0])
    meta = bundle_meta(result, exp, FAST, cohort.source.label, cohort.fingerprint)
    assert load_bundle(save_bundle(result.training.model, meta, "multi", tmp_path)).model.cfg.n_targets == 3


def test_patients_the_model_never_saw_are_gated_at_its_new_patient_threshold(cohort, tmp_path):
    """The predictions table (and so every metric, chart and per-patient figure made from it) gives
    the patients a bundle knows their threshold and the others the new-patient one."""
    from insulin_core.bundles.serving import bundle_model, bundle_prepared
    from insulin_core.models.dose_rule import to_dose

    exp = ExperimentConfig(patients=(1, 2, 3))
    result = run_experiment(cohort.features, exp, TINY, FAST, baselines=[])
    model = result.training.model
    with torch.no_grad():
        model.dose_threshold.fill_(0.9)
        model.new_patient_threshold.fill_(0.1)
    meta = bundle_meta(result, exp, FAST, cohort.source.label, cohort.fingerprint)
    bundle = load_bundle(save_bundle(model, meta, "gates", tmp_path))
    table = predictions_table(bundle, cohort, baselines=[])
    prepared = bundle_prepared(bundle, cohort.features)
    amount, p = bundle_model(bundle, prepared).heads(prepared.ws, np.arange(len(prepared.ws)))
    known = table["patient_id"].isin([1, 2, 3]).to_numpy()
    assert known.any() and (~known).any()
    expected = np.where(known, to_dose(amount, p, 0.9), to_dose(amount, p, 0.1))
    assert np.array_equal(table["predicted"].to_numpy(), expected)
    assert not np.array_equal(expected, to_dose(amount, p, 0.9))  # the new patients' gate changed doses here
