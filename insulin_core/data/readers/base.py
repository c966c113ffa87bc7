"""The reader contract, and the one event model every format is read into.

A reader turns the files of one format into the project's events table (exactly
`aim94.EVENT_COLUMNS`, with aim94's dtypes, so features, windows and the model work unchanged) and a
`QualityReport`: every record accepted or rejected with a named reason (each reader declares its
reasons in words), nothing dropped silently, accepted + rejected == records. Three columns may
follow EVENT_COLUMNS for what AIM94 lacks: `carbs_g` (grams of carbohydrate, NaN where unknown),
`unit_in` (the unit the record came in: "mg/dL", "mmol/L", "U", "U/h", "g", "min", ...) and
`record_type` (the source's own name for the record, e.g. "Meal Bolus", "bolus/dual/square").

The event model, the same for every source (docs/architecture.md repeats it):
- Rapid-acting insulin (pump boluses, their normal and extended parts, automated boluses and SMBs,
  rapid pen doses) -> 33, the role AIM94's Regular has: the dose the model predicts. An extended
  part is decided at the same moment as the normal part, so a bolus is one event of normal +
  extended delivered units at its start (delivered, not programmed: a cancelled bolus counts what
  went in). Every unit is counted once.
- Basal and long-acting insulin -> 35 (UltraLente's role, not NPH's: a pump's basal and today's
  long-acting analogues give a flat background with no peak, which UltraLente, the longest and
  flattest of AIM94's insulins, stands for; NPH peaks at 4-8 h). Pump rates (U/h) become the units
  delivered in each clock hour, one event per patient and hour stamped at the end of that hour's
  delivery, not one per segment: a 6-hour segment's insulin acts across the 6 hours, a 5-minute
  grid (HUPA-UCM) would otherwise write 288 insulin rows a day, and the stamp at the end of the
  delivery means no moment sees basal insulin before it was given.
- CGM readings -> 48, meter readings (fingersticks, smbg, BG checks) -> 57: always mg/dL, mmol/L
  multiplied by `codes.MGDL_PER_MMOL` (18.0182), the unit read per record where the format gives it
  and per file where it does not, and counted in `QualityReport.units`. Outside the meter range
  (10-600 mg/dL after conversion) a reading is rejected.
- Carbohydrates -> 66 / 67 / 68 (typical / more / less), sized against that patient's own earlier
  meals: more than MEAL_MORE (1.5) times the median of the patient's earlier meals is "more", less
  than MEAL_LESS (2/3) of it "less", else "typical"; the first meal is typical. Earlier meals only,
  so no meal's size depends on the future. The grams stay in `carbs_g`.
- Exercise -> 69 / 70 / 71 (typical / more / less), from the intensity a record gives, else from
  its duration (under 20 min less, 60 min or more more), else typical (counted as an assumption);
  from steps where that is all there is (hupa_ucm.py: its documented cadence threshold).
- Hypoglycaemia a source records -> 65. Timestamps are the patient's naive local time (UTC plus
  the record's offset), to the second; `paper_time` is False, `censored` "".
"""
from __future__ import annotations

import bisect
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from .. import aim94
from ..aim94 import EVENT_COLUMNS, EXAMPLES_PER_REASON, LoadResult, QualityReport
from ..codes import (CODE_TABLE, EXERCISE_CODES, GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, MAX_PLAUSIBLE_DOSE,
                     MEAL_CODES, MGDL_PER_MMOL)

EXTRA_COLUMNS = ["carbs_g", "unit_in", "record_type"]
BOLUS, NPH, BASAL, CGM, METER, HYPO = 33, 34, 35, 48, 57, 65
MEAL_BY_GRAMS = 0  # a meal's code until it is sized against the patient's earlier meals
MEAL_MORE, MEAL_LESS = 1.5, 2 / 3
EXERCISE_SHORT_MIN, EXERCISE_LONG_MIN = 20.0, 60.0
MAX_DURATION = timedelta(days=5)  # Tidepool's limit on one basal interval; nothing longer is one record
OPEN_BASAL_HOURS = 24  # a rate "until the next" holds at most a day when no next one comes
FIRST_DAY, LAST_DAY = datetime(1980, 1, 1), datetime(2100, 1, 1)
MAX_OFFSET_MIN = 16 * 60
HEAD_CHARS = 65536  # formats are told apart by the start of a file

