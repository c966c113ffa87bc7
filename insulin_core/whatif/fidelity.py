"""Counterfactual fidelity: how close a What-if curve comes to the dose the patient's own rule
would give, on the synthetic demo cohort, whose rule is known exactly (`demo_regimens.sliding_scale`).

No observational data set can show this: a real patient's dose at a glucose they did not have is
never on record. The demo patients dose by a known sliding scale, so every point of a What-if
sweep has a true answer. What is compared, at each pre-meal decision point of the bundle's test
part (a reading with a breakfast, lunch or supper code):
- glucose now swept over 80-400 mg/dL, everything else as recorded, against
  `sliding_scale(patient, meal, glucose, recorded meal size, recorded exercise)`;
- meal size now over less / typical / more at the recorded glucose, against the same rule.
The rule is the demo's without its noise (10% of doses 1 U off) and without the cut after a
hypoglycemia, so moments that follow a hypoglycemia with no Regular since (where the cut applies,
a recorded hypo at the moment included) are left out and counted. Below 80 mg/dL the rule holds
the dose, and the demo writes a hypo code with 60% of such lows, which a sweep cannot add or take
away: hence the grid's start. The model must have been trained on the decision dose with a window
covering the late writers' delay (up to 12 minutes), else its target differs from the rule there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.codes import LEVEL_NAMES, level_name
from ..data.demo import DemoConfig, regimens
from ..data.demo_regimens import MEALS, Patient, sliding_scale
from ..data.demo_modern import ModernDemoConfig, pump_patients
from ..data.demo_modern_regimens import bolus_rule
from ..bundles.registry import ModelBundle
from ..bundles.serving import bundle_experiment, bundle_prepared
from .engine import Scenario, WhatIf

GLUCOSE_GRID = np.arange(80.0, 401.0, 10.0)
MEAL_SIZES = LEVEL_NAMES[1:]  # every size of a meal that is eaten: less, typical, more
PRE_MEAL_SLOTS = {f"pre_{meal}": meal for meal in MEALS}
WITHIN_U = 1.0
LONGEST_LOG_DELAY_MIN = 12  # demo.py: late writers note the insulin 2-12 minutes after the reading


@dataclass
class Fidelity:
    points: pd.DataFrame  # one row per (moment, sweep, value): patient_id, timestamp, sweep, value, model, rule
    left_out_after_hypo: int

    def summary(self) -> pd.DataFrame:
        """Per sweep: moments, points, MAE (U) and the share of points within 1 U of the rule."""
        err = (self.points["model"] - self.points["rule"]).abs()
        grouped = self.points.assign(err=err, within=err <= WITHIN_U).groupby("sweep")
        return pd.DataFrame({"moments": grouped.apply(lambda g: g[["patient_id", "timestamp"]].drop_duplicates().shape[0]),
                             "points": grouped.size(), "mae_u": grouped["err"].mean(),
                             "within_1u": grouped["within"].mean()})

    def per_patient(self) -> pd.DataFrame:
        err = (self.points["model"] - self.points["rule"]).abs()
        return (self.points.assign(err=err, within=err <= WITHIN_U).groupby(["sweep", "patient_id"])
                .agg(points=("err", "size"), mae_u=("err", "mean"), within_1u=("within", "mean")).reset_index())


def pre_meal_moments(bundle: ModelBundle, features: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(test-part pre-meal decision points: patient_id, timestamp, meal, meal size, exercise;
    how many were left out because a hypoglycemia's cut applies to them)."""
    prepared = bundle_prepared(bundle, features, every_patient=False)
    ctx = prepared.ws.context.iloc[prepared.split.test]
    rows = features.iloc[ctx["row"].to_numpy()]
    meal = rows["glucose_slot"].astype(str).map(PRE_MEAL_SLOTS)
    moments = pd.DataFrame({
        "patient_id": rows["patient_id"].to_numpy(), "timestamp": rows["timestamp"].to_numpy(),
        "meal": meal.to_numpy(), "glucose": rows["glucose"].to_numpy(),
        "meal_size": [level_name(v) for v in rows["meal"].to_numpy()],
        "exercise": [level_name(v) for v in rows["exercise"].to_numpy()],
    })[meal.notna().to_numpy() & rows["glucose"].notna().to_numpy()].reset_index(drop=True)
    cut = after_hypo(moments, events)
    return moments[~cut].reset_index(drop=True), int(cut.sum())


