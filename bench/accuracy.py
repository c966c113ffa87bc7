"""Accuracy benchmark: the default model (several training seeds) beside every baseline, per split.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py [--splits chrono,patients,random]
        [--seeds 0,1,2] [--dose-window 60] [--variant attention] [--tune-threshold] [--data-dir DIR]
        [--out docs/results.md]

Splits: chrono, patients, random (insulin_core/prep/splits.py), and heldout: 10 patients drawn at
random (seed 0) are left out entirely; the model and the baselines train on the chrono split of
the other 60 and are scored on every decision point of the 10.

For each split the windows, the split and the baselines are fixed (split seed 0, baselines fit once
on the training part); the model is trained once per training seed. Prints, and appends to
docs/results.md with the date and machine, one table per split: the model's mean and spread over
the seeds, each seed's own row, every baseline, and each one's MAE as a ratio of the model's mean.
`--variant attention` trains the model with the attention option instead (measured beside the
plain one); `--dose-window 0` measures on the earlier target (the moment's own dose);
`--tune-threshold` picks each model's P(dose) threshold on the validation part (TrainConfig.tune_threshold;
on the patients split that part is patients the model never saw).
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
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.models.baselines import BASELINES, make_baseline  # noqa: E402
from insulin_core.evaluation.metrics import all_rows, metrics_table  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, evaluate, model_config_for, prepare, select_patients  # noqa: E402
from insulin_core.models.predictor import BaselinePredictor  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.train import train_model  # noqa: E402
from insulin_core.prep.windows import WindowConfig, make_windows  # noqa: E402

COLUMNS = ["mae", "rmse", "r2", "within_1u", "mae_dose", "missed", "unwanted"]
VARIANTS = {  # --variant: the model's sizes beside the defaults
    "default": {},
    "attention": {"attention": True},
    "single": {"members": 1, "now_bins": 0},  # one network, no bins: the model before the ensemble and bins
    "pooled": {"patient_embedding": 0},  # no patient embedding: every patient served alike
    "not-monotone": {"monotone": False},  # the network before the monotone construction (issue 17)
}


HELD_OUT = 10  # split "heldout": patients left out of training entirely, drawn with seed 0


def held_out_patients(features: pd.DataFrame) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(training patients, held-out patients): HELD_OUT patients drawn at random (seed 0)."""
    patients = np.sort(features["patient_id"].unique())
    out = np.sort(np.random.default_rng(0).choice(patients, HELD_OUT, replace=False))
    return tuple(int(p) for p in patients if p not in out), tuple(int(p) for p in out)


def held_out_split(features: pd.DataFrame, window: WindowConfig):
    """(prepared, held-out windows, held-out patients): the chrono split of the other patients,
    prepared for training and validation, and every decision point of the HELD_OUT patients."""
    train_patients, held_out = held_out_patients(features)
    prepared = prepare(features, ExperimentConfig(window, split="chrono", patients=train_patients))
    return prepared, make_windows(select_patients(features, held_out), prepared.ws.config), held_out


def evaluate_held_out(model, prepared, ws, with_baselines: bool) -> pd.DataFrame:
    """The model and every baseline (fit on the training part of the other patients) on every
    decision point of the held-out patients' windows `ws`: patients no part of training has seen."""
    every = np.arange(len(ws))
    preds = {"model": prepared.predictor(model).dose(ws, every)}
    if with_baselines:
        for name in BASELINES:
            baseline = make_baseline(name).fit(prepared.ws, prepared.train_idx)
            preds[name] = BaselinePredictor(baseline).dose(ws, every)
    return metrics_table(preds, ws.y[:, 0]).set_index("name")  # every row, as the other splits' tables


