"""Speed of build_timeline + add_features: per patient (the what-if rebuild) and whole cohort.

    .venv/bin/python bench/features_speed.py [--runs 50] [--tail 500] [--patients 5]
    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/features_speed.py

"before" is the pandas groupby implementation kept in tests/reference_features.py, "after" the
numpy one in insulin_core/prep/timeline.py + features.py. Per patient: the last --tail events of a few patients
(the what-if explorer rebuilds a bounded tail of a few hundred rows); target < 15 ms. Times are
medians of --runs runs after a warm-up; the two outputs are checked equal first.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.timing import median_ms  # noqa: E402
from insulin_core.prep import features, timeline  # noqa: E402
from insulin_core.data.source import load_source, resolve_source  # noqa: E402
from tests import reference_features as before  # noqa: E402

after = SimpleNamespace(build_timeline=timeline.build_timeline, add_features=features.add_features)

TARGET_MS = 15.0


def features_of(module, events: pd.DataFrame) -> pd.DataFrame:
    return module.add_features(module.build_timeline(events))


def compare(label: str, events: pd.DataFrame, runs: int) -> tuple[float, float]:
    pd.testing.assert_frame_equal(features_of(after, events), features_of(before, events), check_exact=True)
    old = median_ms(lambda: features_of(before, events), runs)
    new = median_ms(lambda: features_of(after, events), runs)
    flag = "" if not label.startswith("patient") else ("  ok" if new < TARGET_MS else f"  OVER {TARGET_MS:g} ms")
    print(f"{label:<28} {len(events):>7} {old:>10.1f} {new:>10.2f} {old / new:>7.1f}x{flag}")
    return old, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per timing (median); cohort uses min(runs, 10)")
    parser.add_argument("--tail", type=int, default=500, help="events per single-patient tail")
    parser.add_argument("--patients", type=int, default=5, help="how many patients to time")
    args = parser.parse_args()

    source = resolve_source()
    events = load_source(source).events
    print(f"data: {source.label}, {events['patient_id'].nunique()} patients, {len(events)} events")
    print(f"{'':<28} {'events':>7} {'before ms':>10} {'after ms':>10} {'ratio':>8}")
    counts = events["patient_id"].value_counts()
    picked = counts.index[:: max(1, len(counts) // args.patients)][: args.patients]
    for pid in picked:
        compare(f"patient {pid} (last {args.tail})", events[events["patient_id"] == pid].tail(args.tail), args.runs)
    compare("whole cohort", events, min(args.runs, 10))


if __name__ == "__main__":
    main()
