"""Model bundles: round trip, atomic write, and a clear error for every kind of bad bundle."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from insulin_core.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.model import DoseNet, ModelConfig
from insulin_core.registry import (
    META_FILE, WEIGHTS_FILE, BundleError, check_against_data, delete_bundle, list_bundles, load_bundle, save_bundle,
)


def tiny_model(seed: int = 0) -> DoseNet:
    torch.manual_seed(seed)
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=3,
                      window=4, lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2)
    return DoseNet(cfg).eval()


def tiny_meta() -> dict:
    return {
        "window": {"length": 4, "target": "decision-point", "multi_output": False}, "split": "chrono",
        "features": {"seq": list(SEQ_FEATURES), "now": list(NOW_FEATURES), "targets": ["regular"]},
        "scalers": {"seq": {"low": [0.0] * len(SEQ_FEATURES), "high": [1.0] * len(SEQ_FEATURES)},
                    "now": {"low": [0.0] * len(NOW_FEATURES), "high": [1.0] * len(NOW_FEATURES)}},
        "patient_index": {"1": 1, "2": 2, "5": 3},
        "metrics": {"model": {"mae": 0.5, "r2": 0.9, "mae_dose": 0.7, "within_1u": 0.9}},
        "data": {"source": "test", "fingerprint": "abc"},
    }


def inputs(n: int = 5):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 4, len(SEQ_FEATURES), generator=g), torch.rand(n, len(NOW_FEATURES), generator=g),
            torch.tensor([0, 1, 2, 3, 1][:n]))


def visible_entries(models_dir) -> list[str]:
    """The folder's entries but the registry's own lock file and (empty) staging folder."""
    staging = models_dir / ".staging"
    return sorted([p for p in os.listdir(models_dir) if p not in (".registry.lock", ".staging")]
                  + ([f".staging/{p}" for p in os.listdir(staging)] if staging.is_dir() else []))


def test_round_trip_gives_the_same_predictions(tmp_path):
    model = tiny_model()
    path = save_bundle(model, tiny_meta(), "tiny", tmp_path)
    assert sorted(p.name for p in path.iterdir()) == [META_FILE, WEIGHTS_FILE]
    bundle = load_bundle(path)
    with torch.no_grad():
        assert torch.equal(model(*inputs())[0], bundle.model(*inputs())[0])
    assert bundle.patient_index == {1: 1, 2: 2, 5: 3}
    assert bundle.meta["versions"]["torch"] == torch.__version__
    assert bundle.meta["created"] and bundle.meta["format_version"] == 1
    assert np.array_equal(bundle.now_scaler.high, np.ones(len(NOW_FEATURES)))


def test_save_is_atomic_and_refuses_to_overwrite_by_accident(tmp_path, monkeypatch):
    save_bundle(tiny_model(0), tiny_meta(), "m", tmp_path)
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(tiny_model(1), tiny_meta(), "m", tmp_path)

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_bundle(tiny_model(1), tiny_meta(), "m", tmp_path, overwrite=True)
    monkeypatch.undo()
    # the old bundle is intact and no temporary folder is left behind
    assert load_bundle(tmp_path / "m").name == "m"
    assert visible_entries(tmp_path) == ["m"]


def test_overwrite_replaces_the_bundle(tmp_path):
    save_bundle(tiny_model(0), tiny_meta(), "m", tmp_path)
    save_bundle(tiny_model(1), tiny_meta(), "m", tmp_path, overwrite=True)
    reloaded = load_bundle(tmp_path / "m").model
    assert torch.equal(reloaded.state_dict()["amount.weight"], tiny_model(1).state_dict()["amount.weight"])
    assert visible_entries(tmp_path) == ["m"]


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65, "spaces here"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(BundleError, match="Invalid model name"):
        save_bundle(tiny_model(), tiny_meta(), name, tmp_path)


def break_bundle(tmp_path, how):
    path = save_bundle(tiny_model(), tiny_meta(), "b", tmp_path)
    meta = json.loads((path / META_FILE).read_text())
    if how == "missing weights":
        (path / WEIGHTS_FILE).unlink()
    elif how == "missing meta":
        (path / META_FILE).unlink()
    elif how == "bad json":
        (path / META_FILE).write_text("{not json")
    elif how == "wrong version":
        meta["format_version"] = 99
    elif how == "feature mismatch":
        meta["features"]["seq"] = meta["features"]["seq"][::-1]
    elif how == "unknown feature":
        meta["features"]["now"] = meta["features"]["now"][:-1] + ["mood"]
    elif how == "corrupt weights":
        (path / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    elif how == "weights of another model":
        other = DoseNet(ModelConfig(len(SEQ_FEATURES), len(NOW_FEATURES), 3, lstm_hidden=16))
        torch.save(other.state_dict(), path / WEIGHTS_FILE)
    elif how == "bad config":
        meta["model_config"]["lstm_hidden"] = 0
    elif how == "scaler mismatch":
        meta["scalers"]["now"]["low"] = [0.0]
    if how not in ("missing meta", "bad json"):
        (path / META_FILE).write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("how, message", [
    ("missing weights", "missing weights.pt"),
    ("missing meta", "missing bundle.json"),
    ("bad json", "not valid JSON"),
    ("wrong version", "format version 99"),
    ("feature mismatch", "feature mismatch.*same names, different order"),
    ("unknown feature", "feature mismatch.*mood"),
    ("corrupt weights", "corrupt"),
    ("weights of another model", "do not fit the model config"),
    ("bad config", "model_config.*lstm_hidden must be between 1 and"),
    ("scaler mismatch", "scalers.now.*low has 1 values, high 37"),
])
def test_each_broken_bundle_gives_a_clear_error(tmp_path, how, message):
    with pytest.raises(BundleError, match=message):
        load_bundle(break_bundle(tmp_path, how))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_would_run_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = save_bundle(tiny_model(), tiny_meta(), "evil", tmp_path)
    with open(path / WEIGHTS_FILE, "wb") as f:
        pickle.dump({"lstm.weight_ih_l0": _RunsCode()}, f)
    with pytest.raises(BundleError, match="refused to unpickle"):
        load_bundle(path)
    assert not (tmp_path / "PWNED").exists()


def test_list_and_delete(tmp_path):
    save_bundle(tiny_model(), tiny_meta(), "a", tmp_path)
    break_bundle(tmp_path, "bad json")
    rows = {r["name"]: r for r in list_bundles(tmp_path)}
    assert rows["a"]["ok"] and rows["a"]["mae"] == 0.5 and rows["a"]["window"] == 4
    assert not rows["b"]["ok"] and "not valid JSON" in rows["b"]["error"]
    delete_bundle("a", tmp_path)
    assert [r["name"] for r in list_bundles(tmp_path)] == ["b"]
    with pytest.raises(BundleError, match="No model bundle"):
        delete_bundle("a", tmp_path)
    assert list_bundles(tmp_path / "nothing-here") == []


def test_check_against_data_warns_about_other_data_and_unseen_patients(tmp_path):
    bundle = load_bundle(save_bundle(tiny_model(), tiny_meta(), "a", tmp_path))
    assert check_against_data(bundle, [1, 2, 5], "abc") == []
    notes = check_against_data(bundle, [1, 7], "other")
    assert any("other data" in n for n in notes) and any("never saw (7)" in n for n in notes)
