"""Parse AIM94 event logs into one tidy event table and a data-quality report.

Each line of a `data-NN` file is `MM-DD-YYYY<TAB>H:MM<TAB>code<TAB>value`. The real files keep
broken lines (shifted fields, impossible dates and times, meter words, unknown codes). Every line
ends up either accepted or rejected with a named reason: nothing is dropped silently and no line
can make the loader crash. Parsing is vectorised (pyarrow compute kernels) over all lines of a
file at once, one file at a time, so memory holds one file's lines.

Here: whole files to events and their report (`load_texts`, `QualityReport`, `LoadResult`); one line
to its fields or its reason is aim94_lines.py; reading a folder's files safely is aim94_folder.py.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .aim94_lines import CENSORED, REASON_NAMES, REASONS, _CODE, _classify, _decode, _split_text
from .codes import (
    CODE_TABLE,
    GLUCOSE_METER_MAX,
    GLUCOSE_METER_MIN,
    MAX_PLAUSIBLE_DOSE,
)

# ASCII digits only: `\\d` would take Arabic-Indic and other Unicode digits for a patient number.
FILE_PATTERN = re.compile(r"^data-([0-9]{2})$")
EXAMPLES_PER_REASON = 5
EXAMPLE_CHARS = 200  # a 200 MB one-line file must not become a 200 MB report
CHUNK_BYTES = 8_000_000  # files are parsed together up to this much text: few calls, bounded memory

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
    """What a reader read, kept and rejected, and why.

    Written by the AIM94 loader and by every reader of insulin_core/data/readers/: `lines` counts the
    records read (`record_name` says what one is: a line of an AIM94 file, a JSON record, an XML
    event), and `accepted` + `rejected_total` == `lines`. `reasons` holds the reader's own reasons
    in words. `units` (glucose records by the unit they came in) and `assumed` (records read under a
    stated assumption, by the assumption in words) are filled by the readers that have them."""

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
    reasons: dict[str, str] = field(default_factory=lambda: dict(REASONS))
    record_name: str = "line"
    units: dict[str, int] = field(default_factory=dict)
    assumed: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reason_words(self, reason: str) -> str:
        """A rejection reason as a sentence's start, in the words of the reader that read the files
        (two formats may use one reason name for different records), else the AIM94 loader's."""
        words = self.reasons.get(reason) or REASONS.get(reason, reason)
        return words[:1].upper() + words[1:]

    def unusable_reason(self) -> str:
        """Why this data cannot be used ("" when some record was accepted): nothing read, or every
        record rejected; names the commonest reasons and the skipped files."""
        if self.accepted:
            return ""
        parts = [f"{self.lines:,} {self.record_name}s read, none accepted"]
        if self.rejected:
            # in words (reasons), never the reason's identifier: this sentence reaches the pages
            parts.append("rejected: " + "; ".join(f"{n:,} {self.reasons.get(r, r)}" for r, n in list(self.rejected.items())[:3]))
        if self.skipped_files:
            parts.append("skipped: " + "; ".join(self.skipped_files[:3]) + ("; ..." if len(self.skipped_files) > 3 else ""))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        report = {
            "files": self.files, "lines": self.lines, "accepted": self.accepted,
            "rejected": dict(self.rejected), "rejected_total": self.rejected_total,
            "patients": self.patients, "events": self.events,
            "censored": dict(self.censored), "implausible": dict(self.implausible),
            "conflicts": self.conflicts, "per_file": self.per_file, "examples": self.examples,
            "skipped_files": self.skipped_files, "reasons": self.reasons, "actions": self.actions,
        }
        # Only the readers that fill them add these: an AIM94 report's dictionary stays as it was.
        if self.record_name != "line":
            report["record_name"] = self.record_name
        for name in ("units", "assumed"):
            if getattr(self, name):
                report[name] = dict(getattr(self, name))
        return report


@dataclass
class LoadResult:
    events: pd.DataFrame
    report: QualityReport
    source: str
    format: str = "AIM94"  # the reader's name (data/readers/detect.read_files sets it)

    @property
    def glucose_units(self) -> str:
        """The glucose unit in words: always shown in mg/dL; the units the records came in, if others."""
        came_in = [unit for unit in self.report.units if unit != "mg/dL"]
        return "mg/dL" + (f" (converted from {', '.join(came_in)} where recorded so)" if came_in else "")


def patient_id_of(name: str) -> int | None:
    """`data-07` -> 7; None for any other file name."""
    match = FILE_PATTERN.match(name)
    return int(match.group(1)) if match else None


