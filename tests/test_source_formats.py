"""Any supported export is a data source (insulin_core/data/source.py): folders and uploads of every
format through data/readers/detect.py, the AIM94 path unchanged, the modern demo written once into
the cache folder, and `check-data` on each format's folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from insulin_core.cli import main
from insulin_core.data.aim94_folder import load_folder
from insulin_core.data.demo import DemoConfig, write_cohort
from insulin_core.data.demo_modern import ModernDemoConfig, modern_files
from insulin_core.data.source import (CACHE_ENV, DataSource, demo_source, load_source, modern_demo_folder, read_upload,
                                      resolve_source)
from insulin_core.errors import DataFormatError
from insulin_core.prep.dataset import load_cohort

from . import test_readers_hupa_ucm as hupa, test_readers_ohiot1dm as ohio, test_readers_tidepool as tidepool

SMALL_MODERN = ModernDemoConfig(patients=3, days=3)  # p03 records mmol/L (PLACES)


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


FORMATS = {  # a folder of each format, written from its reader's documented fixtures
    "Nightscout": lambda: modern_files(SMALL_MODERN),
    "Tidepool": lambda: {"export.json": json.dumps(tidepool.day()).encode()},
    "OhioT1DM": lambda: {"559-ws-training.xml": ohio.xml(ohio.day())},
    "HUPA-UCM": lambda: {"HUPA0001P.csv": hupa.csv(hupa.day())},
}


def test_an_aim94_folder_takes_the_aim94_path_it_always_took(tmp_path):
    folder = tmp_path / "aim94"
    write_cohort(folder, DemoConfig(patients=3, days=20, seed=4))
    (folder / "notes.json").write_text("[]")  # a stray file beside the diaries changes nothing
    source = resolve_source(folder)
    result, direct = load_source(source), load_folder(folder, source=source.label)
    pd.testing.assert_frame_equal(result.events, direct.events)
    assert result.report.to_dict() == direct.report.to_dict()
    assert result.format == "AIM94" and source.label.startswith("AIM94 files from folder")
    assert "notes.json: not named data-NN" in result.report.skipped_files


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_folder_of_each_format_is_read_by_its_reader_and_nothing_is_left_out_silently(tmp_path, fmt):
    folder = write(tmp_path / fmt, {**FORMATS[fmt](), "README.md": b"# notes\n"})
    result = load_source(resolve_source(folder))
    assert result.format == fmt and len(result.events) > 0
    report = result.report
    assert report.accepted + report.rejected_total == report.lines
    assert any(s.startswith("README.md:") for s in report.skipped_files)


def test_the_glucose_unit_is_named_with_the_units_records_came_in(tmp_path):
    result = load_source(resolve_source(write(tmp_path / "ns", modern_files(SMALL_MODERN))))
    assert set(result.report.units) == {"mg/dL", "mmol/L"}
    assert result.glucose_units.startswith("mg/dL") and "mmol/L" in result.glucose_units
    assert load_source(DataSource("demo", demo_patients=2)).glucose_units == "mg/dL"


def test_a_folder_of_no_supported_format_says_what_was_looked_for(tmp_path):
    folder = write(tmp_path / "odd", {"notes.txt": b"hello"})
    with pytest.raises(DataFormatError, match="No supported format.*Nightscout"):
        load_source(resolve_source(folder))
    with pytest.raises(FileNotFoundError, match="No readable file"):
        load_source(resolve_source(write(tmp_path / "hidden", {".DS_Store": b"x"})))


def test_the_modern_demo_is_written_once_into_the_cache_and_labelled_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    source = demo_source("modern", patients=2, seed=1)
    folder = modern_demo_folder(source)
    first = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert modern_demo_folder(source) == folder and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == first
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no scratch folder left behind
    assert source.is_synthetic and source.label.startswith("SYNTHETIC")
    cohort = load_cohort(source)
    assert cohort.format == "Nightscout" and cohort.patients == [1, 2]
    assert "SYNTHETIC" in cohort.data_label and "mg/dL" in cohort.data_label
    cfg = ModernDemoConfig(patients=2, seed=1)
    assert {n: (folder / n).read_bytes() for n in modern_files(cfg)} == modern_files(cfg)  # deterministic


def test_an_upload_of_any_format_is_named_by_its_format_and_digest():
    files = FORMATS["Tidepool"]()
    source, result = read_upload(files)
    assert source.kind == "upload" and source.format == "Tidepool" and result.format == "Tidepool"
    assert source.label.startswith("uploaded Tidepool files")
    aim94_source, _ = read_upload({"data-01": b"01-01-1991\t8:00\t58\t100\n"})
    assert aim94_source.label.startswith("uploaded AIM94 files") and aim94_source != source
    with pytest.raises(DataFormatError, match="mix formats"):
        read_upload({**files, "data-01": b"01-01-1991\t8:00\t58\t100\n"})


def test_a_demo_and_a_folder_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        resolve_source("somewhere", demo="modern")
    with pytest.raises(ValueError, match="unknown demo"):
        demo_source("1994")


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_data_prints_each_format_s_report_with_its_reasons_in_words(tmp_path, capsys, fmt):
    files = FORMATS[fmt]()
    name = sorted(files)[0]
    if fmt in ("Nightscout", "Tidepool"):  # one broken record the reader must name
        records = json.loads(files[name])
        records.append({"type": "cbg", "time": "not a time", "value": 5} if fmt == "Tidepool"
                       else {"type": "sgv", "sgv": "high", "date": 1704700000000})
        files = {**files, name: json.dumps(records).encode()}
    folder = write(tmp_path / fmt, files)
    assert main(["check-data", "--data-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"Format: {fmt}; glucose in mg/dL" in out
    if fmt in ("Nightscout", "Tidepool"):
        assert "left out, and why:" in out and "e.g. " + name in out


def test_check_data_on_the_modern_demo_and_bad_arguments_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(["check-data", "--demo", "modern", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "Nightscout" and report["source"].startswith("SYNTHETIC")
    assert report["rejected_total"] > 0 and set(report["rejected"]) <= set(report["reasons"])
    assert main(["check-data", "--demo", "modern", "--data-dir", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["check-data", "--data-dir", str(write(tmp_path / "odd", {"a.txt": b"x"}))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No supported format") and "Traceback" not in err and os.linesep not in err.strip()
