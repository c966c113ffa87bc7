"""Parse AIM94 event logs into one tidy event table and a data-quality report.

Each line of a `data-NN` file is `MM-DD-YYYY<TAB>H:MM<TAB>code<TAB>value`. The real files keep
broken lines (shifted fields, impossible dates and times, meter words, unknown codes). Every line
ends up either accepted or rejected with a named reason: nothing is dropped silently and no line
can make the loader crash. Parsing is vectorised (pyarrow compute kernels) over all lines of a
file at once, one file at a time, so memory holds one file's lines.
"""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .codes import (
    CODE_TABLE,
    GLUCOSE_METER_MAX,
    GLUCOSE_CODES,
    GLUCOSE_METER_MIN,
    MAX_PLAUSIBLE_DOSE,
    PAPER_TIMES_MIN,
)

# ASCII digits only: `\\d` would take Arabic-Indic and other Unicode digits for a patient number.
FILE_PATTERN = re.compile(r"^data-([0-9]{2})$")
EXAMPLES_PER_REASON = 5
EXAMPLE_CHARS = 200  # a 200 MB one-line file must not become a 200 MB report
MAX_LINE_CHARS = 100  # real lines are at most 24 characters
MAX_FILE_BYTES = 256 * 1024 * 1024  # real files are tens of KB; anything bigger is not a diary
CHUNK_BYTES = 8_000_000  # files are parsed together up to this much text: few calls, bounded memory

# Rejection reasons, in the order they are checked: a line gets the first that applies.
REASONS = {
    "control_character": "a control, line-separator or invisible formatting character inside the line "
                         "(e.g. \\x1c, \\x0c, NUL, U+2028, U+202E); lines split only at \\n",
    "undecodable_bytes": "bytes that are not UTF-8 text (shown as U+FFFD)",
    "line_too_long": f"longer than {MAX_LINE_CHARS} characters",
    "wrong_field_count": "not four tab-separated fields",
    "shifted_fields": "date field empty and the others shifted (a record split over two lines)",
    "missing_field": "a field is empty",
    "bad_date": "date is not MM-DD-YYYY (ASCII digits)",
    "impossible_date": "date does not exist (e.g. 06-31-1991)",
    "bad_time": "time is not H:MM (ASCII digits; e.g. 11:0)",
    "impossible_time": "time past 23:59 (e.g. 56:35, 188:00)",
    "unknown_code": "code not in the AIM94 code table (e.g. 0, 4, 36, 56)",
    "non_numeric_value": "value is not a plain decimal of at most 6+6 ASCII digits (e.g. 3A, 0'', 1e5, 400 nines)",
    "glucose_out_of_range": f"glucose outside the meter range {GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g} mg/dL",
    "negative_dose": "insulin dose below zero",
    "duplicate_event": "the same patient, time, code and value already on record",
}
REASON_NAMES = ("", *REASONS)  # reason code per line: 0 = accepted, i = REASON_NAMES[i]
_CODE = {name: i for i, name in enumerate(REASON_NAMES)}
CENSORED = ("", "high", "low")  # the `censored` column, coded 0, 1, 2 while parsing

# RE2 patterns (pyarrow.compute). Control characters C0/C1 but tab, Unicode line and paragraph
# separators, and zero-width/bidi formatting characters, which hide or reorder text on screen.
CONTROL = r"[\x00-\x08\x0a-\x1f\x7f-\x9f\x{200b}-\x{200f}\x{2028}-\x{202e}\x{2066}-\x{2069}\x{feff}]"
FIELDS = r"^(?P<date>[^\t]*)\t(?P<time>[^\t]*)\t(?P<code>[^\t]*)\t(?P<value>[^\t]*)$"
DATE = r"^[0-9]{2}-[0-9]{2}-[0-9]{4}$"
TIME = r"^(?P<hour>[0-9]{1,3}):(?P<minute>[0-9]{2})$"
CODE = r"^[0-9]{1,3}$"
VALUE = r"^-?[0-9]{1,6}(\.[0-9]{1,6})?$"  # bounded: 400 nines would be an infinite dose
# A line of the usual shape (ASCII, four fields, each well formed); the rest get the shape checks.
SHAPE = r"^[0-9]{2}-[0-9]{2}-[0-9]{4}\t[0-9]{1,3}:[0-9]{2}\t[0-9]{1,3}\t(?:-?[0-9]{1,6}(?:\.[0-9]{1,6})?|0Hi|0Lo)$"

