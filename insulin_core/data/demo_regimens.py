"""The demo patients' regimens (demo.py): who they are (`Patient`), the rule their Regular doses
follow (`sliding_scale`, the known truth bench/fidelity.py checks What-if curves against), and how
a cohort's regimens are drawn from its random generator (`draw_regimens`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

MEALS = ("breakfast", "lunch", "supper")

NO_DOSE_BELOW = 80  # mg/dL: the scale holds the Regular below this (a low before a meal)
LOW_TIER_BELOW = 120  # 80-119 mg/dL: one unit less than the base dose
LATE_LOGGER_SHARE = 0.4  # clock-time patients who write the insulin 2-12 minutes after the reading


@dataclass(frozen=True)
class Patient:
    """One synthetic patient's regimen and habits; everything the dose rule needs."""

    paper: bool  # paper records: logical times 08:00/12:00/18:00/22:00
    basal: str  # "nph" | "ultralente"
    basal_doses: tuple[int, ...]  # one per basal time: breakfast, then supper if twice a day
    base: dict[str, int]  # Regular base dose per meal; 0 at lunch = no lunch Regular
    threshold: int  # mg/dL above which the scale adds units
    step: int  # mg/dL per extra unit
    meal_more: int
    meal_less: int
    exercise_cut: int
    hypo_cut: int  # units taken off the next dose after a hypoglycemia
    bedtime_code: int
    bedtime_correction: bool
    mean_glucose: float
    log_sd: float
    clock_min: dict[str, int]  # usual minute of day per slot (clock-time patients)
    read_prob: dict[str, float]  # chance of a glucose reading per slot
    padded_values: bool  # "009" like data-01, or "9" like data-27
    log_delay: int = 0  # minutes after the reading at which the insulin is written (0 = with it)


def sliding_scale(p: Patient, meal: str, glucose: float | None, meal_size: str = "", exercise: str = "") -> int:
    """The patient's Regular dose (units) before `meal`; 0 means no dose. No noise, no hypo cut."""
    base = p.base[meal]
    if base == 0:
        return 0
    if glucose is None:
        dose = base
    elif glucose < NO_DOSE_BELOW:
        return 0
    elif glucose < LOW_TIER_BELOW:
        dose = base - 1
    else:
        dose = base + max(0, int(glucose - p.threshold) // p.step)
    dose += {"more": p.meal_more, "less": -p.meal_less}.get(meal_size, 0)
    dose -= {"less": 1, "typical": p.exercise_cut, "more": p.exercise_cut + 1}.get(exercise, 0)
    return max(dose, 0)


def draw_regimens(rng: np.random.Generator, n: int) -> list[Patient]:
    """n patients' regimens, each drawn from `rng` in turn (the cohort's own generator)."""
    paper = _paper_flags(rng, n)
    patients = [_draw_patient(rng, bool(flag)) for flag in paper]
    late = _late_flags(rng, [p.paper for p in patients])
    return [replace(p, log_delay=int(rng.integers(2, 13)) if is_late else 0) for p, is_late in zip(patients, late)]


def _late_flags(rng: np.random.Generator, paper: list[bool]) -> np.ndarray:
    """Which patients write the insulin minutes after the reading: a share of the clock-time ones,
    at least one whenever there are two (paper records have fixed logical times)."""
    clock = np.flatnonzero(~np.asarray(paper, dtype=bool))
    n_late = 0 if len(clock) < 2 else max(1, round(LATE_LOGGER_SHARE * len(clock)))
    flags = np.zeros(len(paper), dtype=bool)
    flags[rng.permutation(clock)[:n_late]] = True
    return flags


def _paper_flags(rng: np.random.Generator, n: int) -> np.ndarray:
    """About a third of the patients keep paper records; at least one each way when n >= 2."""
    n_paper = 0 if n == 1 else max(1, round(n / 3))
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[:n_paper]] = True
    return flags


def _draw_patient(rng: np.random.Generator, paper: bool) -> Patient:
    basal = "nph" if rng.random() < 0.7 else "ultralente"
    twice = rng.random() < (0.6 if basal == "nph" else 0.4)
    morning = int(rng.integers(8, 25) if basal == "nph" else rng.integers(10, 29))
    doses = (morning, int(rng.integers(4, 13))) if twice else (morning,)
    # The classic split-mixed regimen (Regular + NPH twice a day) often skips Regular at lunch.
    lunch = 0 if (basal == "nph" and twice and rng.random() < 0.5) else int(rng.integers(2, 7))
    return Patient(
        paper=paper, basal=basal, basal_doses=doses,
        base={"breakfast": int(rng.integers(3, 10)), "lunch": lunch, "supper": int(rng.integers(3, 9))},
        threshold=int(rng.choice([120, 140, 150, 160])), step=int(rng.choice([40, 50])),
        meal_more=int(rng.integers(1, 3)), meal_less=int(rng.integers(1, 3)),
        exercise_cut=int(rng.integers(1, 3)), hypo_cut=int(rng.integers(1, 3)),
        bedtime_code=int(rng.choice([48, 57, 64], p=[0.6, 0.2, 0.2])),
        bedtime_correction=bool(rng.random() < 0.5),
        mean_glucose=float(rng.uniform(135, 185)), log_sd=float(rng.uniform(0.32, 0.42)),
        clock_min={
            "breakfast": int(rng.integers(390, 481)), "lunch": int(rng.integers(690, 781)),
            "supper": int(rng.integers(1020, 1111)), "bedtime": int(rng.integers(1290, 1351)),
        },
        read_prob={
            "breakfast": 0.95, "lunch": float(rng.uniform(0.35, 0.8)), "supper": 0.88,
            "bedtime": float(rng.uniform(0.25, 0.7)), "post": 0.0 if paper else 0.07,
        },
        padded_values=bool(rng.random() < 0.7),
    )
