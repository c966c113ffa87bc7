"""Shared timing helper for the benchmarks."""
from __future__ import annotations

import statistics
import time


def timings_ms(fn, runs: int, warmup: int = 2) -> list[float]:
    """Wall times of `fn()` in milliseconds over `runs` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    """Median wall time of `fn()` in milliseconds over `runs` runs, after `warmup` untimed runs."""
    return statistics.median(timings_ms(fn, runs, warmup))
