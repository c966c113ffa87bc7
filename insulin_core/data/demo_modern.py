"""A deterministic synthetic pump + CGM cohort written as Nightscout API exports, clearly labelled
synthetic: the modern counterpart of demo.py's AIM94-format cohort.

Each patient (demo_modern_regimens.py) wears a CGM that reads every 5 minutes and a pump whose
calculator gives every bolus by a known rule (`bolus_rule`: carbs / carb ratio + (glucose - target)
/ correction factor, rounded down to the pump's step), on the glucose on record at that moment: the
latest CGM reading, or a fingerstick taken then (always when the CGM has been silent for over 15
minutes). Meals come at varying times and sizes, some skipped, some eaten without a bolus
(forgotten: the carbs logged as a Carb Correction); snacks get a Snack Bolus; a CGM reading over
the patient's threshold 3 h after the last bolus gets a Correction Bolus; under 70 mg/dL, 15 g of
rescue carbs (Carb Correction); exercise comes with a temporary basal at half the profile's rate
from an hour before it.

Glucose follows a small compartment model, stepped every 5 minutes (Euler; dt = 5 min is well
under both time constants):
  insulin  S1' = u(t) - S1/TI,  S2' = (S1 - S2)/TI,  absorbed Ia = S2/TI  (U/min; u: basal + boluses)
  carbs    G1' = carbs(t) - G1/TG, G2' = (G1 - G2)/TG, absorbed Ra = G2/TG  (g/min)
  glucose  BG' = CF*(need(t)/60 - Ia) + CF/CR*Ra - exercise(t) - renal(BG) + counter(BG) + noise
with CF and CF/CR the patient's true sensitivity and glucose rise per gram (a few percent off the
pump's settings), need(t) the body's basal need (the profile times a factor near 1: delivered
basal equal to the need holds glucose flat), renal clearance above 180 mg/dL, counter-regulation
under 70, and an AR(1) disturbance. The CGM reads BG with sensor noise and gaps (a 2-hour warm-up
every 10 days, short signal losses); meters read BG within a few percent.

Files, one pair per patient, as GET /api/v1/entries.json and /treatments.json return them (newest
first): `pNN-entries.json` (sgv every 5 minutes, mbg fingersticks of mg/dL patients) and
`pNN-treatments.json` (Meal / Snack / Correction Bolus, Carb Correction, BG Check, Exercise, Temp
Basal), every record in UTC with the patient's `utcOffset`; patients of mmol/L record their
fingersticks as BG Checks in mmol/L (`units: "mmol"`), as Nightscout stores a BG Check in the unit
it was entered in, while sgv entries are mg/dL as Nightscout stores them. The basal profile is in
the README only: Nightscout keeps it in its profile store, which the reader does not read. A fixed
set of broken records is planted (demo_modern_faults.py; `planted_faults` says where).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from .codes import MGDL_PER_MMOL
from .demo_folder import DemoFolder, check_demo_size, write_demo_folder
from .demo_modern_faults import Fault, plant_faults
from .demo_modern_regimens import MEALS, PumpPatient, bolus_rule, draw_pump_patients

GENERATOR_VERSION = "1.0"
MODERN_DEMO_LABEL = "SYNTHETIC pump + CGM demo cohort, Nightscout format (not real patients)"
MODERN_DEMO_FOLDER = DemoFolder(re.compile(r"p\d\d-(entries|treatments)\.json"), MODERN_DEMO_LABEL,
                                "Nightscout files", "a modern demo cohort")

STEP = 5  # minutes between CGM readings and model steps
TI, TG = 55.0, 40.0  # minutes: insulin and carbohydrate absorption time constants (peaks at TI, TG)
RENAL_ABOVE, RENAL_RATE = 180.0, 0.0015  # mg/dL; per minute, of the excess
COUNTER_BELOW, COUNTER_RATE = 70.0, 0.02  # mg/dL; per minute, of the shortfall
NOISE_PHI, NOISE_SD = 0.9, 0.08  # AR(1) disturbance of the glucose rate (mg/dL/min)
SENSOR_SD, METER_CV = 5.0, 0.04  # mg/dL; share
CGM_RANGE = (40, 400)  # what a Dexcom reports as a number (outside: LOW / HIGH)
STALE_CGM_MIN = 15  # a reading older than this: the patient takes a fingerstick to bolus
CORRECT_AFTER_MIN, RESCUE_AFTER_MIN, HYPO_BELOW, RESCUE_G = 180, 30, 70.0, 15.0
SENSOR_DAYS, WARMUP_STEPS = 10, 24  # a new sensor every 10 days, 2 h without readings
DROPOUT_SHARE = 0.003  # chance a 5-minute step starts a signal loss of 15-60 minutes


@dataclass(frozen=True)
class ModernDemoConfig:
    patients: int = 6
    days: int = 28
    seed: int = 0
    start: date = date(2024, 1, 8)

    def __post_init__(self) -> None:
        check_demo_size(self.patients, self.days, self.seed, self.start, "p01..p99")


def pump_patients(cfg: ModernDemoConfig) -> dict[int, PumpPatient]:
    """Patient number (pNN -> NN, as the Nightscout reader numbers them) -> the patient, whose
    `bolus_rule` is the truth What-if sweeps can be checked against."""
    return {p.number: p for p in draw_pump_patients(np.random.default_rng(cfg.seed), cfg.patients)}


def modern_files(cfg: ModernDemoConfig) -> dict[str, bytes]:
    """File name -> JSON bytes. Same config -> byte-identical output."""
    return _build(cfg)[0]


def planted_faults(cfg: ModernDemoConfig) -> list[Fault]:
    """(file, line, reason) of every planted broken record, reasons as the Nightscout reader names them."""
    return _build(cfg)[1]


def write_modern_cohort(dest: Path, cfg: ModernDemoConfig) -> list[Path]:
    """Write the cohort and a README that labels it synthetic; returns the paths written."""
    files, faults = _build(cfg)
    return write_demo_folder(dest, MODERN_DEMO_FOLDER, files, _readme(cfg, faults))


def _readme(cfg: ModernDemoConfig, faults: list[Fault]) -> str:
    patients = "\n".join(f"- p{p.number:02d} ({p.unit}): {p.settings_text()}" for p in pump_patients(cfg).values())
    planted = "\n".join(f"- `{f}` record {n}: {reason}" for f, n, reason in faults)
    return (
        f"# {MODERN_DEMO_LABEL.upper()}\n\n"
        f"**{MODERN_DEMO_LABEL}. THESE ARE NOT REAL PATIENTS AND NOT MEDICAL DATA.** Generated by "
        f"`insulin_core.data.demo_modern` (generator version {GENERATOR_VERSION}) as Nightscout API exports "
        "(entries.json, treatments.json per patient), for demonstrations and tests only. Never use it to "
        "decide a real insulin dose.\n\n"
        f"- seed: {cfg.seed}\n- patients: {cfg.patients}\n- days: {cfg.days}\n"
        f"- start: {cfg.start.isoformat()} (each patient's local midnight)\n"
        f"- generator version: {GENERATOR_VERSION}\n\n"
        "## Pump settings (every bolus follows them: carbs / carb ratio + (glucose - target) / correction "
        "factor, rounded down to the bolus step)\n\n"
        f"{patients}\n\n"
        f"## Planted broken records ({len(faults)})\n\n"
        "Deliberately broken records of the kinds real exports hold; a reader must reject them.\n\n"
        f"{planted}\n"
    )


# --- generation ---------------------------------------------------------------------------------

def _build(cfg: ModernDemoConfig) -> tuple[dict[str, bytes], list[Fault]]:
    rng = np.random.default_rng(cfg.seed)
    patients = draw_pump_patients(rng, cfg.patients)
    files: dict[str, list[dict]] = {}
    for patient, child in zip(patients, rng.spawn(cfg.patients)):
        entries, treatments = _Simulation(patient, child, cfg).run()
        files[f"p{patient.number:02d}-entries.json"] = _newest_first(entries)
        files[f"p{patient.number:02d}-treatments.json"] = _newest_first(treatments)
    faults = plant_faults(rng, files)
    blobs = {name: json.dumps(records, separators=(",", ":")).encode("ascii") for name, records in files.items()}
    return blobs, faults


def _newest_first(records: list[dict]) -> list[dict]:
    """As the API returns them (sorted by time, newest first)."""
    key = "date" if records and "date" in records[0] else "created_at"
    return sorted(records, key=lambda r: r[key], reverse=True)


@dataclass
class _Plan:
    """What one patient means to do, drawn up front: (local second from the start, kind, grams or minutes)."""

    actions: dict[int, list[tuple[int, str, float]]]  # step -> its actions, by second within the step
    silent: np.ndarray  # (steps,) bool: no CGM reading (warm-up, signal loss)


class _Simulation:
    """One patient's days: the plan, then the model stepped every 5 minutes with the decisions."""

    def __init__(self, p: PumpPatient, rng: np.random.Generator, cfg: ModernDemoConfig) -> None:
        self.p, self.rng, self.days = p, rng, cfg.days
        self.steps = cfg.days * 24 * 60 // STEP
        self.local0 = datetime(cfg.start.year, cfg.start.month, cfg.start.day)
        self.entries: list[dict] = []
        self.treatments: list[dict] = []
        self.serial = 0

    # -- the plan --
    def plan(self) -> _Plan:
        p, rng, days = self.p, self.rng, self.days
        actions: dict[int, list[tuple[int, str, float]]] = {}

        def at(minute: float, kind: str, amount: float) -> None:
            second = int(minute * 60) - p.cgm_phase_s
            if 0 <= second < self.steps * STEP * 60:  # acted on after the reading at or before it
                step, into = divmod(second, STEP * 60)
                actions.setdefault(step, []).append((min(into, STEP * 60 - 10), kind, amount))

        for day in range(days):
            midnight = day * 1440
            for i, meal in enumerate(MEALS):
                if rng.random() < p.skip_share[i]:
                    continue
                minute = p.meal_minutes[i] + float(np.clip(rng.normal(0, 25), -60, 60))
                grams = max(10.0, 5 * round(p.meal_carbs[i] * rng.lognormal(0, 0.25) / 5))
                kind = "forgotten" if rng.random() < p.forget_share else "finger" if rng.random() < p.finger_share else meal
                at(midnight + minute, kind, grams)
            for start, end in ((600, 690), (900, 990)):  # mid-morning, mid-afternoon
                if rng.random() < p.snack_share:
                    at(midnight + rng.uniform(start, end), "snack", float(5 * rng.integers(2, 7)))
            if rng.random() < p.exercise_share:
                begin, length = midnight + rng.uniform(930, 1020), float(5 * rng.integers(4, 19))
                at(begin - 60, "temp_basal", 60 + length)
                at(begin, "exercise", length)
            if rng.random() < 0.7:
                at(midnight + rng.uniform(480, 1320), "calibration", 0.0)
        silent = np.zeros(self.steps, dtype=bool)
        for first in range(0, self.steps, SENSOR_DAYS * 288):  # sensor warm-up, including the first
            silent[first + int(rng.integers(0, 288)):][:WARMUP_STEPS] = True
        for first in np.flatnonzero(rng.random(self.steps) < DROPOUT_SHARE):
            silent[first:first + int(rng.integers(3, 13))] = True
        return _Plan({k: sorted(v) for k, v in actions.items()}, silent)

    # -- the model and the decisions --
    def run(self) -> tuple[list[dict], list[dict]]:
        p, rng = self.p, self.rng
        plan = self.plan()
        cf = p.correction_factor * p.true_sensitivity
        per_gram = p.correction_factor / p.carb_ratio * p.true_carb_effect
        shocks = rng.normal(0.0, NOISE_SD, self.steps).tolist()
        sensor = rng.normal(0.0, SENSOR_SD, self.steps).tolist()
        rate0 = p.basal_rate(0) / 60
        s1 = s2 = rate0 * TI  # steady state of the profile's first rate
        g1 = g2 = disturbance = 0.0
        bg = p.target + float(rng.normal(0, 20))
        self.last_reading: tuple[int, float] | None = None  # (local second, mg/dL)
        self.last_bolus = self.last_rescue = -10**9  # seconds
        self.temp: tuple[int, float] = (-1, 0.0)  # (last second of the temporary rate, U/h)
        exercise: tuple[int, float] = (-1, 0.0)  # (last second, mg/dL per minute)
        for k in range(self.steps):
            now = k * STEP * 60 + p.cgm_phase_s  # local seconds from the start: the reading's time
            if not plan.silent[k]:
                sgv = int(min(max(round(bg + sensor[k]), CGM_RANGE[0]), CGM_RANGE[1]))
                self.last_reading = (now, float(sgv))
                self._entry(now, type="sgv", sgv=sgv, direction="Flat", device="synthetic-cgm")
            bolus = carbs = 0.0
            for into, kind, amount in plan.actions.get(k, ()):
                if kind == "exercise":
                    exercise = (now + int(amount * 60), float(rng.uniform(0.4, 0.9)))
                    self._treatment(now + into, "Exercise", duration=amount, notes="synthetic: afternoon exercise")
                elif kind == "temp_basal":
                    rate = round(p.basal_rate(self._minute(now)) * 0.5, 2)
                    self.temp = (now + into + int(amount * 60), rate)
                    self._treatment(now + into, "Temp Basal", absolute=rate, rate=rate, duration=amount)
                elif kind == "calibration":
                    self._fingerstick(now + into, bg)
                else:
                    units, grams = self._eat(now + into, kind, amount, bg)
                    bolus, carbs = bolus + units, carbs + grams
            if self.last_reading and self.last_reading[0] == now and not carbs:
                units, grams = self._react(now, self.last_reading[1])
                bolus, carbs = bolus + units, carbs + grams
            # the model, one 5-minute step
            minute = self._minute(now)
            delivered = (self.temp[1] if now < self.temp[0] else p.basal_rate(minute)) / 60
            s1, s2 = s1 + bolus + STEP * (delivered - s1 / TI), s2 + STEP * (s1 - s2) / TI
            g1, g2 = g1 + carbs - STEP * g1 / TG, g2 + STEP * (g1 - g2) / TG
            disturbance = NOISE_PHI * disturbance + shocks[k]
            per_minute = (cf * (p.basal_rate(minute) * p.basal_need / 60 - s2 / TI) + per_gram * g2 / TG
                          - (exercise[1] if now < exercise[0] else 0.0) - RENAL_RATE * max(bg - RENAL_ABOVE, 0.0)
                          + COUNTER_RATE * max(COUNTER_BELOW - bg, 0.0) + disturbance)
            bg = min(max(bg + STEP * per_minute, 30.0), 450.0)
        return self.entries, self.treatments

    def _eat(self, second: int, kind: str, grams: float, bg: float) -> tuple[float, float]:
        """A meal or snack: its record and its (bolus, grams) for the model."""
        if kind == "forgotten":
            self._treatment(second, "Carb Correction", carbs=grams, notes="synthetic: meal without a bolus")
            return 0.0, grams
        stale = self.last_reading is None or second - self.last_reading[0] > STALE_CGM_MIN * 60
        glucose = self._fingerstick(second, bg) if kind == "finger" or stale else self.last_reading[1]
        units = bolus_rule(self.p, grams, glucose)
        self._treatment(second, "Snack Bolus" if kind == "snack" else "Meal Bolus", insulin=units, carbs=grams,
                        **self._glucose_fields(glucose, "Finger" if kind == "finger" or stale else "Sensor"))
        self.last_bolus = second if units > 0 else self.last_bolus
        return units, grams

    def _react(self, now: int, sgv: float) -> tuple[float, float]:
        """A CGM reading's answer: rescue carbs when low, a correction when high 3 h after a bolus."""
        p = self.p
        second = now + int(self.rng.integers(30, 240))  # the alarm heard, the pump reached
        if sgv < HYPO_BELOW and now - self.last_rescue >= RESCUE_AFTER_MIN * 60:
            self.last_rescue = now
            self._treatment(second, "Carb Correction", carbs=RESCUE_G, notes="synthetic: hypo treatment")
            return 0.0, RESCUE_G
        if sgv > p.correct_above and now - self.last_bolus >= CORRECT_AFTER_MIN * 60:
            units = bolus_rule(p, 0.0, sgv)
            self.last_bolus = now
            self._treatment(second, "Correction Bolus", insulin=units, **self._glucose_fields(sgv, "Sensor"))
            return units, 0.0
        return 0.0, 0.0

    def _fingerstick(self, second: int, bg: float) -> float:
        """A meter reading of BG, recorded in the patient's unit; returns it in mg/dL as recorded."""
        meter = bg * (1 + float(self.rng.normal(0, METER_CV)))
        if self.p.unit == "mmol/L":
            mmol = round(meter / MGDL_PER_MMOL, 1)
            self._treatment(second, "BG Check", glucose=mmol, glucoseType="Finger", units="mmol")
            return mmol * MGDL_PER_MMOL  # what the reader makes of it, so the rule sees the same number
        mgdl = int(round(meter))
        self._entry(second, type="mbg", mbg=mgdl, device="synthetic-meter")
        return float(mgdl)

    def _glucose_fields(self, mgdl: float, kind: str) -> dict:
        """The reading a calculator used, as a bolus record carries it (the patient's unit)."""
        if self.p.unit == "mmol/L":
            return {"glucose": round(mgdl / MGDL_PER_MMOL, 1), "glucoseType": kind, "units": "mmol"}
        return {"glucose": round(mgdl), "glucoseType": kind, "units": "mg/dl"}

    # -- records --
    def _minute(self, second: int) -> float:
        return (second / 60) % 1440

    def _utc(self, second: int) -> datetime:
        return self.local0 + timedelta(seconds=second, minutes=-self.p.utc_offset)

    def _id(self) -> str:
        self.serial += 1
        return f"{self.p.number:04x}{self.serial:020x}"  # 24 hex digits, the shape of a MongoDB ObjectId

    def _entry(self, second: int, **fields) -> None:
        utc = self._utc(second)
        epoch_ms = int(round((utc - datetime(1970, 1, 1)).total_seconds() * 1000))
        self.entries.append({"_id": self._id(), **fields, "date": epoch_ms, "dateString": _iso(utc),
                             "utcOffset": self.p.utc_offset})

    def _treatment(self, second: int, event: str, **fields) -> None:
        self.treatments.append({"_id": self._id(), "eventType": event, "created_at": _iso(self._utc(second)),
                                "utcOffset": self.p.utc_offset, "enteredBy": "synthetic-pump", **fields})


def _iso(utc: datetime) -> str:
    return utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")
