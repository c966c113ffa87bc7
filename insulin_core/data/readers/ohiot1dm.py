"""OhioT1DM XML files (`<patient id=...>`, one element per data type holding `<event>`s), into the
one event model (base.py).

Written from the data set's documentation (Marling and Bunescu, "The OhioT1DM Dataset for Blood
Glucose Level Prediction: Update 2020", CEUR-WS 2675), checked against GluPredKit's
`parsers/ohio_t1dm.py`. Hand-written rather than through GluPredKit: it resamples everything onto a
5-minute grid (sums, means, forward fills), which loses the records' own times and any account of
what was dropped; `cgm-format` has no OhioT1DM format. Parsed with the standard library's
ElementTree; a file declaring a DTD or entities is not read (the data set's files have none, and
that is how XML bombs arrive).

- times: `ts` (or `ts_begin`/`ts_end`) written dd-mm-yyyy HH:MM:SS, the patient's local time as the
  pump and sensor kept it; no UTC offsets in the data set, so a repeated hour after a DST change
  cannot be told from a duplicate (identical readings are counted as duplicates).
- glucose_level (CGM) -> 48, finger_stick -> 57, in mg/dL as the data set records them.
- bolus (`dose`, `type` normal / normal dual / square dual / square) -> 33 at `ts_begin`: each part of
  a dual bolus is its own record, so each unit is counted once. The wizard's `bwz_carb_input` is
  the meal's carbohydrate, already on record as the meal: not taken twice.
- basal (`value` U/h from `ts` until the next basal rate) and temp_basal (`value` U/h over
  `ts_begin`-`ts_end`, replacing the running rate; 0 is a suspension) -> units per clock hour (35).
- meal (`carbs`, grams) -> a meal sized against the patient's earlier meals; exercise (`intensity`
  1-10: up to 3 less, 7 and up more, else typical; without it, `duration`) -> 69/70/71; hypo_event
  -> 65. sleep, work, stressors, illness and the Basis band's streams are not in the event model.
- patients: the root's `id` (the training and testing files of one patient are one patient).
  A record's line is its event's 1-based place in the file.
"""
from __future__ import annotations

import re
from datetime import datetime
from xml.etree import ElementTree

from .base import (BOLUS, CGM, HYPO, MAX_DURATION, MEAL_BY_GRAMS, METER, Basal, Event, Reject, amount, exercise_code,
                   in_range, number, patient_ids, reasons_of, required, to_mgdl)
from .contract import RecordReader
from .records import Records

TS = re.compile(r"^[0-9]{2}-[0-9]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}$")
BOLUS_TYPES = ("normal", "normal dual", "square dual", "square")
UNUSED = ("sleep", "work", "stressors", "illness", "basis_heart_rate", "basis_gsr", "basis_skin_temperature",
          "basis_air_temperature", "basis_steps", "basis_sleep", "acceleration")
INTENSITY_LESS_MAX, INTENSITY_MORE_MIN = 3, 7
HINT = re.compile(r"<patient\b[^>]*>\s*<(glucose_level|finger_stick|basal|temp_basal|bolus|meal|exercise)\b")


class OhioT1DMReader(RecordReader):
    name = "OhioT1DM"
    looked_for = "OhioT1DM XML (<patient id=...> with <glucose_level>, <bolus>, ... elements)"
    record_name = "event"
    reasons = reasons_of(
        "unknown_type", "unused_type", "missing_field", "non_numeric_value", "bad_date", "impossible_date",
        "glucose_out_of_range", "negative_value", "bad_duration", "no_amount",
        bad_intensity="an exercise intensity outside the data set's 1-10 scale",
    )
    actions = {
        "glucose": "glucose_level and finger_stick in mg/dL, as recorded",
        "boluses": "every bolus record's dose once, at ts_begin (the two parts of a dual bolus are two records)",
        "basal": "basal rates until the next rate, temp_basal laid over them, as units per clock hour",
    }

    def sniff(self, name: str, head: str) -> str:
        return "OhioT1DM patient XML" if HINT.search(head) else ""

    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        roots = {}
        for name, text in files:
            if "<!DOCTYPE" in text or "<!ENTITY" in text:
                log.skipped.append(f"{name}: declares a DTD or entities (OhioT1DM files have none); not read")
            else:
                try:
                    roots[name] = ElementTree.fromstring(text)
                except ElementTree.ParseError as exc:
                    log.skipped.append(f"{name}: not well-formed XML ({exc})")
        log.files_read -= len(files) - len(roots)
        stem = {name: name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in roots}
        given = {name: int(root.get("id")) for name, root in roots.items()
                 if re.fullmatch(r"[0-9]{1,9}", root.get("id", ""))}
        numbered = patient_ids(stem[name] for name in roots if name not in given)  # files without an id: by name
        for name, root in roots.items():
            patient = log.patient_of_file[name] = given[name] if name in given else numbered[stem[name]]
            line = 0
            for element in root:
                for event in element:
                    line += 1
                    log.read(name, line, (element.tag, event), patient, lambda raw: event_items(raw[0], raw[1].attrib))


