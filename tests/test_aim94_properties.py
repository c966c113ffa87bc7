"""Property-based test of the AIM94 parser: generated hostile files (at least 10,000 per run).

For every file: no exception, every line accounted for (accepted + rejected == lines, and lines
== an independent count of the \\n-separated lines), and every accepted event valid: its line
re-read by a plain-Python oracle gives the same timestamp, code and value, the code is in the
table, the value finite and in range.

Two generators of one grammar: hypothesis (edge cases first, a failure shrunk to its smallest
file) for EXAMPLES runs, and a plain seeded fuzzer for the volume. Why both: hypothesis spent
about 80% of this test's 75 s drawing its 10,000 files (profiled); the fuzzer writes as many in
well under a second, and a new seed each run (printed on failure) keeps it a random search.
"""
from __future__ import annotations

import datetime
import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insulin_core.data.aim94 import load_texts
from insulin_core.data.aim94_lines import REASONS
from insulin_core.data.codes import CODE_TABLE, GLUCOSE_CODES, GLUCOSE_METER_MAX, GLUCOSE_METER_MIN

MIN_FILES = 10_000
EXAMPLES = 200
FILES_PER_EXAMPLE = (8, 10)  # one parse per example of 8-10 files
FUZZ_FILES_PER_PARSE = 99  # data-01 .. data-99
ORACLE = re.compile(r"(\d\d)-(\d\d)-(\d{4})\t(\d{1,3}):(\d\d)\t(\d{1,3})\t(-?\d{1,6}(?:\.\d{1,6})?|0Hi|0Lo)", re.ASCII)

HOSTILE = ["\x1c", "\x0c", "\x85", "\u2028", "\x00", "\r", "\ufeff", "\u202e", "\ufffd", "\u0663", "\uff11", "é",
           " ", "\t", "-", ":", ".", "9" * 30]
# The grammar's word lists, shared by the hypothesis strategies and the fuzzer below.
SPECIAL_FIELDS = ["0Hi", "0Lo", "3A", "0''", "", "-4", "1.5", "1e5", "inf", "nan", "+5", "9" * 400]
CODES = [*CODE_TABLE, 0, 4, 36, 56]  # the table's codes and unknown ones seen in the real files
field = st.one_of(
    st.text("0123456789", min_size=1, max_size=4),
    st.sampled_from(SPECIAL_FIELDS),
    st.text(max_size=5),
)
date = st.one_of(st.builds("{:02d}-{:02d}-{:04d}".format, st.integers(0, 13), st.integers(0, 32),
                           st.integers(0, 9999)), field)
clock = st.one_of(st.builds("{}:{:02d}".format, st.integers(0, 30), st.integers(0, 70)), field)
code = st.one_of(st.sampled_from(CODES).map(str), field)
value = st.one_of(st.integers(-20, 1000).map(str), st.floats(-1e3, 1e4).map("{:.2f}".format), field)
record = st.builds(lambda *f: "\t".join(f), date, clock, code, value)


@st.composite
def hostile_line(draw) -> str:
    line = draw(st.one_of(record, record, st.lists(field, max_size=6).map("\t".join)))
    if draw(st.integers(0, 3)) == 0:  # one time in four, a hostile character somewhere
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(HOSTILE)) + line[at:]
    return line


@st.composite
def aim94_file(draw) -> bytes:
    lines = draw(st.lists(hostile_line(), max_size=6))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    data = text.encode("utf-8", errors="replace")
    if draw(st.booleans()) and draw(st.booleans()):
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff", b"\xc3", b""])) + data + draw(st.binary(max_size=6))
    return data


def independent_lines(data: bytes) -> list[bytes]:
    """The lines as the contract defines them, written plainly: split at \\n, one \\r before it
    dropped, the empty piece after a final \\n and one blank last line not counted."""
    pieces = [p[:-1] if p.endswith(b"\r") else p for p in data.removeprefix(b"\xef\xbb\xbf").split(b"\n")]
    for _ in range(2):
        if pieces and pieces[-1].strip(b" \t") == b"":
            pieces.pop()
    return pieces


def check_event(line: int, timestamp, code: int, value: float, lines: list[bytes]) -> None:
    """One accepted event against its line re-read by the oracle."""
    text = lines[line - 1].decode("utf-8")
    match = ORACLE.fullmatch(text)
    assert match, text
    month, day, year, hour, minute, code_text, value_text = match.groups()
    assert timestamp == datetime.datetime(int(year), int(month), int(day), int(hour), int(minute))
    assert code == int(code_text) and code in CODE_TABLE
    assert math.isfinite(value)
    if code in GLUCOSE_CODES:
        assert GLUCOSE_METER_MIN <= value <= GLUCOSE_METER_MAX
        expected = {"0Hi": GLUCOSE_METER_MAX, "0Lo": GLUCOSE_METER_MIN}.get(value_text)
        assert value == (expected if expected is not None else float(value_text))
    else:
        assert value == float(value_text) >= 0


