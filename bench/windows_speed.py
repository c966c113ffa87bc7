"""Speed of cutting windows for a cohort of 60 synthetic patients (the unit test checks only what
is cut). Prints the time and its ratio to copying the same feature block once, timed in the same run.

    .venv/bin/python bench/windows_speed.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.prep.features import seq_columns  # noqa: E402
from insulin_core.data.source import DataSource  # noqa: E402
from insulin_core.prep.windows import WindowConfig, make_windows  # noqa: E402


def best_of(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    features = load_cohort(DataSource("demo", demo_patients=20)).features
    features = pd.concat([features.assign(patient_id=features["patient_id"] + 100 * k) for k in range(3)],
                         ignore_index=True)
    cut = best_of(lambda: make_windows(features, WindowConfig(length=10)))
    copy = best_of(lambda: np.ascontiguousarray(features[seq_columns()].to_numpy(np.float32)) * 1)
    n = len(make_windows(features, WindowConfig(length=10)))
    print(f"{n:,} windows of 10 rows from {len(features):,} rows: {cut * 1000:.1f} ms "
          f"({cut / copy:.1f}x one copy of the feature block, {copy * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
