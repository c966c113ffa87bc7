"""Parse AIM94 event logs into one tidy event table and a data-quality report.

Each line of a `data-NN` file is `MM-DD-YYYY<TAB>H:MM<TAB>code<TAB>value`. The real files keep
broken lines (shifted fields, impossible dates and times, meter words, unknown codes). Every line
ends up either accepted or rejected with a named reason: nothing is dropped silently and no line
can make the loader crash. Parsing is vectorised over all lines of a file at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .codes import (
    CODE_TABLE,
    GLUCOSE_METER_MAX,
    GLUCOSE_CODES,
    GLUCOSE_METER_MIN,
    MAX_PLAUSIBLE_DOSE,
    PAPER_TIMES_MIN,
)

FILE_PATTERN = re.compile(r"^data-(\d{2})$")
EXAMPLES_PER_REASON = 5

# Rejection reasons, in the order they are checked: a line gets the first that applies.
REASONS = {
    "wrong_field_count": "not four tab-separated fields",
    "shifted_fields": "date field empty and the others shifted (a record split over two lines)",
    "missing_field": "a field is empty",
    "bad_date": "date is not MM-DD-YYYY",
    "impossible_date": "date does not exist (e.g. 06-31-1991)",
    "bad_time": "time is not H:MM (e.g. 11:0)",
    "impossible_time": "time past 23:59 (e.g. 56:35, 188:00)",
    "unknown_code": "code not in the AIM94 code table (e.g. 0, 4, 36, 56)",
    "non_numeric_value": "value is not a number (e.g. 3A, 0'')",
    "glucose_out_of_range": f"glucose outside the meter range {GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g} mg/dL",
    "negative_dose": "insulin dose below zero",
    "duplicate_event": "the same patient, time, code and value already on record",
}

ACTIONS = {
    "rejected lines": "left out of the event table; counted per reason with examples",
    "0Hi / 0Lo": (
        f"kept as a censored glucose at the meter limit ({GLUCOSE_METER_MAX:g} / "
        f"{GLUCOSE_METER_MIN:g} mg/dL), flagged in `censored`"
    ),
    "implausible doses": (
        "kept but flagged `implausible` (Regular > {regular:g} U, NPH or UltraLente > {nph:g} U); "
        "training leaves them out by default and evaluation reports metrics with and without them"
    ).format(**MAX_PLAUSIBLE_DOSE),
    "duplicates": "an exact repeat of an accepted event is rejected as duplicate_event",
    "conflicts": "two values for one code at one time are both kept; the timeline sums doses and averages glucose",
    "paper times": "08:00, 12:00, 18:00 and 22:00 are flagged `paper_time` (logical, not clock, times)",
}

EVENT_COLUMNS = [
    "patient_id", "timestamp", "code", "value", "kind", "detail",
    "paper_time", "censored", "implausible", "file", "line",
]


@dataclass
class QualityReport:
    """What the loader read, kept and rejected, and why."""

    files: int = 0
    lines: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    per_file: dict[str, dict] = field(default_factory=dict)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    censored: dict[str, int] = field(default_factory=dict)
    implausible: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    patients: int = 0
    events: int = 0
    skipped_files: list[str] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=lambda: dict(ACTIONS))

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict:
        return {
            "files": self.files, "lines": self.lines, "accepted": self.accepted,
            "rejected": dict(self.rejected), "rejected_total": self.rejected_total,
            "patients": self.patients, "events": self.events,
            "censored": dict(self.censored), "implausible": dict(self.implausible),
            "conflicts": self.conflicts, "per_file": self.per_file, "examples": self.examples,
            "skipped_files": self.skipped_files, "reasons": REASONS, "actions": self.actions,
        }


@dataclass
class LoadResult:
    events: pd.DataFrame
    report: QualityReport
    source: str


def patient_id_of(name: str) -> int | None:
    """`data-07` -> 7; None for any other file name."""
    match = FILE_PATTERN.match(name)
    return int(match.group(1)) if match else None


def _classify(fields: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Reason per line ("" = accepted) and the parsed columns, all vectorised."""
    date, time, code, value = (fields[i].fillna("") for i in range(4))
    n_fields = fields[4].where(fields[4].notna(), None)  # a fifth field means too many
    reason = pd.Series("", index=fields.index, dtype=object)

    def mark(mask: pd.Series, why: str) -> None:
        reason[(reason == "") & mask.to_numpy(dtype=bool)] = why

    mark(fields[3].isna() | n_fields.notna(), "wrong_field_count")
    mark((date == "") & (time != "") & (code != ""), "shifted_fields")
    mark((date == "") | (time == "") | (code == "") | (value == ""), "missing_field")
    date_ok = date.str.fullmatch(r"\d{2}-\d{2}-\d{4}")
    mark(~date_ok, "bad_date")
    stamp_day = pd.to_datetime(date.where(date_ok), format="%m-%d-%Y", errors="coerce")
    mark(stamp_day.isna(), "impossible_date")
    hm = time.str.extract(r"^(\d{1,3}):(\d{2})$").astype(float)
    mark(hm[0].isna(), "bad_time")
    mark((hm[0] > 23) | (hm[1] > 59), "impossible_time")
    code_num = pd.to_numeric(code.where(code.str.fullmatch(r"\d+")), errors="coerce")
    mark(~code_num.isin(list(CODE_TABLE)), "unknown_code")

    is_glucose = code_num.isin(GLUCOSE_CODES)
    censored = np.select([is_glucose & (value == "0Hi"), is_glucose & (value == "0Lo")], ["high", "low"], "")
    number = pd.to_numeric(value.where(value.str.fullmatch(r"\d+(\.\d+)?|-\d+(\.\d+)?")), errors="coerce")
    number = number.mask(censored == "high", GLUCOSE_METER_MAX).mask(censored == "low", GLUCOSE_METER_MIN)
    mark(number.isna(), "non_numeric_value")
    mark(is_glucose & ((number < GLUCOSE_METER_MIN) | (number > GLUCOSE_METER_MAX)), "glucose_out_of_range")
    mark(~is_glucose & (number < 0), "negative_dose")

    minutes = hm[0] * 60 + hm[1]
    parsed = pd.DataFrame({
        "timestamp": stamp_day + pd.to_timedelta(minutes.fillna(0), unit="min"),
        "code": code_num, "value": number, "censored": censored,
        "paper_time": minutes.isin(PAPER_TIMES_MIN),
    })
    return reason, parsed


