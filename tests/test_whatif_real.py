"""The what-if on the real AIM94 data, for patients who wrote their dose minutes after the reading.

Before the decision dose, such patients' target was 0 at almost every decision point, and the
what-if answered 0 U at glucose 300 with a flat curve. The patients and moments are chosen from
the data: the patients who wrote most of their doses on a row of their own, at their latest
morning readings of the test part that were followed by a dose minutes later.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insulin_core.configs import TrainConfig
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, model_config_for, prepare
from insulin_core.bundles.registry import ModelBundle
from insulin_core.whatif.safety import MONOTONE_GRID
from insulin_core.models.train import train_model
from insulin_core.whatif.engine import Scenario, WhatIf

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(real_cohort):
    """A quick model on the real data (one network, 15 epochs: the test is about the target).
    Measured at 15 epochs, seed 0: P(dose) 0.90-0.97 at 300 mg/dL at the four late-logger moments,
    and the mean dose above 300 exceeds that below 120 by 1.0-3.7 U; at 40 epochs 0.97-1.0 and
    1.0-5.0 U, at 2.8 times the training time."""
    exp = ExperimentConfig()
    prepared = prepare(real_cohort.features, exp)
    cfg = model_config_for(prepared, members=1)
    train_cfg = TrainConfig(epochs=15, patience=6, threads=1)
    training = train_model(cfg, train_cfg, prepared.train_data())
    from insulin_core.evaluation.pipeline import ExperimentResult, evaluate

    result = ExperimentResult(prepared, training, evaluate(training.model, prepared, baselines=[]), {})
    meta = bundle_meta(result, exp, train_cfg, real_cohort.source.label, real_cohort.fingerprint)
    bundle = ModelBundle("real-quick", training.model, meta)
    return prepared, WhatIf(bundle, real_cohort.events, real_cohort.features)


def late_moments(prepared, features: pd.DataFrame, patients: int = 4) -> list[tuple[int, pd.Timestamp]]:
    """(patient, moment): the late loggers' latest morning readings of the test part whose dose
    was written on a row of its own minutes later."""
    folded = features[features["folded_regular"]].groupby("patient_id").size()
    doses = features[features["decision_dose"] > 0].groupby("patient_id").size()
    late = (folded / doses).dropna().sort_values(ascending=False)
    rows = features.iloc[prepared.ws.context["row"].to_numpy()[prepared.split.test]]
    picked = []
    for pid in late.index:
        mine = rows[(rows["patient_id"] == pid) & (rows["day_part"] == "morning") & rows["glucose"].notna()
                    & (rows["regular"] == 0) & (rows["decision_dose"] > 0)]
        if len(mine):
            picked.append((int(pid), mine["timestamp"].iloc[-1]))
        if len(picked) == patients:
            break
    return picked


def test_late_loggers_get_a_dose_at_a_high_morning_reading(trained, real_cohort):
    prepared, engine = trained
    moments = late_moments(prepared, real_cohort.features)
    assert len(moments) == 4
    for pid, at in moments:
        assert engine.actual_dose(pid, at) > 0  # the decision dose on record
        pred = engine.predict(Scenario(pid, at, glucose_now=300.0, meal_now="typical"))
        assert pred.dose > 0 and pred.p_dose > 0.5, (pid, at, pred.dose, pred.p_dose)


def test_late_loggers_dose_response_rises_with_glucose(trained, real_cohort):
    prepared, engine = trained
    for pid, at in late_moments(prepared, real_cohort.features):
        sweep = engine.sweep_glucose(Scenario(pid, at, meal_now="typical"), MONOTONE_GRID)
        dose = sweep.dose
        assert dose.max() > 0, (pid, at)  # not flat at zero
        assert dose[MONOTONE_GRID >= 300].mean() > dose[MONOTONE_GRID <= 120].mean(), (pid, at, dose)
        assert np.isfinite(sweep.low).all() and np.isfinite(sweep.high).all()


def recorded_moments(prepared, per_patient: int = 2) -> list[tuple[int, pd.Timestamp]]:
    """The latest `per_patient` decision points of every patient in the test part."""
    ctx = prepared.ws.context.iloc[prepared.split.test]
    latest = ctx.groupby("patient_id").tail(per_patient)
    return list(zip(latest["patient_id"].astype(int), latest["timestamp"]))


# The two moments of issue 17 where the model before the monotone network dropped the dose as
# glucose rose (patient 34: 10 U to 0 U at 280-310 mg/dL; patient 1: 11 U at 280, 10 U at 320).
ISSUE_MOMENTS = [(34, pd.Timestamp("1990-09-10 17:55")), (1, pd.Timestamp("1991-09-03 07:20"))]


def test_the_trained_model_never_gives_less_insulin_for_more_glucose_at_real_moments(trained):
    """At two recorded moments of every test patient and the two of issue 17: dose, P(dose) and
    both interval bounds never fall over the meter range, more food never means less insulin
    (less <= typical <= more), and more exercise never means more."""
    prepared, engine = trained
    assert engine.bundle.monotone
    grid = np.arange(10.0, 601.0, 10.0)
    moments = recorded_moments(prepared) + ISSUE_MOMENTS
    assert len(moments) > 100
    for pid, at in moments:
        sweep = engine.sweep_glucose(Scenario(pid, at), grid)
        for name in ("dose", "p_dose", "low", "high"):
            values = getattr(sweep, name)
            assert np.all(np.diff(values) >= -1e-9), (pid, at, name, values)
        assert np.all(sweep.low <= sweep.dose) and np.all(sweep.dose <= sweep.high)
        exercise = [engine.predict(Scenario(pid, at, exercise_now=level), with_unedited=False).dose
                    for level in ("none", "typical", "more")]
        assert exercise == sorted(exercise, reverse=True), (pid, at, exercise)
    # meal size is learned, not constrained: checked where the model gives a dose at all
    for pid, at in moments[::4]:
        meal = engine.sweep_meal(Scenario(pid, at)).dose[1:]  # less, typical, more
        assert np.all(np.diff(meal) >= 0), (pid, at, meal)
