"""Occlusion explanations: a model that reads only the glucose now is explained by it alone;
the trained model gives finite, sorted attributions."""
from __future__ import annotations

import numpy as np
import pytest

from insulin_core.whatif.explain import _references

from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.bundles.registry import ModelBundle
from insulin_core.whatif.engine import Scenario, WhatIf

from .whatif_fixtures import L, glucose_only_model, sample_windows, scenario_at


def test_explanation_finds_the_only_input_that_drives_the_output(setup):
    cohort, result, bundle, engine = setup
    model = glucose_only_model()
    b = ModelBundle("glucose-only", model, bundle.meta)
    eng = WhatIf(b, cohort.events, conformal=bundle.meta["conformal"])
    s = Scenario(1, "next", glucose_now=240.0, meal_now="typical")
    ex = eng.explain(s)
    assert (ex.seq.to_numpy() == 0).all(), "the model ignores the window"
    nonzero = set(ex.now.index[ex.now.to_numpy() != 0])
    assert nonzero == {"glucose"}  # has_glucose, slots, meal... carry no weight: occluding them changes nothing
    assert ex.groups.iloc[0]["where"] == "now" and ex.groups.iloc[0]["what"] == "glucose"
    assert "240 mg/dL reading now" in ex.sentence
    assert ex.seq.shape == (L, len(SEQ_FEATURES))


def test_explanation_on_the_trained_model(setup):
    cohort, result, bundle, engine = setup
    ws, idx = sample_windows(result, 1, seed=5)
    ex = engine.explain(scenario_at(ws, idx[0], glucose_now=250.0))
    assert ex.seq.shape == (L, len(SEQ_FEATURES)) and len(ex.now) == len(NOW_FEATURES)
    assert ex.sentence.startswith("Expected dose") and np.isfinite(ex.seq.to_numpy()).all()
    assert (ex.groups["attribution"].abs().round(4).diff().dropna() <= 0).all()  # sorted by size, to 1e-4 U
    # An input already at its reference value (this patient's average before the moment) cannot
    # move the prediction: its attribution is exactly 0; an input away from it mostly does.
    built = engine._base(scenario_at(ws, idx[0]))
    seq_ref, _ = _references(built.features, built.row, built.ws.now_features)
    at_reference = built.ws.seq[0] == seq_ref[None, :]
    assert at_reference.any() and (~at_reference).any()
    assert (ex.seq.to_numpy()[at_reference] == 0).all()
    assert (ex.seq.to_numpy()[~at_reference] != 0).mean() > 0.5
    # Every input at its reference value is the patient's average moment: the reference dose,
    # which is what the explanation's expected dose is compared with.
    _, now_ref = _references(built.features, built.row, built.ws.now_features)
    amount, p = engine.predictor.heads_of(seq_ref[None, None, :].repeat(L, axis=1), now_ref[None, :], built.scenario.patient_id)
    assert ex.reference_dose == pytest.approx(float(amount[0] * p[0]), abs=1e-6)
