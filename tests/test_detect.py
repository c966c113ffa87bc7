"""Format detection (insulin_core/data/readers/detect.py), over every registered reader: each format's
fixture is recognised by its reader and by no other; AIM94 read through detection is the AIM94
loader's result, unchanged; nothing recognised, and two formats mixed, each get a message naming
what was looked for or which files are of which format."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from insulin_core.data.aim94 import load_texts
from insulin_core.errors import DataFormatError
from insulin_core.data.readers.detect import READERS, detect, read_files

from .conftest import aim94_text
from .readers_contract import check_result
from .test_readers_hupa_ucm import csv as hupa_csv
from .test_readers_hupa_ucm import day as hupa_day
from .test_readers_nightscout import day as nightscout_day
from .test_readers_nightscout import files_of as nightscout_files
from .test_readers_ohiot1dm import day as ohio_day
from .test_readers_ohiot1dm import xml as ohio_xml
from .test_readers_tidepool import day as tidepool_day

SAMPLES = {
    "AIM94": {"data-01": aim94_text("04-21-1991 9:09 58 100", "04-21-1991 9:09 33 9", "04-21-1991 9:15 66 0").encode(),
              "data-02": aim94_text("04-22-1991 8:00 58 180", "04-22-1991 8:00 34 12").encode()},
    "Nightscout": nightscout_files(*nightscout_day()),
    "Tidepool": {"export.json": json.dumps(tidepool_day()).encode()},
    "OhioT1DM": {"559-ws-training.xml": ohio_xml(ohio_day())},
    "HUPA-UCM": {"HUPA0001P.csv": hupa_csv(hupa_day())},
}


def test_every_registered_reader_has_a_sample():
    assert [r.name for r in READERS] == list(SAMPLES)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.name)
def test_each_format_is_recognised_by_its_reader_and_no_other(reader):
    files = SAMPLES[reader.name]
    found = detect(files)
    assert found.reader is reader and set(found.why) == set(files) and found.other == []
    assert reader.detect(files)
    assert [r.name for r in READERS if r.detect(files)] == [reader.name]
    result = read_files(files, "test")
    check_result(result, reader, downstream=True)
    assert result.report.accepted > 0 and result.report.skipped_files == []


def test_aim94_through_detection_is_the_aim94_loader_unchanged():
    files = SAMPLES["AIM94"]
    through, direct = read_files(files, "t"), load_texts(files, "t")
    pd.testing.assert_frame_equal(through.events, direct.events)
    assert through.report.to_dict() == direct.report.to_dict()


def test_nothing_recognised_names_the_files_and_what_was_looked_for():
    files = {"notes.txt": b"went for a run", "readings.csv": b"date,glucose\n2024-01-01,5.5\n",
             "profile.json": b'[{"dia": 3, "carbratio": 10}]', "photo.png": b"\x89PNG\r\n"}
    with pytest.raises(DataFormatError) as error:
        detect(files)
    message = str(error.value)
    assert message.startswith("No supported format in 4 file(s) (notes.txt, photo.png, profile.json and 1 more).")
    for reader in READERS:
        assert f"{reader.name}: {reader.looked_for}" in message
    with pytest.raises(DataFormatError, match="No supported format in no files"):
        detect({})


@pytest.mark.parametrize("first, second", [("Nightscout", "Tidepool"), ("AIM94", "HUPA-UCM"), ("OhioT1DM", "Tidepool")])
def test_two_formats_mixed_name_which_files_are_which(first, second):
    with pytest.raises(DataFormatError) as error:
        detect({**SAMPLES[first], **SAMPLES[second]})
    message = str(error.value)
    assert message.startswith("These files mix formats: ") and message.endswith("Load one format at a time.")
    for name in (first, second):
        assert f"{name} (" + ", ".join(sorted(SAMPLES[name])) + ")" in message


def test_a_stray_file_beside_one_format_is_read_around_and_reported():
    files = {**SAMPLES["Tidepool"], "README.txt": b"exported from Tidepool"}
    found = detect(files)
    assert found.reader.name == "Tidepool" and found.other == ["README.txt"]
    report = read_files(files, "test").report
    assert report.skipped_files == ["README.txt: not a Tidepool file (looked for " + found.reader.looked_for + ")"]
