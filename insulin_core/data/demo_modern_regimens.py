"""The modern demo patients (demo_modern.py): who they are (`PumpPatient`), the rule their pump's
bolus calculator follows (`bolus_rule`, the known truth a fidelity benchmark compares What-if
sweeps against, as `demo_regimens.sliding_scale` is for the AIM94-format demo), their basal
profile, and how a cohort's patients are drawn from its random generator (`draw_pump_patients`).

The settings are those a clinic programs into a pump (carb ratio, correction factor, target,
basal profile); the physiology (`true_*`) differs from them by a few percent, as a real patient's
does from their settings, so glucose is not perfectly controlled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .codes import MGDL_PER_MMOL

MEALS = ("breakfast", "lunch", "dinner")
PUMP_STEPS = (0.025, 0.05, 0.1)  # U: the bolus increments of common pumps
# (UTC offset in minutes, unit) of patients 1, 2, ... in turn: both units, whole and half-hour
# offsets on both sides of UTC, so the reader's unit and timezone paths are all taken.
PLACES = ((60, "mg/dL"), (-300, "mg/dL"), (330, "mmol/L"), (0, "mmol/L"), (600, "mg/dL"), (-180, "mmol/L"))


@dataclass(frozen=True)
class PumpPatient:
    """One synthetic pump + CGM patient: pump settings, habits and physiology."""

    number: int
    unit: str  # "mg/dL" | "mmol/L": what the patient's meter and pump show
    utc_offset: int  # minutes east of UTC: where the patient lives
    carb_ratio: float  # g of carbohydrate per U
    correction_factor: float  # mg/dL one U lowers glucose (the setting)
    target: float  # mg/dL
    bolus_step: float  # U: the pump rounds a bolus down to this increment
    basal_profile: tuple[tuple[int, float], ...]  # (local minute the rate starts, U/h), from minute 0
    correct_above: float  # mg/dL: a CGM reading above it (3 h after the last bolus) gets a correction
    meal_minutes: tuple[int, int, int]  # usual local minute of breakfast, lunch, dinner
    meal_carbs: tuple[float, float, float]  # usual grams of each meal
    skip_share: tuple[float, float, float]  # how often each meal is skipped
    snack_share: float  # chance of a snack in the morning and in the afternoon
    forget_share: float  # share of meals eaten without a bolus (carbs logged as Carb Correction)
    finger_share: float  # share of meal boluses decided on a fingerstick rather than the CGM
    exercise_share: float  # chance of an afternoon exercise session on a day
    true_sensitivity: float  # the body's correction factor over the setting's
    true_carb_effect: float  # the body's glucose rise per gram over the setting's (CF/CR)
    basal_need: float  # the body's basal need over the profile's rates
    cgm_phase_s: int  # seconds past each 5-minute mark at which the sensor reads

    def basal_rate(self, minute_of_day: float) -> float:
        """The profile's rate (U/h) at a local minute of the day."""
        rate = self.basal_profile[0][1]
        for start, value in self.basal_profile:
            if minute_of_day >= start:
                rate = value
        return rate

    def settings_text(self) -> str:
        """The pump settings as the patient's pump shows them (their unit)."""
        if self.unit == "mmol/L":
            glucose = (f"target {self.target / MGDL_PER_MMOL:.1f} mmol/L, correction factor "
                       f"{self.correction_factor / MGDL_PER_MMOL:.1f} mmol/L per U")
        else:
            glucose = f"target {self.target:g} mg/dL, correction factor {self.correction_factor:g} mg/dL per U"
        basal = ", ".join(f"{m // 60:02d}:{m % 60:02d} {r:.2f} U/h" for m, r in self.basal_profile)
        return (f"carb ratio {self.carb_ratio:g} g/U, {glucose}, bolus step {self.bolus_step:g} U, "
                f"UTC offset {self.utc_offset:+d} min, basal {basal}")


def bolus_rule(p: PumpPatient, carbs_g: float, glucose_mgdl: float | None) -> float:
    """The patient's bolus (U) for `carbs_g` grams at a glucose of `glucose_mgdl` (None: no reading,
    carbs only): carbs / carb ratio + (glucose - target) / correction factor, a glucose under target
    taking units off the meal part, never below 0, rounded down to the pump's step as pumps do
    (never more insulin than asked for). No insulin on board is subtracted: the patients avoid
    stacking by correcting only 3 h after a bolus (demo_modern.py)."""
    if carbs_g < 0 or not math.isfinite(carbs_g):
        raise ValueError(f"carbs_g must be a finite number >= 0, got {carbs_g!r}")
    units = carbs_g / p.carb_ratio
    if glucose_mgdl is not None:
        units += (glucose_mgdl - p.target) / p.correction_factor
    # The small epsilon keeps 2.9999999 (float arithmetic on an exact 3 U) from rounding down a step.
    steps = math.floor(max(units, 0.0) / p.bolus_step + 1e-9)
    return round(steps * p.bolus_step, 4)


def draw_pump_patients(rng: np.random.Generator, n: int) -> list[PumpPatient]:
    """n patients, each drawn from `rng` in turn (the cohort's own generator)."""
    return [_draw(rng, number, *PLACES[(number - 1) % len(PLACES)]) for number in range(1, n + 1)]


def _draw(rng: np.random.Generator, number: int, offset: int, unit: str) -> PumpPatient:
    if unit == "mmol/L":  # settings programmed in mmol/L, kept in mg/dL for the rule
        target = float(rng.choice([5.5, 6.0, 6.5])) * MGDL_PER_MMOL
        factor = float(rng.choice([1.5, 2.0, 2.5, 3.0, 3.5])) * MGDL_PER_MMOL
    else:
        target = float(rng.choice([100, 110, 120]))
        factor = float(rng.choice([30, 40, 50, 60]))
    base = float(rng.uniform(0.6, 1.2))
    # A classic profile: lower late evening, higher before dawn (the dawn phenomenon).
    profile = ((0, base * 0.9), (180, base * 1.2), (480, base), (1200, base * 0.9))
    return PumpPatient(
        number=number, unit=unit, utc_offset=offset,
        carb_ratio=float(rng.choice([6, 8, 10, 12, 15])), correction_factor=factor, target=target,
        bolus_step=float(rng.choice(PUMP_STEPS)),
        basal_profile=tuple((m, round(r, 2)) for m, r in profile),
        correct_above=float(rng.choice([200, 220, 250])),
        meal_minutes=(int(rng.integers(390, 510)), int(rng.integers(720, 810)), int(rng.integers(1110, 1230))),
        meal_carbs=(float(rng.integers(6, 13) * 5), float(rng.integers(10, 19) * 5), float(rng.integers(10, 21) * 5)),
        skip_share=(float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.02, 0.1)), 0.03),
        snack_share=float(rng.uniform(0.1, 0.4)), forget_share=float(rng.uniform(0.03, 0.08)),
        finger_share=float(rng.uniform(0.1, 0.3)), exercise_share=float(rng.uniform(0.2, 0.5)),
        true_sensitivity=float(rng.uniform(0.9, 1.1)), true_carb_effect=float(rng.uniform(0.9, 1.1)),
        basal_need=float(rng.uniform(0.95, 1.05)), cgm_phase_s=int(rng.integers(0, 300)),
    )
