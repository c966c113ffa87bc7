"""The synthetic demo cohort: exact AIM94 format, deterministic, realistic, learnable, labelled."""
from __future__ import annotations

import importlib
import re
from collections import Counter
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from insulin_core.data.codes import DEMO_LABEL, PAPER_TIMES_MIN
from insulin_core.data.demo import GENERATOR_VERSION, DemoConfig, generate_cohort, planted_faults, write_cohort

LINE = re.compile(r"^\d{2}-\d{2}-\d{4}\t\d{1,2}:\d{2}\t\d+\t(\d+|0Hi|0Lo)$")
GLUCOSE = {48, 57, 58, 59, 60, 61, 62, 63, 64}
PAPER_CLOCKS = {f"{m // 60:02d}:{m % 60:02d}" for m in PAPER_TIMES_MIN}
KEY = ["file", "date", "time"]


@lru_cache(maxsize=None)
def cohort(seed: int = 0, patients: int = 20, days: int = 90) -> tuple[dict[str, str], tuple]:
    cfg = DemoConfig(patients=patients, days=days, seed=seed)
    return generate_cohort(cfg), tuple(planted_faults(cfg))


@lru_cache(maxsize=None)
def good_rows(seed: int = 0) -> pd.DataFrame:
    """Every line that is not a planted fault, split into its fields (parsed here, not by aim94)."""
    texts, faults = cohort(seed)
    planted = {(f, n) for f, n, _ in faults}
    rows = [
        (name, n, *line.split("\t"))
        for name, text in texts.items()
        for n, line in enumerate(text.splitlines(), start=1)
        if (name, n) not in planted
    ]
    frame = pd.DataFrame(rows, columns=["file", "line", "date", "time", "code", "value"])
    frame["code"] = frame["code"].astype(int)
    return frame


@lru_cache(maxsize=None)
def readings(seed: int = 0) -> pd.DataFrame:
    """One row per numeric glucose reading with the Regular, meal and exercise at that moment."""
    rows = good_rows(seed)
    glucose = rows[rows["code"].isin(GLUCOSE) & rows["value"].str.isdigit()].copy()
    glucose["glucose"] = glucose["value"].astype(int)
    regular = _regular_at_readings(rows, glucose)
    meal = rows[rows["code"].isin([66, 67, 68])].groupby(KEY)["code"].max().rename("meal")
    exercise = rows[rows["code"].isin([69, 70, 71])].groupby(KEY)["code"].max().rename("exercise")
    hypo = rows[rows["code"] == 65].groupby(KEY)["code"].size().rename("hypo")
    out = glucose.join(regular, on=KEY).join(meal, on=KEY).join(exercise, on=KEY).join(hypo, on=KEY)
    return out.fillna({"dose": 0, "meal": 0, "exercise": 0, "hypo": 0}).reset_index(drop=True)


def _minute(time: pd.Series) -> pd.Series:
    hm = time.str.split(":", expand=True).astype(int)
    return hm[0] * 60 + hm[1]


def _regular_at_readings(rows: pd.DataFrame, glucose: pd.DataFrame) -> pd.Series:
    """Regular per reading: written with it, or up to LATE_MIN minutes after it (late loggers)."""
    regular = rows[rows["code"] == 33].assign(dose=lambda f: f["value"].astype(int), m=lambda f: _minute(f["time"]))
    stamps = glucose[KEY].drop_duplicates().assign(m=lambda f: _minute(f["time"]))
    on = pd.merge_asof(regular.sort_values("m"), stamps.sort_values("m").rename(columns={"time": "at"}),
                       on="m", by=["file", "date"], direction="backward", tolerance=LATE_MIN)
    return on.dropna(subset=["at"]).rename(columns={"time": "written", "at": "time"}).groupby(KEY)["dose"].sum()


LATE_MIN = 15


# --- config and determinism ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"patients": 0}, {"patients": 100}, {"days": 0}, {"days": 1001}, {"seed": -1}, {"patients": 2.5},
])
def test_config_rejects_out_of_range_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DemoConfig(**kwargs)


def test_same_seed_is_byte_identical_and_another_seed_differs():
    first = generate_cohort(DemoConfig(seed=3, patients=5, days=30))
    again = generate_cohort(DemoConfig(seed=3, patients=5, days=30))
    other = generate_cohort(DemoConfig(seed=4, patients=5, days=30))
    assert first == again
    assert planted_faults(DemoConfig(seed=3, patients=5, days=30)) == planted_faults(DemoConfig(seed=3, patients=5, days=30))
    assert first != other


def test_file_names_and_dates_follow_the_config():
    cfg = DemoConfig(patients=12, days=10, start=date(1990, 3, 1))
    texts = generate_cohort(cfg)
    assert list(texts) == [f"data-{i:02d}" for i in range(1, 13)]
    planted = {(f, n) for f, n, _ in planted_faults(cfg)}
    days = {
        line.split("\t")[0] for name, text in texts.items()
        for n, line in enumerate(text.splitlines(), start=1) if (name, n) not in planted
    }
    assert days <= {f"03-{d:02d}-1990" for d in range(1, 11)}


