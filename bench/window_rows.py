"""Which rows of a moment's window hold its P(dose) down? The raw rows behind a flat What-if curve.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/window_rows.py --bundle models/NAME \
        --moment 34@1990-09-10T17:55 --other 34@1990-09-08T18:19 [--glucose 154,400]

Both moments are the same patient's decision points (of the bundle's cohort). The first k rows of
the moment's window are replaced by the other moment's first k rows (k = 0 .. window) with the
moment itself (its now-vector, glucose set as asked) unchanged, and P(dose) and the dose printed
for each k: where P jumps, the rows that cause it begin. Then the raw timeline rows of both windows,
and the cohort's dosing share at moments like it (the patient doses at this day part at least half
the time; last dose at this day part 30-54 h ago, i.e. the one before was skipped), so the model's
P(dose) can be read against the data's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.whatif.rebuild import set_moment  # noqa: E402
from insulin_core.bundles.registry import load_bundle  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.whatif.engine import Scenario, WhatIf  # noqa: E402
from insulin_core.prep.windows import make_windows  # noqa: E402


def moment(spec: str) -> tuple[int, pd.Timestamp]:
    pid, at = spec.split("@")
    return int(pid), pd.Timestamp(at)


def cohort_share(engine: WhatIf) -> str:
    """The data's answer: how often people who usually dose at this day part dosed after a skip."""
    windows = make_windows(engine.features, engine.window)
    now = dict(zip(windows.now_features, windows.now.T))
    usual = (now["has_glucose"] > 0) & (now["share_dose_same_dp"] >= 0.5)
    age_h = np.exp(now["log_age_last_regular_same_dp"]) - 1
    dosed = windows.y[:, 0] > 0
    parts = []
    for label, m in (("last dose at this day part <= 30 h ago", age_h <= 30),
                     ("30-54 h ago (the one before skipped)", (age_h > 30) & (age_h <= 54))):
        sel = usual & m
        parts.append(f"{label}: {dosed[sel].mean():.0%} of {int(sel.sum())} moments dosed")
    return "; ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--moment", required=True, help="PATIENT@TIMESTAMP")
    ap.add_argument("--other", required=True, help="PATIENT@TIMESTAMP of the same patient")
    ap.add_argument("--glucose", default="154,400")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cohort = load_cohort(resolve_source())
    bundle = load_bundle(Path(args.bundle))
    engine = WhatIf(bundle, cohort.events, cohort.features)
    (pid, at), (other_pid, other_at) = moment(args.moment), moment(args.other)
    if other_pid != pid:
        raise SystemExit("--other must be a moment of the same patient (the embedding is the patient's)")
    base, other = (engine._base(Scenario(pid, t)) for t in (at, other_at))  # noqa: SLF001 (a bench reads the engine's rows)
    now = engine._moment_now(base, Scenario(pid, at))  # noqa: SLF001
    bands = engine._bands(base)  # noqa: SLF001
    seq, other_seq = base.ws.seq, other.ws.seq
    window = seq.shape[1]
    print(f"Bundle {args.bundle}; patient {pid} at {at}, rows taken from {other_at}; window {window} rows")
    for g in (float(v) for v in args.glucose.split(",")):
        row = set_moment(now, glucose=g, band_now=bands)
        cells = []
        for k in range(window + 1):
            mixed = np.concatenate([other_seq[:, :k], seq[:, k:]], axis=1)
            amount, p = engine._heads(mixed, row, pid)[:2]  # noqa: SLF001
            cells.append(f"k={k}: P {float(p[0]):.2f} dose {float(engine.predictor.dose_of(amount, p, pid)[0]):g}")
        print(f"glucose {g:g} mg/dL, the first k rows from the other moment: " + "; ".join(cells))
    names = list(base.ws.seq_features)
    for label, w in (("moment", seq), ("other", other_seq)):
        frame = pd.DataFrame(w[0], columns=names)[["glucose", "regular", "nph", "ultralente", "meal", "hypo"]]
        print(f"\n{label}'s window rows (oldest first, unscaled):\n{frame.to_string()}")
    print("\nThe data: " + cohort_share(engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
