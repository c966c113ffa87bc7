"""Cross-dataset evaluation: a model trained on AIM94 and one trained on the modern pump + CGM demo,
each evaluated on its own test part and on the other source's, baselines beside.

    .venv/bin/python bench/cross_dataset.py [--epochs 20] [--out bench/out/cross_dataset.md]

AIM94: the real files when AIM94_DIR is set, else the AIM94-format demo (synthetic). Modern: the
SYNTHETIC Nightscout demo (`--demo modern`). Each model is trained by `run_experiment` under the
chrono split; on the other source every patient is new to it (patient embedding row 0,
serving.other_source) and its test part is that source's chrono test part, where the baselines are
fit on that source's own training part (in-domain, as a clinic would fit them). Writes a Markdown
table (MAE, within ±1 U, MAE on dose occasions) to --out and prints it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.bundles.registry import load_bundle, save_bundle  # noqa: E402
from insulin_core.bundles.serving import baseline_table, metrics_of, predictions_table  # noqa: E402
from insulin_core.configs import DEFAULT_SIZES, TrainConfig  # noqa: E402
from insulin_core.data.source import demo_source, resolve_source  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment  # noqa: E402
from insulin_core.labels import predictor_label  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.prep.windows import WindowConfig  # noqa: E402

SHOWN = ("model", "sliding_scale", "two_stage_gbm_monotone")  # the network and two baselines beside it


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default="bench/out/cross_dataset.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sources = {"AIM94" + ("" if os.environ.get("AIM94_DIR") else " demo"): resolve_source(None),
               "modern demo": demo_source("modern")}
    cohorts = {name: load_cohort(source) for name, source in sources.items()}
    exp, cfg = ExperimentConfig(WindowConfig(), "chrono"), TrainConfig(epochs=args.epochs, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as models:
        for name, cohort in cohorts.items():
            start = time.perf_counter()
            result = run_experiment(cohort.features, exp, dict(DEFAULT_SIZES), cfg, baselines=[])
            meta = bundle_meta(result, exp, cfg, cohort.source.label, cohort.fingerprint, cohort.format)
            save_bundle(result.training.model, meta, name.replace(" ", "-"), Path(models))
            print(f"trained on {name}: {time.perf_counter() - start:.0f} s", flush=True)
        # both models share one experiment, so each source's baselines are fit once, not once per model
        fitted = {tested: baseline_table(cohort, exp, list(SHOWN[1:])) for tested, cohort in cohorts.items()}
        for trained in cohorts:
            bundle = load_bundle(Path(models) / trained.replace(" ", "-"))
            for tested, cohort in cohorts.items():
                table = predictions_table(bundle, cohort, list(SHOWN[1:]), baseline_columns=fitted[tested])
                metrics = metrics_of(table, "test")
                for row in metrics.to_dict("records"):
                    if row["name"] in SHOWN:
                        rows.append((trained, tested, row))
    table = ["| trained on | tested on (test part) | predictor | decision points | MAE (U) | within ±1 U | "
             "MAE on dose occasions (U) |", "|---|---|---|---|---|---|---|"]
    for trained, tested, row in rows:
        who = "LSTM-GRU (" + ("own patients" if trained == tested else "every patient new") + ")" \
            if row["name"] == "model" else f"{predictor_label(row['name'])} (fit on {tested})"
        table.append(f"| {trained} | {tested} | {who} | {row['n']} | {row['mae']:.3f} | {row['within_1u']:.1%} | "
                     f"{row['mae_dose']:.3f} |")
    text = "\n".join(table) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
