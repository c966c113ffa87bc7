"""The steps every record-by-record reader shares (`Records`, filled by a `RecordReader` of
contract.py): records accepted or rejected with their reason, exact duplicates, pump rates as units
per clock hour (`basal_hours`), meal sizes against the patient's earlier meals (`size_meals`), the
events table and the quality report. The rules they follow are base.py's event model."""
from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from .. import aim94
from ..aim94 import EVENT_COLUMNS, EXAMPLES_PER_REASON, LoadResult, QualityReport
from ..codes import CODE_TABLE, MAX_PLAUSIBLE_DOSE, MEAL_CODES
from .base import (BASAL, BASAL_COLUMNS, EVENT_ITEM_COLUMNS, EXTRA_COLUMNS, MEAL_BY_GRAMS, MEAL_LESS, MEAL_MORE,
                   OPEN_BASAL_HOURS, Basal, Event, Reject, text_of)


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

    def result(self, reader, source: str) -> LoadResult:
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

    def report(self, reader, events: pd.DataFrame) -> QualityReport:
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
            codes[index] = MEAL_CODES[meal_size_of(grams, float(np.median(seen)))]
        bisect.insort(seen, grams)
    events.loc[list(codes), "code"] = list(codes.values())
    return events


def meal_size_of(grams: float, usual: float | None) -> str:
    """A meal of `grams` in the patient's own terms (less, typical, more) against `usual`, the
    median of their earlier meals: more than MEAL_MORE times it is "more", under MEAL_LESS of it
    "less". With no usual meal to compare (None or 0 g) it is typical. The rule size_meals reads
    and the What-if's carbohydrate field."""
    ratio = grams / usual if usual else 1.0
    return "more" if ratio > MEAL_MORE else "less" if ratio < MEAL_LESS else "typical"


def usual_meal_grams(events: pd.DataFrame, before: pd.Timestamp) -> float | None:
    """The median grams of the meals in `events` (one patient's) strictly before `before`; None
    when the data gives no grams (AIM94) or no meal came before."""
    if "carbs_g" not in events.columns:
        return None
    grams = events.loc[(events["kind"] == "meal") & (events["timestamp"] < before), "carbs_g"].dropna()
    return float(grams.median()) if len(grams) else None