# Reasons in words shared by the readers; each reader picks its own set (`reasons_of`).
REASON_WORDS = {
    "not_an_object": "a record that is not a JSON object",
    "unknown_type": "a record type the format's documentation does not name",
    "unused_type": "a documented record type the event model has no role for (kept out, not an error)",
    "missing_field": "a field the record needs is missing or empty",
    "non_numeric_value": "a value that is not a finite plain number",
    "bad_date": "a time not written as the format writes times",
    "impossible_date": f"a date that does not exist or lies outside {FIRST_DAY.year}-{LAST_DAY.year - 1}",
    "bad_offset": f"a UTC offset that is not a number of minutes within ±{MAX_OFFSET_MIN // 60} h",
    "unknown_unit": "a glucose unit other than mg/dL or mmol/L, or a carbohydrate unit other than grams",
    "glucose_out_of_range": (f"glucose outside the meter range {GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g} mg/dL "
                             "(after conversion; CGM error codes are small numbers)"),
    "negative_value": "a negative dose, rate, amount of carbohydrate or duration",
    "bad_duration": "a duration that is missing, negative or longer than five days, or an end before the start",
    "no_amount": "no insulin and no carbohydrate (e.g. a cancelled bolus, a calculator record without carbohydrate)",
    "duplicate_record": "the same record (patient, time, type and values) already read",
}


# What a JSON export's records can get wrong (nightscout.py, tidepool.py), in the order it is checked.
JSON_REASONS = ("not_an_object", "unknown_type", "unused_type", "missing_field", "non_numeric_value", "bad_date",
                "impossible_date", "bad_offset", "unknown_unit", "glucose_out_of_range", "negative_value",
                "bad_duration", "no_amount")


def reasons_of(*names: str, **own: str) -> dict[str, str]:
    """A reader's reasons: the shared ones it names, then its own, in the order they are checked;
    `duplicate_record` last, as every reader checks it last (Records.mark_duplicates)."""
    return {**{n: REASON_WORDS[n] for n in names}, **own, "duplicate_record": REASON_WORDS["duplicate_record"]}


class Reject(Exception):
    """Raised while reading a record: the record is rejected with this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- the items a record yields ---------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    timestamp: datetime  # the patient's local clock time
    code: int
    value: float = 0.0
    utc: datetime | None = None  # the same moment in UTC where the source gives it (tells two DST hours apart)
    carbs_g: float = math.nan
    unit_in: str = ""
    record_type: str = ""


@dataclass(frozen=True)
class Basal:
    start: datetime  # local
    end: datetime | None  # None: until the patient's next basal rate (a rate-change log)
    rate: float  # U/h
    override: bool = False  # a temporary rate: replaces the running rate while it lasts
    record_type: str = "basal"


@dataclass(frozen=True)
class Assumed:
    """A stated assumption a record was read under (counted in QualityReport.assumed)."""

    text: str


EVENT_ITEM_COLUMNS = ["record", "patient_id", "timestamp", "utc", "code", "value", "carbs_g", "unit_in", "record_type"]
BASAL_COLUMNS = ["record", "patient_id", "start", "end", "rate", "override", "record_type"]


# ---- values ---------------------------------------------------------------------------------------
DECIMAL = re.compile(r"^\s*-?[0-9]{1,9}(?:\.[0-9]{1,9})?\s*$")  # bounded, ASCII: "1e5", "inf", "٥" are not numbers
ISO_TIME = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})"
                      r"(?::([0-9]{2})(?:[.,][0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$")
UNIT_WORDS = {"mg/dl": "mg/dL", "mgdl": "mg/dL", "mg": "mg/dL", "mmol/l": "mmol/L", "mmol": "mmol/L", "mmoll": "mmol/L"}


def word(value) -> str:
    """A JSON value as a name to look up: itself if a string, else "" (a list or object is no name)."""
    return value if isinstance(value, str) else ""


def required(record: Mapping, key: str):
    value = record.get(key)
    if value is None or value == "":
        raise Reject("missing_field")
    return value


def number(value) -> float:
    """A finite float from a JSON number or a plain decimal string; Reject otherwise."""
    if value is None or value == "":
        raise Reject("missing_field")
    if isinstance(value, bool):
        raise Reject("non_numeric_value")
    if isinstance(value, int) and abs(value) < 10**15:
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and DECIMAL.match(value):
        return float(value)
    raise Reject("non_numeric_value")


def amount(value) -> float:
    """A dose, rate, grams or minutes: a number >= 0."""
    x = number(value)
    if x < 0:
        raise Reject("negative_value")
    return x


def duration(value, unit: timedelta) -> timedelta:
    """A record's duration (`value` in `unit`s): bad_duration when missing, negative or over MAX_DURATION."""
    try:
        count = amount(value)
    except Reject as rejected:
        raise Reject("bad_duration" if rejected.reason in ("missing_field", "negative_value") else rejected.reason)
    if count * (unit / MAX_DURATION) > 1:  # compared before a timedelta is made: 1e300 minutes overflow one
        raise Reject("bad_duration")
    return count * unit


