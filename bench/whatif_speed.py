"""What-if speed (and, with --coverage, interval coverage and monotonicity) on this CPU.

    .venv/bin/python bench/whatif_speed.py [--runs 30] [--model demo] [--coverage]
    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/whatif_speed.py --coverage

Budgets (issue 5): one what-if update (features rebuilt + prediction with interval) < 50 ms, a
100-point dose-response sweep < 100 ms. Uses the shipped bundle `models/NAME` when it was trained
on this data, else trains a small model here (said so in the output). Times are medians of N runs
after warm-up, with torch on one thread (the page's setting on a shared 2-core CPU).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import median_ms  # noqa: E402
from insulin_core.whatif import engine as W  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment  # noqa: E402
from insulin_core.bundles.registry import DEFAULT_MODELS_DIR, BundleError, ModelBundle, load_bundle  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.train import TrainConfig  # noqa: E402

BUDGET_MS = {"update": 50.0, "sweep": 100.0}


def get_bundle(name: str, cohort, epochs: int) -> tuple[ModelBundle, str]:
    try:
        bundle = load_bundle(Path(DEFAULT_MODELS_DIR) / name)
        if bundle.meta.get("data", {}).get("fingerprint") == cohort.fingerprint:
            return bundle, f"bundle models/{name}"
        why = f"models/{name} was trained on other data"
    except BundleError as exc:
        why = str(exc)
    exp = ExperimentConfig()
    cfg = TrainConfig(epochs=epochs, patience=5, threads=1)
    result = run_experiment(cohort.features, exp, dict(lstm_hidden=32, gru_hidden=16, dense=(32,)), cfg, baselines=[])
    meta = bundle_meta(result, exp, cfg, cohort.source.label, cohort.fingerprint)
    meta["model_config"] = result.training.model.cfg.to_dict()
    return ModelBundle("bench", result.training.model, meta), f"a model trained here for {epochs} epochs ({why})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--coverage", action="store_true", help="also interval coverage and monotonicity")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cohort = load_cohort(resolve_source())
    bundle, which = get_bundle(args.model, cohort, args.epochs)
    engine = W.WhatIf(bundle, cohort.events, cohort.features)
    _ = engine.conformal  # calibrated once (or read from the bundle), not part of an update
    print(f"Data: {cohort.source.label}\nModel: {which}; conformal "
          f"{'from the bundle' if 'conformal' in bundle.meta else 'calibrated on its validation part now'}")

    patient = engine.patients[0]
    moments = engine.decision_points(patient)
    at = moments.iloc[len(moments) // 2]
    glucose = iter(np.tile(np.linspace(60, 400, 35), 1000))
    edited = lambda: W.Scenario(patient, at, glucose_now=float(next(glucose)), meal_now="typical")  # noqa: E731
    rows = {
        "update, moment edit (slider; cached history)": (
            lambda: engine.predict(edited()), "update"),
        "update, features rebuilt from the events": (
            lambda: engine.predict(edited(), rebuild=True), "update"),
        "update, window edit (events rebuilt, cache missed)": (
            lambda: (engine._built.clear(), engine.predict(W.Scenario(patient, at, time_of_day="12:00"))), "update"),
        "sweep, 100 glucose points (cached history)": (
            lambda: engine.sweep_glucose(W.Scenario(patient, at)), "sweep"),
        "sweep, meal sizes": (lambda: engine.sweep_meal(W.Scenario(patient, at)), "sweep"),
        "explanation (occlusion, one batch)": (lambda: engine.explain(edited()), "sweep"),
    }
    print(f"\nPatient {patient}, decision point {at}; median of {args.runs} runs, 1 torch thread")
    for label, (fn, budget) in rows.items():
        ms = median_ms(fn, args.runs)
        print(f"  {label:55s} {ms:7.1f} ms   {ms / BUDGET_MS[budget]:5.2f}x the {BUDGET_MS[budget]:.0f} ms budget")

    if args.coverage:
        from insulin_core.whatif.engine import nonmonotone_share
        from insulin_core.bundles.serving import bundle_prepared

        prepared = bundle_prepared(bundle, cohort.features, every_patient=False)
        table = engine.conformal
        for part in ("val", "test"):
            cov = engine.predictor.coverage(prepared.ws, getattr(prepared.split, part), part)
            print(f"\n{int(round((1 - table['alpha']) * 100))}% interval on the {part} part: coverage "
                  f"{cov['coverage']:.3f} (rows with a dose {cov['coverage_dose_rows']:.3f}, without "
                  f"{cov['coverage_no_dose_rows']:.3f}), mean width {cov['mean_width_u']:.1f} U, n={cov['n']}")
        print("  quantiles:", {g: round(v["q"], 2) for g, v in table["groups"].items()})
        mono = nonmonotone_share(bundle, cohort.events, cohort.features)
        print(f"\nNon-monotone glucose curves (70-400 mg/dL, drop > {mono['tolerance_u']:g} U), test part: "
              f"{mono['share_patients_non_monotone']:.0%} of {mono['patients']} patients (average curve), "
              f"{mono['share_points_non_monotone']:.0%} of decision points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
