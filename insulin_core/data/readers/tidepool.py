"""Tidepool data-model exports (a JSON array of data objects), into the one event model (base.py).

Written from Tidepool's data-model documentation (tidepool-org/data-model, device-data/types/*.md:
cbg, smbg, bolus normal / square / dual/square, wizard, basal; the developer portal for food,
physicalActivity, insulin and automated boluses). Hand-written: GluPredKit's two Tidepool parsers
(parsers/tidepool.py through the API, parsers/tidepool_dataset.py on the research exports) take a
bolus's `normal` only, so the extended part of a square or dual bolus is lost, and resample onto a
5-minute grid; `cgm-format` has no Tidepool format.

- time: `time` (UTC) plus `timezoneOffset` (minutes; deviceTime = time + timezoneOffset +
  conversionOffset, and conversionOffset corrects a wrong device clock, so it is not added); a
  record without timezoneOffset is read at its `deviceTime`, else as UTC (an assumption, counted).
- cbg -> 48, smbg -> 57: `value` in `units` (exports store mmol/L; mg/dL is accepted), per record.
- bolus -> 33: the delivered `normal` + `extended` (normal, square, dual/square, automated), at
  `time`. wizard: its `carbInput` (grams) -> a meal; its bolus is its own bolus record in the export,
  so the wizard's (linked or embedded) bolus is not taken again.
- basal -> 35: `rate` (U/h) for `duration` (ms), any deliveryType (suspend: rate 0), as units per
  clock hour. insulin (pen doses): `dose.total` by `formulation...actingType`: rapid or short -> 33,
  intermediate -> 34, long -> 35.
- food: `nutrition.carbohydrate.net` grams -> a meal. physicalActivity: `reportedIntensity`
  (low / medium / high -> less / typical / more), else `duration` {value, units}, -> exercise.
- patients: one export file per patient, numbered by `base.patient_ids` from the file names.
"""
from __future__ import annotations

import re
from datetime import timedelta

from .base import (BASAL, BOLUS, CGM, JSON_REASONS, MEAL_BY_GRAMS, METER, NPH, Assumed, Basal, Event, Reject, amount,
                   duration, exercise_code, iso_time, local_time, number, offset_minutes, patient_ids, reasons_of,
                   required, to_mgdl, unit_of, word)
from .contract import RecordReader, json_records
from .records import Records

GLUCOSE_TYPES = {"cbg": CGM, "smbg": METER}
BOLUS_PARTS = {"normal": ("normal",), "square": ("extended",), "dual/square": ("normal", "extended"),
               "automated": ("normal",)}
ACTING_TYPES = {"rapid": BOLUS, "short": BOLUS, "intermediate": NPH, "long": BASAL}
INTENSITY = {"low": "less", "medium": "typical", "high": "more"}
DURATION_MINUTES = {"seconds": 1 / 60, "minutes": 1.0, "hours": 60.0}
UNUSED_TYPES = (
    "upload", "pumpSettings", "cgmSettings", "deviceEvent", "bloodKetone", "urineKetone", "alert",
    "dosingDecision", "controllerSettings", "controllerStatus", "pumpStatus", "deviceStatus", "reportedState",
    "water", "cgmStatus", "deviceMeta",
)
TYPE_HINT = re.compile(r'"type"\s*:\s*"(cbg|smbg|bolus|basal|wizard|food|physicalActivity|insulin|upload|'
                       r'pumpSettings|deviceEvent)"')


class TidepoolReader(RecordReader):
    name = "Tidepool"
    looked_for = 'a JSON array of Tidepool data objects ("type": "cbg", "smbg", "bolus", "basal", ...)'
    reasons = reasons_of(
        *JSON_REASONS,
        unknown_insulin="an insulin whose acting type is not rapid, short, intermediate or long",
    )
    actions = {
        "glucose": "cbg and smbg in their record's units; mmol/L x 18.0182",
        "boluses": "normal + extended delivered units once, at the bolus time; a calculator's bolus is read "
                   "from its bolus record only",
        "basal": "rate x duration as units per clock hour",
    }

    def sniff(self, name: str, head: str) -> str:
        if head.lstrip().startswith("[") and '"eventType"' not in head and TYPE_HINT.search(head):
            return "Tidepool data objects (type, time)"
        return ""

    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        ids = patient_ids(name.rsplit(".", 1)[0] for name, _ in files)
        for name, text in files:
            records = json_records(name, text, log)
            if records is None:
                continue
            patient = log.patient_of_file[name] = ids[name.rsplit(".", 1)[0]]
            for line, record in enumerate(records, 1):
                log.read(name, line, record, patient, record_items)