@dataclass
class _Chunk:
    """Some whole files' lines, parsed together: one set of column operations for many small files."""

    names: list[str]
    lines: pa.Array  # every line of every file, in order
    file: np.ndarray  # index into names, per line
    line: np.ndarray  # 1-based line number in its file
    reason: np.ndarray  # reason code per line (REASON_NAMES)
    events: pd.DataFrame  # accepted events, sorted, duplicates out

    def examples(self, code: int, limit: int) -> list[dict]:
        rows = pa.array(np.flatnonzero(self.reason == code)[:limit])
        texts = pc.utf8_slice_codeunits(self.lines.take(rows), 0, EXAMPLE_CHARS + 1).to_pylist()
        lengths = pc.utf8_length(self.lines.take(rows)).to_pylist()
        return [{"file": self.names[self.file[r]], "line": int(self.line[r]), "text": _cap(t, n)}
                for r, t, n in zip(rows.to_pylist(), texts, lengths)]


def _cap(text: str, length: int) -> str:
    return text if length <= EXAMPLE_CHARS else f"{text[:EXAMPLE_CHARS]}... [{length - EXAMPLE_CHARS:,} more characters]"


def _parse_chunk(texts: dict[str, bytes]) -> _Chunk:
    """Whole files -> their events (sorted, exact duplicates out) and a reason per line."""
    names = list(texts)
    per_file = [_split_text(text) for text in texts.values()]
    counts = np.array([len(lines) for lines in per_file], dtype=np.int64)
    lines = pa.concat_arrays(per_file) if per_file else pa.array([], pa.large_string())
    file = np.repeat(np.arange(len(names)), counts)
    line = np.arange(len(lines)) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    reason, parsed = _classify(lines)
    keep = np.flatnonzero(reason == 0)
    columns = {"patient_id": np.array([patient_id_of(n) for n in names], dtype=np.int64)[file[keep]],
               **{c: v[keep] for c, v in parsed.items()}, "file": file[keep], "line": line[keep]}
    unique, duplicate = _deduplicate(columns)
    reason[keep[duplicate]] = _CODE["duplicate_event"]
    events = _events_frame({c: v[unique] for c, v in columns.items()}, names)
    return _Chunk(names, lines, file, line, reason, events)


def _deduplicate(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows to keep, sorted by patient, time, code, line; exact repeats of an earlier line).

    Sorting numeric keys and comparing neighbours: hashing the rows (DataFrame.duplicated) is six
    times slower on a large file. Patient, minute and code are packed into one int64 when they fit
    (they always do for AIM94 files: 7 + 34 + 10 bits), so the sorts compare 2-3 keys, not 4-5:
    this was the parser's largest cost on a 50-patient-year chunk."""
    packed = _packed_key(columns)
    if packed is None:
        keys = [columns[c] for c in ("patient_id", "timestamp", "code")]
    else:
        keys = [packed]
    value, line = columns["value"], columns["line"]
    order = np.lexsort([line, value, *reversed(keys)])
    same = np.ones(max(len(order) - 1, 0), dtype=bool)
    for key in (*keys, value):
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    repeat = np.concatenate([[False], same]) if len(order) else np.zeros(0, bool)
    kept = order[~repeat]
    by_line = np.lexsort([line[kept], *(k[kept] for k in reversed(keys))])
    return kept[by_line], order[repeat]


def _packed_key(columns: dict[str, np.ndarray]) -> np.ndarray | None:
    """patient, timestamp (whole minutes) and code as one int64 with the same order, or None when
    they do not fit in 62 bits or a timestamp is not a whole minute (then the keys are sorted apart)."""
    if not len(columns["code"]):
        return None
    micros = columns["timestamp"].astype("datetime64[us]").astype(np.int64)
    minutes, rest = np.divmod(micros, 60_000_000)
    pid, code = columns["patient_id"].astype(np.int64), columns["code"].astype(np.int64)
    if rest.any() or pid.min() < 0 or code.min() < 0 or (code != columns["code"]).any():
        return None
    minutes = minutes - minutes.min()
    bits = [int(x.max()).bit_length() for x in (pid, minutes, code)]
    if sum(bits) > 62:
        return None
    return (pid << (bits[1] + bits[2])) | (minutes << bits[2]) | code


def _conflicts(events: pd.DataFrame) -> int:
    """Rows with the same patient, time and code as the row before (events are sorted so)."""
    keys = [events[c].to_numpy() for c in ("patient_id", "timestamp", "code")]
    same = np.ones(max(len(events) - 1, 0), dtype=bool)
    for key in keys:
        same &= key[1:] == key[:-1]
    return int(same.sum())


