"""Accuracy benchmark: the default model and every baseline, for each split, on one data set.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py [--splits chrono,patients,random]
        [--data-dir DIR] [--out docs/results.md]

Prints one table (test part, insulin units) and appends it, with the date and machine, to
docs/results.md. Also trains a pooled model (no patient embedding) on the chrono split, to show
what personalisation buys, and prints ratios of each baseline's MAE to the model's.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.dataset import load_cohort  # noqa: E402
from insulin_core.pipeline import DEFAULT_SIZES, ExperimentConfig, run_experiment  # noqa: E402
from insulin_core.source import resolve_source  # noqa: E402
from insulin_core.train import TrainConfig  # noqa: E402

COLUMNS = ["split", "name", "mae", "rmse", "r2", "within_1u", "mae_dose", "n", "train_s"]


def run(features, split: str, sizes: dict, label: str | None = None, baselines=None) -> pd.DataFrame:
    result = run_experiment(features, ExperimentConfig(split=split), sizes, TrainConfig(), baselines=baselines)
    table = result.evaluation.metrics
    table = table[table["rows"] == "all"].copy()
    table.insert(0, "split", split)
    table["train_s"] = [result.seconds["train"] if n == "model" else float("nan") for n in table["name"]]
    if label:
        table["name"] = table["name"].replace({"model": label})
    print(f"  {split}: trained in {result.seconds['train']:.1f} s ({result.training.stop_reason}, "
          f"best epoch {result.training.best_epoch}); baselines and evaluation {result.seconds['evaluate']:.1f} s",
          flush=True)
    cov = result.evaluation.coverage
    print(f"  {split}: {1 - cov['alpha']:.0%} interval coverage on the test part {cov['coverage']:.3f} "
          f"(rows with a dose {cov['coverage_dose_rows']:.3f}), mean width {cov['mean_width_u']:.1f} U", flush=True)
    return table[COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--splits", default="chrono,patients,random")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--no-pooled", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    cohort = load_cohort(resolve_source(args.data_dir))
    print(f"Data: {cohort.source.label}; loaded and features built in {time.perf_counter() - start:.1f} s")
    tables = [run(cohort.features, split, DEFAULT_SIZES) for split in args.splits.split(",")]
    if not args.no_pooled and "chrono" in args.splits:
        pooled = {**DEFAULT_SIZES, "patient_embedding": 0}
        tables.append(run(cohort.features, "chrono", pooled, label="model (pooled, no patient embedding)", baselines=[]))
    table = pd.concat(tables, ignore_index=True)
    for split, rows in table.groupby("split", sort=False):
        model_mae = rows.loc[rows["name"] == "model", "mae"].iloc[0]
        table.loc[rows.index, "mae_vs_model"] = rows["mae"] / model_mae
    text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    print(text)
    write_results(args, cohort.source.label, table)


def markdown(table: pd.DataFrame) -> str:
    cells = table.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.to_numpy().tolist()]
    return "\n".join(lines)


def write_results(args, source: str, table: pd.DataFrame) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.python_version()}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py " + " ".join(sys.argv[1:])
    body = (f"\n## {stamp}\n\nData: {source}. Machine: {machine}.\nCommand: `{command.strip()}`\n\n"
            + markdown(table) + "\n")
    out = Path(args.out)
    if not out.exists():
        out.write_text("# Accuracy results\n\nTest part of each split, Regular insulin in units; "
                       "`mae_dose` is MAE on dose occasions only. Produced by `bench/accuracy.py`.\n")
    with out.open("a") as f:
        f.write(body)
    print(f"Appended to {out}")


if __name__ == "__main__":
    main()
