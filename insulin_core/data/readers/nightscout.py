"""Nightscout exports: `entries` and `treatments` as the API returns them (JSON arrays), into the
one event model (base.py).

Written from the Nightscout API's own documentation (cgm-remote-monitor, lib/server/swagger.yaml:
the Entry and Treatment schemas; API v3: `date` stored as UTC, the offset kept in `utcOffset`, in
minutes). Hand-written rather than through a library: `cgm-format` (MIT) reads Nightscout through
polars into a CGM-only table (no boluses, carbs or per-record rejection reasons) and GluPredKit's
parser downloads from a live site and resamples to a 5-minute grid, dropping what does not fit;
neither accounts for every record.

- entries: `sgv` (sensor, code 48) and `mbg` (meter, 57) in mg/dL, as Nightscout stores them (a
  record's own `units`, where an uploader writes one, is honoured); time from `date` (ms since the
  epoch, UTC), else `dateString`; `cal` and other entry types carry no glucose.
- treatments: Meal / Snack / Correction Bolus, Bolus, SMB, Combo Bolus (`insulin`, for a combo the
  entered total: its now and extended parts once) -> 33; their `carbs` and Carb Correction -> a meal;
  BG Check (`glucose`, `glucoseType` Finger -> 57 / Sensor -> 48, `units` mg/dl or mmol) -> glucose;
  Exercise (`duration`, minutes) -> exercise; Temp Basal (`absolute` or `rate` U/h for `duration`
  minutes) -> basal units per hour (only the temporary rates: the profile's schedule is not in
  these files); time from `created_at`, else `date`. The `glucose` a bolus carries is the reading
  its calculator used, already on record as an entry or BG Check: not taken twice.
- local time: UTC plus the record's `utcOffset`; else the offset its time string is written with;
  else UTC, counted in the report as an assumption.
- patients: one per export. Files are grouped by their name with "entries"/"treatments" taken out
  ("entries.json" + "treatments.json" -> one patient; "p2-entries.json" + "p2-treatments.json" ->
  patient 2); `base.patient_ids` numbers them. A record's line is its 1-based place in its array.
"""
from __future__ import annotations

import re
from datetime import timedelta

from .base import (BOLUS, CGM, JSON_REASONS, MEAL_BY_GRAMS, METER, Basal, Event, Reject, amount, duration, epoch_ms,
                   exercise_code, iso_time, local_time, number, offset_minutes, patient_ids, reasons_of, required,
                   to_mgdl, unit_of, word)
from .contract import RecordReader, json_records
from .records import Records

ENTRY_GLUCOSE = {"sgv": CGM, "mbg": METER}
UNUSED_ENTRIES = ("cal", "etc", "sensor", "note")
BOLUS_EVENTS = ("Meal Bolus", "Snack Bolus", "Correction Bolus", "Bolus", "SMB", "Combo Bolus")
CARB_EVENTS = ("Meal Bolus", "Snack Bolus", "Carb Correction", "Combo Bolus")
UNUSED_EVENTS = (
    "Note", "Announcement", "Question", "Site Change", "Pump Site Change", "Cannula Change", "Sensor Start",
    "Sensor Change", "Sensor Stop", "Insulin Change", "Pump Battery Change", "Temporary Target",
    "Temporary Target Cancel", "Profile Switch", "OpenAPS Offline", "D.A.D. Alert", "Suspend Pump",
    "Resume Pump", "Temporary Override", "Temporary Override Cancel", "Bolus Wizard", "Pump Suspend", "Pump Resume",
)
GLUCOSE_TYPES = {"Finger": METER, "Sensor": CGM, "Manual": METER}
PART = re.compile(r"(entries|treatments)", re.IGNORECASE)
ENTRY_HINT = re.compile(r'"(sgv|mbg)"\s*:')
TREATMENT_HINT = re.compile(r'"eventType"\s*:')


