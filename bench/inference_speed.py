"""Inference speed: median and 95th percentile of the full-cohort prediction pass, one What-if update
(cached history, and a cache miss: a window/time edit that rebuilds the events), a 100-point
glucose sweep and everything a What-if slider move computes (the page's four answers in one pass), on this CPU with torch on one thread (the dashboard's setting on a shared 2-core CPU).

    .venv/bin/python bench/inference_speed.py [--runs 30] [--model demo]
    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/inference_speed.py

Uses models/NAME when it was trained on this data, else trains a small model here
(bench/whatif_speed.get_bundle; said so in the output). Budget: a What-if update < 50 ms.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import timings_ms  # noqa: E402
from bench.whatif_speed import get_bundle  # noqa: E402
from insulin_core.whatif import engine as W  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.bundles.serving import bundle_experiment  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.prep.windows import make_windows  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cohort = load_cohort(resolve_source())
    bundle, which = get_bundle(args.model, cohort, args.epochs)
    ws = make_windows(cohort.features, bundle_experiment(bundle).window)
    predictor = bundle.predictor()
    everything = np.arange(len(ws))
    engine = W.WhatIf(bundle, cohort.events, cohort.features)
    _ = engine.conformal
    patient = engine.patients[0]
    moments = engine.decision_points(patient)
    at = moments.iloc[len(moments) // 2]
    glucose = iter(np.tile(np.linspace(60, 400, 35), 1000))
    times = itertools.cycle([f"{h:02d}:{m:02d}" for h in range(6, 22) for m in (5, 25, 45)])
    rows = {
        f"full-cohort prediction pass ({len(ws):,} windows, dose + interval)": lambda: predictor.interval(ws, everything),
        "What-if update, moment edit (cached history)": lambda: engine.predict(
            W.Scenario(patient, at, glucose_now=float(next(glucose)), meal_now="typical")),
        "What-if update, time edit (cache miss: events rebuilt)": lambda: (
            engine._built.clear(), engine.predict(W.Scenario(patient, at, time_of_day=next(times)))),
        "sweep, 100 glucose points (cached history)": lambda: engine.sweep_glucose(W.Scenario(patient, at)),
        # what one slider move of the page computes: dose, both sweeps and the explanation, one pass
        "What-if page answers, moment edit (cached history)": lambda: engine.answers(
            W.Scenario(patient, at, glucose_now=float(next(glucose)), meal_now="more")),
        "What-if page answers, time edit (cache miss)": lambda: (
            engine._built.clear(), engine.answers(W.Scenario(patient, at, time_of_day=next(times)))),
    }
    print(f"Data: {cohort.source.label}\nModel: {which}\nPatient {patient}, decision point {at}; "
          f"{args.runs} runs after 2 warm-ups, 1 torch thread")
    print(f"  {'':58s} {'median':>8s} {'p95':>8s}")
    for label, fn in rows.items():
        t = timings_ms(fn, args.runs)
        print(f"  {label:58s} {np.median(t):6.1f}ms {np.percentile(t, 95):6.1f}ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
