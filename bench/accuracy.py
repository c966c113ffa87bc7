"""Accuracy benchmark: the default model (several training seeds) beside every baseline, per split.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py [--splits chrono,patients,random]
        [--seeds 0,1,2] [--dose-window 60] [--variant attention] [--data-dir DIR] [--out docs/results.md]

For each split the windows, the split and the baselines are fixed (split seed 0, baselines fit once
on the training part); the model is trained once per training seed. Prints, and appends to
docs/results.md with the date and machine, one table per split: the model's mean and spread over
the seeds, each seed's own row, every baseline, and each one's MAE as a ratio of the model's mean.
`--variant attention` trains the model with the attention option instead (measured beside the
plain one); `--dose-window 0` measures on the earlier target (the moment's own dose).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.configs import DEFAULT_SIZES, TrainConfig  # noqa: E402
from insulin_core.dataset import load_cohort  # noqa: E402
from insulin_core.pipeline import ExperimentConfig, evaluate, model_config_for, prepare  # noqa: E402
from insulin_core.source import resolve_source  # noqa: E402
from insulin_core.train import train_model  # noqa: E402
from insulin_core.windows import WindowConfig  # noqa: E402

COLUMNS = ["mae", "rmse", "r2", "within_1u", "mae_dose"]


def run_split(features, split: str, seeds: list[int], sizes: dict, dose_window: int, args_threads: int) -> pd.DataFrame:
    prepared = prepare(features, ExperimentConfig(WindowConfig(dose_window=dose_window), split=split))
    rows, baselines = [], None
    for seed in seeds:
        start = time.perf_counter()
        training = train_model(model_config_for(prepared, **sizes), TrainConfig(seed=seed, threads=args_threads),
                               prepared.train_data())
        seconds = time.perf_counter() - start
        ev = evaluate(training.model, prepared, baselines=None if baselines is None else [])
        table = ev.metrics[ev.metrics["rows"] == "all"].set_index("name")
        if baselines is None:
            baselines = table.drop(index="model")
        cov = ev.coverage
        rows.append({"name": f"model, seed {seed}", **table.loc["model", COLUMNS].to_dict(), "train_s": seconds,
                     "coverage": cov["coverage"]})
        print(f"  {split} seed {seed}: {seconds:.1f} s ({training.stop_reason}, best epoch {training.best_epoch}), "
              f"MAE {rows[-1]['mae']:.3f}, 90% interval coverage {cov['coverage']:.3f} "
              f"(dose rows {cov['coverage_dose_rows']:.3f}, others {cov['coverage_no_dose_rows']:.3f})", flush=True)
    seeds_table = pd.DataFrame(rows)
    summary = {"name": f"model, mean of {len(seeds)} seeds", **seeds_table[COLUMNS + ["train_s", "coverage"]].mean().to_dict()}
    spread = {"name": "model, sd over seeds", **seeds_table[COLUMNS + ["train_s"]].std(ddof=1).to_dict()}
    out = pd.concat([pd.DataFrame([summary, spread]), seeds_table,
                     baselines[COLUMNS].reset_index()], ignore_index=True)
    out["mae_vs_model"] = out["mae"] / summary["mae"]
    out.loc[out["name"] == spread["name"], "mae_vs_model"] = np.nan
    out.insert(0, "split", split)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--splits", default="chrono,patients,random")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dose-window", type=int, default=WindowConfig().dose_window)
    parser.add_argument("--variant", choices=("default", "attention", "single"), default="default")
    parser.add_argument("--threads", type=int, default=TrainConfig().threads,
                        help="torch threads for training (0 = torch's default, all cores)")
    parser.add_argument("--out", default="docs/results.md")
    args = parser.parse_args()

    start = time.perf_counter()
    cohort = load_cohort(resolve_source(args.data_dir))
    print(f"Data: {cohort.source.label}; loaded and features built in {time.perf_counter() - start:.1f} s")
    sizes = dict(DEFAULT_SIZES)
    if args.variant == "attention":
        sizes["attention"] = True
    elif args.variant == "single":  # one network, no bins: the model before the ensemble and bins
        sizes.update(members=1, now_bins=0)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = pd.concat([run_split(cohort.features, split, seeds, sizes, args.dose_window, args.threads)
                       for split in args.splits.split(",")], ignore_index=True)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    write_results(args, cohort.source.label, table, sizes)


def markdown(table: pd.DataFrame) -> str:
    cells = table.map(lambda v: ("" if np.isnan(v) else f"{v:.3f}") if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.to_numpy().tolist()]
    return "\n".join(lines)


def write_results(args, source: str, table: pd.DataFrame, sizes: dict) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.python_version()}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py " + " ".join(sys.argv[1:])
    body = (f"\n## {stamp}: dose window {args.dose_window} min, model variant {args.variant}\n\n"
            f"Data: {source}. Machine: {machine}.\nCommand: `{command.strip()}`\n"
            f"Model sizes: {sizes}; training: {replace(TrainConfig(), seed=0, threads=args.threads)}\n\n"
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
