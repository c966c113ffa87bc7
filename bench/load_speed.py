"""How long the data path takes for a whole cohort: read files, parse + quality report, timeline,
features, windows. Medians of --runs runs; each stage also as a share of the total.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/load_speed.py [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.data.aim94 import load_texts  # noqa: E402
from insulin_core.prep.features import add_features  # noqa: E402
from insulin_core.prep.timeline import build_timeline  # noqa: E402
from insulin_core.data.source import resolve_source, source_texts  # noqa: E402
from insulin_core.prep.windows import WindowConfig, make_windows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    source = resolve_source(None)
    stages = {
        "read files": lambda s: source_texts(source),
        "parse + quality report": lambda texts: load_texts(texts, source.label).events,
        "timeline": build_timeline,
        "features": add_features,
        "windows (10 rows, decision-point)": lambda f: make_windows(f, WindowConfig()),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.runs):
        value = None
        for name, stage in stages.items():
            start = time.perf_counter()
            value = stage(value)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    total = sum(medians.values())
    print(f"Data: {source.label}; {len(value)} windows; median of {args.runs} runs")
    for name, ms in medians.items():
        print(f"  {name:36s} {ms:8.1f} ms  {ms / total:6.1%}")
    print(f"  {'total':36s} {total:8.1f} ms  (x{total / 60_000:.4f} of the 60 s training budget)")


if __name__ == "__main__":
    main()
