"""A fast, vectorised load generator of CGM + pump patient-years as HUPA-UCM preprocessed CSV files
(`time;glucose;calories;heart_rate;steps;basal_rate;bolus_volume_delivered;carb_input`, one row per
5 minutes, one file per patient, `HUPA0001P.csv`), the format insulin_core/data/readers/hupa_ucm.py
reads: what a clinic or researcher with a year of CGM per patient would hand the dashboard.

SYNTHETIC, for benchmarks (bench/cgm_scale.py) and their tests only. The shape of the data is
realistic (a reading every 5 minutes with gaps, 3 meals and 0-2 snacks a day with their boluses, a
correction now and then, an hourly basal profile with temporary rates around exercise, steps and
heart rate); the physiology is not: glucose is a linear response (two-compartment absorption of
carbs and insulin, a leaky integrator, AR(1) noise), one pass of feedback for the corrections. For
a cohort whose glucose answers insulin step by step, use insulin_core/data/demo_modern.py: it is
a per-step Python simulation (about 2 s per patient-year), too slow for 1,000 patient-years.

One patient-year = 365 days x 288 rows = 105,120 rows. Same (patient, days, seed) -> same bytes.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

SLOTS_PER_DAY = 288  # 5-minute rows
HEADER = "time;glucose;calories;heart_rate;steps;basal_rate;bolus_volume_delivered;carb_input"
START = date(2024, 1, 8)
TI, TG, TAU = 55.0, 40.0, 360.0  # minutes: insulin and carb absorption, glucose memory
CGM_RANGE = (40, 400)


def file_name(patient: int) -> str:
    return f"HUPA{patient:04d}P.csv"


def _two_compartment(x: np.ndarray, t: float) -> np.ndarray:
    """Amount absorbed per 5-minute slot from doses `x` through two compartments of time constant t."""
    a = 5.0 / t
    once = lfilter([a], [1.0, -(1 - a)], x)
    return lfilter([a], [1.0, -(1 - a)], once)


def _leaky(x: np.ndarray) -> np.ndarray:
    a = 5.0 / TAU
    return lfilter([1.0], [1.0, -(1 - a)], x)


def patient_rows(patient: int, days: int, seed: int = 0) -> pd.DataFrame:
    """One patient's rows (the CSV's columns; glucose NaN where the sensor is silent)."""
    rng = np.random.default_rng([seed, patient])
    n = days * SLOTS_PER_DAY
    cr, cf = float(rng.choice([6, 8, 10, 12, 15])), float(rng.choice([30, 40, 50, 60]))
    target, correct_above = float(rng.choice([100, 110, 120])), float(rng.choice([200, 220, 250]))
    sensitivity, carb_effect = rng.uniform(0.85, 1.15, 2)
    base = rng.uniform(0.6, 1.2)
    hour = (np.arange(n) % SLOTS_PER_DAY) // 12
    basal = base * np.select([hour < 3, hour < 8, hour < 20], [0.9, 1.2, 1.0], 0.9)
    day0 = np.arange(days) * SLOTS_PER_DAY

    # meals (3 a day, some skipped) and snacks (0-2 a day): grams at their slot
    carbs = np.zeros(n)
    usual = np.array([rng.integers(78, 102), rng.integers(144, 162), rng.integers(222, 246)])  # slots
    grams_usual = np.array([rng.integers(6, 13), rng.integers(10, 19), rng.integers(10, 21)]) * 5.0
    meal_slot = (day0[:, None] + usual + np.clip(rng.normal(0, 5, (days, 3)), -12, 12).round()).astype(int)
    meal_g = np.maximum(10.0, 5 * np.round(grams_usual * rng.lognormal(0, 0.25, (days, 3)) / 5))
    eaten = rng.random((days, 3)) >= np.array([0.12, 0.05, 0.03])
    snack_slot = (day0[:, None] + rng.integers([120, 180], [138, 198], (days, 2))).astype(int)
    snack_g = 5.0 * rng.integers(2, 7, (days, 2))
    snacked = rng.random((days, 2)) < rng.uniform(0.1, 0.4)
    slots = np.concatenate([meal_slot[eaten], snack_slot[snacked]])
    grams = np.concatenate([meal_g[eaten], snack_g[snacked]])
    np.add.at(carbs, slots, grams)
    bolused = rng.random(len(slots)) >= rng.uniform(0.03, 0.08)  # the rest: carbs without a bolus

    # exercise (afternoons, some days) with a temporary basal at half the rate from an hour before
    ex_days = np.flatnonzero(rng.random(days) < rng.uniform(0.2, 0.5))
    ex_start = day0[ex_days] + rng.integers(186, 204, len(ex_days))
    ex_len = rng.integers(4, 13, len(ex_days))  # slots: 20-60 minutes
    exercising = np.zeros(n, dtype=bool)
    temp = np.zeros(n, dtype=bool)
    for s, k in zip(ex_start, ex_len):  # one slice per session (a few hundred a year)
        exercising[s:s + k] = True
        temp[max(s - 12, 0):s + k] = True
    basal = np.where(temp, basal * 0.5, basal)

    def glucose_of(bolus: np.ndarray) -> np.ndarray:
        rise = cf / cr * carb_effect * _two_compartment(carbs, TG)
        fall = cf * sensitivity * _two_compartment(bolus, TI) + 1.5 * exercising
        return target + _leaky(rise - fall) + noise

    noise = lfilter([1.0], [1.0, -0.98], rng.normal(0, 2.0, n))
    meal_bolus = np.zeros(n)
    pre = np.clip(target + noise, *CGM_RANGE)
    units = np.floor((grams / cr + np.maximum(pre[slots] - target, 0) / cf) / 0.05) * 0.05
    np.add.at(meal_bolus, slots[bolused], units[bolused])
    glucose = glucose_of(meal_bolus)
    checks = day0[:, None] + rng.integers(0, SLOTS_PER_DAY, (days, 4))  # the pump checked now and then
    high = checks[glucose[checks] > correct_above]
    bolus = meal_bolus.copy()
    np.add.at(bolus, high, np.floor((glucose[high] - target) / cf / 0.05) * 0.05)
    glucose = np.clip(np.round(glucose_of(bolus) + rng.normal(0, 5, n)), *CGM_RANGE)

    silent = np.zeros(n, dtype=bool)  # 2-hour warm-up every 10 days, short signal losses
    for first in range(0, n, 10 * SLOTS_PER_DAY):
        silent[first + int(rng.integers(0, SLOTS_PER_DAY)):][:24] = True
    for first in np.flatnonzero(rng.random(n) < 0.003):
        silent[first:first + int(rng.integers(3, 13))] = True

    awake = (hour >= 7) & (hour < 23)
    steps = np.where(exercising, rng.integers(550, 800, n), np.where(awake, rng.poisson(40, n), 0))
    heart = np.round(62 + rng.normal(0, 4, n) + 8 * awake + 55 * exercising)
    stamps = np.datetime64(START, "m") + 5 * np.arange(n).astype("timedelta64[m]")
    return pd.DataFrame({
        "time": np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s"),
        "glucose": np.where(silent, np.nan, glucose), "calories": np.round(1.1 + steps * 0.045, 2),
        "heart_rate": heart, "steps": steps, "basal_rate": np.round(basal, 3),
        "bolus_volume_delivered": np.round(bolus, 2), "carb_input": carbs})


def patient_csv(patient: int, days: int, seed: int = 0) -> bytes:
    """The patient's HUPA-UCM CSV (header line, then one line per 5-minute row)."""
    rows = patient_rows(patient, days, seed)
    text = rows.to_csv(sep=";", index=False, header=False, na_rep="", float_format="%.15g", lineterminator="\n")
    return (HEADER + "\n" + text).encode("ascii")


def write_cohort(folder: Path, patients: int, days: int = 365, seed: int = 0, first: int = 1) -> list[Path]:
    """Patients first..first+patients-1 as one CSV each in `folder` (made if missing); the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for patient in range(first, first + patients):
        path = folder / file_name(patient)
        part = path.with_suffix(".part")  # whole files only: a run stopped midway leaves no half file
        part.write_bytes(patient_csv(patient, days, seed))
        part.replace(path)
        paths.append(path)
    return paths
