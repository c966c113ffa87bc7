"""The what-if engine on a saved model: counterfactual doses and dose-response sweeps for the
scenarios of `scenarios.py` (rebuilt by `rebuild.py`), with the conformal intervals of the
bundle's `NetworkPredictor`, the safety flags of `safety.py` and the occlusion explanations of
`explain.py`.

Sweeps (glucose now over the meter range, meal size now) and edits of the moment alone reuse one
rebuilt history (cached per scenario key) and run as one batched forward pass; edits inside the
window or of the time of day rebuild. `tests/test_whatif.py` proves an unedited scenario gives
exactly the pipeline's prediction and that the fast paths equal a full rebuild.
`nonmonotone_share` runs the engine's glucose sweeps over many real decision points of a bundle.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..data.readers.records import meal_size_of, usual_meal_grams
from ..data.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, LEVEL_NAMES, MAX_PLAUSIBLE_DOSE, level_name
from .explain import Explanation, explain_occlusion, explanation_of, occlusion_batch
from ..prep.features import NOW_FEATURES, add_features, history_doses
from ..prep.timeline import DECISION_KINDS, add_decision_doses, build_timeline, day_parts
from ..models.intervals import zero_width_table
from ..labels import LEVEL_PHRASES
from ..models.predictor import NetworkPredictor
from ..bundles.registry import ModelBundle
from ..bundles.serving import bundle_experiment, bundle_prepared
from .safety import (MONOTONE_GRID, MONOTONE_TOLERANCE_U, SafetyFlag, above_history_flag, flat_zero_flag,
                     non_monotone_flag, nonmonotone_summary, out_of_range_flag, uncertain_dose_flag)
from .rebuild import NOW_INDEX, Built, band_variants, build, set_moment
from .scenarios import Scenario, check_glucose

SWEEP_POINTS = 100
# Each point is a copy of the model input: 10^8 points once took all the machine's memory.
MAX_SWEEP_POINTS = 1_000
SIMILAR_GLUCOSE_MGDL = 20.0

# --------------------------------------------------------------------------------------------
# Predictions, sweeps
# --------------------------------------------------------------------------------------------

MAX_MEAL_G = 300  # the What-if's carbohydrate field stops here: more at one meal is a typing error


@dataclass(frozen=True)
class MealGrams:
    """Carbohydrates at a moment and the patient's usual meal before it, in grams, and how the
    model reads a meal of any size there (its size against the usual one: less, typical, more)."""

    recorded: float  # 0 when no meal is on record at the moment
    usual: float | None  # None: no earlier meal to compare with

    def level(self, grams: float) -> str:
        return "none" if grams <= 0 else meal_size_of(grams, self.usual)


@dataclass
class Prediction:
    patient_id: int
    moment: pd.Timestamp
    day_part: str
    dose: float  # units, what train.predict gives
    low: float
    high: float
    p_dose: float
    amount: float  # the amount head, units (the dose if one is given)
    unedited_dose: float | None
    flags: list[SafetyFlag]
    inputs: dict  # the moment as the model sees it, in domain units
    scenario: Scenario
    threshold: float = 0.5  # the P(dose) above which this patient gets a dose
    new_patient: bool = False  # not in the model's training: served by its unknown-patient row

    @property
    def change(self) -> float | None:
        return None if self.unedited_dose is None else self.dose - self.unedited_dose

    def words(self, actual_dose: float | None = None) -> str:
        """The scenario as the model saw it and its answer, in one sentence (beside Scenario.words,
        which names only the edits); `actual_dose`, the dose on record, when there is one."""
        i = self.inputs
        glucose = f"glucose {i['glucose_now']:.0f} mg/dL" if i["glucose_now"] is not None else "no glucose reading"
        parts = [glucose, LEVEL_PHRASES["meal"][i["meal_now"]], LEVEL_PHRASES["exercise"][i["exercise_now"]],
                 "hypoglycemic symptoms" if i["hypo_now"] else "no hypo", f"{i['time']} ({i['day_part']})"]
        if self.scenario.glucose_readings:
            parts.append(f"{len(self.scenario.glucose_readings)} window reading(s) edited")
        change = "" if self.change is None else f"; unedited {self.unedited_dose:.0f} U (change {self.change:+.0f} U)"
        actual = "" if actual_dose is None else f"; actually given {actual_dose:.0f} U"
        return (f"Scenario: {', '.join(parts)} -> {self.dose:.0f} U of Regular (90% interval {self.low:.0f}-"
                f"{self.high:.0f} U), P(dose) {self.p_dose:.0%}{change}{actual}.")

    def to_dict(self) -> dict:
        return {"patient_id": self.patient_id, "moment": str(self.moment), "day_part": self.day_part,
                "dose": self.dose, "low": self.low, "high": self.high, "p_dose": self.p_dose,
                "amount": self.amount, "unedited_dose": self.unedited_dose, "change": self.change,
                "flags": [asdict(f) for f in self.flags], "inputs": self.inputs,
                "scenario": self.scenario.to_dict(), "threshold": self.threshold, "new_patient": self.new_patient}


@dataclass
class Sweep:
    variable: str  # glucose | meal
    values: list  # mg/dL or meal levels
    dose: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_dose: np.ndarray
    real_doses: pd.DataFrame  # the patient's recorded doses at this day part (chart dots)
    band_median: np.ndarray  # median recorded dose within +-20 mg/dL (glucose) / at that meal size
    current: object  # the scenario's own value of the variable

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({self.variable: self.values, "dose": self.dose, "low": self.low, "high": self.high,
                             "p_dose": self.p_dose, "recorded_median": self.band_median})


class _Pass:
    """The rows of one forward pass asked for by several answers (`WhatIf.answers`: a pass has a
    fixed cost, so the page's four answers take one pass, not four); each gets its slice of the heads."""

    def __init__(self):
        self.seqs: list[np.ndarray] = []
        self.nows: list[np.ndarray] = []
        self.size = 0

    def add(self, seq: np.ndarray, now: np.ndarray) -> slice:
        """Rows (n, F) of `now`, each with the window `seq`: (1, L, F) shared, or (n, L, F)."""
        self.seqs.append(np.repeat(seq, len(now), axis=0) if len(seq) == 1 else seq)
        self.nows.append(now)
        self.size += len(now)
        return slice(self.size - len(now), self.size)

    def run(self, engine: "WhatIf", patient_id: int) -> tuple[np.ndarray, ...]:
        """(amount, P(dose), scaled seq, scaled now) of every row, in the order added."""
        return engine._heads(np.concatenate(self.seqs), np.concatenate(self.nows), patient_id)


def _rows(heads: tuple[np.ndarray, ...], rows: slice) -> tuple[np.ndarray, ...]:
    return tuple(h[rows] for h in heads)


def _bounded(store: dict, key, make):
    """store[key], made once; the store is emptied past 256 entries (an engine lives as long as
    the server). Shared by sessions: the value is never read back from the store after a clear."""
    found = store.get(key)
    if found is None:
        found = make()
        if len(store) > 256:
            store.clear()
        store[key] = found
    return found


class WhatIf:
    """What-if engine for one bundle over one cohort's events (and, optionally, its features)."""

    def __init__(self, bundle: ModelBundle, events: pd.DataFrame, features: pd.DataFrame | None = None,
                 conformal: dict | None = None):
        self.bundle = bundle
        self.features = features
        self._events = {int(p): g.sort_values(["timestamp", "code"], kind="stable").reset_index(drop=True)
                        for p, g in events.groupby("patient_id")}
        self.window = bundle_experiment(bundle).window  # read once: every rebuild needs it
        self._conformal = conformal
        self._predictor: NetworkPredictor | None = None
        self._built: dict[tuple, Built] = {}
        self._unedited: dict[tuple, float] = {}
        self._timelines: dict[int, pd.DataFrame] = {}
        self._real: dict[tuple, pd.DataFrame] = {}

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def predictor(self) -> NetworkPredictor:
        """The bundle's network with its conformal table (the given one, the bundle's, or one
        calibrated now on the bundle's own validation part)."""
        if self._predictor is None:
            found = self.bundle.predictor(self._conformal)
            if found.conformal is None:
                features = self.features if self.features is not None else add_features(
                    build_timeline(pd.concat(self._events.values())))
                found = bundle_prepared(self.bundle, features, every_patient=False).calibrate(found)
                found.conformal["computed_on_the_fly"] = True
            self._predictor = found
        return self._predictor

    @property
    def conformal(self) -> dict:
        return self.predictor.conformal

    @property
    def patients(self) -> list[int]:
        return sorted(self._events)

    def events_of(self, patient_id: int) -> pd.DataFrame:
        if patient_id not in self._events:
            raise ValueError(f"Unknown patient {patient_id}; the data has patients {self.patients[0]}-{self.patients[-1]}.")
        return self._events[patient_id]

    def decision_points(self, patient_id: int) -> pd.Series:
        ev = self.events_of(patient_id)
        return ev.loc[ev["kind"].isin(DECISION_KINDS), "timestamp"].drop_duplicates().reset_index(drop=True)

    def build(self, scenario: Scenario, bounded: bool = True) -> Built:
        return build(scenario, self.events_of(scenario.patient_id), self.window, bounded)

    def _base(self, scenario: Scenario) -> Built:
        """The rebuilt history of a scenario (without its moment edits), cached."""
        return _bounded(self._built, scenario.key(), lambda: self.build(scenario.history_only()))

    def _heads(self, seq: np.ndarray, now: np.ndarray, patient_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(amount, P(dose), scaled seq, scaled now) for unscaled (n, L, F) / (n, F) inputs."""
        part = self.predictor.scaling.inputs_of(seq, now, np.full(len(now), patient_id))
        amount, p = self.predictor.heads_of_inputs(part)
        return amount, p, part.seq, part.now

    def _bands(self, base: Built) -> np.ndarray:
        if base.band_now is None:
            cfg = base.ws.config
            base.band_now = band_variants(base, self.events_of(base.scenario.patient_id), cfg.length, cfg.dose_window,
                                          cfg.cgm_every)
        return base.band_now

    def _moment_now(self, base: Built, scenario: Scenario) -> np.ndarray:
        bands = self._bands(base) if scenario.glucose_now is not None else None
        return set_moment(base.ws.now, scenario.glucose_now, scenario.meal_now, scenario.exercise_now,
                           scenario.hypo_now, band_now=bands)

    # -- one prediction -------------------------------------------------------------------------
    def predict(self, scenario: Scenario, rebuild: bool = False, with_unedited: bool = True) -> Prediction:
        """Dose, conformal interval and safety flags for a scenario.

        `rebuild=True` rebuilds the features from the edited events for this very call; the default
        reuses the rebuilt history of the scenario's window/time edits and sets the moment's own
        columns (proved equal in tests), which is what keeps slider moves fast.
        """
        base = self._base(scenario)
        built = self.build(scenario) if rebuild else base
        now = built.ws.now if rebuild else self._moment_now(base, scenario)
        rows = self._prediction_rows(now, base)
        heads = self._heads(np.repeat(built.ws.seq, len(rows), axis=0), rows, scenario.patient_id)
        return self._prediction(scenario, built, now, heads, with_unedited)

    def _prediction_rows(self, now: np.ndarray, base: Built) -> np.ndarray:
        """The scenario's moment, then the monotonicity grid over 70-400 mg/dL (the safety flags)."""
        grid_now = set_moment(np.repeat(now, len(MONOTONE_GRID), axis=0), MONOTONE_GRID, band_now=self._bands(base))
        return np.concatenate([now, grid_now])

    def _prediction(self, scenario: Scenario, built: Built, now: np.ndarray, heads: tuple, with_unedited: bool) -> Prediction:
        amount, p, seq_s, now_s = heads
        dose, low, high = self.predictor.interval_of(amount, p, scenario.patient_id)
        threshold = float(self.predictor.threshold_for(scenario.patient_id))
        history = self.history_doses(scenario.patient_id, before=built.moment)
        flags = [f for f in (out_of_range_flag(seq_s[:1], now_s[:1], built.ws.now_features),
                             uncertain_dose_flag(float(p[0]), threshold),
                             non_monotone_flag(MONOTONE_GRID, dose[1:]),
                             flat_zero_flag(MONOTONE_GRID, dose[1:]),
                             above_history_flag(float(dose[0]), history, built.day_part)) if f is not None]
        unedited = None
        if with_unedited:
            unedited = float(dose[0]) if not scenario.edited else self.unedited_dose(scenario)
        return Prediction(scenario.patient_id, built.moment, built.day_part, float(dose[0]), float(low[0]),
                          float(high[0]), float(p[0]), float(amount[0]), unedited, flags,
                          self._inputs(now[0], built), scenario, threshold,
                          not bool(self.predictor.scaling.knows(scenario.patient_id)))

    def answers(self, scenario: Scenario, points: int = SWEEP_POINTS) -> tuple[Prediction, Sweep, Sweep, Explanation]:
        """What the What-if page shows for a scenario (its prediction, the glucose sweep of `points`
        values, the meal sweep, the explanation), from one forward pass of the network: equal to
        `predict`, `sweep_glucose`, `sweep_meal` and `explain` called apart (tests/test_whatif.py)."""
        base = self._base(scenario)
        now = self._moment_now(base, scenario)
        values = self._glucose_values(None, points)
        occlusions = occlusion_batch(base.features, base.row, base.ws, now)
        batch = _Pass()
        rows = [batch.add(base.ws.seq, self._prediction_rows(now, base)),
                batch.add(base.ws.seq, self._glucose_rows(now, base, values)),
                batch.add(base.ws.seq, self._meal_rows(now)),
                batch.add(occlusions.seqs, occlusions.nows)]
        heads = batch.run(self, scenario.patient_id)
        prediction, glucose, meal, explained = (_rows(heads, r) for r in rows)
        return (self._prediction(scenario, base, now, prediction, with_unedited=True),
                self._sweep("glucose", list(map(float, values)), base, now, glucose, scenario.patient_id),
                self._sweep("meal", list(LEVEL_NAMES), base, now, meal, scenario.patient_id),
                explanation_of(occlusions, explained[0] * explained[1]))

    def unedited_dose(self, scenario: Scenario) -> float:
        key = (scenario.patient_id, str(scenario.at))
        if key not in self._unedited:
            self._unedited[key] = self.predict(scenario.unedited(), with_unedited=False).dose
        return self._unedited[key]

    def _inputs(self, now: np.ndarray, built: Built) -> dict:
        return {"glucose_now": float(now[NOW_INDEX["glucose"]]) if now[NOW_INDEX["has_glucose"]] > 0 else None,
                "meal_now": level_name(now[NOW_INDEX["meal"]]), "exercise_now": level_name(now[NOW_INDEX["exercise"]]),
                "hypo_now": bool(now[NOW_INDEX["hypo"]] > 0), "time": f"{built.moment:%H:%M}", "day_part": built.day_part}

    # -- sweeps ---------------------------------------------------------------------------------
    def sweep_glucose(self, scenario: Scenario, values: np.ndarray | None = None, points: int = SWEEP_POINTS) -> Sweep:
        """Predicted dose over glucose now (default: `points` values over the meter range), one forward pass."""
        values = self._glucose_values(values, points)
        base = self._base(scenario)
        now = self._moment_now(base, scenario)
        return self._sweep_pass("glucose", list(map(float, values)), base, now, self._glucose_rows(now, base, values),
                                scenario.patient_id)

    def sweep_meal(self, scenario: Scenario) -> Sweep:
        base = self._base(scenario)
        now = self._moment_now(base, scenario)
        return self._sweep_pass("meal", list(LEVEL_NAMES), base, now, self._meal_rows(now), scenario.patient_id)

    @staticmethod
    def _glucose_values(values: np.ndarray | None, points: int) -> np.ndarray:
        if not 1 <= (points if values is None else len(values)) <= MAX_SWEEP_POINTS:
            raise ValueError(f"a glucose sweep has 1 to {MAX_SWEEP_POINTS:,} points")
        return (np.linspace(GLUCOSE_METER_MIN, GLUCOSE_METER_MAX, points) if values is None
                else np.asarray([check_glucose(v) for v in values], dtype=float))

    def _glucose_rows(self, now: np.ndarray, base: Built, values: np.ndarray) -> np.ndarray:
        return set_moment(np.repeat(now, len(values), axis=0), values, band_now=self._bands(base))

    @staticmethod
    def _meal_rows(now: np.ndarray) -> np.ndarray:
        return set_moment(np.repeat(now, len(LEVEL_NAMES), axis=0), meal=np.array(LEVEL_NAMES))

    def _sweep_pass(self, variable: str, values: list, base: Built, now: np.ndarray, variants: np.ndarray,
                    patient_id: int) -> Sweep:
        amount, p = self._heads(np.repeat(base.ws.seq, len(variants), axis=0), variants, patient_id)[:2]
        return self._sweep(variable, values, base, now, (amount, p), patient_id)

    def _sweep(self, variable: str, values: list, base: Built, now: np.ndarray, heads: tuple, patient_id: int) -> Sweep:
        """A sweep from its rows' heads; `now` is the scenario's moment (the sweep's current value)."""
        amount, p = heads[:2]
        dose, low, high = self.predictor.interval_of(amount, p, patient_id)
        real = _bounded(self._real, (patient_id, base.day_part, base.moment),
                        lambda: self.real_doses(patient_id, base.day_part, base.moment))
        if variable == "glucose":
            near = np.abs(real["glucose"].to_numpy()[None, :] - np.asarray(values)[:, None]) <= SIMILAR_GLUCOSE_MGDL
            doses = np.where(near, real["dose"].to_numpy()[None, :], np.nan)
            med = np.full(len(values), np.nan)
            some = near.any(axis=1)
            med[some] = np.nanmedian(doses[some], axis=1)
        else:
            med = [real.loc[real["meal"] == v, "dose"].median() if (real["meal"] == v).any() else np.nan for v in values]
        current = self._inputs(now[0], base)[f"{variable}_now"]
        return Sweep(variable, values, dose, low, high, p, real, np.asarray(med, dtype=float), current)

    def timeline(self, patient_id: int) -> pd.DataFrame:
        """The patient's timeline with decision doses of the bundle's dose window (cached)."""
        if patient_id not in self._timelines:
            self._timelines[patient_id] = add_decision_doses(
                build_timeline(self.events_of(patient_id), self.window.cgm_every), self.window.dose_window)
        return self._timelines[patient_id]

    def meal_grams(self, scenario: Scenario) -> MealGrams | None:
        """The carbohydrates of the scenario's moment in grams and the patient's usual meal before
        it (`records.usual_meal_grams`); None when the data gives no grams (AIM94 diaries)."""
        events = self.events_of(scenario.patient_id)
        if "carbs_g" not in events.columns or events["carbs_g"].isna().all():
            return None
        moment = self._base(scenario).moment
        here = events.loc[(events["kind"] == "meal") & (events["timestamp"] == moment), "carbs_g"]
        return MealGrams(float(here.sum()), usual_meal_grams(events, moment))

    def actual_dose(self, patient_id: int, at: pd.Timestamp) -> float | None:
        """The decision dose on record at a decision point (None when `at` is not one)."""
        tl = self.timeline(patient_id)
        here = tl[(tl["timestamp"] == pd.Timestamp(at)) & tl["decision_point"]]
        return float(here["decision_dose"].iloc[0]) if len(here) else None

    def history_doses(self, patient_id: int, before: pd.Timestamp) -> pd.DataFrame:
        """The Regular doses on record before a moment, by the history features' own rule
        (`features.history_doses`), typing errors left out (the safety check's reading)."""
        tl = self.timeline(patient_id)
        dose, typo = history_doses(tl)
        keep = (dose > 0) & ~typo & (tl["timestamp"] < before).to_numpy()
        return pd.DataFrame({"timestamp": tl["timestamp"].to_numpy()[keep], "dose": dose[keep]})

    def real_doses(self, patient_id: int, day_part: str, before: pd.Timestamp | None = None) -> pd.DataFrame:
        """The patient's recorded decision moments with a glucose reading in this day part:
        timestamp, glucose, decision dose (0 = none), meal size."""
        tl = self.timeline(patient_id)
        if before is not None:
            tl = tl[tl["timestamp"] < before]
        tl = tl[tl["glucose"].notna() & tl["decision_point"]]
        tl = tl[day_parts(tl["timestamp"]) == day_part]
        return pd.DataFrame({"timestamp": tl["timestamp"].to_numpy(), "glucose": tl["glucose"].to_numpy(),
                             "dose": tl["decision_dose"].clip(upper=MAX_PLAUSIBLE_DOSE["regular"]).to_numpy(),
                             "meal": [level_name(v) for v in tl["meal"].to_numpy()]})

    # -- explanation ----------------------------------------------------------------------------
    def explain(self, scenario: Scenario, top: int = 2) -> Explanation:
        base = self._base(scenario)
        return explain_occlusion(self.predictor, base.features, base.row, base.ws, self._moment_now(base, scenario),
                                 scenario.patient_id, top)


def nonmonotone_share(bundle, events: pd.DataFrame, features: pd.DataFrame | None = None,
                      part: str = "test", max_per_patient: int = 3, tol: float = MONOTONE_TOLERANCE_U) -> dict:
    """Per patient, the share of their decision points (the latest `max_per_patient` with a glucose
    reading, of one part) whose glucose-now curve over 70-400 mg/dL falls by more than `tol` U,
    and whether their average curve does; plus the share of patients with a non-monotone curve."""
    features = add_features(build_timeline(events)) if features is None else features
    prepared = bundle_prepared(bundle, features, every_patient=False)
    ws = prepared.ws
    idx = getattr(prepared.split, part) if part != "all" else np.arange(len(ws))
    idx = idx[ws.now[idx, NOW_FEATURES.index("has_glucose")] > 0]
    engine = WhatIf(bundle, events, features, conformal=zero_width_table())  # only the doses are read
    curves = {}
    for pid, grp in pd.Series(idx, index=ws.context["patient_id"].to_numpy()[idx]).groupby(level=0):
        take = grp.to_numpy()[-max_per_patient:]
        curves[int(pid)] = np.stack([engine.sweep_glucose(Scenario(int(pid), ws.context["timestamp"].iloc[i]),
                                                          MONOTONE_GRID).dose for i in take])
    return nonmonotone_summary(curves, part, tol)
