"""One AIM94 line to its fields or its rejection reason, vectorised: the reasons (in the order they
are checked), the RE2 patterns of each field, the bytes of a file decoded and split into lines
(`_decode`, `_split_text`) and `parse_lines`. aim94.py loads whole files on it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .codes import CODE_TABLE, GLUCOSE_CODES, GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, PAPER_TIMES_MIN

MAX_LINE_CHARS = 100  # real lines are at most 24 characters

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
