"""Scenarios of the what-if: a patient, a decision moment and edits of what was known then.

A `Scenario` is a value: checked when made (a glucose inside the meter range, a known level, a
time of day), with its edits in plain English (`words`) and the key its rebuilt history is cached
under. `rebuild.py` applies it to the patient's events; `engine.py` predicts from it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import time as dtime

import numpy as np
import pandas as pd

from ..data.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, LEVEL_NAMES, LEVELS

NEXT = "next"


def check_glucose(value, what: str = "glucose") -> float:
    try:
        g = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in mg/dL, got {value!r}") from None
    if not math.isfinite(g):
        raise ValueError(f"{what} must be a finite number in mg/dL, got {value!r}")
    if not GLUCOSE_METER_MIN <= g <= GLUCOSE_METER_MAX:
        raise ValueError(f"{what} {g:g} mg/dL is outside the meter range "
                         f"{GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g}")
    return g


def check_level(value, what: str) -> str:
    if value not in LEVELS:
        raise ValueError(f"{what} must be one of {', '.join(LEVEL_NAMES)}, got {value!r}")
    return value


def _stamp(value, what: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a date and time (e.g. 1991-03-05 12:30)") from None
    if pd.isna(stamp):
        raise ValueError(f"{what}: {value!r} is not a date and time")
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def parse_time_of_day(text: str) -> dtime:
    try:
        hh, mm = str(text).strip().split(":")
        t = dtime(int(hh), int(mm))
    except (ValueError, TypeError):
        raise ValueError(f"time_of_day must be HH:MM between 00:00 and 23:59, got {text!r}") from None
    return t


@dataclass(frozen=True)
class Scenario:
    """A patient, a decision moment and edits; None / empty = as recorded."""

    patient_id: int
    at: object = NEXT  # a timestamp of a decision point in their history, or "next"
    glucose_now: float | None = None  # mg/dL
    glucose_readings: Mapping = field(default_factory=dict)  # {timestamp in the window: mg/dL}
    meal_now: str | None = None  # none | less | typical | more
    exercise_now: str | None = None
    exercise_earlier: Mapping = field(default_factory=dict)  # {timestamp in the window: level}
    hypo_now: bool | None = None
    time_of_day: str | None = None  # "HH:MM": moves the decision moment within its day

    def __post_init__(self):
        if isinstance(self.patient_id, bool) or not isinstance(self.patient_id, (int, np.integer)):
            raise ValueError(f"patient_id must be a whole number, got {self.patient_id!r}")
        object.__setattr__(self, "patient_id", int(self.patient_id))
        if not (isinstance(self.at, str) and self.at == NEXT):
            object.__setattr__(self, "at", _stamp(self.at, "at"))
        if self.glucose_now is not None:
            object.__setattr__(self, "glucose_now", check_glucose(self.glucose_now, "glucose"))
        readings = {_stamp(t, "glucose reading time"): check_glucose(v, "glucose")
                    for t, v in dict(self.glucose_readings or {}).items()}
        object.__setattr__(self, "glucose_readings", readings)
        for name in ("meal_now", "exercise_now"):
            if getattr(self, name) is not None:
                check_level(getattr(self, name), name.replace("_now", " now"))
        earlier = {_stamp(t, "exercise time"): check_level(v, "exercise") for t, v in dict(self.exercise_earlier or {}).items()}
        object.__setattr__(self, "exercise_earlier", earlier)
        if self.hypo_now is not None and not isinstance(self.hypo_now, (bool, np.bool_)):
            raise ValueError(f"hypo_now must be True, False or None, got {self.hypo_now!r}")
        if self.time_of_day is not None:
            parse_time_of_day(self.time_of_day)

    @property
    def moment_edits(self) -> dict:
        return {"glucose_now": self.glucose_now, "meal_now": self.meal_now,
                "exercise_now": self.exercise_now, "hypo_now": self.hypo_now}

    @property
    def edited(self) -> bool:
        return any(v is not None for v in self.moment_edits.values()) or bool(
            self.glucose_readings or self.exercise_earlier or self.time_of_day)

    def words(self) -> str:
        """The edits in plain English, for tables and exports ("as recorded" when there are none)."""
        from ..labels import LEVEL_PHRASES

        parts = [f"glucose now {self.glucose_now:g} mg/dL"] if self.glucose_now is not None else []
        parts += [f"{LEVEL_PHRASES[kind][level]} now" for kind, level in (("meal", self.meal_now), ("exercise", self.exercise_now))
                  if level is not None]
        if self.hypo_now is not None:
            parts.append("hypoglycemic symptoms now" if self.hypo_now else "no hypoglycemic symptoms now")
        if self.time_of_day:
            parts.append(f"moment moved to {self.time_of_day}")
        parts += [f"reading of {t:%d %b %H:%M} at {v:g} mg/dL" for t, v in sorted(self.glucose_readings.items())]
        parts += [f"{LEVEL_PHRASES['exercise'][level]} on {t:%d %b %H:%M}" for t, level in sorted(self.exercise_earlier.items())]
        return "; ".join(parts) or "as recorded"

    def unedited(self) -> "Scenario":
        return Scenario(self.patient_id, self.at)

    def history_only(self) -> "Scenario":
        """The same scenario without the edits of the moment itself (what a rebuild must redo)."""
        return Scenario(self.patient_id, self.at, glucose_readings=self.glucose_readings,
                        exercise_earlier=self.exercise_earlier, time_of_day=self.time_of_day)

    def key(self) -> tuple:
        return (self.patient_id, str(self.at), tuple(sorted(self.glucose_readings.items())),
                tuple(sorted(self.exercise_earlier.items())), self.time_of_day)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["at"] = str(self.at)
        d["glucose_readings"] = {str(k): v for k, v in self.glucose_readings.items()}
        d["exercise_earlier"] = {str(k): v for k, v in self.exercise_earlier.items()}
        return d