def unit_of(text) -> str:
    """"mg/dL" or "mmol/L" from a format's spelling of it (mg/dl, mmol, mmol/L...)."""
    if not isinstance(text, str) or text.strip().lower() not in UNIT_WORDS:
        raise Reject("unknown_unit")
    return UNIT_WORDS[text.strip().lower()]


def to_mgdl(value: float, unit: str) -> float:
    mgdl = value * MGDL_PER_MMOL if unit == "mmol/L" else value
    if not GLUCOSE_METER_MIN <= mgdl <= GLUCOSE_METER_MAX:
        raise Reject("glucose_out_of_range")
    return mgdl


def in_range(moment: datetime) -> datetime:
    if not FIRST_DAY <= moment < LAST_DAY:
        raise Reject("impossible_date")
    return moment


def iso_time(text) -> tuple[datetime, int | None]:
    """(the clock time as written, to the second; its UTC offset in minutes, None when it gives
    none, 0 for "Z"). "2024-03-31T01:55:00.000+02:00" -> (01:55:00, 120)."""
    if not isinstance(text, str) or len(text) > 40:
        raise Reject("bad_date" if text not in (None, "") else "missing_field")
    match = ISO_TIME.match(text.strip())
    if not match:
        raise Reject("bad_date")
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        clock = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        raise Reject("impossible_date") from None
    offset = None
    if zone:
        sign = -1 if zone[0] == "-" else 1
        offset = 0 if zone == "Z" else sign * (int(zone[1:3]) * 60 + int(zone[-2:]))
        if abs(offset) > MAX_OFFSET_MIN:
            raise Reject("bad_offset")
    return in_range(clock), offset


def epoch_ms(value) -> datetime:
    """Naive UTC time of a Unix epoch in milliseconds."""
    ms = number(value)
    try:
        moment = datetime(1970, 1, 1) + timedelta(milliseconds=ms)
    except OverflowError:
        raise Reject("impossible_date") from None
    return in_range(moment.replace(microsecond=0))


def offset_minutes(value) -> int:
    """A UTC offset in minutes (Nightscout's utcOffset, Tidepool's timezoneOffset)."""
    try:
        minutes = number(value)
    except Reject:
        raise Reject("bad_offset") from None
    if abs(minutes) > MAX_OFFSET_MIN or minutes != int(minutes):
        raise Reject("bad_offset")
    return int(minutes)


def local_time(utc: datetime, offset: int | None, written_offset: int | None, clock: datetime) -> tuple[datetime, list]:
    """The local time of a record: UTC plus the record's own offset; else the offset its time string
    was written with (not "Z", which is how servers store UTC, not where the patient is); else UTC,
    said as an assumption."""
    if offset is not None:
        return in_range(utc + timedelta(minutes=offset)), []
    if written_offset:
        return clock, []
    return utc, [Assumed("no UTC offset on the record: read as UTC")]