def _events_frame(columns: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """The events table from numpy columns: code-table columns and implausible-dose flags added."""
    code = columns["code"].astype(np.int64)
    kinds = {c: v.kind for c, v in CODE_TABLE.items()}
    limit = np.array([MAX_PLAUSIBLE_DOSE.get(kinds.get(c), np.nan) for c in range(max(kinds) + 1)])
    frame = {
        "patient_id": columns["patient_id"], "timestamp": columns["timestamp"], "code": code,
        "value": columns["value"], "kind": _strings(code, kinds),
        "detail": _strings(code, {c: v.detail for c, v in CODE_TABLE.items()}),
        "paper_time": columns["paper_time"], "censored": _strings(columns["censored"], dict(enumerate(CENSORED))),
        "implausible": columns["value"] > limit[code],
        "file": _strings(columns["file"], dict(enumerate(names))), "line": columns["line"],
    }
    return pd.DataFrame(frame)


def _strings(index: np.ndarray, table: dict[int, str]) -> pd.api.extensions.ExtensionArray:
    """table[i] for every i as a pandas "str" column, built by one arrow take (not a str per row)."""
    values = [table.get(i, "") for i in range(max(table) + 1)]
    return pd.array(pa.array(values, pa.large_string()).take(pa.array(index)), dtype="str")


def _chunks(files, skipped: list[str]):
    """Decoded texts grouped into chunks of about CHUNK_BYTES bytes (whole files only)."""
    chunk, size = {}, 0
    for name, data in files:
        text, why = _decode(data)
        if why:
            skipped.append(f"{name}: {why}")
            continue
        chunk[name], size = text, size + len(text)  # bytes
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


def _load(files, source: str, skipped: list[str]) -> LoadResult:
    """Parse (name, bytes or text) pairs chunk by chunk, so memory holds one chunk's lines at a time."""
    report = QualityReport(skipped_files=skipped)
    events = []
    for texts in _chunks(files, skipped):
        chunk = _parse_chunk(texts)
        report.files += len(texts)
        _add_to_report(report, chunk)
        events.append(chunk.events)
    skipped.sort()
    events = pd.concat(events, ignore_index=True) if events else _empty_events()
    report.censored = {k: int(n) for k, n in events.loc[events["censored"] != "", "censored"].value_counts().items()}
    report.implausible = {k: int(n) for k, n in events.loc[events["implausible"], "kind"].value_counts().items()}
    report.conflicts = _conflicts(events)
    report.patients = int(events["patient_id"].nunique())
    report.events = report.accepted = len(events)
    report.rejected = dict(sorted(report.rejected.items(), key=lambda kv: -kv[1]))
    return LoadResult(events, report, source)


def _add_to_report(report: QualityReport, chunk: _Chunk) -> None:
    """Counts per reason and per file (one bincount), and the first examples of each reason."""
    n_reasons = len(REASON_NAMES)
    table = np.bincount(chunk.file * n_reasons + chunk.reason, minlength=len(chunk.names) * n_reasons)
    table = table.reshape(len(chunk.names), n_reasons)
    report.lines += len(chunk.reason)
    for name, counts in zip(chunk.names, table):
        if counts.sum():
            rejected = {REASON_NAMES[c]: int(n) for c, n in enumerate(counts) if c and n}
            report.per_file[name] = {"lines": int(counts.sum()), "accepted": int(counts[0]), "rejected": rejected}
    for code, n in enumerate(table.sum(axis=0)):
        if code and n:
            reason = REASON_NAMES[code]
            report.rejected[reason] = report.rejected.get(reason, 0) + int(n)
            examples = report.examples.setdefault(reason, [])
            if len(examples) < EXAMPLES_PER_REASON:
                examples += chunk.examples(code, EXAMPLES_PER_REASON - len(examples))


def load_texts(texts: Mapping[str, bytes | str], source: str) -> LoadResult:
    """Parse {file name: bytes or text}. Files not named `data-NN` are skipped and reported."""
    skipped = [f"{n}: not named data-NN" for n in sorted(texts) if patient_id_of(n) is None]
    named = ((n, texts[n]) for n in sorted(texts) if patient_id_of(n) is not None)
    return _load(named, source, skipped)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in {
        "patient_id": "int64", "timestamp": "datetime64[us]", "code": "int64", "value": "float64",
        "kind": "str", "detail": "str", "paper_time": bool, "censored": "str",
        "implausible": bool, "file": "str", "line": "int64"}.items()})
