"""What a bundle says about its training data, old bundles included, and the newest model that fits."""
from __future__ import annotations

from insulin_core.data.codes import DEMO_LABEL
from insulin_core.data.demo_modern import MODERN_DEMO_LABEL
from insulin_core.data.provenance import Candidate, data_record, newest_fitting, trained_on


def test_new_bundles_record_synthetic_and_patients():
    real = data_record("AIM94 files from $AIM94_DIR /x", "abc", 70)
    assert real == {"source": "AIM94 files from $AIM94_DIR /x", "fingerprint": "abc", "synthetic": False, "patients": 70,
                    "format": "AIM94"}
    assert data_record(f"{DEMO_LABEL}: 20 patients, seed 0", "d", 20)["synthetic"] is True
    assert trained_on({"data": real}).words() == "real AIM94 diaries of 70 patients"
    nightscout = data_record("exported files from folder /ns", "n", 4)
    assert trained_on({"data": nightscout}).words() == "real exported records of 4 patients"
    assert data_record(f"{MODERN_DEMO_LABEL}: 6 patients, seed 0", "m", 6)["synthetic"] is True


def test_old_bundles_are_read_from_their_label_and_patient_index():
    old_demo = {"data": {"source": f"{DEMO_LABEL}: 20 patients, seed 0", "fingerprint": "f"},
                "patient_index": {str(p): p for p in range(1, 21)}}
    got = trained_on(old_demo)
    assert got.synthetic is True and got.patients == 20 and got.fingerprint == "f"
    assert "synthetic" in got.words() and "20" in got.words()
    old_real = {"data": {"source": "AIM94 files from folder /d", "fingerprint": "g"}, "patient_index": {"1": 1, "2": 2}}
    assert trained_on(old_real).synthetic is False and trained_on(old_real).words() == "real AIM94 diaries of 2 patients"
    nothing = trained_on({"patient_index": {"3": 1}})
    assert nothing.synthetic is None and nothing.fingerprint is None and "unrecorded" in nothing.words()


def test_newest_fitting_picks_the_newest_model_of_this_data_or_none():
    found = [Candidate("saved:demo", "demo-fp", "2026-01-01T00:00:00+00:00"),
             Candidate("saved:old-real", "real-fp", "2026-01-02T00:00:00+00:00"),
             Candidate("saved:new-real", "real-fp", "2026-03-01T00:00:00+00:00"),
             Candidate("saved:newest-demo", "demo-fp", "2026-05-01T00:00:00+00:00")]
    assert newest_fitting(found, "real-fp") == "saved:new-real"
    assert newest_fitting(found, "demo-fp") == "saved:newest-demo"
    assert newest_fitting(found, "other-fp") is None
    assert newest_fitting(found, None) is None