class NightscoutReader(RecordReader):
    name = "Nightscout"
    looked_for = 'a JSON array of Nightscout entries ("sgv"/"mbg" with "date") or treatments ("eventType")'
    reasons = reasons_of(
        *JSON_REASONS,
        needs_profile="a temporary basal given only as a percent of the profile's rate (profiles are not read)",
    )
    actions = {
        "glucose": "entries in mg/dL as Nightscout stores them; a BG Check's units (mg/dl, mmol) per record; "
                   "mmol/L x 18.0182",
        "boluses": "every bolus treatment's insulin once, at its time; a combo bolus's entered total",
        "basal": "temporary basal rates as units per clock hour; the profile's schedule is not read",
    }

    def sniff(self, name: str, head: str) -> str:
        if not head.lstrip().startswith("["):
            return ""
        if TREATMENT_HINT.search(head):
            return "Nightscout treatments (eventType)"
        return "Nightscout entries (sgv/mbg)" if ENTRY_HINT.search(head) else ""

    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        group = {name: PART.sub("", name.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip(" _-.")
                 for name, _ in files}
        group = {name: (name.rsplit("/", 1)[0] + "/" if "/" in name else "") + key for name, key in group.items()}
        ids = patient_ids(group.values())
        for name, text in files:
            records = json_records(name, text, log)
            if records is None:
                continue
            patient = log.patient_of_file[name] = ids[group[name]]
            for line, record in enumerate(records, 1):
                log.read(name, line, record, patient, self.record_items)

    def record_items(self, record) -> list:
        if not isinstance(record, dict):
            raise Reject("not_an_object")
        if "eventType" in record:
            return treatment_items(record)
        return entry_items(record)


def entry_items(record: dict) -> list:
    kind = word(record.get("type")) or next((k for k in ENTRY_GLUCOSE if k in record), "")
    if kind in UNUSED_ENTRIES:
        raise Reject("unused_type")
    if kind not in ENTRY_GLUCOSE:
        raise Reject("unknown_type")
    value = number(record.get(kind))
    unit = unit_of(record["units"]) if record.get("units") not in (None, "") else "mg/dL"
    mgdl = to_mgdl(value, unit)
    timestamp, utc, assumed = moment(record, ("date", "dateString"))
    return [Event(timestamp, ENTRY_GLUCOSE[kind], mgdl, utc=utc, unit_in=unit, record_type=kind), *assumed]


def treatment_items(record: dict) -> list:
    kind = record.get("eventType")
    if not isinstance(kind, str) or not kind:
        raise Reject("missing_field" if kind in (None, "") else "unknown_type")
    if kind in UNUSED_EVENTS:
        raise Reject("unused_type")
    known = (*BOLUS_EVENTS, *CARB_EVENTS, "BG Check", "Exercise", "Temp Basal")
    if kind not in known:
        raise Reject("unknown_type")
    timestamp, utc, assumed = moment(record, ("created_at", "date"))
    if kind == "BG Check":
        return [glucose_check(record, timestamp, utc), *assumed]
    if kind == "Exercise":
        minutes = amount(record["duration"]) if record.get("duration") not in (None, "") else None
        code, more = exercise_code(minutes)
        return [Event(timestamp, code, utc=utc, unit_in="min" if minutes is not None else "",
                      record_type=kind), *assumed, *more]
    if kind == "Temp Basal":
        return [temp_basal(record, timestamp), *assumed]
    items = []
    insulin = bolus_units(record) if kind in BOLUS_EVENTS else 0.0
    carbs = (amount(record["carbs"]) if record.get("carbs") not in (None, "") else 0.0) if kind in CARB_EVENTS else 0.0
    if insulin > 0:
        items.append(Event(timestamp, BOLUS, insulin, utc=utc, unit_in="U", record_type=kind))
    if carbs > 0:
        items.append(Event(timestamp, MEAL_BY_GRAMS, utc=utc, carbs_g=carbs, unit_in="g", record_type=kind))
    if not items:
        raise Reject("no_amount")
    return items + assumed


def bolus_units(record: dict) -> float:
    """The insulin of a bolus treatment; of a combo bolus its entered total (now + extended), else
    its `insulin` (the part given now) plus the extended `relative` rate over `duration` minutes."""
    if record.get("eventType") == "Combo Bolus":
        if record.get("enteredinsulin") not in (None, ""):
            return amount(record["enteredinsulin"])
        now = amount(record["insulin"]) if record.get("insulin") not in (None, "") else 0.0
        if record.get("relative") not in (None, ""):
            now += amount(record["relative"]) * amount(required(record, "duration")) / 60
        return now
    return amount(record["insulin"]) if record.get("insulin") not in (None, "") else 0.0


def glucose_check(record: dict, timestamp, utc) -> Event:
    value = number(record.get("glucose"))
    unit = unit_of(record["units"]) if record.get("units") not in (None, "") else "mg/dL"
    code = GLUCOSE_TYPES.get(word(record.get("glucoseType")), METER)
    return Event(timestamp, code, to_mgdl(value, unit), utc=utc, unit_in=unit, record_type="BG Check")


def temp_basal(record: dict, start) -> Basal:
    rate_field = next((f for f in ("absolute", "rate") if record.get(f) not in (None, "")), None)
    if rate_field is None:
        raise Reject("needs_profile" if record.get("percent") not in (None, "") else "missing_field")
    rate = amount(record[rate_field])
    length = duration(record.get("duration"), timedelta(minutes=1))
    if not length:
        raise Reject("no_amount")  # a zero-length temporary rate cancels one: nothing delivered
    return Basal(start, start + length, rate, override=True, record_type="Temp Basal")


def moment(record: dict, fields: tuple[str, str]):
    """(local time, UTC, assumptions) of a record from its first time field present: an epoch in ms
    (`date`) or an ISO string (`dateString`, `created_at`); local = UTC + `utcOffset`."""
    field = next((f for f in fields if record.get(f) not in (None, "")), None)
    if field is None:
        raise Reject("missing_field")
    if field == "date":
        utc = epoch_ms(record["date"])
        clock, written = utc, None
    else:
        clock, written = iso_time(record[field])
        utc = clock - timedelta(minutes=written or 0)
    offset = offset_minutes(record["utcOffset"]) if record.get("utcOffset") not in (None, "") else None
    if offset is None and field == "date" and isinstance(record.get("dateString"), str):
        try:  # the epoch is UTC; a dateString beside it may say where the patient was
            written = iso_time(record["dateString"])[1]
        except Reject:
            written = None
        if written:
            offset = written
    local, assumed = local_time(utc, offset, written, clock)
    return local, utc, assumed

