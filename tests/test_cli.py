"""The command line: each command's happy path, and one line + exit code 2 for every user error."""
from __future__ import annotations

import json

import pytest
import torch

from insulin_core.cli import main
from insulin_core.cli.common import _baselines
from insulin_core.data.demo import DemoConfig, generate_cohort


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def demo_dir(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    for name, text in generate_cohort(DemoConfig(patients=4, days=40)).items():
        (folder / name).write_text(text)
    return folder


def test_check_data_json_has_the_contract_keys(capsys, demo_dir):
    code, out, _ = run(capsys, "check-data", "--data-dir", str(demo_dir), "--json")
    report = json.loads(out)
    assert code == 0
    assert {"files", "lines", "accepted", "rejected", "patients", "events"} <= set(report)
    assert report["files"] == 4 and report["patients"] == 4
    assert report["accepted"] + sum(report["rejected"].values()) == report["lines"]


def test_check_data_text_lists_reasons_with_examples(capsys, demo_dir):
    code, out, _ = run(capsys, "check-data", "--data-dir", str(demo_dir))
    assert code == 0 and "accepted" in out and "e.g. data-" in out
    assert "{" not in out  # counts in words, not dict reprs


def test_check_data_counts_doses_folded_into_a_decision_point_and_alone(capsys, demo_dir):
    code, out, _ = run(capsys, "check-data", "--data-dir", str(demo_dir), "--json")
    fold = json.loads(out)["decision_doses"]
    assert code == 0 and fold["dose_window_min"] == 60
    assert fold["folded"] + fold["alone"] == fold["insulin_only_regular"] and fold["folded"] > 0
    code, out, _ = run(capsys, "check-data", "--data-dir", str(demo_dir), "--dose-window", "0", "--json")
    assert json.loads(out)["decision_doses"]["folded"] == 0
    code, out, _ = run(capsys, "check-data", "--data-dir", str(demo_dir))
    assert f"Counted as the dose of the decision point up to 60 min before it: {fold['folded']}" in out
    code, _, err = run(capsys, "check-data", "--data-dir", str(demo_dir), "--dose-window", "-5")
    assert code == 2 and "dose window" in err


def test_check_data_uses_the_demo_cohort_without_a_folder(capsys, monkeypatch):
    monkeypatch.delenv("AIM94_DIR", raising=False)
    code, out, _ = run(capsys, "check-data")
    assert code == 0 and "SYNTHETIC" in out


def test_demo_data_writes_a_labelled_cohort(capsys, tmp_path):
    code, out, _ = run(capsys, "demo-data", "--dest", str(tmp_path / "d"), "--patients", "3", "--seed", "2")
    assert code == 0 and "SYNTHETIC" in out
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["README.md", "data-01", "data-02", "data-03"]


@pytest.mark.parametrize("argv, message", [
    (["check-data", "--data-dir", "/no/such/folder"], "not found"),
    (["demo-data", "--dest", "x", "--patients", "0"], "--patients"),
    (["demo-data", "--dest", "x", "--patients", "many"], "--patients"),
    (["train", "--name", "x", "--window", "-3"], "--window"),
    (["train", "--name", "../evil"], "Invalid model name"),
    (["train", "--name", "x", "--dense", "64,abc"], "--dense"),
    (["train", "--name", "x", "--split", "moon"], "--split"),
    (["train", "--name", "x", "--lstm", "0"], "--lstm"),
    (["train", "--name", "x", "--ema", "1.5"], "ema"),
    (["train", "--name", "x", "--ema", "lots"], "--ema"),
    (["train", "--name", "x", "--members", "0"], "--members"),
    (["train", "--name", "x", "--members", "17"], "--members: at most 16"),
    (["train", "--name", "x", "--baselines", "gbm,magic"], "unknown baseline(s) magic"),
    (["train", "--name", "x", "--baselines", ","], "--baselines"),
    (["evaluate", "--model", "m", "--baselines", "GBM"], "unknown baseline(s) GBM"),
    (["evaluate", "--model", "nope", "--models-dir", "/tmp/definitely-not-here"], "No model bundle"),
    (["evaluate", "--model", "../models/demo"], "Invalid model name"),
    (["evaluate", "--model", "/work/main/models/demo"], "Invalid model name"),
    (["evaluate", "--model", "demo\n"], "Invalid model name"),
    (["predict", "--model", "../demo", "--patient", "1"], "Invalid model name"),
    (["predict", "--model", "demo\n", "--patient", "1"], "Invalid model name"),
    (["frobnicate"], "invalid choice"),
    (["predict", "--model", "m", "--patient", "1", "--sweep", "glucose", "--points", "100000000"], "at most 1,000 points"),
    (["predict", "--model", "m", "--patient", "1", "--sweep", "glucose", "--points", "0"], "--points"),
    ([], "required"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_train_then_evaluate_round_trip(capsys, demo_dir, tmp_path):
    import pandas as pd

    models = tmp_path / "models"
    code, out, _ = run(capsys, "train", "--data-dir", str(demo_dir), "--name", "tiny", "--models-dir", str(models),
                       "--lstm", "8", "--gru", "8", "--dense", "8", "--embedding", "2", "--epochs", "2",
                       "--window", "5", "--threads", "1", "--members", "2")
    assert code == 0
    assert out.count("epoch ") >= 2 and (models / "tiny" / "bundle.json").is_file()
    assert json.loads((models / "tiny" / "bundle.json").read_text())["model_config"]["members"] == 2
    saved = torch.load(models / "tiny" / "weights.pt", weights_only=True)
    known, new = float(saved["dose_threshold"][0]), float(saved["new_patient_threshold"][0])
    assert f"P(dose) {known:.2f} for the patients it trained on, {new:.2f} for anyone else" in out
    assert "two-stage gradient boosting" in out and "MAE (U)" in out  # plain words (labels.py), no identifiers
    assert not {"two_stage_gbm", "within_1u", "mae_dose"} & set(out.split())
    predictions = tmp_path / "p.csv"
    code, text, _ = run(capsys, "evaluate", "--model", "tiny", "--data-dir", str(demo_dir), "--models-dir", str(models))
    assert code == 0 and "LSTM-GRU model" in text and "within ±1 U on dose occasions" in text and "R²" in text
    assert not {"previous_row", "two_stage_gbm", "r2_dose", "within_1u_dose", "n_dose"} & set(text.split())
    code, out, err = run(capsys, "evaluate", "--model", "tiny", "--data-dir", str(demo_dir),
                         "--models-dir", str(models), "--json", "--predictions", str(predictions))
    assert code == 0
    result = json.loads(out)
    assert [m["name"] for m in result["metrics"]][:2] == ["model", "previous_row"]
    header = predictions.read_text().splitlines()[0].split(",")
    assert header[:5] == ["patient_id", "timestamp", "split", "actual", "predicted"] and "two_stage_gbm" in header
    # machine names in the CSV, their descriptions beside it (one row per column, in order, no identifiers)
    described = pd.read_csv(tmp_path / "p.columns.csv")
    assert list(described["column"]) == header
    assert all(len(d) > 10 and "_" not in d for d in described["description"])
    assert "decision dose actually given" in described.set_index("column").loc["actual", "description"]
    assert "p.columns.csv" in err  # said where (on stderr: stdout is the JSON)
    # `actual` is the decision dose: a dose written minutes after the reading counts at the reading
    from insulin_core.prep.dataset import load_cohort
    from insulin_core.data.source import DataSource

    features = load_cohort(DataSource("folder", str(demo_dir))).features.set_index(["patient_id", "timestamp"])
    written = pd.read_csv(predictions, parse_dates=["timestamp"]).set_index(["patient_id", "timestamp"])
    recorded = features.loc[written.index]
    assert (written["actual"].to_numpy() == recorded["decision_dose"].to_numpy()).all()
    assert (recorded["decision_dose"] > recorded["regular"]).any()  # the demo's late loggers are in it
    code, _, err = run(capsys, "train", "--data-dir", str(demo_dir), "--name", "tiny", "--models-dir", str(models),
                       "--epochs", "1", "--window", "5")
    assert code == 2 and "already exists" in err


def test_baselines_are_all_unless_asked_and_fewer_are_named_as_such(capsys, demo_dir, tmp_path):
    """--baselines: a quick run scores only the ones asked for, and says which it left out; the
    default (every baseline) is test_train_then_evaluate_round_trip's."""
    models = tmp_path / "models"
    code, out, _ = run(capsys, "train", "--data-dir", str(demo_dir), "--name", "quick", "--models-dir", str(models),
                       "--lstm", "8", "--gru", "8", "--dense", "8", "--embedding", "2", "--epochs", "1",
                       "--window", "5", "--threads", "1", "--members", "1", "--baselines", "sliding_scale,previous_row")
    assert code == 0
    assert "Baselines: sliding_scale, previous_row (--baselines); not scored: last_same_daypart, ridge, gbm," in out
    meta = json.loads((models / "quick" / "bundle.json").read_text())
    assert {name.split(" (")[0] for name in meta["metrics"]} == {"model", "previous_row", "sliding_scale"}
    code, out, err = run(capsys, "evaluate", "--model", "quick", "--data-dir", str(demo_dir), "--models-dir",
                         str(models), "--json", "--baselines", "none")
    assert code == 0 and [m["name"] for m in json.loads(out)["metrics"]] == ["model"]
    assert "Baselines: none (--baselines)" in err  # stdout is the JSON
    # "all" is the default's every baseline (scoring them all is the round trip's, above)
    assert _baselines("all") is None and _baselines("gbm, gbm,ridge") == ["gbm", "ridge"]


def test_check_data_json_examples_are_cut_to_a_readable_length(capsys, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "data-01").write_text("x" * 5_000_000 + "\n04-21-1991\t9:09\t58\t100\n")
    code, out, _ = run(capsys, "check-data", "--data-dir", str(folder), "--json")
    report = json.loads(out)
    assert code == 0 and report["rejected"] == {"line_too_long": 1} and report["accepted"] == 1
    assert len(report["examples"]["line_too_long"][0]["text"]) < 260 and len(out) < 20_000


def test_check_data_text_lists_what_was_not_read(capsys, tmp_path):
    (tmp_path / "data-01").write_text("04-21-1991\t9:09\t58\t100\n")
    (tmp_path / "data-02").mkdir()
    code, out, _ = run(capsys, "check-data", "--data-dir", str(tmp_path))
    assert code == 0 and "not read: data-02: a folder, not a file" in out
