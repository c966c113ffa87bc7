"""The broken records planted in the modern demo cohort (demo_modern.py), of the kinds real
Nightscout exports hold, each named by the Nightscout reader's rejection reason
(readers/nightscout.py), so its rejection paths are exercised on the demo: a CGM error code, a
calibration record, an uploader's duplicate, a careportal entry with no event type, a temporary
basal given only as a percent, a cancelled bolus, and so on. None of them adds an event: the
accepted records are exactly the generated ones."""
from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

Fault = tuple[str, int, str]  # (file name, 1-based place in its JSON array, reader's rejection reason)
Records = list[dict]


def _entry(near: dict, tag: str, **fields) -> dict:
    base = {k: near[k] for k in ("date", "dateString", "utcOffset")}
    return {"_id": near["_id"][:-1] + tag, **fields, **base}


def _cgm_error(near: dict) -> dict:  # a Dexcom error code written as a reading ("??? sensor not ready")
    return _entry(near, "e", type="sgv", sgv=5, direction="NOT COMPUTABLE", device="share2")


def _calibration(near: dict) -> dict:
    return _entry(near, "c", type="cal", slope=870.2, intercept=31200.5, scale=1, device="share2")


def _treatment(near: dict, tag: str, **fields) -> dict:
    base = {k: near[k] for k in ("created_at", "utcOffset")}
    return {"_id": near["_id"][:-1] + tag, **base, "enteredBy": "careportal", **fields}


# (file part, how the broken record is made from a neighbour, the reason the reader gives)
TEMPLATES: tuple[tuple[str, Callable[[dict], dict | None], str], ...] = (
    ("entries", _cgm_error, "glucose_out_of_range"),
    ("entries", _calibration, "unused_type"),
    ("entries", lambda near: None, "duplicate_record"),  # None: the neighbour itself, uploaded twice
    ("treatments", lambda near: None, "duplicate_record"),
    ("treatments", lambda near: _treatment(near, "s", eventType="Site Change"), "unused_type"),
    ("treatments", lambda near: _treatment(near, "n", eventType="<none>", notes="felt off"), "unknown_type"),
    ("treatments", lambda near: _treatment(near, "p", eventType="Temp Basal", percent=-30, duration=60),
     "needs_profile"),
    ("treatments", lambda near: _treatment(near, "z", eventType="Correction Bolus", insulin=0), "no_amount"),
    ("treatments", lambda near: {**_treatment(near, "d", eventType="BG Check", glucose=140, glucoseType="Finger",
                                              units="mg/dl"), "created_at": "Jan 10 2024 7:05 PM"}, "bad_date"),
    ("treatments", lambda near: _treatment(near, "m", eventType="Carb Correction", carbs=-15), "negative_value"),
    ("treatments", lambda near: {**_treatment(near, "o", eventType="Meal Bolus", insulin=2.0, carbs=20),
                                 "utcOffset": "+01:00"}, "bad_offset"),
    ("treatments", lambda near: _treatment(near, "g", eventType="BG Check", glucoseType="Finger"), "missing_field"),
)


def plant_faults(rng: np.random.Generator, files: dict[str, Records]) -> list[Fault]:
    """Insert one broken record of each template into a random patient's file of its part, next to
    a random record of it (a duplicate right after its original); `files` is changed in place."""
    planted: list[tuple[str, dict, str]] = []
    generated = {name: list(records) for name, records in files.items()}  # neighbours: never a planted one
    for part, make, reason in TEMPLATES:
        holding = sorted(name for name, records in generated.items() if name.endswith(f"-{part}.json") and records)
        if not holding:  # a cohort too short to hold a record of this part
            continue
        name = holding[int(rng.integers(len(holding)))]
        near = generated[name][int(rng.integers(len(generated[name])))]
        broken = make(near)
        broken = copy.deepcopy(near) if broken is None else broken
        records = files[name]
        records.insert(_place(records, near), broken)  # right after its neighbour
        planted.append((name, broken, reason))
    return sorted((name, _place(files[name], record), reason) for name, record, reason in planted)


def _place(records: Records, record: dict) -> int:
    return next(i for i, r in enumerate(records, 1) if r is record)
