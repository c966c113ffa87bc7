"""What-if doses at glucose 300 mg/dL (typical meal) for patients who wrote the dose minutes after
the reading: the model before the decision dose (dose window 0, one network, the earlier training
settings) beside today's default, both trained on the chrono split of the real data.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/late_loggers.py [--patients 24,22,9,5,23]

Moments: patient 24 at 1991-07-13 08:12 (the example of issue 8), and for each other patient their
first morning reading of the test part that was followed by a dose on a row of its own.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.configs import TrainConfig  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, ExperimentResult, bundle_meta, evaluate, model_config_for, prepare  # noqa: E402
from insulin_core.bundles.registry import ModelBundle  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.train import train_model  # noqa: E402
from insulin_core.whatif.engine import Scenario, WhatIf  # noqa: E402
from insulin_core.prep.windows import WindowConfig  # noqa: E402

BEFORE = {"dose_window": 0, "sizes": {"members": 1, "now_bins": 0},
          "train": {"epochs": 60, "patience": 8, "batch": 256, "lr": 3e-3}}
AFTER = {"dose_window": WindowConfig().dose_window, "sizes": {}, "train": {}}
ISSUE_EXAMPLE = (24, pd.Timestamp("1991-07-13 08:12"))


def train_bundle(cohort, name: str, setup: dict) -> WhatIf:
    exp = ExperimentConfig(WindowConfig(dose_window=setup["dose_window"]))
    prepared = prepare(cohort.features, exp)
    train_cfg = TrainConfig(threads=1, **setup["train"])
    start = time.perf_counter()
    training = train_model(model_config_for(prepared, **setup["sizes"]), train_cfg, prepared.train_data())
    print(f"{name}: trained in {time.perf_counter() - start:.1f} s", flush=True)
    result = ExperimentResult(prepared, training, evaluate(training.model, prepared, baselines=[]), {})
    meta = bundle_meta(result, exp, train_cfg, cohort.source.label, cohort.fingerprint)
    return WhatIf(ModelBundle(name, training.model, meta), cohort.events, cohort.features)


def moments(cohort, patients: list[int]) -> list[tuple[int, pd.Timestamp]]:
    f = cohort.features
    prepared = prepare(f, ExperimentConfig())
    test = f.iloc[prepared.ws.context["row"].to_numpy()[prepared.split.test]]
    out = []
    for pid in patients:
        if pid == ISSUE_EXAMPLE[0]:
            out.append(ISSUE_EXAMPLE)
            continue
        mine = test[(test["patient_id"] == pid) & (test["day_part"] == "morning") & test["glucose"].notna()
                    & (test["regular"] == 0) & (test["decision_dose"] > 0)]
        out.append((pid, mine["timestamp"].iloc[0]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--patients", default="24,22,9,5,23")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cohort = load_cohort(resolve_source(args.data_dir))
    engines = {"before": train_bundle(cohort, "before", BEFORE), "after": train_bundle(cohort, "after", AFTER)}
    rows = []
    for pid, at in moments(cohort, [int(p) for p in args.patients.split(",")]):
        row = {"patient": pid, "moment": f"{at:%Y-%m-%d %H:%M}",
               "recorded glucose": engines["after"].build(Scenario(pid, at)).ws.context["glucose_now"].iloc[0],
               "decision dose on record": engines["after"].actual_dose(pid, at)}
        for name, engine in engines.items():
            pred = engine.predict(Scenario(pid, at, glucose_now=300.0, meal_now="typical"))
            row[f"{name}: dose"] = pred.dose
            row[f"{name}: P(dose)"] = round(pred.p_dose, 3)
            row[f"{name}: flags"] = ", ".join(f.kind for f in pred.flags) or "none"
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