# Byte-order marks of encodings this parser does not read (UTF-32 first: its LE mark starts FF FE).
FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"),
)

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


def patient_id_of(name: str) -> int | None:
    """`data-07` -> 7; None for any other file name."""
    match = FILE_PATTERN.match(name)
    return int(match.group(1)) if match else None


def _matches(values: pa.Array, pattern: str) -> np.ndarray:
    """Boolean numpy mask: the (anchored) RE2 pattern matches; null counts as no match."""
    return pc.fill_null(pc.match_substring_regex(values, pattern), False).to_numpy(zero_copy_only=False)


def _numbers(values: pa.Array, ok: np.ndarray, to: pa.DataType) -> np.ndarray:
    """float64 numpy array of `values` cast to `to` where `ok`, NaN elsewhere."""
    kept = pc.if_else(pa.array(ok), values, pa.scalar(None, values.type))
    return pc.cast(kept, to).to_numpy(zero_copy_only=False).astype(float)


def _days(date: pa.Array, ok: np.ndarray) -> np.ndarray:
    """datetime64[us] day of each MM-DD-YYYY date (NaT if impossible), parsing each distinct date once."""
    kept = pc.if_else(pa.array(ok), date, pa.scalar(None, date.type)).dictionary_encode()
    distinct = pd.to_datetime(pd.Series(kept.dictionary.to_numpy(zero_copy_only=False), dtype=object),
                              format="%m-%d-%Y", errors="coerce").to_numpy("datetime64[us]")
    lookup = np.append(distinct, np.datetime64("NaT", "us"))  # the last slot stands for "no date"
    return lookup[pc.fill_null(kept.indices, len(distinct)).to_numpy(zero_copy_only=False)]


