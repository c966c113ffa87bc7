"""Regression guard: each stage of the data path and of inference, timed on the demo cohort, as a
ratio to a reference computation timed in the same run (interleaved), against budgets.json.

A stage fails when its ratio is more than FACTOR (3x) its recorded budget. Because the reference
runs on the same CPU at the same moment, a busy machine slows both and the ratio holds; a stage
that became 3x slower in the code does not. tests/test_bench_guard.py runs it in `make test`
(a few seconds) and proves it fails on an injected slowdown.

    .venv/bin/python bench/guard.py            # check against bench/budgets.json
    .venv/bin/python bench/guard.py --record   # measure again and write bench/budgets.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGETS = Path(__file__).resolve().parent / "budgets.json"
FACTOR = 3.0
RUNS = 5
PREDICTION_WINDOWS = 2_000  # the prediction pass: the first 2,000 windows of the demo cohort (seconds, not minutes)
REFERENCE = ("numpy: sort 200,000 floats; pandas: groupby-mean of 50,000 rows in 200 groups and a 50,000-row "
             "string column's str.len; torch (1 thread): a GRU layer (16 -> 32) over 256 sequences of 10 (fixed data)")

_rng = np.random.default_rng(0)
_REF_FLOATS = _rng.random(200_000)
_REF_FRAME = pd.DataFrame({"g": _rng.integers(0, 200, 50_000), "x": _rng.random(50_000),
                           "s": pd.array([f"{i:08d}\t{i % 97}" for i in range(50_000)], dtype="str")})


def reference() -> None:
    """A fixed workload of the same kinds of operations the stages do (numpy, pandas, strings)."""
    import torch

    np.sort(_REF_FLOATS)
    _REF_FRAME.groupby("g")["x"].mean()
    _REF_FRAME["s"].str.len()
    with torch.no_grad():  # BLAS-free numpy plus one small torch op: each stage's kind of work
        _REF_GRU(_REF_SEQ)


def _torch_reference():
    import torch

    torch.manual_seed(0)
    return torch.nn.GRU(16, 32, batch_first=True), torch.rand(256, 10, 16)


_REF_GRU, _REF_SEQ = _torch_reference()


def stages() -> dict[str, Callable[[], object]]:
    """name -> a no-argument call of that stage on the demo cohort (inputs prepared here, untimed).
    Module attributes are looked up at call time, so a patched (slowed) function is what runs."""
    import torch

    from insulin_core.data import aim94
    from insulin_core.prep import features, timeline, windows
    from insulin_core.whatif import scenarios
    from insulin_core.whatif import engine as W
    from insulin_core.data.demo import DemoConfig, generate_cohort
    from insulin_core.bundles.registry import DEFAULT_MODELS_DIR, load_bundle
    from insulin_core.bundles.serving import bundle_experiment

    torch.set_num_threads(1)
    texts = generate_cohort(DemoConfig(patients=20, days=90, seed=0))  # the embedded demo cohort
    events = aim94.load_texts(texts, "demo").events
    feats = features.add_features(timeline.build_timeline(events))
    bundle = load_bundle(Path(DEFAULT_MODELS_DIR) / "demo")  # trained on exactly this cohort
    cfg = bundle_experiment(bundle).window
    ws = windows.make_windows(feats, cfg)
    predictor = bundle.predictor()
    first = np.arange(min(PREDICTION_WINDOWS, len(ws)))
    engine = W.WhatIf(bundle, events, feats)
    _ = engine.conformal
    patient = engine.patients[0]
    at = engine.decision_points(patient).iloc[len(engine.decision_points(patient)) // 2]

    def whatif_update():  # a cache miss: a time edit rebuilds the events, then the glucose bands
        engine._built.clear()
        return engine.predict(scenarios.Scenario(patient, at, time_of_day="12:00"))

    return {
        "parse": lambda: aim94.load_texts(texts, "demo"),
        "features": lambda: features.add_features(timeline.build_timeline(events)),
        "windows": lambda: windows.make_windows(feats, cfg),
        "prediction pass": lambda: predictor.interval(ws, first),
        "what-if update": whatif_update,
    }


def measure(calls: dict[str, Callable[[], object]], runs: int = RUNS) -> dict[str, dict]:
    """Per stage: median seconds and median ratio to the reference, each stage run right after a
    reference run (interleaved), after one untimed warm-up of each."""
    reference()
    for call in calls.values():
        call()
    out = {}
    for name, call in calls.items():
        ratios, seconds, refs = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            reference()
            t1 = time.perf_counter()
            call()
            t2 = time.perf_counter()
            ratios.append((t2 - t1) / (t1 - t0))
            seconds.append(t2 - t1)
            refs.append(t1 - t0)
        out[name] = {"ratio": statistics.median(ratios), "ms": statistics.median(seconds) * 1000,
                     "reference_ms": statistics.median(refs) * 1000}
    return out


def guard(calls: dict[str, Callable[[], object]], budgets: dict, runs: int = RUNS) -> tuple[dict, list[str]]:
    """measure + check; a stage over budget is measured once more (2 x runs) before it fails, so one
    burst of load during its runs does not fail the build, and a real slowdown fails both times."""
    measured = measure(calls, runs)
    failing = check(measured, budgets)
    if failing:
        again = measure({n: calls[n] for n in calls if any(f.startswith(f"{n}:") for f in failing)}, 2 * runs)
        measured.update(again)
        failing = check(measured, budgets)
    return measured, failing


def check(measured: dict[str, dict], budgets: dict, factor: float = FACTOR) -> list[str]:
    """One message per stage over `factor` times its budget (empty: all within)."""
    failures = []
    for name, budget in budgets["stages"].items():
        if name not in measured:
            failures.append(f"{name}: not measured")
            continue
        ratio = measured[name]["ratio"]
        if ratio > factor * budget["ratio"]:
            failures.append(f"{name}: {ratio:.2f}x the reference ({measured[name]['ms']:.1f} ms), over {factor:g} x its "
                            f"budget of {budget['ratio']:.2f}x ({ratio / budget['ratio']:.1f} x the budget)")
    return failures


def load_budgets(path: Path = BUDGETS) -> dict:
    return json.loads(Path(path).read_text())


def record(measured: dict[str, dict], path: Path = BUDGETS) -> None:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    path.write_text(json.dumps({
        "how": (f"python bench/guard.py --record: each stage on the demo cohort (20 patients x 90 days, "
                f"models/demo, torch 1 thread; the prediction pass on {PREDICTION_WINDOWS:,} windows) timed {RUNS} times right after the reference; the budget "
                f"is the median ratio stage / reference. The guard fails above {FACTOR:g} x the budget."),
        "reference": REFERENCE,
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {model}, load average {os.getloadavg()[0]:.1f}",
        "stages": {n: {"ratio": round(m["ratio"], 3), "ms": round(m["ms"], 1), "reference_ms": round(m["reference_ms"], 1)}
                   for n, m in measured.items()},
    }, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--runs", type=int, default=RUNS)
    args = ap.parse_args()
    calls = stages()
    if args.record:
        measured, failures = measure(calls, args.runs), []
    else:
        measured, failures = guard(calls, load_budgets(), args.runs)
    for name, m in measured.items():
        print(f"  {name:16s} {m['ms']:8.1f} ms  {m['ratio']:6.2f}x the reference ({m['reference_ms']:.1f} ms)")
    if args.record:
        record(measured)
        print(f"recorded {BUDGETS}")
        return 0
    print("\n".join(failures) or f"every stage within {FACTOR:g}x its budget")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
