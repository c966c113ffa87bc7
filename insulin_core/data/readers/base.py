"""The one event model every format is read into, and what every reader shares: the item types a record
yields (`Event`, `Basal`, `Assumed`), rejection reasons, reading one value (numbers, units, times).
The contract (`Reader`, `RecordReader`) is contract.py; the shared steps (`Records`) records.py.

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

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.etree import ElementTree

from .. import aim94
from ..codes import EXERCISE_CODES, GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, MGDL_PER_MMOL

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
