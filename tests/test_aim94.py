"""The AIM94 parser: every line accepted or rejected with a named reason, never a crash."""
from __future__ import annotations

import io
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from insulin_core.data import aim94, aim94_folder
from insulin_core.data.aim94 import load_texts
from insulin_core.data.aim94_folder import load_folder
from insulin_core.data.aim94_lines import REASONS
from insulin_core.data.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN

from .conftest import aim94_text

GOOD = aim94_text("04-21-1991 9:09 58 100", "04-21-1991 9:09 33 009", "04-21-1991 9:09 34 013")


def load_one(*rows: str, raw: str | None = None):
    return load_texts({"data-01": raw if raw is not None else aim94_text(*rows)}, source="test")


def test_good_lines_become_tidy_events():
    result = load_texts({"data-07": GOOD}, source="test")
    events = result.events
    assert list(events["code"]) == [33, 34, 58]  # sorted by time, then code
    assert set(events["patient_id"]) == {7}
    assert list(events["kind"]) == ["regular", "nph", "glucose"]
    assert events.loc[events["code"] == 58, "detail"].item() == "pre_breakfast"
    assert events["timestamp"].iloc[0] == pd.Timestamp("1991-04-21 09:09")
    assert events.loc[events["code"] == 33, "value"].item() == 9.0
    assert result.report.lines == 3 and result.report.accepted == 3 and result.report.rejected == {}


@pytest.mark.parametrize("raw, reason", [
    ("04-21-1991\t9:09\t58\n", "wrong_field_count"),
    ("04-21-1991\t9:09\t58\t100\t7\n", "wrong_field_count"),
    ("\t138\t33\t3A\n", "shifted_fields"),
    ("10-12-1989\t7:00\t0\t\n", "missing_field"),
    ("1991-04-21\t9:09\t58\t100\n", "bad_date"),
    ("06-31-1991\t07:50\t58\t149\n", "impossible_date"),
    ("02-30-1990\t07:50\t58\t149\n", "impossible_date"),
    ("08-20-1990\t11:0\t60\t194\n", "bad_time"),
    ("04-09-1991\t56:35\t58\t237\n", "impossible_time"),
    ("04-21-1991\t188:00\t62\t128\n", "impossible_time"),
    ("04-21-1991\t9:60\t62\t128\n", "impossible_time"),
    ("07-21-1990\t08:56\t56\t115\n", "unknown_code"),
    ("05-26-1991\t06:00\t4\t0\n", "unknown_code"),
    ("03-14-1991\t22:06\t36\t5\n", "unknown_code"),
    ("10-12-1989\t7:00\t0\t5\n", "unknown_code"),
    ("11-06-1989\t11:00\t57\t0''\n", "non_numeric_value"),
    ("10-12-1989\t7:00\t33\t3A\n", "non_numeric_value"),
    ("10-12-1989\t7:00\t33\t0Hi\n", "non_numeric_value"),  # a meter word on a dose is nonsense
    ("05-01-1990\t00:10\t64\t0\n", "glucose_out_of_range"),
    ("05-01-1990\t00:10\t64\t900\n", "glucose_out_of_range"),
    ("05-01-1990\t00:10\t33\t-4\n", "negative_dose"),
])
def test_each_kind_of_broken_line_is_rejected_with_its_reason(raw, reason):
    result = load_one(raw=GOOD + raw)
    report = result.report
    assert report.rejected == {reason: 1}
    assert report.lines == 4 and report.accepted == 3
    example = report.examples[reason][0]
    assert example == {"file": "data-01", "line": 4, "text": raw.rstrip("\n")}
    assert reason in REASONS


def test_meter_words_are_kept_as_censored_glucose():
    result = load_one("10-31-1989 12:00 60 0Hi", "11-08-1989 18:00 62 0Lo")
    events = result.events.set_index("censored")
    assert events.loc["high", "value"] == GLUCOSE_METER_MAX
    assert events.loc["low", "value"] == GLUCOSE_METER_MIN
    assert result.report.censored == {"high": 1, "low": 1}
    assert result.report.rejected == {}


def test_exact_duplicates_are_rejected_and_conflicts_kept():
    result = load_one("07-30-1990 05:28 33 3", "07-30-1990 05:28 33 3", "07-30-1990 05:28 33 4")
    assert result.report.rejected == {"duplicate_event": 1}
    assert result.report.examples["duplicate_event"][0]["line"] == 2
    assert sorted(result.events["value"]) == [3.0, 4.0]
    assert result.report.conflicts == 1