def run_split(features, split: str, seeds: list[int], sizes: dict, dose_window: int, train_cfg: TrainConfig) -> pd.DataFrame:
    held_ws = None
    if split == "heldout":  # chrono split of the other patients for training and validation
        prepared, held_ws, held_out = held_out_split(features, WindowConfig(dose_window=dose_window))
        print(f"  held-out patients: {', '.join(map(str, held_out))}")
    else:
        prepared = prepare(features, ExperimentConfig(WindowConfig(dose_window=dose_window), split=split))
    rows, baselines = [], None
    for seed in seeds:
        start = time.perf_counter()
        training = train_model(model_config_for(prepared, **sizes), replace(train_cfg, seed=seed), prepared.train_data())
        seconds = time.perf_counter() - start
        ev = evaluate(training.model, prepared, baselines=None if baselines is None else [])
        table = all_rows(ev.metrics).set_index("name")
        if held_ws is not None:
            table = evaluate_held_out(training.model, prepared, held_ws, baselines is None)
        if baselines is None:
            baselines = table.drop(index="model")
            print("  baselines (MAE / dose-occasion MAE / missed / unwanted): " + "; ".join(
                f"{name} {r.mae:.3f} / {r.mae_dose:.3f} / {r.missed:.0f} / {r.unwanted:.0f}" for name, r in baselines.iterrows()),
                flush=True)
        cov = ev.coverage
        rows.append({"name": f"model, seed {seed}", **table.loc["model", COLUMNS].to_dict(), "train_s": seconds,
                     "coverage": cov["coverage"]})
        print(f"  {split} seed {seed}: {seconds:.1f} s ({training.stop_reason}, best epoch {training.best_epoch}, "
              f"P(dose) threshold {float(training.model.dose_threshold.reshape(-1)[0]):.2f}, "
              f"new patients {float(training.model.new_patient_threshold.reshape(-1)[0]):.2f}), "
              f"MAE {rows[-1]['mae']:.3f}, dose-occasion MAE {rows[-1]['mae_dose']:.3f}, doses missed {rows[-1]['missed']:.0f}, "
              f"unwanted {rows[-1]['unwanted']:.0f}, 90% interval coverage {cov['coverage']:.3f} "
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
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="default")
    parser.add_argument("--threads", type=int, default=TrainConfig().threads,
                        help="torch threads for training (0 = torch's default, all cores)")
    parser.add_argument("--tune-threshold", action="store_true",
                        help="pick the P(dose) threshold on the validation part (TrainConfig.tune_threshold)")
    parser.add_argument("--out", default="docs/results.md")
    args = parser.parse_args()

    start = time.perf_counter()
    cohort = load_cohort(resolve_source(args.data_dir))
    print(f"Data: {cohort.source.label}; loaded and features built in {time.perf_counter() - start:.1f} s")
    sizes = {**DEFAULT_SIZES, **VARIANTS[args.variant]}
    seeds = [int(s) for s in args.seeds.split(",")]
    train_cfg = TrainConfig(threads=args.threads, tune_threshold=args.tune_threshold)
    table = pd.concat([run_split(cohort.features, split, seeds, sizes, args.dose_window, train_cfg)
                       for split in args.splits.split(",")], ignore_index=True)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    write_results(args, cohort.source.label, table, sizes, train_cfg)


def markdown(table: pd.DataFrame) -> str:
    counts = ("missed", "unwanted")  # whole numbers per seed; their mean over seeds to one decimal

    def cell(v, column: str) -> str:
        if not isinstance(v, float):
            return str(v)
        return "" if np.isnan(v) else f"{v:.1f}".removesuffix(".0") if column in counts else f"{v:.3f}"

    cells = table.apply(lambda col: col.map(lambda v: cell(v, col.name)))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.to_numpy().tolist()]
    return "\n".join(lines)


def write_results(args, source: str, table: pd.DataFrame, sizes: dict, train_cfg: TrainConfig) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {platform.python_version()}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/accuracy.py " + " ".join(sys.argv[1:])
    body = (f"\n## {stamp}: dose window {args.dose_window} min, model variant {args.variant}\n\n"
            f"Data: {source}. Machine: {machine}.\nCommand: `{command.strip()}`\n"
            f"Model sizes: {sizes}; training: {train_cfg}\n\n"
            + markdown(table) + "\n")
    out = Path(args.out)
    if not out.exists():
        out.write_text("# Accuracy results\n\nTest part of each split, Regular insulin in units; "
                       "`mae_dose` is MAE on dose occasions only; `missed` counts dose occasions answered with no dose, "
                       "`unwanted` decision points without a dose answered with one (0.5 U or more). "
                       "Produced by `bench/accuracy.py`.\n")
    with out.open("a") as f:
        f.write(body)
    print(f"Appended to {out}")


if __name__ == "__main__":
    main()