def _split_lines(texts: dict[str, str]) -> pd.DataFrame:
    """All lines of all files in one frame: file, line (1-based), text."""
    parts = []
    for name, text in texts.items():
        lines = text.splitlines()
        # A blank last line is an artefact of how the file ends, not a record.
        if lines and lines[-1].strip() == "":
            lines = lines[:-1]
        parts.append(pd.DataFrame({"file": name, "line": np.arange(1, len(lines) + 1), "text": lines}))
    frame = pd.concat(parts, ignore_index=True)
    frame["text"] = frame["text"].astype(object).str.rstrip("\r")
    return frame


def parse_lines(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines (file, line, text) -> (accepted events, rejected lines with their reason)."""
    fields = lines["text"].str.split("\t", n=4, expand=True).reindex(columns=range(5))
    reason, parsed = _classify(fields)
    parsed[["file", "line", "text"]] = lines[["file", "line", "text"]]
    parsed["reason"] = reason.to_numpy()
    accepted = parsed[parsed["reason"] == ""]
    rejected = parsed.loc[parsed["reason"] != "", ["file", "line", "text", "reason"]]
    return accepted.drop(columns=["text", "reason"]), rejected


def _finish_events(accepted: pd.DataFrame, patient_ids: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the code-table columns, flag implausible doses, split off exact duplicates."""
    if accepted.empty:
        return _empty_events(), accepted
    events = accepted.assign(patient_id=patient_ids.to_numpy())
    events["code"] = events["code"].astype(int)
    events["kind"] = events["code"].map({c: v.kind for c, v in CODE_TABLE.items()})
    events["detail"] = events["code"].map({c: v.detail for c, v in CODE_TABLE.items()})
    limit = events["kind"].map(MAX_PLAUSIBLE_DOSE)
    events["implausible"] = (events["value"] > limit).fillna(False).astype(bool)
    dup = events.duplicated(["patient_id", "timestamp", "code", "value"], keep="first")
    events = events.sort_values(["patient_id", "timestamp", "code", "line"], kind="stable")
    return events.loc[~dup.reindex(events.index)], events.loc[dup.reindex(events.index)]


def load_texts(texts: dict[str, str], source: str) -> LoadResult:
    """Parse {file name: text}. Files not named `data-NN` are skipped and reported."""
    report = QualityReport()
    report.skipped_files = sorted(n for n in texts if patient_id_of(n) is None)
    texts = {n: t for n, t in sorted(texts.items()) if patient_id_of(n) is not None}
    report.files = len(texts)
    lines = _split_lines(texts) if texts else pd.DataFrame()
    report.lines = len(lines)
    if report.lines == 0:
        return LoadResult(_empty_events(), report, source)

    accepted, rejected = parse_lines(lines)
    patient_ids = accepted["file"].map(patient_id_of)
    events, duplicates = _finish_events(accepted, patient_ids)
    dup_rows = lines.loc[duplicates.index, ["file", "line", "text"]].assign(reason="duplicate_event")
    rejected = pd.concat([rejected, dup_rows], ignore_index=True)
    _fill_report(report, events, rejected)
    return LoadResult(events[EVENT_COLUMNS].reset_index(drop=True), report, source)


def _fill_report(report: QualityReport, events: pd.DataFrame, rejected: pd.DataFrame) -> None:
    report.accepted = len(events)
    report.rejected = {r: int(n) for r, n in rejected["reason"].value_counts().items()}
    report.examples = {
        reason: group.head(EXAMPLES_PER_REASON)[["file", "line", "text"]].to_dict("records")
        for reason, group in rejected.groupby("reason", sort=True)
    }
    accepted_per_file = events.groupby("file").size()
    rejected_per_file = rejected.groupby(["file", "reason"]).size()
    for name in sorted(set(accepted_per_file.index) | set(rejected["file"])):
        mine = rejected_per_file.get(name, pd.Series(dtype=int))
        n_accepted = int(accepted_per_file.get(name, 0))
        report.per_file[name] = {
            "lines": n_accepted + int(mine.sum()),
            "accepted": n_accepted,
            "rejected": {r: int(n) for r, n in mine.items()},
        }
    report.censored = {k: int(n) for k, n in events.loc[events["censored"] != "", "censored"].value_counts().items()}
    report.implausible = {k: int(n) for k, n in events.loc[events["implausible"], "kind"].value_counts().items()}
    report.conflicts = int(events.duplicated(["patient_id", "timestamp", "code"]).sum())
    report.patients = int(events["patient_id"].nunique())
    report.events = len(events)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in {
        "patient_id": "int64", "timestamp": "datetime64[us]", "code": "int64", "value": "float64",
        "kind": object, "detail": object, "paper_time": bool, "censored": object,
        "implausible": bool, "file": object, "line": "int64"}.items()})


def read_folder(folder: Path) -> dict[str, str]:
    """The `data-NN` files of a folder as text. Undecodable bytes become U+FFFD, never a crash."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"AIM94 folder not found: {folder}")
    texts = {p.name: p.read_bytes().decode("utf-8", errors="replace")
             for p in sorted(folder.iterdir()) if p.is_file() and patient_id_of(p.name) is not None}
    if not texts:
        raise FileNotFoundError(f"No AIM94 files (data-01 ... data-70) in {folder}")
    return texts


def load_folder(folder: Path) -> LoadResult:
    return load_texts(read_folder(folder), source=str(folder))