@pytest.mark.parametrize("patients, days", [(1, 1), (2, 3), (99, 2)])
def test_tiny_and_wide_cohorts_generate(patients, days):
    texts = generate_cohort(DemoConfig(patients=patients, days=days))
    assert len(texts) == patients
    assert len(planted_faults(DemoConfig(patients=patients, days=days))) == 14


# --- format -------------------------------------------------------------------------------------

def test_every_line_but_the_planted_ones_has_the_exact_format():
    texts, faults = cohort()
    planted = {(f, n) for f, n, _ in faults}
    for name, text in texts.items():
        assert text.endswith("\n") and "\r" not in text
        for n, line in enumerate(text.splitlines(), start=1):
            if (name, n) not in planted:
                assert LINE.match(line), f"{name}:{n} {line!r}"


def test_planted_faults_are_the_real_kinds_and_really_broken():
    texts, faults = cohort()
    assert 10 <= len(faults) <= 15
    assert set(Counter(reason for _, _, reason in faults)) == {
        "impossible_date", "impossible_time", "bad_time", "non_numeric_value", "unknown_code",
        "missing_field", "shifted_fields", "wrong_field_count",
    }
    planted = {(f, n): texts[f].splitlines()[n - 1] for f, n, _ in faults}
    body = "\n".join(planted.values())
    for sample in ("06-31-", "\t56:35\t", "\t188:00\t", "\t11:0\t", "0''", "\t3A", "\t0\t", "\t4\t", "\t36\t", "\t56\t"):
        assert sample in body, sample
    assert "\t138\t33\t3A" in planted.values()  # the shifted second half of a split record (data-27)


# --- realism ------------------------------------------------------------------------------------

def test_glucose_is_plausible_with_at_most_two_meter_words():
    rows = good_rows()
    glucose = rows[rows["code"].isin(GLUCOSE)]
    words = glucose[~glucose["value"].str.isdigit()]["value"]
    assert sorted(words) == ["0Hi", "0Lo"]
    values = glucose["value"][glucose["value"].str.isdigit()].astype(int)
    assert values.between(30, 500).all()
    assert values.between(40, 450).mean() > 0.97
    assert 120 < values.median() < 220


def test_two_to_four_readings_a_day_mostly():
    per_day = readings().groupby(["file", "date"]).size()
    assert per_day.between(2, 4).mean() > 0.95
    assert per_day.max() <= 5


def test_the_cohort_has_every_kind_of_moment():
    rows, read = good_rows(), readings()
    codes = set(rows["code"])
    assert {33, 34, 35, 58, 60, 62, 59, 61, 63, 48, 57, 64, 65, 66, 67, 68, 69, 70, 71} <= codes
    assert (read["dose"] > 0).sum() > 1000  # doses at readings
    assert (read["code"].isin([58, 60, 62]) & (read["dose"] == 0)).sum() > 100  # pre-meal, no dose
    assert (read["code"].isin([48, 57, 64]) & (read["dose"] == 0)).sum() > 100  # bedtime, no dose
    moments = rows.groupby(KEY)["code"].agg(set)
    insulin_only = moments.map(lambda c: 33 in c and not (c & (GLUCOSE | {65, 66, 67, 68, 69, 70, 71})))
    assert insulin_only.sum() > 50
    assert (rows.loc[rows["code"].isin([65, 66, 67, 68, 69, 70, 71]), "value"].astype(int) == 0).all()


def test_hypos_come_with_low_glucose_and_no_dose():
    read = readings()
    at_hypo = read[read["hypo"] > 0]
    assert len(at_hypo) >= 20
    assert (at_hypo["glucose"] < 80).all()
    assert (at_hypo["dose"] == 0).all()
    assert (good_rows()["code"] == 65).sum() == len(at_hypo) + 1  # + the one hypo reading written 0Lo


def test_paper_and_clock_records():
    rows = good_rows()
    times = rows.groupby("file")["time"].agg(set)
    paper = times[times.map(lambda t: t <= PAPER_CLOCKS)]
    clock = times[~times.index.isin(paper.index)]
    assert 3 <= len(paper) <= 10 and len(clock) >= 10
    unpadded = clock.map(lambda t: any(re.fullmatch(r"\d:\d\d", x) for x in t))
    assert unpadded.all()  # clock times write the hour like the real files: "7:35"


# --- learnability -------------------------------------------------------------------------------

def test_doses_are_learnable_from_patient_slot_band_meal_and_exercise():
    read = readings()
    read["band"] = read["glucose"] // 40
    groups = ["file", "code", "band", "meal", "exercise"]
    median = read.groupby(groups)["dose"].transform("median")
    agree = (read["dose"] - median).abs() <= 1
    assert agree.mean() >= 0.85
    dosed = read["dose"] > 0
    assert agree[dosed].mean() >= 0.85
    # Not trivially constant: within a patient and slot the dose follows the glucose.
    pre_meal = read[read["code"].isin([58, 62]) & dosed]
    corr = pre_meal.groupby(["file", "code"])[["glucose", "dose"]].apply(lambda g: g["glucose"].corr(g["dose"]))
    assert corr.median() > 0.6