def exercise_code(minutes: float | None = None, level: str = "") -> tuple[int, list]:
    """(code, assumptions) of an exercise from its level ("less"/"typical"/"more") if given, else
    its duration; typical, as an assumption, when it gives neither."""
    if level:
        return EXERCISE_CODES[level], []
    if minutes is None:
        return EXERCISE_CODES["typical"], [Assumed("exercise with neither intensity nor duration: typical")]
    if minutes < EXERCISE_SHORT_MIN:
        return EXERCISE_CODES["less"], []
    return EXERCISE_CODES["more" if minutes >= EXERCISE_LONG_MIN else "typical"], []


def patient_ids(keys: Iterable[str]) -> dict[str, int]:
    """Patient number of each patient key (a file name or its stem): the number in it when every key
    holds a different one ("HUPA0001P" -> 1, "559-ws-training" -> 559), else 1, 2, ... in sorted order."""
    keys = sorted(set(keys))
    found = {k: int(m.group()) for k in keys if (m := re.search(r"[0-9]{1,9}", k))}
    if len(found) == len(keys) and len(set(found.values())) == len(keys):
        return found
    return {k: i for i, k in enumerate(keys, 1)}


def text_of(raw) -> str:
    """A record as an example in the report, cut to a readable length."""
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], ElementTree.Element):
        text = f"<{raw[0]}> " + ElementTree.tostring(raw[1], encoding="unicode").strip()  # (parent tag, element)
    else:
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
    return aim94._cap(text, len(text))