def _classify(lines: pa.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Reason code per line (0 = accepted, see REASON_NAMES) and the parsed columns, all vectorised.

    One pattern finds the well-shaped lines (nearly all of a real file); only the others go through
    the shape checks, which are the costly part on a large file."""
    shaped = _matches(lines, SHAPE)
    if shaped.all() or not shaped.any():
        return _classify_part(lines, shaped=bool(shaped.all()))
    reason, parsed = np.zeros(len(lines), dtype=np.int8), {}
    for rows, is_shaped in ((np.flatnonzero(shaped), True), (np.flatnonzero(~shaped), False)):
        part_reason, part = _classify_part(lines.take(pa.array(rows)), is_shaped)
        reason[rows] = part_reason
        for col, values in part.items():
            parsed.setdefault(col, np.empty(len(lines), values.dtype))[rows] = values
    return reason, parsed


def _classify_part(lines: pa.Array, shaped: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """_classify on lines that all match SHAPE (`shaped`: their shape checks are known to pass) or none."""
    reason = np.zeros(len(lines), dtype=np.int8)
    every = np.ones(len(lines), dtype=bool)

    def mark(mask: np.ndarray, why: str) -> None:
        reason[(reason == 0) & mask] = _CODE[why]

    if not shaped:
        mark(_matches(lines, CONTROL), "control_character")
        mark(_matches(lines, r"\x{fffd}"), "undecodable_bytes")
        mark(pc.utf8_length(lines).to_numpy(zero_copy_only=False) > MAX_LINE_CHARS, "line_too_long")
    fields = pc.extract_regex(lines, FIELDS)
    date, time, code, value = (pc.fill_null(fields.field(f), "") for f in ("date", "time", "code", "value"))
    if not shaped:
        mark(~pc.is_valid(fields).to_numpy(zero_copy_only=False), "wrong_field_count")
        empty = [pc.equal(col, "").to_numpy(zero_copy_only=False) for col in (date, time, code, value)]
        mark(empty[0] & ~empty[1] & ~empty[2], "shifted_fields")
        mark(empty[0] | empty[1] | empty[2] | empty[3], "missing_field")
    date_ok = every if shaped else _matches(date, DATE)
    mark(~date_ok, "bad_date")
    day = _days(date, date_ok)
    mark(np.isnat(day), "impossible_date")
    hm = pc.extract_regex(time, TIME)
    time_ok = pc.is_valid(hm).to_numpy(zero_copy_only=False)
    hour, minute = (_numbers(hm.field(f), time_ok, pa.int32()) for f in ("hour", "minute"))
    mark(~time_ok, "bad_time")
    mark((hour > 23) | (minute > 59), "impossible_time")
    code_num = _numbers(code, every if shaped else _matches(code, CODE), pa.int32())
    mark(~np.isin(code_num, list(CODE_TABLE)), "unknown_code")

    is_glucose = np.isin(code_num, GLUCOSE_CODES)
    hi, lo = (pc.equal(value, word).to_numpy(zero_copy_only=False) for word in ("0Hi", "0Lo"))
    number = _numbers(value, ~(hi | lo) if shaped else _matches(value, VALUE), pa.float64())
    high, low = is_glucose & hi, is_glucose & lo
    number[high], number[low] = GLUCOSE_METER_MAX, GLUCOSE_METER_MIN
    mark(np.isnan(number), "non_numeric_value")
    mark(is_glucose & ((number < GLUCOSE_METER_MIN) | (number > GLUCOSE_METER_MAX)), "glucose_out_of_range")
    mark(~is_glucose & (number < 0), "negative_dose")

    minutes = np.nan_to_num(hour * 60 + minute).astype(np.int64)
    parsed = {
        "timestamp": day + minutes.astype("timedelta64[m]"), "code": code_num, "value": number,
        "censored": np.select([high, low], [1, 2], 0).astype(np.int8), "paper_time": np.isin(minutes, PAPER_TIMES_MIN),
    }
    return reason, parsed


def _split_text(data: bytes) -> pa.Array:
    r"""The lines of UTF-8 bytes, split only at \n, one \r before it dropped: never at \x1c, \x85,
    U+2028... (str.splitlines splits at all of them). Built from the bytes with numpy: a kernel
    splitting a 50 MB string is ten times slower."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newline = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], newline + 1])
    ends = np.append(newline, len(buf))
    crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13) if len(buf) else np.zeros(1, bool)
    ends = ends - crlf
    drop = np.zeros(len(buf), dtype=bool)
    drop[newline] = True
    drop[ends[crlf]] = True
    offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(buf[~drop]))
    # A blank last line is an artefact of how the file ends, not a record.
    for _ in range(2):  # the empty piece after the final \n, then one blank line before it
        if len(lines) and lines[-1].as_py().strip(" \t") == "":
            lines = lines[:-1]
    return lines


def _decode(data: bytes | str) -> tuple[bytes, str]:
    """(valid UTF-8 bytes, "") or (b"", why the file is not read): a UTF-8 BOM is dropped,
    undecodable bytes become U+FFFD, UTF-16/32 files are named and not read."""
    if isinstance(data, str):
        # A str may hold lone surrogates, which have no UTF-8 form: they become "?".
        return data.encode("utf-8", errors="replace").removeprefix(b"\xef\xbb\xbf"), ""
    for bom, encoding in FOREIGN_BOMS:
        if data.startswith(bom):
            return b"", f"{encoding} text (byte-order mark {bom.hex(' ').upper()}); save it as UTF-8 or plain ASCII"
    head = data[:65536]
    if head and head.count(0) > len(head) // 4:  # ASCII saved as UTF-16 is half NUL bytes
        return b"", "mostly NUL bytes: UTF-16 text without a byte-order mark? Save it as UTF-8 or plain ASCII"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    return data.removeprefix(b"\xef\xbb\xbf"), ""