def test_meal_size_and_exercise_shift_the_dose():
    read = readings()
    read = read[read["code"].isin([58, 60, 62]) & (read["dose"] > 0)].assign(band=lambda f: f["glucose"] // 40)
    plain = read[(read["meal"] == 0) & (read["exercise"] == 0)].groupby(["file", "code", "band"])["dose"].median()
    shifted = read.join(plain.rename("plain"), on=["file", "code", "band"]).dropna(subset=["plain"])
    delta = shifted["dose"] - shifted["plain"]
    assert delta[shifted["meal"] == 67].mean() > 0.5
    assert delta[shifted["meal"] == 68].mean() < -0.5
    assert delta[shifted["exercise"] > 0].mean() < -0.5


def test_the_dose_after_a_hypo_is_smaller():
    rows = good_rows()
    read = readings().assign(band=lambda f: f["glucose"] // 40)
    median = read.groupby(["file", "code", "band", "meal", "exercise"])["dose"].transform("median")
    read["residual"] = read["dose"] - median
    stamp = pd.to_datetime(rows["date"] + " " + rows["time"], format="%m-%d-%Y %H:%M")
    hypo_at = rows.assign(ts=stamp)[rows["code"] == 65].groupby("file")["ts"].apply(list)
    read["ts"] = pd.to_datetime(read["date"] + " " + read["time"], format="%m-%d-%Y %H:%M")
    after = []
    for name, stamps in hypo_at.items():
        dosed = read[(read["file"] == name) & (read["dose"] > 0)].sort_values("ts")
        for ts in stamps:
            nxt = dosed[dosed["ts"] > ts].head(1)
            after += list(nxt["residual"])
    assert len(after) >= 20
    assert np.mean(after) < -0.5


# --- files on disk ------------------------------------------------------------------------------

def test_write_cohort_writes_the_files_and_a_loud_readme(tmp_path):
    cfg = DemoConfig(patients=3, days=5, seed=7)
    dest = tmp_path / "nested" / "demo"
    paths = write_cohort(dest, cfg)
    assert sorted(p.name for p in paths) == ["README.md", "data-01", "data-02", "data-03"]
    texts = generate_cohort(cfg)
    for name, text in texts.items():
        assert (dest / name).read_bytes() == text.encode("ascii")
    readme = (dest / "README.md").read_text()
    assert DEMO_LABEL in readme and "SYNTHETIC" in readme.splitlines()[0]
    assert "seed: 7" in readme and GENERATOR_VERSION in readme
    # it names its generator by a module path that imports (it said `insulin_core.demo` after the move)
    generator = re.search(r"Generated by `([\w.]+)`", readme).group(1)
    assert importlib.import_module(generator).generate_cohort is generate_cohort


# --- the loader -----------------------------------------------------------------------------------

def test_the_loader_rejects_exactly_the_planted_lines():
    from insulin_core.data.aim94 import load_texts
    from insulin_core.data.aim94_lines import parse_lines

    texts, faults = cohort()
    result = load_texts(texts, source="demo")
    report = result.report
    assert report.lines == sum(len(t.splitlines()) for t in texts.values())
    assert report.lines - report.accepted == len(faults)
    assert report.rejected == dict(Counter(reason for _, _, reason in faults))
    assert report.censored == {"high": 1, "low": 1}
    assert report.implausible == {} and report.conflicts == 0
    assert len(result.events) == report.accepted
    # Line by line: the loader's reason for each rejected line is the planted one.
    lines = pd.DataFrame([
        {"file": name, "line": n, "text": line}
        for name, text in texts.items() for n, line in enumerate(text.splitlines(), start=1)
    ])
    _, rejected = parse_lines(lines)
    assert sorted(rejected[["file", "line", "reason"]].itertuples(index=False, name=None)) == sorted(faults)


def test_some_clock_time_patients_write_the_dose_minutes_after_the_reading():
    """The real files' device-logging habit: the demo exercises the decision-dose path."""
    from insulin_core.data.aim94 import load_texts
    from insulin_core.prep.timeline import build_timeline, fold_summary

    rows = good_rows()
    regular = rows[rows["code"] == 33]
    glucose_times = set(map(tuple, rows[rows["code"].isin(GLUCOSE)][KEY].to_numpy()))
    apart = regular[KEY].apply(tuple, axis=1).map(lambda k: k not in glucose_times)
    late_files = apart.groupby(regular["file"]).mean()
    assert (late_files > 0.5).sum() >= 3 and (late_files < 0.5).sum() >= 10
    summary = fold_summary(build_timeline(load_texts(cohort()[0], "demo").events), 60)
    assert summary["patients_mostly_late"] >= 3 and summary["folded"] > 1000
    assert summary["folded"] > summary["alone"]