def check_parse(files: list[bytes]) -> None:
    """Parse the files as one folder and check every line of every file against the contract."""
    texts = {f"data-{i + 1:02d}": data for i, data in enumerate(files)}
    result = load_texts(texts, "generated")
    report = result.report
    assert report.accepted + report.rejected_total == report.lines == len(result.events) + report.rejected_total
    assert set(report.rejected) <= set(REASONS)
    skipped = {entry.split(":", 1)[0] for entry in report.skipped_files}
    events_of: dict[str, list[tuple]] = {}  # plain tuples: pandas row access would be most of this test's time
    columns = [result.events[c].tolist() for c in ("file", "line", "patient_id", "timestamp", "code", "value")]
    for row in zip(*columns):
        events_of.setdefault(row[0], []).append(row[1:])
    for name, data in texts.items():
        lines = independent_lines(data)
        counted = report.per_file.get(name, {"lines": 0, "accepted": 0, "rejected": {}})
        if name in skipped:
            assert counted["lines"] == 0
            continue
        assert counted["lines"] == len(lines)
        assert counted["accepted"] + sum(counted["rejected"].values()) == len(lines)
        for line, patient_id, timestamp, code, value in events_of.get(name, []):
            assert patient_id == int(name[-2:])
            check_event(line, timestamp, code, value, lines)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(aim94_file(), min_size=FILES_PER_EXAMPLE[0], max_size=FILES_PER_EXAMPLE[1]))
def test_generated_hostile_files_are_parsed_and_every_line_accounted_for(files):
    check_parse(files)


# -- the fuzzer: the grammar of the strategies above, drawn with random.Random ------------------

def fuzz_text(rng: random.Random, size: int) -> str:
    """Any characters (surrogates included, as st.text), ASCII and the hostile ones more often."""
    pool = (lambda: chr(rng.randrange(32, 127)), lambda: rng.choice(HOSTILE)[:1], lambda: chr(rng.randrange(0x110000)))
    return "".join(rng.choice(pool)() for _ in range(rng.randint(0, size)))


def fuzz_field(rng: random.Random) -> str:
    return rng.choice((
        lambda: "".join(rng.choices("0123456789", k=rng.randint(1, 4))),
        lambda: rng.choice(SPECIAL_FIELDS),
        lambda: fuzz_text(rng, 5),
    ))()


def fuzz_record(rng: random.Random) -> str:
    either = lambda well_formed: well_formed() if rng.random() < 0.8 else fuzz_field(rng)  # noqa: E731 (mostly well formed, so many lines are accepted)
    date = either(lambda: f"{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}-{rng.randint(0, 9999):04d}")
    clock = either(lambda: f"{rng.randint(0, 30)}:{rng.randint(0, 70):02d}")
    code = either(lambda: str(rng.choice(CODES)))
    value = either(lambda: str(rng.randint(-20, 1000)) if rng.random() < 0.5 else f"{rng.uniform(-1e3, 1e4):.2f}")
    return "\t".join((date, clock, code, value))


def fuzz_line(rng: random.Random) -> str:
    line = fuzz_record(rng) if rng.random() < 2 / 3 else "\t".join(fuzz_field(rng) for _ in range(rng.randint(0, 6)))
    if rng.random() < 0.25:
        at = rng.randint(0, len(line))
        line = line[:at] + rng.choice(HOSTILE) + line[at:]
    return line


def fuzz_file(rng: random.Random) -> bytes:
    text = rng.choice(["\n", "\r\n"]).join(fuzz_line(rng) for _ in range(rng.randint(0, 6)))
    data = (text + rng.choice(["", "\n", "\r\n", "\n\n"])).encode("utf-8", errors="replace")
    if rng.random() < 0.25:
        data = rng.choice([b"\xef\xbb\xbf", b"\xff", b"\xc3", b""]) + data + rng.randbytes(rng.randint(0, 6))
    return data


@pytest.mark.slow
def test_ten_thousand_fuzzed_files_are_parsed_and_every_line_accounted_for():
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    files = 0
    while files < MIN_FILES:
        batch = [fuzz_file(rng) for _ in range(FUZZ_FILES_PER_PARSE)]
        try:
            check_parse(batch)
        except AssertionError as error:
            raise AssertionError(f"fuzzer seed {seed} (random.Random), batch from file {files}") from error
        files += len(batch)
