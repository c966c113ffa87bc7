"""Model bundles: round trip, atomic write, and a clear error for every kind of bad bundle."""
from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import pytest
import torch

from insulin_core.bundles.schema import check_state
from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.models.model import DoseNet, ModelConfig
from insulin_core.bundles.registry import (
    META_FILE, WEIGHTS_FILE, BundleError, check_against_data, check_name, delete_bundle, list_bundles, load_bundle, save_bundle,
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


def test_a_save_names_the_installed_scikit_learn_without_importing_it(tmp_path, monkeypatch):
    """A background run's worker saves once and never needs scikit-learn otherwise: importing it
    (and scipy) for its version string cost 1.3 s a save. Here `import sklearn` would fail."""
    import importlib.metadata
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # None in sys.modules: the import raises
    path = save_bundle(tiny_model(), tiny_meta(), "m", tmp_path)
    versions = json.loads((path / META_FILE).read_text())["versions"]
    assert versions["scikit-learn"] == importlib.metadata.version("scikit-learn")


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
    assert torch.equal(reloaded.state_dict()["members.0.amount.weight"], tiny_model(1).state_dict()["members.0.amount.weight"])
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
    ("scaler mismatch", f"scalers.now.*low has 1 values, high {len(NOW_FEATURES)}"),
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


# ---- every malformed bundle: a BundleError with a plain message, and a listing that copes -------
def _meta_edit(edit):
    def apply(path):
        meta = json.loads((path / META_FILE).read_text())
        edit(meta)
        (path / META_FILE).write_text(json.dumps(meta))
    return apply


def _set(*keys_value):
    *keys, value = keys_value

    def edit(meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return _meta_edit(edit)


def _state_edit(edit):
    def apply(path):
        state = torch.load(path / WEIGHTS_FILE, weights_only=True)
        edit(state)
        torch.save(state, path / WEIGHTS_FILE)
    return apply


def _threshold(value):
    return _state_edit(lambda s: s["dose_threshold"].fill_(value))


def _write(name, data):
    return lambda path: (path / name).write_bytes(data)


def _folder_instead(name):
    def apply(path):
        (path / name).unlink()
        (path / name).mkdir()
    return apply


def _pickle_with_a_class(path):
    with open(path / WEIGHTS_FILE, "wb") as f:
        pickle.dump({"lstm.weight_ih_l0": _RunsCode()}, f)


MALFORMED = [
    ("metrics is a string", _set("metrics", "x"), "metrics: Input should be a valid dictionary"),
    ("metric value is a string", _set("metrics", "model", "mae", "x"), "metrics.model.mae"),
    ("window is a string", _set("window", "x"), "window: Input should be a valid dictionary"),
    ("window length is text", _set("window", "length", "4"), "window.*valid integer"),
    ("window length 0", _set("window", "length", 0), "Window length must be between"),
    ("unknown window key", _set("window", "colour", 1), "unknown WindowConfig keys"),
    ("model config is a list", _set("model_config", [1]), "model_config: Input should be a valid dictionary"),
    ("model config bool for int", _set("model_config", "lstm_hidden", True), "model_config.lstm_hidden: Input should be a valid integer"),
    ("train config lr text", _set("train_config", {"lr": "fast"}), "train_config.*lr"),
    ("experiment of another split", _set("experiment", {"window": {"length": 4}, "split": "moon"}), "unknown split"),
    ("split is a number", _set("split", 5), "split: Input should be a valid string"),
    ("features seq is a number", _set("features", "seq", 3), "features.seq"),
    ("scalers null", _set("scalers", None), "scalers"),
    ("NaN in a scaler", _set("scalers", "seq", "low", 0, float("nan")), "scalers.seq.low.0.*finite"),
    ("infinity in a scaler", _set("scalers", "now", "high", 3, float("inf")), "scalers.now.high.3.*finite"),
    ("scaler low above high", _set("scalers", "seq", "low", 0, 5.0), "low bound is above"),
    ("patient index an array", _set("patient_index", []), "patient_index: Input should be a valid dictionary"),
    ("patient index key not a number", _set("patient_index", {"a": 1}), "patient_index.a.*pattern"),
    ("patient index huge row", _set("patient_index", {"1": 10**30}), "patient_index.1.*less than or equal"),
    ("patient row beyond the embedding", _set("patient_index", {"1": 9}), "embedding row 9, the model has 3"),
    ("history a string", _set("history", "x"), "history: Input should be a valid list"),
    ("data a string", _set("data", "x"), "data: Input should be"),
    ("data null", _set("data", None), "data: Input should be"),
    ("created a number", _set("created", 7), "created: Input should be a valid string"),
    ("name with a path", _set("name", "../x"), "name: String should match pattern"),
    ("conformal without a dose group", _set("conformal", {"alpha": 0.1, "n": 5, "pooled": 1.0,
     "groups": {"no_dose": {"q": 0.0, "n": 1, "pooled_fallback": True}}}), "conformal groups must be"),
    ("conformal q NaN", _set("conformal", {"alpha": 0.1, "n": 5, "pooled": 1.0, "groups": {
        "no_dose": {"q": float("nan"), "n": 1, "pooled_fallback": True},
        "dose": {"q": 1.0, "n": 1, "pooled_fallback": True}}}), "conformal.groups.no_dose.q"),
    ("format version as text", _set("format_version", "1"), "format version '1'"),
    ("sizes negative", _set("sizes", {"train": -1}), "sizes.train"),
    ("a huge number", _write(META_FILE, b'{"format_version": 1, "window": ' + b"9" * 5000 + b"}"), "not valid JSON"),
    ("an overflowing float", lambda p: (p / META_FILE).write_text(
        re.sub(r'("high": \[\s*)1\.0', r"\g<1>1e999", (p / META_FILE).read_text(), count=1)),
     "scalers.seq.high.0.*finite"),
    ("deeply nested json", _write(META_FILE, b"[" * 100_000 + b"]" * 100_000), "not valid JSON|not a JSON object"),
    ("json array", _write(META_FILE, b"[1, 2]"), "not a JSON object"),
    ("non-UTF8 json", _write(META_FILE, b'{"name": "\xff\xfe\xfa"}'), "not valid JSON"),
    ("meta missing", lambda p: (p / META_FILE).unlink(), "missing bundle.json"),
    ("weights missing", lambda p: (p / WEIGHTS_FILE).unlink(), "missing weights.pt"),
    ("a folder for bundle.json", _folder_instead(META_FILE), "missing bundle.json \\(a folder is in its place\\)"),
    ("a folder for weights.pt", _folder_instead(WEIGHTS_FILE), "missing weights.pt \\(a folder"),
    ("empty weights.pt", _write(WEIGHTS_FILE, b""), "weights.pt is corrupt"),
    ("truncated weights.pt", lambda p: (p / WEIGHTS_FILE).write_bytes((p / WEIGHTS_FILE).read_bytes()[:300]),
     "weights.pt is corrupt"),
    ("a pickle with a class", _pickle_with_a_class, "refused to unpickle"),
    ("weights a list of tensors", lambda p: torch.save([torch.zeros(2)], p / WEIGHTS_FILE), "state dict of tensors"),
    ("wrong tensor shape", _state_edit(lambda s: s.__setitem__("members.0.amount.weight", torch.zeros(1, 3))),
     "do not fit the model config"),
    ("NaN weights", _state_edit(lambda s: s["members.0.amount.weight"].fill_(float("nan"))), "NaN or infinite.*members.0.amount.weight"),
    ("infinite weights", _state_edit(lambda s: s["members.0.lstm.weight_ih_l0"].fill_(float("inf"))), "NaN or infinite"),
    ("threshold 0", _threshold(0.0), "strictly between 0 and 1, got \\[0.0\\]"),
    ("threshold -1", _threshold(-1.0), "strictly between 0 and 1, got \\[-1.0\\]"),
    ("threshold 1.5", _threshold(1.5), "strictly between 0 and 1"),
    ("threshold 1", _threshold(1.0), "strictly between 0 and 1"),
    ("threshold NaN", _threshold(float("nan")), "NaN or infinite.*dose_threshold"),
    ("new-patient threshold 1", _state_edit(lambda s: s["new_patient_threshold"].fill_(1.0)),
     "new-patient threshold must be strictly between 0 and 1"),
    ("new-patient threshold 0", _state_edit(lambda s: s["new_patient_threshold"].fill_(0.0)), "new-patient threshold"),
]


@pytest.mark.parametrize("how, breaks, message", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_every_malformed_bundle_is_a_bundle_error_and_listed_as_broken(tmp_path, how, breaks, message):
    save_bundle(tiny_model(), tiny_meta(), "good", tmp_path)
    path = save_bundle(tiny_model(), tiny_meta(), "bad", tmp_path)
    breaks(path)
    with pytest.raises(BundleError, match=message) as caught:
        load_bundle(path)
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 600
    rows = {row["name"]: row for row in list_bundles(tmp_path)}  # never raises
    assert rows["good"]["ok"] and not rows["bad"]["ok"]
    assert rows["bad"]["error"] == str(caught.value)
    delete_bundle("bad", tmp_path)  # a broken bundle can always be deleted
    assert [row["name"] for row in list_bundles(tmp_path)] == ["good"]


def test_the_shipped_bundle_and_unknown_extra_keys_pass_the_schema(tmp_path):
    from insulin_core.bundles.registry import DEFAULT_MODELS_DIR

    assert load_bundle(DEFAULT_MODELS_DIR / "demo").meta["name"] == "demo"
    path = save_bundle(tiny_model(), {**tiny_meta(), "from_a_newer_version": {"x": 1}}, "extra", tmp_path)
    assert load_bundle(path).meta["from_a_newer_version"] == {"x": 1}


def test_a_model_with_nan_weights_or_a_bad_threshold_is_never_saved(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.dose_threshold.fill_(-1.0)
    with pytest.raises(BundleError, match="strictly between 0 and 1"):
        save_bundle(model, tiny_meta(), "m", tmp_path)
    with torch.no_grad():
        model.dose_threshold.fill_(0.5)
        model.members[0].amount.bias.fill_(float("nan"))
    with pytest.raises(BundleError, match="NaN"):
        save_bundle(model, tiny_meta(), "m", tmp_path)
    assert list_bundles(tmp_path) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_half_precision_weights_are_found_without_torch_kernels(tmp_path, bad):
    """check_state reads the weights through numpy (fork safety, issue 18); numpy has no bfloat16,
    so those are read as bits: each kind of non-finite value is still found, finite ones pass."""
    for dtype in (torch.bfloat16, torch.float16):
        model = tiny_model().to(dtype)
        with torch.no_grad():
            model.dose_threshold.fill_(0.5)
        check_state(model, "m")  # finite: fine
        with torch.no_grad():
            model.members[0].lstm.weight_hh_l0[3, 1] = bad
        with pytest.raises(BundleError, match="NaN or infinite.*weight_hh_l0"):
            check_state(model, "m")


@pytest.mark.parametrize("name", ["m\n", "m\n\n", "../m", "/tmp/m"])
def test_a_name_with_a_newline_or_a_path_is_refused(tmp_path, name):
    with pytest.raises(BundleError, match="Invalid model name"):
        check_name(name)


def test_a_bundle_saved_before_members_loads_as_one_member(tmp_path):
    """Weights written by the single-network DoseNet (keys without `members.0.`, no `members` or
    `now_bins` in the config) still load, as one member without bins."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=3,
                      window=4, lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2, members=1, now_bins=0)
    model = DoseNet(cfg).eval()
    path = save_bundle(model, tiny_meta(), "old", tmp_path)
    state = torch.load(path / WEIGHTS_FILE, weights_only=True)
    torch.save({k.removeprefix("members.0."): v for k, v in state.items()}, path / WEIGHTS_FILE)
    meta = json.loads((path / META_FILE).read_text())
    del meta["model_config"]["members"], meta["model_config"]["now_bins"]
    (path / META_FILE).write_text(json.dumps(meta))
    reloaded = load_bundle(path).model
    assert reloaded.cfg.members == 1 and reloaded.bins is None
    assert torch.equal(reloaded.state_dict()["members.0.amount.weight"], model.state_dict()["members.0.amount.weight"])


def test_a_bundle_saved_before_the_new_patient_threshold_serves_new_patients_at_its_one_threshold(tmp_path):
    """Weights without `new_patient_threshold` (bundles from before issue 17's) load; a new patient
    gets the threshold everyone got then. A bundle saved now keeps its own."""
    from insulin_core.models.predictor import NetworkPredictor

    model = tiny_model()
    with torch.no_grad():
        model.dose_threshold.fill_(0.6)
        model.new_patient_threshold.fill_(0.35)
    path = save_bundle(model, tiny_meta(), "now", tmp_path)
    now = load_bundle(path)
    assert float(now.model.new_patient_threshold[0]) == pytest.approx(0.35)
    state = torch.load(path / WEIGHTS_FILE, weights_only=True)
    del state["new_patient_threshold"]
    torch.save(state, path / WEIGHTS_FILE)
    old = load_bundle(path)
    assert float(old.model.new_patient_threshold[0]) == pytest.approx(0.6)
    predictor = NetworkPredictor(old.model, now.predictor().scaling)
    assert predictor.threshold_for([1, 99]) == pytest.approx([0.6, 0.6])
    assert now.predictor().threshold_for([1, 99]) == pytest.approx([0.6, 0.35])