def record_items(record) -> list:
    if not isinstance(record, dict):
        raise Reject("not_an_object")
    kind = word(record.get("type"))
    if kind in UNUSED_TYPES:
        raise Reject("unused_type")
    if kind not in HANDLERS:
        raise Reject("missing_field" if record.get("type") in (None, "") else "unknown_type")
    timestamp, utc, assumed = moment(record)
    return [*HANDLERS[kind](record, timestamp, utc), *assumed]


def moment(record: dict):
    """(local time, UTC, assumptions): `time` + `timezoneOffset`; else `deviceTime`; else UTC."""
    clock, written = iso_time(required(record, "time"))
    utc = clock - timedelta(minutes=written or 0)
    if record.get("timezoneOffset") not in (None, ""):
        offset = offset_minutes(record["timezoneOffset"])
        local, assumed = local_time(utc, offset, None, clock)
    elif isinstance(record.get("deviceTime"), str):
        local, assumed = iso_time(record["deviceTime"])[0], [Assumed("no timezoneOffset: read at its deviceTime")]
    else:
        local, assumed = local_time(utc, None, written, clock)
    return local, utc, assumed


def glucose(record: dict, timestamp, utc) -> list:
    unit = unit_of(required(record, "units"))
    value = to_mgdl(number(record.get("value")), unit)
    return [Event(timestamp, GLUCOSE_TYPES[record["type"]], value, utc=utc, unit_in=unit, record_type=record["type"])]


def bolus(record: dict, timestamp, utc) -> list:
    sub_type = word(record.get("subType"))
    if sub_type not in BOLUS_PARTS:
        raise Reject("missing_field" if record.get("subType") in (None, "") else "unknown_type")
    units = sum(amount(record.get(part)) for part in BOLUS_PARTS[sub_type])
    if units <= 0:
        raise Reject("no_amount")
    return [Event(timestamp, BOLUS, units, utc=utc, unit_in="U", record_type=f"bolus/{sub_type}")]


def wizard(record: dict, timestamp, utc) -> list:
    grams = amount(record["carbInput"]) if record.get("carbInput") not in (None, "") else 0.0
    if grams <= 0:
        raise Reject("no_amount")
    return [Event(timestamp, MEAL_BY_GRAMS, utc=utc, carbs_g=grams, unit_in="g", record_type="wizard")]


def basal(record: dict, timestamp, utc) -> list:
    delivery = word(record.get("deliveryType")) or "basal"
    rate = 0.0 if delivery == "suspend" and record.get("rate") in (None, "") else amount(record.get("rate"))
    length = duration(record.get("duration"), timedelta(milliseconds=1))
    return [Basal(timestamp, timestamp + length, rate, record_type=f"basal/{delivery}")]


def insulin(record: dict, timestamp, utc) -> list:
    dose = record.get("dose")
    if not isinstance(dose, dict):
        raise Reject("missing_field")
    units = amount(dose.get("total"))
    formulation = record.get("formulation")
    simple = formulation.get("simple") if isinstance(formulation, dict) else None
    acting = word(simple.get("actingType")) if isinstance(simple, dict) else ""
    if acting not in ACTING_TYPES:
        raise Reject("unknown_insulin")
    if units <= 0:
        raise Reject("no_amount")
    return [Event(timestamp, ACTING_TYPES[acting], units, utc=utc, unit_in="U", record_type=f"insulin/{acting}")]


def food(record: dict, timestamp, utc) -> list:
    nutrition = record.get("nutrition")
    carbohydrate = nutrition.get("carbohydrate") if isinstance(nutrition, dict) else None
    if not isinstance(carbohydrate, dict):
        raise Reject("missing_field")
    if carbohydrate.get("units", "grams") != "grams":
        raise Reject("unknown_unit")
    grams = amount(carbohydrate.get("net"))
    if grams <= 0:
        raise Reject("no_amount")
    return [Event(timestamp, MEAL_BY_GRAMS, utc=utc, carbs_g=grams, unit_in="g", record_type="food")]


def physical_activity(record: dict, timestamp, utc) -> list:
    level = INTENSITY.get(word(record.get("reportedIntensity")), "")
    minutes = None
    length = record.get("duration")
    if not level and isinstance(length, dict):
        if word(length.get("units")) not in DURATION_MINUTES:
            raise Reject("unknown_unit")
        minutes = amount(length.get("value")) * DURATION_MINUTES[length["units"]]
    code, assumed = exercise_code(minutes, level)
    return [Event(timestamp, code, utc=utc, unit_in="min" if minutes is not None else "",
                  record_type="physicalActivity"), *assumed]


HANDLERS = {"cbg": glucose, "smbg": glucose, "bolus": bolus, "wizard": wizard, "basal": basal,
            "insulin": insulin, "food": food, "physicalActivity": physical_activity}