def parse_lines(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines (file, line, text) -> (accepted events, rejected lines with their reason)."""
    reason, parsed = _classify(pa.array(lines["text"].astype(object), pa.large_string()))
    parsed["censored"] = np.asarray(CENSORED, dtype=object)[parsed["censored"]]
    table = pd.DataFrame(parsed, index=lines.index).assign(
        file=lines["file"], line=lines["line"], text=lines["text"], reason=np.asarray(REASON_NAMES)[reason])
    accepted = table[reason == 0].drop(columns=["text", "reason"])
    return accepted, table.loc[reason != 0, ["file", "line", "text", "reason"]]


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


# ---- folders -----------------------------------------------------------------------------------
def scan_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """The `data-NN` files of a folder to read, and every other entry as "name: why not read".

    Nothing is opened here (a FIFO would block the reader forever); links are resolved and
    followed only when they stay inside the folder."""
    root = Path(os.path.realpath(folder))
    paths, skipped = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        why = _why_not_read(entry, root)
        if why:
            skipped.append(f"{entry.name}: {why}")
        else:
            paths.append(Path(entry.path))
    return paths, skipped


def _why_not_read(entry: os.DirEntry, root: Path) -> str:
    kind = "a folder" if entry.is_dir(follow_symlinks=False) else ""
    if patient_id_of(entry.name) is None:
        return "not named data-NN" + (f" ({kind})" if kind else "")
    if entry.is_symlink():
        target = Path(os.path.realpath(entry.path))
        if not target.is_relative_to(root):
            return "a link leading out of the folder; not followed"
        if not target.exists():
            return "a broken link"
    try:
        info = os.stat(entry.path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return _why_not_regular(info)


def _why_not_regular(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        return f"{kind}, not a regular file; not opened"
    if info.st_size > MAX_FILE_BYTES:
        return f"too large ({info.st_size / 2**20:,.0f} MB; at most {MAX_FILE_BYTES / 2**20:,.0f} MB)"
    return ""


def _read_file(path: Path) -> tuple[bytes, str]:
    """(bytes, "") or (b"", why not): opened non-blocking and checked again after opening, so a file
    swapped for a FIFO or a link between the scan and the read is refused, not waited on."""
    try:
        fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return b"", f"cannot be read ({exc.strerror or exc})"
    with open(fd, "rb") as handle:
        why = _why_not_regular(os.fstat(fd))
        data = b"" if why else handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        why = f"too large (over {MAX_FILE_BYTES / 2**20:,.0f} MB)"
    return (b"", why) if why else (data, "")


def _check_folder(folder: Path) -> None:
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"AIM94 folder not found: {folder}")


def _readable(paths: list[Path], skipped: list[str]):
    """(name, bytes) per readable file, read one at a time; unreadable ones go to `skipped`."""
    for path in paths:
        data, why = _read_file(path)
        if why:
            skipped.append(f"{path.name}: {why}")
        else:
            yield path.name, data


def _no_files(folder: Path, paths: list[Path], skipped: list[str]) -> None:
    if not paths and not any(patient_id_of(s.split(":", 1)[0]) is not None for s in skipped):
        raise FileNotFoundError(f"No AIM94 files (data-01 ... data-70) in {folder}")


def read_folder(folder: Path) -> dict[str, bytes]:
    """The readable `data-NN` files of a folder as bytes (decoded by the parser)."""
    _check_folder(folder)
    paths, skipped = scan_folder(Path(folder))
    _no_files(folder, paths, skipped)
    return dict(_readable(paths, skipped))


def load_folder(folder: Path, source: str | None = None) -> LoadResult:
    """Parse a folder file by file; entries not read are in `report.skipped_files` with the reason."""
    _check_folder(folder)
    paths, skipped = scan_folder(Path(folder))
    _no_files(folder, paths, skipped)
    return _load(_readable(paths, skipped), source or str(folder), skipped)
