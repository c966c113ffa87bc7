"""The model on pump + CGM data from the command line (check-data, train, evaluate, predict on a
Nightscout folder of the modern demo) and across sources: a model trained on one format evaluated
on another, every patient unseen, and a clear message when the feature lists do not match."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from insulin_core.bundles.registry import load_bundle
from insulin_core.bundles.serving import check_bundle_fits, other_source, predictions_table
from insulin_core.cli import main
from insulin_core.data.demo import DemoConfig, write_cohort
from insulin_core.data.demo_modern import ModernDemoConfig, write_modern_cohort
from insulin_core.data.source import resolve_source
from insulin_core.prep.dataset import load_cohort

# One cheap baseline: the sources and the cadence are under test here, not the baselines (scored all
# by default: tests/test_cli.py), which were two thirds of this module's CPU.
QUICK = ["--baselines", "previous_row"]
TINY = ["--lstm", "8", "--gru", "8", "--dense", "8", "--embedding", "2", "--epochs", "1", "--window", "5",
        "--threads", "1", "--members", "1", *QUICK]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Nightscout folder and an AIM94 folder, a tiny model trained on each from the CLI."""
    root = tmp_path_factory.mktemp("modern_cli")
    ns, a94, models = root / "ns", root / "a94", root / "models"
    write_modern_cohort(ns, ModernDemoConfig(patients=2, days=6))
    write_cohort(a94, DemoConfig(patients=3, days=30))
    for name, folder in (("ns", ns), ("a94", a94)):
        assert main(["train", "--data-dir", str(folder), "--name", name, "--models-dir", str(models), *TINY]) == 0
    return ns, a94, models


def test_train_evaluate_and_predict_work_on_the_modern_cohort(trained, capsys):
    ns, _, models = trained
    meta = json.loads((models / "ns" / "bundle.json").read_text())
    assert meta["data"]["format"] == "Nightscout" and meta["sizes"]["test"] > 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "ns", "--data-dir", str(ns), "--models-dir", str(models), "--json",
                 *QUICK]) == 0
    result = json.loads(capsys.readouterr().out)
    model = next(m for m in result["metrics"] if m["name"] == "model")
    assert result["n"] > 0 and np.isfinite(model["mae"])
    assert main(["predict", "--model", "ns", "--data-dir", str(ns), "--patient", "1", "--sweep", "glucose",
                 "--models-dir", str(models)]) == 0
    assert "dose" in capsys.readouterr().out
    assert main(["check-data", "--data-dir", str(ns)]) == 0
    assert "Format: Nightscout" in capsys.readouterr().out


def test_a_model_trained_at_another_cgm_cadence_keeps_it_for_evaluate_and_predict(trained, capsys):
    ns, _, models = trained
    assert main(["train", "--data-dir", str(ns), "--name", "ns30", "--models-dir", str(models), "--cgm-every", "30",
                 *TINY]) == 0
    assert json.loads((models / "ns30" / "bundle.json").read_text())["window"]["cgm_every"] == 30
    scored = {}
    for name in ("ns", "ns30"):
        capsys.readouterr()
        assert main(["evaluate", "--model", name, "--data-dir", str(ns), "--models-dir", str(models), "--json",
                     *QUICK]) == 0
        scored[name] = json.loads(capsys.readouterr().out)["n"]
    assert scored["ns30"] > scored["ns"] > 0  # twice the CGM checks, the same meals and fingersticks
    assert main(["predict", "--model", "ns30", "--data-dir", str(ns), "--patient", "1", "--sweep", "glucose",
                 "--models-dir", str(models)]) == 0
    assert "dose" in capsys.readouterr().out
    assert main(["train", "--data-dir", str(ns), "--name", "bad", "--models-dir", str(models), "--cgm-every", "0",
                 *TINY]) == 2
    assert "CGM cadence must be a whole number of minutes" in capsys.readouterr().err


def test_a_model_evaluated_on_another_source_sees_every_patient_as_new(trained, capsys):
    ns, a94, models = trained
    capsys.readouterr()
    assert main(["evaluate", "--bundle", "a94", "--data-dir", str(ns), "--models-dir", str(models), "--json",
                 *QUICK]) == 0
    out, err = capsys.readouterr()
    assert "trained on AIM94 data and is used on Nightscout data" in err and json.loads(out)["n"] > 0
    bundle, cohort = load_bundle(models / "a94"), load_cohort(resolve_source(ns))
    assert other_source(bundle, cohort) and not other_source(bundle, load_cohort(resolve_source(a94)))
    # The modern patients 1 and 2 share numbers with AIM94 training patients; as other people they
    # must get row 0 whatever the bundle's index says: shuffling it changes nothing.
    index = bundle.scaling.patient_index
    shuffled = dict(zip(index, reversed(list(index.values()))))
    other = replace(bundle, meta={**bundle.meta, "patient_index": {str(k): v for k, v in shuffled.items()}})
    assert other.scaling.patient_index != index
    np.testing.assert_array_equal(predictions_table(bundle, cohort, baselines=[])["predicted"],
                                  predictions_table(other, cohort, baselines=[])["predicted"])


def test_incompatible_feature_lists_are_one_clear_message(trained, capsys):
    ns, _, models = trained
    bundle, cohort = load_bundle(models / "a94"), load_cohort(resolve_source(ns))
    features = bundle.meta["features"]
    odd = replace(bundle, meta={**bundle.meta, "features": {**features, "now": [*features["now"], "carbs_grams"]}})
    with pytest.raises(ValueError, match="reads features this data does not have \\(now_carbs_grams\\)"):
        check_bundle_fits(odd, cohort)