def after_hypo(moments: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Whether a hypoglycemia (code 65) lies after the patient's last Regular before each moment
    and at or before it: the demo then cuts the dose, which the plain rule leaves out."""
    out = np.zeros(len(moments), dtype=bool)
    for pid, idx in moments.groupby("patient_id").groups.items():
        mine = events[events["patient_id"] == pid]
        regular = np.sort(mine.loc[mine["kind"] == "regular", "timestamp"].to_numpy())
        hypo = np.sort(mine.loc[mine["kind"] == "hypo", "timestamp"].to_numpy())
        at = moments.loc[idx, "timestamp"].to_numpy()
        last_dose = np.concatenate([[np.datetime64("NaT")], regular])[np.searchsorted(regular, at, side="left")]
        n_hypo_upto = np.searchsorted(hypo, at, side="right")
        n_hypo_before_dose = np.where(np.isnat(last_dose), 0, np.searchsorted(hypo, last_dose, side="right"))
        out[np.asarray(list(idx))] = n_hypo_upto > n_hypo_before_dose
    return out


def rule_dose(patient: Patient, meal: str, glucose: float, meal_size: str, exercise: str) -> int:
    """The demo's rule at these inputs ('none' = nothing recorded)."""
    return sliding_scale(patient, meal, glucose, "" if meal_size == "none" else meal_size,
                         "" if exercise == "none" else exercise)


def measure(bundle: ModelBundle, events: pd.DataFrame, features: pd.DataFrame, cfg: DemoConfig,
            max_moments: int = 0) -> Fidelity:
    """What-if sweeps of `bundle` against the true rule at the demo test part's pre-meal moments
    (`max_moments` > 0: that many, drawn evenly)."""
    window = bundle_experiment(bundle).window
    if window.target != "decision-point" or window.dose_window < LONGEST_LOG_DELAY_MIN:
        raise ValueError(f"the model's target is not the demo rule's dose (it needs the decision dose with a "
                         f"window of at least {LONGEST_LOG_DELAY_MIN} minutes, has {window.target}, "
                         f"{window.dose_window} minutes)")
    patients = regimens(cfg)
    moments, left_out = pre_meal_moments(bundle, features, events)
    if max_moments and len(moments) > max_moments:
        moments = moments.iloc[np.linspace(0, len(moments) - 1, max_moments).round().astype(int)]
    engine = WhatIf(bundle, events, features)
    rows = []
    for m in moments.itertuples(index=False):
        who, scenario = patients[int(m.patient_id)], Scenario(int(m.patient_id), m.timestamp)
        sweep = engine.sweep_glucose(scenario, GLUCOSE_GRID)
        rows += [("glucose", g, d, rule_dose(who, m.meal, g, m.meal_size, m.exercise), m) for g, d in zip(GLUCOSE_GRID, sweep.dose)]
        meal = engine.sweep_meal(scenario)
        by_size = dict(zip(meal.values, meal.dose))
        rows += [("meal", size, by_size[size], rule_dose(who, m.meal, m.glucose, size, m.exercise), m) for size in MEAL_SIZES]
    points = pd.DataFrame([{"patient_id": int(m.patient_id), "timestamp": m.timestamp, "meal": m.meal, "sweep": sweep,
                            "value": value, "model": float(model), "rule": float(rule)}
                           for sweep, value, model, rule, m in rows])
    return Fidelity(points, left_out)


CARB_FACTORS = (0.0, 0.5, 1.0, 1.5, 2.0)  # the carbs sweep of the pump demo: times the recorded grams


def meal_bolus_moments(bundle: ModelBundle, features: pd.DataFrame, engine: WhatIf) -> pd.DataFrame:
    """The pump demo's test-part decision points with a glucose reading and a meal in grams:
    patient_id, timestamp, glucose, grams (recorded), meal_grams (`WhatIf.meal_grams`: the recorded
    grams and the patient's usual meal before the moment)."""
    prepared = bundle_prepared(bundle, features, every_patient=False)
    rows = features.iloc[prepared.ws.context.iloc[prepared.split.test]["row"].to_numpy()]
    rows = rows[rows["glucose"].notna().to_numpy() & (rows["meal"].to_numpy() > 0)]
    found = []
    for pid, at, glucose in zip(rows["patient_id"].to_numpy(), rows["timestamp"], rows["glucose"].to_numpy()):
        grams = engine.meal_grams(Scenario(int(pid), at))
        if grams is not None and grams.recorded > 0:
            found.append({"patient_id": int(pid), "timestamp": at, "glucose": float(glucose), "grams": grams.recorded,
                          "meal_grams": grams})
    return pd.DataFrame(found)


def measure_pump(bundle: ModelBundle, events: pd.DataFrame, features: pd.DataFrame, cfg: ModernDemoConfig,
                 max_moments: int = 0) -> Fidelity:
    """What-if sweeps against the pump demo's bolus calculator (`demo_modern_regimens.bolus_rule`,
    carbs / carb ratio + (glucose - target) / correction factor) at its test part's meal moments:
    glucose now over 80-400 mg/dL at the recorded grams, and the carbohydrates over CARB_FACTORS
    times the recorded grams at the recorded glucose, each amount read as the What-if page reads
    it (its size against the patient's usual meal, `MealGrams.level`). The rule gives pump steps
    (0.05 U), the model whole units: half a unit of the error is rounding."""
    patients = pump_patients(cfg)
    engine = WhatIf(bundle, events, features)
    moments = meal_bolus_moments(bundle, features, engine)
    if max_moments and len(moments) > max_moments:
        moments = moments.iloc[np.linspace(0, len(moments) - 1, max_moments).round().astype(int)]
    rows = []
    for m in moments.itertuples(index=False):
        who, scenario = patients[m.patient_id], Scenario(m.patient_id, m.timestamp)
        sweep = engine.sweep_glucose(scenario, GLUCOSE_GRID)
        rows += [("glucose", g, d, bolus_rule(who, m.grams, g), m) for g, d in zip(GLUCOSE_GRID, sweep.dose)]
        meal = engine.sweep_meal(scenario)
        by_level = dict(zip(meal.values, meal.dose))
        rows += [("carbs", f, by_level[m.meal_grams.level(f * m.grams)], bolus_rule(who, f * m.grams, m.glucose), m)
                 for f in CARB_FACTORS]
    points = pd.DataFrame([{"patient_id": m.patient_id, "timestamp": m.timestamp, "meal": "meal", "sweep": sweep,
                            "value": value, "model": float(model), "rule": float(rule)}
                           for sweep, value, model, rule, m in rows])
    return Fidelity(points, 0)


def summary_text(path: str | Path, created: str | None = None) -> str | None:
    """Plain words for the What-if page ('how faithful is this curve?'), from the figures
    bench/fidelity.py wrote; None when there are none, or (given the bundle's `created` stamp)
    when they were measured on another model than the one on screen."""
    try:
        found = json.loads(Path(path).read_text())
        g, m = found["sweeps"]["glucose"], found["sweeps"]["meal"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if created is not None and found.get("created") != created:
        return None
    return (f"On the synthetic demo cohort, whose dosing rule is known exactly, the What-if curves of the "
            f"model `{found['bundle']}` were compared with each patient's own rule at {g['moments']} pre-meal "
            f"moments of its test part. Glucose 80-400 mg/dL: {g['within_1u']:.0%} of the points within 1 U of "
            f"the rule (MAE {g['mae_u']:.2f} U). Meal size less/typical/more: {m['within_1u']:.0%} within 1 U "
            f"(MAE {m['mae_u']:.2f} U). Measured {found['measured']} with `{found['command']}`. On real patients "
            "no such check exists: their dose at a glucose they did not have was never recorded.")