def test_implausible_doses_are_flagged_not_dropped():
    result = load_one("01-02-1990 08:00 33 344", "01-02-1990 08:00 34 20", "01-03-1990 08:00 33 6")
    flagged = result.events.set_index("value")["implausible"]
    assert flagged[344.0] and not flagged[20.0] and not flagged[6.0]
    assert result.report.implausible == {"regular": 1}


def test_paper_times_are_flagged():
    result = load_one("01-02-1990 08:00 58 100", "01-02-1990 12:00 60 100", "01-02-1990 8:01 33 4",
                      "01-02-1990 18:00 62 100", "01-02-1990 22:00 48 100", "01-02-1990 13:00 48 100")
    by_minute = result.events.set_index(result.events["timestamp"].dt.strftime("%H:%M"))["paper_time"]
    assert by_minute.to_dict() == {"08:00": True, "08:01": False, "12:00": True, "13:00": False,
                                   "18:00": True, "22:00": True}


def test_report_counts_per_file_and_skips_foreign_files():
    result = load_texts({"data-01": GOOD, "data-02": GOOD + "\t138\t33\t3A\n", "notes.txt": "hello"}, "t")
    report = result.report
    assert report.files == 2 and report.lines == 7 and report.accepted == 6
    assert report.per_file["data-02"] == {"lines": 4, "accepted": 3, "rejected": {"shifted_fields": 1}}
    assert report.skipped_files == ["notes.txt: not named data-NN"]
    assert report.patients == 2 and report.events == 6


def test_empty_and_garbage_input_never_crash():
    assert load_texts({}, "t").report.lines == 0
    empty = load_texts({"data-01": ""}, "t")
    assert empty.report.lines == 0 and empty.events.empty
    garbage = load_texts({"data-01": "\x00\xff\n\n\t\t\t\n" + "x" * 10_000 + "\n"}, "t")
    assert garbage.report.accepted == 0
    assert garbage.report.lines == garbage.report.rejected_total == 4  # a blank line counts too


def test_crlf_line_endings_are_accepted():
    assert load_one(raw=GOOD.replace("\n", "\r\n")).report.accepted == 3


def test_load_folder_reads_only_data_files(write_aim94):
    folder = write_aim94({"data-01": GOOD, "README": "not data"})
    result = load_folder(folder)
    assert result.report.files == 1 and result.report.accepted == 3


def test_load_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="No AIM94 files"):
        load_folder(tmp_path)


@pytest.mark.realdata
def test_real_data_every_line_accounted_for(real_data_dir):
    """Totals checked by hand once (wc -l, grep) on the UCI files: 29,330 lines."""
    report = load_folder(real_data_dir).report
    assert report.files == 70 and report.patients == 70
    assert report.lines == 29_330
    assert report.accepted + report.rejected_total == report.lines
    assert report.rejected == {
        "unknown_code": 121,  # code 56 x119 (data-03), 4 (data-20), 36 (data-22)
        "missing_field": 33,  # 'date time 0 <empty>' halves of split records
        "shifted_fields": 33,  # their '<empty> glucose 33 3A/21/22' other halves
        "impossible_date": 7,  # 06-31-1991, data-20
        "duplicate_event": 7,
        "impossible_time": 5,  # 56:35 x3, 188:00 x2, data-67
        "bad_time": 2,  # 11:0, data-29
        "glucose_out_of_range": 1,  # a glucose of 0, data-09
        "non_numeric_value": 1,  # 0'', data-40
    }
    assert report.censored == {"high": 6, "low": 1}  # 0Hi / 0Lo, data-02
    assert report.implausible == {"regular": 3, "nph": 8}


# ---- hostile input -------------------------------------------------------------------------------
ONE_DOSE = "04-21-1991\t9:09\t33\t5{}6\n"


@pytest.mark.parametrize("char", ["\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00", "\r",
                                  "\x7f", "\u202e", "\u200b", "\ufeff"])
def test_separator_and_control_characters_reject_their_line_and_never_split_it(char):
    result = load_one(raw=ONE_DOSE.format(char) + GOOD)
    report = result.report
    assert report.lines == 4 and report.rejected == {"control_character": 1}
    assert report.examples["control_character"][0]["line"] == 1
    assert sorted(result.events["line"]) == [2, 3, 4]  # later line numbers do not shift
    assert 5.0 not in set(result.events["value"])


