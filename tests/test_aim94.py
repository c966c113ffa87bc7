"""The AIM94 parser: every line accepted or rejected with a named reason, never a crash."""
from __future__ import annotations

import pandas as pd
import pytest

from insulin_core.aim94 import REASONS, load_folder, load_texts
from insulin_core.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN

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
