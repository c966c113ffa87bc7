"""Does the What-if dose ever fall as glucose rises? Every recorded decision point of one part.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/monotone_whatif.py --bundle models/NAME
        [--part test] [--max-moments 0] [--show 34@1990-09-10T17:55 --show 1@1991-09-03T07:20]

At each decision point of the bundle's own split part (all of them by default), glucose now is
swept over 70-400 mg/dL and over the meter range (10-600) in 10 mg/dL steps, everything else as
recorded, and meal size now over less/typical/more and exercise now over none..more. Prints the
share of moments whose dose falls (by any amount: doses are whole units) as glucose rises, whose
P(dose) or interval bounds fall, whose dose is lower for a larger meal (less <= typical <= more)
or higher for more exercise, with the worst moments, and the curves at the moments named by --show.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.bundles.registry import load_bundle  # noqa: E402
from insulin_core.data.codes import LEVEL_NAMES  # noqa: E402
from insulin_core.whatif.rebuild import set_moment  # noqa: E402
from insulin_core.bundles.serving import bundle_prepared  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.whatif.engine import Scenario, WhatIf  # noqa: E402

GRID = np.arange(10.0, 601.0, 10.0)  # the meter range; 70-400 is a slice of it
PHYSIOLOGICAL = (GRID >= 70) & (GRID <= 400)
EPS = 1e-9


def falls(values: np.ndarray) -> bool:
    """Does a curve over increasing inputs ever go down?"""
    return bool(np.any(np.diff(values) < -EPS))


def moment_curves(engine: WhatIf, pid: int, at: pd.Timestamp) -> dict:
    sc = Scenario(pid, at)
    sweep = engine.sweep_glucose(sc, GRID)
    meal = engine.sweep_meal(sc)
    base = engine._base(sc)  # noqa: SLF001 (a bench may read the engine's own rows)
    now = engine._moment_now(base, sc)  # noqa: SLF001
    rows = np.concatenate([set_moment(now, exercise=level) for level in LEVEL_NAMES])
    amount, p = engine._heads(np.repeat(base.ws.seq, len(rows), axis=0), rows, pid)[:2]  # noqa: SLF001
    exercise = engine.predictor.dose_of(amount, p, pid)
    return {"dose": sweep.dose, "p": sweep.p_dose, "low": sweep.low, "high": sweep.high,
            "meal": meal.dose[1:], "exercise": exercise}  # meal: less, typical, more


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--part", default="test", choices=("train", "val", "test"))
    ap.add_argument("--max-moments", type=int, default=0, help="0 = every decision point of the part")
    ap.add_argument("--show", action="append", default=[], help="PATIENT@TIMESTAMP: print this moment's curve")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cohort = load_cohort(resolve_source())
    bundle = load_bundle(Path(args.bundle))
    print(f"Bundle {args.bundle}: monotone by construction: {bundle.monotone}; data: {cohort.source.label}")
    prepared = bundle_prepared(bundle, cohort.features, every_patient=False)
    idx = getattr(prepared.split, args.part)
    if args.max_moments:
        idx = np.random.default_rng(0).choice(idx, min(args.max_moments, len(idx)), replace=False)
    ctx = prepared.ws.context.iloc[idx]
    engine = WhatIf(bundle, cohort.events, cohort.features)
    start, rows, worst = time.perf_counter(), [], []
    for pid, at in zip(ctx["patient_id"].to_numpy(), ctx["timestamp"]):
        c = moment_curves(engine, int(pid), at)
        phys = {k: c[k][PHYSIOLOGICAL] for k in ("dose", "p", "low", "high")}
        rows.append({"patient_id": int(pid), "timestamp": at,
                     "dose_falls_70_400": falls(phys["dose"]), "dose_falls_meter": falls(c["dose"]),
                     "p_falls": falls(c["p"]), "low_falls": falls(c["low"]), "high_falls": falls(c["high"]),
                     "interval_crosses": bool(np.any((c["low"] > c["dose"]) | (c["high"] < c["dose"]))),
                     "meal_falls": falls(c["meal"]), "exercise_rises": falls(-c["exercise"]),
                     "drop_u": float(np.max(np.maximum.accumulate(phys["dose"]) - phys["dose"])),
                     "p_drop": float(np.max(np.maximum.accumulate(c["p"]) - c["p"]))})
    table = pd.DataFrame(rows)
    seconds = time.perf_counter() - start
    print(f"{len(table)} decision points of the {args.part} part, {table['patient_id'].nunique()} patients, "
          f"{seconds:.0f} s ({1000 * seconds / max(len(table), 1):.0f} ms a moment)")
    for col in ("dose_falls_70_400", "dose_falls_meter", "p_falls", "low_falls", "high_falls", "interval_crosses",
                "meal_falls", "exercise_rises"):
        print(f"  {col:>18}: {table[col].mean():.1%} ({int(table[col].sum())} moments)")
    p_bad = table[table["p_falls"]].sort_values("p_drop", ascending=False)
    if len(p_bad):  # a fall of a float32 rounding step is not a fall of the model; say how large it is
        print("  largest P(dose) falls (meter range):")
        print(p_bad.head(5)[["patient_id", "timestamp", "p_drop"]].to_string(index=False))
    bad = table[table["dose_falls_70_400"]].sort_values("drop_u", ascending=False)
    if len(bad):
        print("  worst falls (70-400 mg/dL):")
        print(bad.head(5).to_string(index=False))
        per = table.groupby("patient_id")["dose_falls_70_400"].mean()
        print(f"  patients with a falling curve at some moment: {int((per > 0).sum())} of {len(per)}")
    for spec in args.show:
        pid, at = spec.split("@")
        c = moment_curves(engine, int(pid), pd.Timestamp(at))
        sel = (GRID >= 70) & (GRID <= 400)
        print(f"\nPatient {pid} at {at}: glucose -> dose [low, high] (P(dose))")
        print("  " + "; ".join(f"{g:.0f}: {d:g} [{lo:g}, {hi:g}] ({p:.2f})" for g, d, lo, hi, p in
                               zip(GRID[sel], c["dose"][sel], c["low"][sel], c["high"][sel], c["p"][sel])))
        print(f"  meal less/typical/more: {c['meal'].tolist()}; exercise none..more: {c['exercise'].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