def test_a_utf8_bom_costs_no_line():
    for data in ("\ufeff" + GOOD, ("\ufeff" + GOOD).encode()):
        report = load_texts({"data-01": data}, "t").report
        assert report.lines == report.accepted == 3 and report.rejected == {}


@pytest.mark.parametrize("data, encoding", [
    (GOOD.encode("utf-16"), "UTF-16 text (byte-order mark FF FE)"),
    (GOOD.encode("utf-16-be").join([b"\xfe\xff", b""]), "UTF-16 text (byte-order mark FE FF)"),
    (GOOD.encode("utf-16-le"), "mostly NUL bytes: UTF-16"),
    (GOOD.encode("utf-32"), "UTF-32 text"),
])
def test_utf16_and_utf32_files_are_named_and_skipped(data, encoding):
    result = load_texts({"data-01": data, "data-02": GOOD}, "t")
    report = result.report
    assert report.files == 1 and report.accepted == 3 and set(result.events["patient_id"]) == {2}
    assert len(report.skipped_files) == 1 and report.skipped_files[0].startswith(f"data-01: {encoding}")


@pytest.mark.parametrize("raw, reason", [
    ("04-21-1991\t9:09\t33\t" + "9" * 400 + "\n", "line_too_long"),  # was an infinite dose
    ("04-21-1991\t9:09\t33\t" + "9" * 70 + "\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\t1234567\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\t1e5\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\tinf\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\tNaN\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\t+5\n", "non_numeric_value"),
    ("04-21-1991\t9:09\t33\t\u0665\n", "non_numeric_value"),  # Arabic-Indic five
    ("04-21-1991\t\u0669:\u0660\u0669\t33\t5\n", "bad_time"),  # Arabic-Indic 9:09, read as a time before
    ("04-21-1991\t\uff19:09\t33\t5\n", "bad_time"),  # fullwidth nine
    ("\u0660\u0664-21-1991\t9:09\t33\t5\n", "bad_date"),
    ("04-21-1991\t9:09\t\u0663\u0663\t5\n", "unknown_code"),
    ("04-21-1991\t9:09\t0033\t5\n", "unknown_code"),  # at most three digits
    ("04-21-1991\t9:09\t33\t5\xff\n", "undecodable_bytes"),
    ("04-21-1991\t9:09\t33\t5" + " " * 100 + "\n", "line_too_long"),
])
def test_numbers_are_bounded_ascii_decimals(raw, reason):
    data = raw.encode("latin-1") if "\xff" in raw else raw.encode()
    report = load_texts({"data-01": data + GOOD.encode()}, "t").report
    assert report.rejected == {reason: 1} and report.accepted == 3


def test_lone_surrogates_in_a_text_do_not_crash():
    report = load_texts({"data-01": "04-21-1991\t9:09\t33\t5\ud800\n" + GOOD}, "t").report
    assert report.lines == 4 and report.accepted == 3


def test_examples_are_cut_to_a_readable_length():
    report = load_texts({"data-01": "x" * 1_000_000 + "\n" + GOOD}, "t").report
    text = report.examples["line_too_long"][0]["text"]
    assert text.startswith("x" * 200) and len(text) < 260 and "999,800 more characters" in text


def test_a_file_of_only_newlines_and_blank_endings():
    assert load_texts({"data-01": "\n" * 5}, "t").report.lines == 4  # the last blank line is the ending
    assert load_texts({"data-01": GOOD + "  \t\r\n"}, "t").report.lines == 3


