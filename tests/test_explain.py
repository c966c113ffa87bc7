"""Occlusion explanations: a model that reads only the glucose now is explained by it alone;
the trained model gives finite, sorted attributions."""
from __future__ import annotations

import numpy as np

from insulin_core.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.registry import ModelBundle
from insulin_core.whatif import Scenario, WhatIf

from .whatif_fixtures import L, glucose_only_model, sample_windows, scenario_at, setup  # noqa: F401 (fixtures)


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
    # an input already at its reference value cannot move the prediction
    built = engine._base(scenario_at(ws, idx[0]))
    assert (ex.groups["attribution"].abs().diff().dropna() <= 1e-12).all()  # sorted by size
    assert built.row == len(built.features) - 1
