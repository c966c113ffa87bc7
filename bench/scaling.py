"""How the data path and training scale with the cohort: synthetic cohorts of N patient-years from
the demo generator (insulin_core/data/demo.py), each size measured in a process of its own.

    .venv/bin/python bench/scaling.py --sizes 100,1000,10000 [--train-sizes 100,1000] [--all-at-once 100,1000]
        [--plot docs/performance_scaling.png] [--json bench/scaling_results.json]

A cohort of N patient-years is N / 50 chunks of 50 patients x 365 days (demo seed = chunk number,
patient ids offset by 100 per chunk). Per size:
- data path, streamed: chunk by chunk, parse -> timeline -> features -> windows (make_windows per
  chunk, so at most one chunk's windows exist at a time); generating the text is timed apart and
  not counted. Peak memory = the process's peak RSS (getrusage maxrss), and above its RSS after
  the imports.
- data path, all at once (--all-at-once sizes): one events table, one features frame, one
  WindowSet for the whole cohort, as the dashboard does for AIM94: what streaming saves.
- training per epoch (--train-sizes): insulin_core.models.train.train_model with the default model and
  TrainConfig(epochs=2, threads=1: on a shared 2-core CPU two threads ran 10x slower); the second epoch's time (the first pays
  one-off set-up). train.py keeps every window of the training part in memory as tensors, so
  sizes beyond --train-sizes are extrapolated from the measured windows per second (said so).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHUNK_PATIENTS, DAYS = 50, 365
PY_PER_CHUNK = CHUNK_PATIENTS * DAYS / 365


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _chunks(patient_years: int):
    """(chunk number, {data-NN: text}) for a cohort of `patient_years`."""
    from insulin_core.data.demo import DemoConfig, generate_cohort

    n = max(1, round(patient_years / PY_PER_CHUNK))
    for k in range(n):
        yield k, generate_cohort(DemoConfig(patients=CHUNK_PATIENTS, days=DAYS, seed=k))


def _chunk_features(k: int, texts: dict, times: dict):
    from insulin_core.data.aim94 import load_texts
    from insulin_core.prep.features import add_features
    from insulin_core.prep.timeline import build_timeline

    t0 = time.perf_counter()
    loaded = load_texts(texts, f"synthetic chunk {k}")
    events = loaded.events.assign(patient_id=loaded.events["patient_id"] + 100 * k)
    t1 = time.perf_counter()
    timeline = build_timeline(events)
    t2 = time.perf_counter()
    features = add_features(timeline)
    t3 = time.perf_counter()
    for stage, dt in (("parse", t1 - t0), ("timeline", t2 - t1), ("features", t3 - t2)):
        times[stage] = times.get(stage, 0.0) + dt
    return loaded.report.lines, features


def child_data(patient_years: int, all_at_once: bool) -> dict:
    import pandas as pd

    from insulin_core.prep.windows import WindowConfig, make_windows

    base_rss = _current_rss_mb()
    times: dict[str, float] = {"generate": 0.0}
    lines = rows = windows = 0
    kept = []
    for k, texts in _generators(patient_years, times):
        n, features = _chunk_features(k, texts, times)
        lines, rows = lines + n, rows + len(features)
        del texts
        if all_at_once:
            kept.append(features)
            continue
        t = time.perf_counter()
        windows += len(make_windows(features, WindowConfig()))  # one chunk's windows at a time
        times["windows"] = times.get("windows", 0.0) + time.perf_counter() - t
    if all_at_once:
        t = time.perf_counter()
        features = pd.concat(kept, ignore_index=True)
        del kept
        ws = make_windows(features, WindowConfig())
        windows = len(ws)
        times["windows"] = time.perf_counter() - t
    data_path = sum(v for s, v in times.items() if s != "generate")
    return {"patient_years": patient_years, "mode": "all at once" if all_at_once else "streamed",
            "lines": lines, "timeline_rows": rows, "windows": windows,
            "seconds": {s: round(v, 3) for s, v in times.items()}, "data_path_s": round(data_path, 3),
            "peak_rss_mb": round(_rss_mb(), 1), "rss_after_imports_mb": round(base_rss, 1)}


def _generators(patient_years: int, times: dict):
    it = _chunks(patient_years)
    while True:
        t = time.perf_counter()
        try:
            k, texts = next(it)
        except StopIteration:
            return
        times["generate"] += time.perf_counter() - t
        yield k, texts


def child_train(patient_years: int) -> dict:
    import pandas as pd

    from insulin_core.configs import DEFAULT_SIZES, TrainConfig
    from insulin_core.evaluation.pipeline import ExperimentConfig, model_config_for, prepare
    from insulin_core.models.train import train_model

    times: dict[str, float] = {"generate": 0.0}
    features = pd.concat([_chunk_features(k, texts, times)[1] for k, texts in _generators(patient_years, times)],
                         ignore_index=True)
    prepared = prepare(features, ExperimentConfig())
    del features
    data = prepared.train_data()
    cfg = model_config_for(prepared, **DEFAULT_SIZES)
    train_cfg = TrainConfig(epochs=2, patience=5, threads=1)
    result = train_model(cfg, train_cfg, data)
    h = result.history
    epoch = h[1].elapsed_s - h[0].elapsed_s if len(h) > 1 else h[0].elapsed_s
    return {"patient_years": patient_years, "train_windows": len(data.train), "val_windows": len(data.val),
            "epoch_s": round(epoch, 2), "first_epoch_s": round(h[0].elapsed_s, 2),
            "windows_per_s": round(len(data.train) / epoch), "peak_rss_mb": round(_rss_mb(), 1),
            "threads": train_cfg.threads}


def run_child(kind: str, size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(size)], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, marker in (("streamed", "o"), ("all at once", "s")):
        rows = [r for r in results["data"] if r["mode"] == mode]
        if rows:
            x = [r["patient_years"] for r in rows]
            ax_t.plot(x, [r["data_path_s"] for r in rows], marker=marker, label=f"data path, {mode}")
            ax_m.plot(x, [r["peak_rss_mb"] for r in rows], marker=marker, label=f"peak RSS, {mode}")
    train = results.get("train", [])
    if train:
        ax_t.plot([r["patient_years"] for r in train], [r["epoch_s"] for r in train], marker="^",
                  label="training, one epoch (measured)")
        ax_m.plot([r["patient_years"] for r in train], [r["peak_rss_mb"] for r in train], marker="^",
                  label="training (all windows in memory)")
    extra = results.get("train_extrapolated", [])
    if extra:
        ax_t.plot([r["patient_years"] for r in extra], [r["epoch_s"] for r in extra], linestyle="--", marker="^",
                  color="grey", label="training, one epoch (extrapolated)")
    for ax, label in ((ax_t, "seconds"), (ax_m, "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cohort size (patient-years, synthetic)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_t.set_title("Time")
    ax_m.set_title("Peak memory (process RSS)")
    fig.suptitle(f"insulin-dash scaling ({results['date']}, {results['machine']})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def machine() -> str:
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs, {model}".strip(", ")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000", help="patient-years, comma separated")
    ap.add_argument("--train-sizes", default="100", help="sizes whose epoch is measured (others extrapolated)")
    ap.add_argument("--all-at-once", default="100,1000", help="sizes also measured without streaming")
    ap.add_argument("--plot", default="docs/performance_scaling.png")
    ap.add_argument("--json", default="bench/scaling_results.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, size = args.child[0], int(args.child[1])
        print(json.dumps(child_train(size) if kind == "train" else child_data(size, kind == "data-all")))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    train_sizes = [int(s) for s in args.train_sizes.split(",") if s]
    all_sizes = [int(s) for s in args.all_at_once.split(",") if s]
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
               "command": "bench/scaling.py " + " ".join(sys.argv[1:]), "data": [], "train": []}
    print(f"{results['machine']}; load average {os.getloadavg()[0]:.1f}")
    for size in sizes:
        for kind in ["data"] + (["data-all"] if size in all_sizes else []):
            start = time.perf_counter()
            r = run_child(kind, size)
            results["data"].append(r)
            print(f"{size:>6} PY {r['mode']:11s}: {r['lines']:>11,} lines {r['windows']:>10,} windows  data path "
                  f"{r['data_path_s']:7.1f} s {r['seconds']}  peak RSS {r['peak_rss_mb']:7.0f} MB "
                  f"(after imports {r['rss_after_imports_mb']:.0f})  [process {time.perf_counter() - start:.0f} s]",
                  flush=True)
        if size in train_sizes:
            r = run_child("train", size)
            results["train"].append(r)
            print(f"{size:>6} PY training: {r['train_windows']:,} training windows, one epoch {r['epoch_s']:.1f} s "
                  f"({r['windows_per_s']:,} windows/s, {r['threads']} threads), peak RSS {r['peak_rss_mb']:.0f} MB",
                  flush=True)
    if results["train"]:
        rate = results["train"][-1]["windows_per_s"]
        per_py = results["train"][-1]["train_windows"] / results["train"][-1]["patient_years"]
        results["train_extrapolated"] = [
            {"patient_years": s, "train_windows": round(per_py * s), "epoch_s": round(per_py * s / rate, 1)}
            for s in sizes if s not in train_sizes]
        for r in results["train_extrapolated"]:
            print(f"{r['patient_years']:>6} PY training (extrapolated at {rate:,} windows/s): "
                  f"~{r['train_windows']:,} windows, one epoch ~{r['epoch_s']:.0f} s")
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        plot(results, ROOT / args.plot)
        print(f"plot: {args.plot}; results: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