# ---- folders -------------------------------------------------------------------------------------
def test_every_folder_entry_not_read_is_reported_with_its_reason(write_aim94, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text(GOOD)
    folder = write_aim94({"data-01": GOOD, "data-0001": GOOD, "notes.txt": "x"})
    (folder / "data-02").mkdir()
    os.mkfifo(folder / "data-03")
    (folder / "data-04").symlink_to(folder / "missing")
    (folder / "data-05").symlink_to(outside)
    (folder / "data-06").symlink_to(folder / "data-01")  # inside the folder: followed
    (folder / "data-07").write_bytes(GOOD.encode("utf-16"))
    signal.alarm(20)  # opening the FIFO would block forever: fail instead of hanging
    try:
        result = load_folder(folder)
    finally:
        signal.alarm(0)
    report = result.report
    assert sorted(result.events["patient_id"].unique()) == [1, 6] and report.files == 2
    assert report.skipped_files == [
        "data-0001: not named data-NN",
        "data-02: a folder, not a file",
        "data-03: a FIFO, not a regular file; not opened",
        "data-04: a broken link",
        "data-05: a link leading out of the folder; not followed",
        "data-07: UTF-16 text (byte-order mark FF FE); save it as UTF-8 or plain ASCII",
        "notes.txt: not named data-NN",
    ]
    assert load_folder(folder).report.to_dict()["skipped_files"] == report.skipped_files


def test_unreadable_files_are_reported(write_aim94, monkeypatch):
    folder = write_aim94({"data-01": GOOD, "data-02": GOOD})
    real_open = os.open

    def refuse_data_02(path, *args, **kwargs):
        if str(path).endswith("data-02"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_data_02)  # root ignores chmod 000, so simulate it
    report = load_folder(folder).report
    assert report.files == 1 and report.skipped_files == ["data-02: cannot be read (Permission denied)"]


def test_too_large_files_are_skipped(write_aim94, monkeypatch):
    monkeypatch.setattr(aim94_folder, "MAX_FILE_BYTES", 10)
    report = load_folder(write_aim94({"data-01": GOOD})).report
    assert report.files == 0 and report.skipped_files[0].startswith("data-01: too large")


# ---- speed -----------------------------------------------------------------------------------------
def test_a_5mb_file_parses_within_a_small_multiple_of_pandas_csv_reader():
    """Wall-clock bound relative to a reference measured in the same run (bench/parser_scale.py
    holds the absolute 50 MB targets). The object-column parser before took about 28 times the reference; this one about 3."""
    rows = [f"{1 + d % 12:02d}-{1 + d % 28:02d}-1990\t{h}:{m:02d}\t58\t{20 + (d * 7 + m) % 500}"
            for d in range(900) for h in range(24) for m in range(0, 60, 6)]
    data = ("\n".join(rows) + "\n").encode()
    assert len(data) > 5_000_000
    parse = min(_seconds(lambda: load_texts({"data-01": data}, "t")) for _ in range(2))
    reference = min(_seconds(lambda: pd.read_csv(io.BytesIO(data), sep="\t", header=None, dtype=str))
                    for _ in range(2))
    assert parse < 10 * reference, (parse, reference)


def _seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def test_deduplicate_packed_key_equals_sorting_the_keys_apart(monkeypatch):
    """The packed (patient, minute, code) key finds the same duplicates, in the same order, as the
    four keys sorted apart (the fallback for keys that do not fit in one int64)."""
    from insulin_core.data import aim94

    rng = np.random.default_rng(3)
    n = 3_000
    columns = {
        "patient_id": rng.integers(1, 5, n).astype(np.int64),
        "timestamp": (np.datetime64("1991-01-01T00:00", "us")
                      + rng.integers(0, 300, n).astype("timedelta64[m]")).astype("datetime64[us]"),
        "code": rng.choice([33.0, 34.0, 58.0, 60.0], n),
        "value": rng.integers(0, 4, n).astype(float),
        "line": np.arange(1, n + 1, dtype=np.int64),
    }
    assert aim94._packed_key(columns) is not None
    packed = aim94._deduplicate(columns)
    monkeypatch.setattr(aim94, "_packed_key", lambda cols: None)
    apart = aim94._deduplicate(columns)
    assert len(packed[1]) > 100  # the draw has many exact repeats
    for got, want in zip(packed, apart):
        np.testing.assert_array_equal(got, want)


def test_the_report_keeps_its_dictionary_and_words_now_that_it_carries_its_reasons():
    """QualityReport serves every reader (insulin_core/data/readers/); an AIM94 report is what it was."""
    report = load_one(raw="04-21-1991\t9:09\t58\n").report
    assert list(report.to_dict()) == [
        "files", "lines", "accepted", "rejected", "rejected_total", "patients", "events", "censored",
        "implausible", "conflicts", "per_file", "examples", "skipped_files", "reasons", "actions"]
    assert report.to_dict()["reasons"] == REASONS and report.actions == aim94.ACTIONS
    assert report.unusable_reason() == "1 lines read, none accepted; rejected: 1 not four tab-separated fields"
    assert report.reason_words("wrong_field_count") == "Not four tab-separated fields"  # as the Overview lists it
    other = aim94.QualityReport(reasons={"wrong_field_count": "a JSON record of another kind"})
    assert other.reason_words("wrong_field_count") == "A JSON record of another kind"  # another reader's own words
    assert report.reason_words("never_heard_of") == "Never_heard_of"