# ---- collecting what a reader found ----------------------------------------------------------------
class Records:
    """Every record a reader met (file, line, raw, reason) and the items the accepted ones yield.

    Readers add records one at a time (`read`) or, for a vectorised CSV, as whole frames
    (`add_frame`); `result` then runs the steps every format shares: duplicates, basal hours, meal
    sizes, the events table and the report."""

    def __init__(self) -> None:
        self.file: list[str] = []
        self.line: list[int] = []
        self.raw: list = []
        self.reason: list[str] = []
        self.events: list[tuple] = []
        self.basal: list[tuple] = []
        self.frames: dict[str, list[pd.DataFrame]] = {"events": [], "basal": [], "activity": []}
        self.assumed: list[tuple[int, str]] = []
        self.skipped: list[str] = []
        self.files_read = 0
        self.patient_of_file: dict[str, int] = {}

    def add(self, file: str, line: int, raw, reason: str = "") -> int:
        self.file.append(file)
        self.line.append(line)
        self.raw.append(raw)
        self.reason.append(reason)
        return len(self.reason) - 1

    def read(self, file: str, line: int, raw, patient: int, handler: Callable[[object], list]) -> None:
        """One record: `handler(raw)` gives its items, or raises Reject."""
        record = self.add(file, line, raw)
        try:
            items = handler(raw)
        except Reject as rejected:
            self.reason[record] = rejected.reason
            return
        self.take(record, patient, items)

    def take(self, record: int, patient: int, items: Iterable) -> None:
        for item in items:
            if isinstance(item, Event):
                self.events.append((record, patient, item.timestamp, item.utc, item.code, float(item.value),
                                    float(item.carbs_g), item.unit_in, item.record_type))
            elif isinstance(item, Basal):
                self.basal.append((record, patient, item.start, item.end, float(item.rate), item.override,
                                   item.record_type))
            else:
                self.assumed.append((record, item.text))

    def add_frame(self, kind: str, frame: pd.DataFrame) -> None:
        """Items of many records at once (a `record` column indexes the records added)."""
        self.frames[kind].append(frame)

    # -- the shared steps --
    def items(self) -> dict[str, pd.DataFrame]:
        events = _frame(self.events, EVENT_ITEM_COLUMNS, self.frames["events"])
        basal = _frame(self.basal, BASAL_COLUMNS, self.frames["basal"])
        activity = (pd.concat(self.frames["activity"], ignore_index=True) if self.frames["activity"]
                    else pd.DataFrame({"record": pd.Series(dtype="int64")}))
        for frame, columns in ((events, ("timestamp", "utc")), (basal, ("start", "end"))):
            for column in columns:  # Python datetimes and None (NaT) straight to numpy
                frame[column] = np.asarray(frame[column].to_numpy(), dtype="datetime64[us]")
        return {"events": events, "basal": basal, "activity": activity}

    def mark_duplicates(self, items: dict[str, pd.DataFrame]) -> None:
        """A later record whose items equal an earlier record's (same patient, times, codes, values,
        types) is rejected as `duplicate_record`: an order-free sum of its items' hashes is its key."""
        n = len(self.reason)
        keys, counts = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.int64)
        for tag, frame in enumerate(items.values(), 1):
            if len(frame):
                hashes = pd.util.hash_pandas_object(frame.drop(columns="record"), index=False).to_numpy()
                record = frame["record"].to_numpy()
                np.add.at(keys, record, hashes * np.uint64(2 * tag + 1))  # wraps around: a hash sum
                np.add.at(counts, record, 1)
        reason = np.asarray(self.reason, dtype=object)
        candidates = np.flatnonzero((reason == "") & (counts > 0))
        repeat = pd.DataFrame({"key": keys[candidates], "n": counts[candidates]}).duplicated().to_numpy()
        for record in candidates[repeat]:
            self.reason[record] = "duplicate_record"

    def accepted_items(self, items: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        ok = np.asarray(self.reason, dtype=object) == ""
        return {k: f[ok[f["record"].to_numpy()]].reset_index(drop=True) if len(f) else f for k, f in items.items()}

    def result(self, reader: RecordReader, source: str) -> LoadResult:
        items = self.items()
        self.mark_duplicates(items)
        items = self.accepted_items(items)
        last = _last_moments(items)
        parts = [items["events"], basal_hours(resolve_basal(items["basal"], last)), *reader.derived_events(items)]
        events = size_meals(pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts)
                            else items["events"], self)
        table = self.events_table(events)
        return LoadResult(table, self.report(reader, table), source)

    def events_table(self, events: pd.DataFrame) -> pd.DataFrame:
        record = events["record"].to_numpy(dtype=np.int64)
        code = events["code"].to_numpy(dtype=np.int64)
        kind = np.array([CODE_TABLE[c].kind for c in code], dtype=object)
        limit = np.array([MAX_PLAUSIBLE_DOSE.get(k, np.inf) for k in kind], dtype=float)
        value = events["value"].to_numpy(dtype=float)
        table = pd.DataFrame({
            "patient_id": events["patient_id"].to_numpy(dtype=np.int64),
            "timestamp": events["timestamp"].to_numpy().astype("datetime64[us]"),
            "code": code, "value": value, "kind": _str(kind),
            "detail": _str(np.array([CODE_TABLE[c].detail for c in code], dtype=object)),
            "paper_time": np.zeros(len(code), dtype=bool), "censored": _str(np.full(len(code), "", dtype=object)),
            "implausible": value > limit,
            "file": _str(np.asarray(self.file, dtype=object)[record] if len(record) else np.array([], dtype=object)),
            "line": np.asarray(self.line, dtype=np.int64)[record] if len(record) else np.array([], dtype=np.int64),
            "carbs_g": events["carbs_g"].to_numpy(dtype=float),
            "unit_in": _str(events["unit_in"].to_numpy(dtype=object)),
            "record_type": _str(events["record_type"].to_numpy(dtype=object)),
        })
        table = table.sort_values(["patient_id", "timestamp", "code", "file", "line"], kind="stable")
        return table.reset_index(drop=True)[EVENT_COLUMNS + EXTRA_COLUMNS]

    def report(self, reader: RecordReader, events: pd.DataFrame) -> QualityReport:
        duplicates = (f"a {reader.record_name} equal to one already read (same patient, time, type and values) "
                      "is rejected as duplicate_record")
        report = QualityReport(reasons=dict(reader.reasons), record_name=reader.record_name,
                               actions={**reader.actions, "duplicates": duplicates}, skipped_files=sorted(self.skipped))
        report.files, report.lines = self.files_read, len(self.reason)
        report.accepted = self.reason.count("")
        report.rejected = _counts(r for r in self.reason if r)
        for name in sorted(set(self.file)):
            report.per_file[name] = {"lines": 0, "accepted": 0, "rejected": {},
                                     "patient_id": self.patient_of_file.get(name)}
        for name, why in zip(self.file, self.reason):
            entry = report.per_file[name]
            entry["lines"] += 1
            entry["accepted"] += not why
            if why:
                entry["rejected"][why] = entry["rejected"].get(why, 0) + 1
        for row, why in enumerate(self.reason):
            examples = report.examples.setdefault(why, []) if why else None
            if examples is not None and len(examples) < EXAMPLES_PER_REASON:
                examples.append({"file": self.file[row], "line": self.line[row], "text": text_of(self.raw[row])})
        report.examples = {why: report.examples[why] for why in report.rejected}
        kind = events["kind"].to_numpy(dtype=object)
        report.implausible = _counts(kind[events["implausible"].to_numpy() & np.isin(kind, list(MAX_PLAUSIBLE_DOSE))])
        report.conflicts = aim94._conflicts(events)
        report.patients = len(np.unique(events["patient_id"].to_numpy()))
        report.events = len(events)
        report.units = _counts(events["unit_in"].to_numpy(dtype=object)[kind == "glucose"])
        report.assumed = _counts(text for record, text in self.assumed if self.reason[record] == "")
        return report


