"""Counterfactual fidelity (insulin_core/fidelity.py): What-if curves scored against the demo
cohort's known dosing rule, at the test part's pre-meal moments."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from insulin_core import fidelity
from insulin_core.dataset import load_cohort
from insulin_core.demo import DemoConfig, regimens, sliding_scale
from insulin_core.registry import load_bundle
from insulin_core.source import DataSource

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


def test_moments_are_the_test_parts_pre_meal_readings_clear_of_a_hypoglycemias_cut(demo):
    cfg, cohort, bundle = demo
    moments, left_out = fidelity.pre_meal_moments(bundle, cohort.features, cohort.events)
    split_start = bundle.meta.get("split")  # chrono: the test part is each patient's latest stretch
    assert split_start == "chrono" and len(moments) > 100 and left_out > 0
    f = cohort.features.set_index(["patient_id", "timestamp"])
    at = f.loc[list(zip(moments["patient_id"], moments["timestamp"]))]
    assert at["glucose_slot"].isin(["pre_breakfast", "pre_lunch", "pre_supper"]).all()
    assert at["decision_point"].all() and at["glucose"].notna().all()
    latest_train = cohort.features.groupby("patient_id")["timestamp"].quantile(0.5)
    assert (moments["timestamp"].to_numpy() > latest_train.loc[moments["patient_id"]].to_numpy()).all()
    assert not fidelity.after_hypo(moments, cohort.events).any()


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
