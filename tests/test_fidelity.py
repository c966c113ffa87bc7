"""Counterfactual fidelity (insulin_core/whatif/fidelity.py): What-if curves scored against the demo
cohort's known dosing rule, at the test part's pre-meal moments."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from insulin_core.whatif import fidelity
from insulin_core.prep.dataset import load_cohort
from insulin_core.data.demo import DemoConfig, regimens
from insulin_core.data.demo_regimens import sliding_scale
from insulin_core.bundles.registry import load_bundle
from insulin_core.data.source import DataSource

DEMO = Path(__file__).resolve().parent.parent / "models" / "demo"


@pytest.fixture(scope="module")
def demo():
    cfg = DemoConfig()
    cohort = load_cohort(DataSource("demo", demo_patients=cfg.patients))
    return cfg, cohort, load_bundle(DEMO)


class RuleEngine:
    """A stand-in What-if engine that answers with the true rule plus `offset` units."""

    def __init__(self, cfg, moments: pd.DataFrame, offset: float):
        self.patients, self.offset = regimens(cfg), offset
        self.moments = moments.set_index(["patient_id", "timestamp"])

    def _moment(self, scenario):
        return self.moments.loc[(scenario.patient_id, scenario.at)]

    def sweep_glucose(self, scenario, values):
        m = self._moment(scenario)
        who = self.patients[scenario.patient_id]
        return SimpleNamespace(dose=np.array([fidelity.rule_dose(who, m["meal"], g, m["meal_size"], m["exercise"])
                                              for g in values]) + self.offset)

    def sweep_meal(self, scenario):
        m = self._moment(scenario)
        who = self.patients[scenario.patient_id]
        sizes = ("none", "less", "typical", "more")
        return SimpleNamespace(values=list(sizes), dose=np.array(
            [fidelity.rule_dose(who, m["meal"], m["glucose"], s, m["exercise"]) for s in sizes]) + self.offset)


@pytest.mark.parametrize("offset, mae, within", [(0.0, 0.0, 1.0), (2.0, 2.0, 0.0), (1.0, 1.0, 1.0)])
def test_the_true_rule_scores_perfectly_and_an_offset_scores_its_size(demo, monkeypatch, offset, mae, within):
    cfg, cohort, bundle = demo
    moments, _ = fidelity.pre_meal_moments(bundle, cohort.features, cohort.events)
    monkeypatch.setattr(fidelity, "WhatIf", lambda *a, **k: RuleEngine(cfg, moments, offset))
    summary = fidelity.measure(bundle, cohort.events, cohort.features, cfg, max_moments=12).summary()
    assert summary["mae_u"].tolist() == pytest.approx([mae, mae])
    assert summary["within_1u"].tolist() == pytest.approx([within, within])
    assert summary.loc["glucose", "points"] == 12 * len(fidelity.GLUCOSE_GRID)
    assert summary.loc["meal", "points"] == 12 * len(fidelity.MEAL_SIZES)


def test_moments_are_every_pre_meal_reading_of_the_test_part_clear_of_a_hypoglycemias_cut(demo):
    from insulin_core.bundles.serving import bundle_prepared

    cfg, cohort, bundle = demo
    moments, left_out = fidelity.pre_meal_moments(bundle, cohort.features, cohort.events)
    prepared = bundle_prepared(bundle, cohort.features, every_patient=False)
    ctx = prepared.ws.context.assign(part=prepared.split.part_of(len(prepared.ws)))
    rows = cohort.features.iloc[ctx["row"].to_numpy()]
    pre_meal = rows["glucose_slot"].isin(["pre_breakfast", "pre_lunch", "pre_supper"]).to_numpy() & rows["glucose"].notna().to_numpy()
    want = ctx[(ctx["part"] == "test").to_numpy() & pre_meal]
    assert len(moments) + left_out == len(want) and left_out > 0
    keys = set(zip(moments["patient_id"], moments["timestamp"]))
    assert keys <= set(zip(want["patient_id"], want["timestamp"]))
    assert not fidelity.after_hypo(moments, cohort.events).any()


def test_the_rule_is_what_the_demo_patients_did_up_to_its_noise(demo):
    """The truth the curves are scored against: each recorded decision dose at those moments is
    the rule's dose at the recorded inputs, or 1 U off it (the demo's noise, 10% of doses)."""
    cfg, cohort, bundle = demo
    moments, _ = fidelity.pre_meal_moments(bundle, cohort.features, cohort.events)
    who = regimens(cfg)
    rule = np.array([fidelity.rule_dose(who[m.patient_id], m.meal, m.glucose, m.meal_size, m.exercise)
                     for m in moments.itertuples()])
    f = cohort.features.set_index(["patient_id", "timestamp"])
    recorded = f.loc[list(zip(moments["patient_id"], moments["timestamp"])), "decision_dose"].to_numpy()
    off = np.abs(recorded - rule)
    assert off.max() <= 1 and 0.85 <= np.mean(off == 0) <= 0.95


def test_after_hypo_is_a_hypoglycemia_since_the_last_regular():
    t = pd.Timestamp("1991-01-07")
    events = pd.DataFrame({"patient_id": [1, 1, 1, 1], "kind": ["regular", "hypo", "regular", "hypo"],
                           "timestamp": [t + pd.Timedelta(hours=h) for h in (7, 10, 12, 15)]})
    moments = pd.DataFrame({"patient_id": [1, 1, 1, 1],
                            "timestamp": [t + pd.Timedelta(hours=h) for h in (9, 11, 13, 18)]})
    assert fidelity.after_hypo(moments, events).tolist() == [False, True, False, True]


def test_rule_dose_reads_none_as_nothing_recorded():
    who = regimens(DemoConfig())[1]
    assert fidelity.rule_dose(who, "breakfast", 250.0, "none", "none") == sliding_scale(who, "breakfast", 250.0)
    assert fidelity.rule_dose(who, "breakfast", 250.0, "more", "typical") == sliding_scale(who, "breakfast", 250.0,
                                                                                         "more", "typical")


def test_the_shipped_demo_model_end_to_end_and_the_page_text(demo, tmp_path):
    cfg, cohort, bundle = demo
    found = fidelity.measure(bundle, cohort.events, cohort.features, cfg, max_moments=4)
    summary = found.summary()
    assert set(summary.index) == {"glucose", "meal"} and (summary["moments"] == 4).all()
    assert ((summary["mae_u"] >= 0) & (summary["within_1u"].between(0, 1))).all()
    path = tmp_path / "fidelity.json"
    assert fidelity.summary_text(path) is None  # no figures yet: the page says nothing
    path.write_text(json.dumps({"bundle": "demo", "measured": "today", "command": "bench/fidelity.py",
                                "sweeps": {s: {"moments": 4, "mae_u": r.mae_u, "within_1u": r.within_1u}
                                           for s, r in summary.iterrows()}}))
    text = fidelity.summary_text(path)
    assert f"{summary.loc['glucose', 'within_1u']:.0%} of the points within 1 U" in text and "bench/fidelity.py" in text
    data = json.loads(path.read_text()) | {"created": "2026-01-01T00:00:00+00:00"}
    path.write_text(json.dumps(data))
    assert fidelity.summary_text(path, created=data["created"]) == text
    assert fidelity.summary_text(path, created="another model") is None  # never another model's figures


def test_a_model_of_another_target_is_refused(demo, monkeypatch):
    from dataclasses import replace

    from insulin_core.bundles import serving

    cfg, cohort, bundle = demo
    exp = serving.bundle_experiment(bundle)
    monkeypatch.setattr(fidelity, "bundle_experiment", lambda b: replace(exp, window=replace(exp.window, dose_window=0)))
    with pytest.raises(ValueError, match="decision dose"):
        fidelity.measure(bundle, cohort.events, cohort.features, cfg, max_moments=2)


# --- the pump + CGM demo: glucose and carbohydrates in grams against each pump's bolus calculator ----

@pytest.fixture(scope="module")
def pump():
    """A tiny model trained for one epoch on the pump + CGM demo (the benchmark's own bundle is
    trained by `train --demo modern`): the sweeps' bookkeeping is checked, not the model's skill."""
    from insulin_core.bundles.registry import ModelBundle
    from insulin_core.data.source import demo_source
    from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment
    from insulin_core.models.train import TrainConfig
    from insulin_core.prep.windows import WindowConfig

    cohort = load_cohort(demo_source("modern"))
    exp, train_cfg = ExperimentConfig(WindowConfig(length=4)), TrainConfig(epochs=1, batch=256, threads=1)
    result = run_experiment(cohort.features, exp, dict(lstm_hidden=4, gru_hidden=4, dense=(8,), members=1), train_cfg,
                            baselines=[])
    meta = bundle_meta(result, exp, train_cfg, cohort.source.label, cohort.fingerprint)
    meta["model_config"] = result.training.model.cfg.to_dict()
    return cohort, ModelBundle("pump-tiny", result.training.model, meta)


def test_the_pump_demo_is_swept_over_glucose_and_grams_against_its_bolus_calculator(pump):
    from insulin_core.data.demo_modern import ModernDemoConfig, pump_patients
    from insulin_core.data.demo_modern_regimens import bolus_rule
    from insulin_core.whatif.engine import Scenario, WhatIf

    cohort, bundle = pump
    cfg = ModernDemoConfig()
    found = fidelity.measure_pump(bundle, cohort.events, cohort.features, cfg, max_moments=4)
    points = found.points
    summary = found.summary()
    assert summary.loc["glucose", "points"] == 4 * len(fidelity.GLUCOSE_GRID)
    assert summary.loc["carbs", "points"] == 4 * len(fidelity.CARB_FACTORS)
    engine, who = WhatIf(bundle, cohort.events, cohort.features), pump_patients(cfg)
    moments = fidelity.meal_bolus_moments(bundle, cohort.features, engine)
    assert len(moments) > 4 and (moments["grams"] > 0).all()
    for (pid, at), mine in points.groupby(["patient_id", "timestamp"]):
        m = moments[(moments["patient_id"] == pid) & (moments["timestamp"] == at)].iloc[0]
        glucose, carbs = mine[mine["sweep"] == "glucose"], mine[mine["sweep"] == "carbs"]
        # the truth: the pump's calculator at the recorded grams, then at the recorded glucose
        assert glucose["rule"].tolist() == [bolus_rule(who[pid], m["grams"], g) for g in fidelity.GLUCOSE_GRID]
        assert carbs["rule"].tolist() == [bolus_rule(who[pid], f * m["grams"], m["glucose"]) for f in fidelity.CARB_FACTORS]
        assert carbs["rule"].is_monotonic_increasing and glucose["rule"].is_monotonic_increasing
        # the model: each amount of carbohydrate read as the page reads it (none, then its size against the usual meal)
        meal = engine.sweep_meal(Scenario(int(pid), at))
        by_level = dict(zip(meal.values, meal.dose))
        levels = [m["meal_grams"].level(f * m["grams"]) for f in fidelity.CARB_FACTORS]
        assert levels[0] == "none" and carbs["model"].tolist() == [float(by_level[lv]) for lv in levels]