def _counts(values: Iterable) -> dict:
    """How often each value occurs, commonest first (ties in order of first appearance)."""
    counted: dict = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return dict(sorted(counted.items(), key=lambda kv: -kv[1]))


def _frame(rows: list[tuple], columns: list[str], frames: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [pd.DataFrame(rows, columns=columns)] + [f[columns] for f in frames]
    parts = [p for p in parts if len(p)] or parts[:1]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


def _str(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return pd.array(values.astype(object) if len(values) else np.array([], dtype=object), dtype="str")


def _last_moments(items: dict[str, pd.DataFrame]) -> dict[int, np.datetime64]:
    """The last moment on record per patient (where an open-ended basal rate stops at the latest)."""
    events, basal = items["events"], items["basal"]
    patient = np.concatenate([events["patient_id"].to_numpy(dtype=np.int64)]
                             + [basal["patient_id"].to_numpy(dtype=np.int64)] * 2)
    moment = np.concatenate([frame[c].to_numpy(dtype="datetime64[us]")
                             for frame, c in ((events, "timestamp"), (basal, "start"), (basal, "end"))])
    known = ~np.isnat(moment)
    return {int(p): moment[known & (patient == p)].max() for p in np.unique(patient[known])}


# ---- basal: rates -> units per clock hour ---------------------------------------------------------
def resolve_basal(basal: pd.DataFrame, last: dict[int, np.datetime64]) -> pd.DataFrame:
    """Basal segments with an end each, temporary rates laid over the running ones.

    A rate given "until the next" ends at the patient's next such rate, at most OPEN_BASAL_HOURS
    later and never after the patient's last moment on record; a temporary rate replaces whatever
    ran during it."""
    if not len(basal) or basal["override"].all():
        return basal[basal["end"] > basal["start"]].reset_index(drop=True)
    basal = basal.sort_values(["patient_id", "start", "record"], kind="stable").reset_index(drop=True)
    running = basal[~basal["override"]].copy()
    open_end = running["end"].isna()
    if open_end.any():
        following = running.groupby("patient_id")["start"].shift(-1)
        cap = running["start"] + pd.Timedelta(hours=OPEN_BASAL_HOURS)
        stop = pd.Series([last[p] for p in running["patient_id"]], index=running.index, dtype="datetime64[us]")
        end = following.where(following.notna(), stop).where(lambda e: e < cap, cap)
        running.loc[open_end, "end"] = end[open_end]
    temporary = basal[basal["override"]]
    if len(temporary):
        running = _cut_out(running, temporary)
    segments = pd.concat([running, temporary], ignore_index=True)
    return segments[segments["end"] > segments["start"]].reset_index(drop=True)


def _cut_out(running: pd.DataFrame, temporary: pd.DataFrame) -> pd.DataFrame:
    """The running segments with every temporary rate's interval (of the same patient) removed."""
    pieces = []
    windows = {p: sorted(zip(g["start"], g["end"])) for p, g in temporary.groupby("patient_id")}
    for row in running.itertuples(index=False):
        parts = [(row.start, row.end)]
        for t_start, t_end in windows.get(row.patient_id, ()):
            if t_start >= row.end:
                break
            parts = [piece for s, e in parts
                     for piece in ((s, min(e, t_start)), (max(s, t_end), e)) if piece[1] > piece[0]]
        pieces += [row._replace(start=s, end=e) for s, e in parts]
    return pd.DataFrame(pieces, columns=running.columns) if pieces else running.iloc[:0]


def basal_hours(segments: pd.DataFrame) -> pd.DataFrame:
    """Basal segments (U/h over [start, end)) -> one code-35 event per patient and clock hour: the
    units delivered in that hour, stamped at the end of the hour's delivery (never before it)."""
    if not len(segments):
        return pd.DataFrame(columns=EVENT_ITEM_COLUMNS)
    hour = np.timedelta64(1, "h")
    start = segments["start"].to_numpy().astype("datetime64[us]")
    end = segments["end"].to_numpy().astype("datetime64[us]")
    first = start.astype("datetime64[h]").astype("datetime64[us]")
    pieces = ((end - first + hour - np.timedelta64(1, "us")) // hour).astype(np.int64)
    row = np.repeat(np.arange(len(segments)), pieces)
    bucket = first[row] + (np.arange(len(row)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * hour
    piece_start, piece_end = np.maximum(start[row], bucket), np.minimum(end[row], bucket + hour)
    units = segments["rate"].to_numpy(dtype=float)[row] * ((piece_end - piece_start) / hour)
    patient = segments["patient_id"].to_numpy(dtype=np.int64)[row]
    piece_end = np.where(units > 0, piece_end, bucket)  # a suspension delivers nothing: it moves no stamp
    order = np.lexsort((bucket, patient))
    patient, bucket, piece_end, units, row = patient[order], bucket[order], piece_end[order], units[order], row[order]
    starts = np.flatnonzero(np.r_[True, (patient[1:] != patient[:-1]) | (bucket[1:] != bucket[:-1])])
    group = np.cumsum(np.r_[True, (patient[1:] != patient[:-1]) | (bucket[1:] != bucket[:-1])]) - 1
    kinds: list[set] = [set() for _ in starts]
    for g, kind in zip(group, segments["record_type"].to_numpy(dtype=object)[row]):
        kinds[g].add(kind)
    hours = pd.DataFrame({
        "record": np.minimum.reduceat(segments["record"].to_numpy(dtype=np.int64)[row], starts),
        "patient_id": patient[starts], "timestamp": np.maximum.reduceat(piece_end, starts), "utc": pd.NaT,
        "code": BASAL, "value": np.add.reduceat(units, starts).round(6), "carbs_g": np.nan, "unit_in": "U/h",
        "record_type": ["+".join(sorted(k)) for k in kinds]})
    return hours[hours["value"] > 0].reset_index(drop=True)[EVENT_ITEM_COLUMNS]


# ---- meals: grams -> typical / more / less against the patient's earlier meals -------------------
def size_meals(events: pd.DataFrame, log: Records) -> pd.DataFrame:
    """Meal events (code MEAL_BY_GRAMS, grams in carbs_g) get 66/67/68 by their grams against the
    median of the same patient's earlier meals (module docstring); the first meal is typical."""
    meals = events.index[events["code"] == MEAL_BY_GRAMS]
    if not len(meals):
        return events
    events = events.copy()
    order = events.loc[meals].sort_values(["patient_id", "timestamp", "record"], kind="stable")
    earlier: dict[int, list[float]] = {}
    codes = {}
    for index, patient, grams, record in zip(order.index, order["patient_id"], order["carbs_g"], order["record"]):
        seen = earlier.setdefault(patient, [])
        if not seen:
            codes[index] = MEAL_CODES["typical"]
            log.assumed.append((record, "first meal of a patient: typical (no earlier meal to compare)"))
        else:
            median = float(np.median(seen))
            ratio = grams / median if median > 0 else 1.0
            codes[index] = MEAL_CODES["more" if ratio > MEAL_MORE else "less" if ratio < MEAL_LESS else "typical"]
        bisect.insort(seen, grams)
    events.loc[list(codes), "code"] = list(codes.values())
    return events


# ---- the contract ----------------------------------------------------------------------------------
class Reader(ABC):
    """One format: `detect` says whether files are of it, `read` turns them into events + report."""

    name: ClassVar[str]
    looked_for: ClassVar[str]  # what detect looks for, in words (detect.py's messages)
    reasons: ClassVar[dict[str, str]]

    def detect(self, files: Mapping[str, bytes]) -> str:
        """"" when none of the files is of this format, else a short reason why they are."""
        for name in sorted(files):
            why = self.detect_file(name, files[name])
            if why:
                return f"{name}: {why}"
        return ""

    @abstractmethod
    def detect_file(self, name: str, data: bytes | str) -> str:
        """"" when this file is not of the format, else why it is."""

    @abstractmethod
    def read(self, files: Mapping[str, bytes], source: str) -> LoadResult:
        """The events table (EVENT_COLUMNS, extras after) and the quality report."""


class RecordReader(Reader):
    """A reader of record-by-record formats: decoding, per-file detection, skipped files and the
    shared steps live here; a format says how to tell its files (`sniff`) and read them (`parse`)."""

    record_name: ClassVar[str] = "record"
    actions: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def sniff(self, name: str, head: str) -> str:
        """"" unless the start of this file (`head`, decoded) is of the format; else why it is."""

    @abstractmethod
    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        """Read the (name, text) files of the format into `log`, record by record."""

    def derived_events(self, items: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
        """Events made from several accepted records at once (e.g. exercise bouts from steps)."""
        return []

    def detect_file(self, name: str, data: bytes | str) -> str:
        text, why = aim94._decode(data[: HEAD_CHARS * 4] if isinstance(data, bytes) else data[:HEAD_CHARS])
        return "" if why else self.sniff(name, text.decode("utf-8", errors="replace")[:HEAD_CHARS])

    def read(self, files: Mapping[str, bytes], source: str) -> LoadResult:
        log = Records()
        self.parse(list(self._own_files(files, log)), log)
        return log.result(self, source)

    def _own_files(self, files: Mapping[str, bytes], log: Records) -> Iterator[tuple[str, str]]:
        """(name, text) of the files of this format; every other one is in `log.skipped` with why."""
        for name in sorted(files):
            data = files[name]
            if len(data) > aim94.MAX_FILE_BYTES:
                log.skipped.append(f"{name}: too large (over {aim94.MAX_FILE_BYTES / 2**20:,.0f} MB)")
                continue
            text, why = aim94._decode(data)
            if why:
                log.skipped.append(f"{name}: {why}")
            elif not text.strip():
                log.skipped.append(f"{name}: an empty file")
            elif not self.sniff(name, text[: HEAD_CHARS * 4].decode("utf-8", errors="replace")[:HEAD_CHARS]):
                log.skipped.append(f"{name}: not a {self.name} file (looked for {self.looked_for})")
            else:
                log.files_read += 1
                yield name, text.decode("utf-8")


def json_records(name: str, text: str, log: Records) -> list | None:
    """The records of a JSON export (a top-level array), or None with the file in `log.skipped`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        log.skipped.append(f"{name}: not JSON ({str(exc)[:80]})")
        log.files_read -= 1
        return None
    if not isinstance(data, list):
        log.skipped.append(f"{name}: JSON but not an array of records")
        log.files_read -= 1
        return None
    return data