def ohio_time(text) -> datetime:
    if text in (None, ""):
        raise Reject("missing_field")
    if not TS.match(text):
        raise Reject("bad_date")
    try:
        return in_range(datetime.strptime(text, "%d-%m-%Y %H:%M:%S"))
    except ValueError:
        raise Reject("impossible_date") from None


def event_items(tag: str, attrib: dict) -> list:
    if tag in UNUSED:
        raise Reject("unused_type")
    if tag not in HANDLERS:
        raise Reject("unknown_type")
    return HANDLERS[tag](tag, attrib)


def glucose(tag: str, attrib: dict) -> list:
    timestamp = ohio_time(attrib.get("ts"))
    code = CGM if tag == "glucose_level" else METER
    return [Event(timestamp, code, to_mgdl(number(attrib.get("value")), "mg/dL"), unit_in="mg/dL", record_type=tag)]


def bolus(tag: str, attrib: dict) -> list:
    kind = required(attrib, "type")
    if kind not in BOLUS_TYPES:
        raise Reject("unknown_type")
    start = ohio_time(attrib.get("ts_begin"))
    dose = amount(attrib.get("dose"))
    if dose <= 0:
        raise Reject("no_amount")
    return [Event(start, BOLUS, dose, unit_in="U", record_type=f"bolus/{kind}")]


def basal(tag: str, attrib: dict) -> list:
    return [Basal(ohio_time(attrib.get("ts")), None, amount(attrib.get("value")), record_type=tag)]


def temp_basal(tag: str, attrib: dict) -> list:
    start, end = ohio_time(attrib.get("ts_begin")), ohio_time(attrib.get("ts_end"))
    rate = amount(attrib.get("value"))
    if end < start or end - start > MAX_DURATION:
        raise Reject("bad_duration")
    if end == start:
        raise Reject("no_amount")
    return [Basal(start, end, rate, override=True, record_type=tag)]


def meal(tag: str, attrib: dict) -> list:
    timestamp = ohio_time(attrib.get("ts"))
    grams = amount(attrib.get("carbs"))
    if grams <= 0:
        raise Reject("no_amount")
    return [Event(timestamp, MEAL_BY_GRAMS, carbs_g=grams, unit_in="g", record_type=f"meal/{attrib.get('type', '')}")]


def exercise(tag: str, attrib: dict) -> list:
    timestamp = ohio_time(attrib.get("ts"))
    level = ""
    if attrib.get("intensity") not in (None, ""):
        intensity = number(attrib["intensity"])
        if not 1 <= intensity <= 10:
            raise Reject("bad_intensity")
        level = "less" if intensity <= INTENSITY_LESS_MAX else "more" if intensity >= INTENSITY_MORE_MIN else "typical"
    minutes = amount(attrib["duration"]) if not level and attrib.get("duration") not in (None, "") else None
    code, assumed = exercise_code(minutes, level)
    unit = "intensity" if level else "min" if minutes is not None else ""
    return [Event(timestamp, code, unit_in=unit, record_type=tag), *assumed]


def hypo(tag: str, attrib: dict) -> list:
    return [Event(ohio_time(attrib.get("ts")), HYPO, record_type=tag)]


HANDLERS = {"glucose_level": glucose, "finger_stick": glucose, "bolus": bolus, "basal": basal,
            "temp_basal": temp_basal, "meal": meal, "exercise": exercise, "hypo_event": hypo}
