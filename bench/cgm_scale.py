"""The data path and one training epoch at CGM scale: N patient-years of 5-minute CGM + pump data
(bench/cgm_generator.py: one HUPA-UCM CSV per patient-year, 105,120 rows each), each size in a
fresh process of its own, per patient (the chunked path a user with one export per patient has).

    .venv/bin/python bench/cgm_scale.py --patient-years 100,1000 [--max-seconds 3000,400]
        [--train-max-py 100] [--train-sample 131072] [--aim94-py 50] [--folder /tmp/cgm_scale]
        [--json bench/cgm_scale_results.json]

What each stage starts from, per patient (timed one patient at a time, summed):
- read: the patient's CSV file on disk -> HupaUcmReader().read -> events + quality report;
- timeline: events -> timeline.build_timeline; features: timeline -> features.add_features;
- windows: features -> windows.make_windows (the default WindowConfig);
- train (sizes <= --train-max-py): the windows of every patient held as one training set (70% of
  each patient's windows, oldest first, 10% validation, as the chrono split) and one epoch of the
  default model (configs.DEFAULT_SIZES, TrainConfig(threads=1)) over a random sample of
  --train-sample training windows (plus a proportional validation sample), epoch 2 timed; the full
  epoch is extrapolated at that windows/s (a batch costs the same whatever the set's size: it is
  gathered from the held rows), and said so. Sizes above --train-max-py are extrapolated.
Generating the CSVs is timed apart and not part of the data path (files already in --folder are
reused: patient k of the 1,000 is patient k of the 100); a patient's file is made as it is reached.

Memory: the process's peak resident set during each stage (VmHWM, reset through
/proc/self/clear_refs before every stage call; max over patients); it includes what the process
already holds (imports, and with training the windows kept so far). --max-seconds bounds a size's
data path: when it runs out, the patients done are reported and the rest extrapolated (said so).
AIM94 reference (--aim94-py): the AIM94-format demo (insulin_core/data/demo.py, 50 patients x 365
days a chunk) through the same stages, in a process of its own, for per-patient-year ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

STAGES = ("read", "timeline", "features", "windows")
TRAIN_SHARE, VAL_SHARE = 0.7, 0.1  # of each patient's windows, oldest first (splits.FRACTIONS)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (Linux >= 4.0)


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


class Meter:
    """Seconds, rows and peak MB per stage, summed / maxed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.peak: dict[str, float] = {}

    def run(self, stage: str, fn, *args, rows=len):
        reset_peak()
        t = time.perf_counter()
        out = fn(*args)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t
        self.peak[stage] = max(self.peak.get(stage, 0.0), peak_mb())
        self.rows[stage] = self.rows.get(stage, 0) + int(rows(out))
        return out


# ---- the stages, one patient ----------------------------------------------------------------------
def read_patient(path: Path):
    from insulin_core.data.readers.hupa_ucm import HupaUcmReader

    return HupaUcmReader().read({path.name: path.read_bytes()}, f"synthetic CGM {path.name}")


def patient_stages(path: Path, meter: Meter):
    """(loaded, timeline, features, windows) of one patient, each stage metered."""
    from insulin_core.prep.features import add_features
    from insulin_core.prep.timeline import build_timeline
    from insulin_core.prep.windows import WindowConfig, make_windows

    loaded = meter.run("read", read_patient, path, rows=lambda r: r.report.lines)
    meter.rows["events"] = meter.rows.get("events", 0) + len(loaded.events)
    timeline = meter.run("timeline", build_timeline, loaded.events)
    features = meter.run("features", add_features, timeline)
    windows = meter.run("windows", make_windows, features, WindowConfig())
    return loaded, timeline, features, windows


def ensure_file(folder: Path, patient: int, days: int) -> tuple[Path, float]:
    """The patient's CSV (made if missing: generated as it is reached, so --max-seconds bounds the
    generating too) and the seconds spent making it."""
    from cgm_generator import file_name, write_cohort

    path, t = folder / file_name(patient), time.perf_counter()
    if not path.exists():
        write_cohort(folder, 1, days, first=patient)
    return path, time.perf_counter() - t


# ---- training -------------------------------------------------------------------------------------
class Kept:
    """Each patient's windows as the network takes them: its seq rows once, the moments and targets
    of its windows (split oldest first into training and validation), and its patient index."""

    def __init__(self) -> None:
        self.parts: dict[str, list] = {"train": [], "val": []}
        self.rows_held = 0

    def add(self, ws, index: int) -> None:
        import numpy as np

        n = len(ws)
        cut_train, cut_val = int(n * TRAIN_SHARE), int(n * (TRAIN_SHARE + VAL_SHARE))
        for name, (lo, hi) in (("train", (0, cut_train)), ("val", (cut_train, cut_val))):
            part = ws.seq_rows.select(np.arange(lo, hi))
            self.rows_held += len(part.rows)
            self.parts[name].append((part, ws.now[lo:hi].copy(), ws.y[lo:hi].copy(), np.full(hi - lo, index)))

    def part(self, name: str):
        """One ArrayPart of every patient's windows (row blocks concatenated, window ends shifted)."""
        import numpy as np

        from insulin_core.models.arrays import ArrayPart
        from insulin_core.prep.windows import RowWindows

        pieces = self.parts.pop(name)
        offsets = np.cumsum([0] + [len(p[0].rows) for p in pieces])[:-1]
        seq = RowWindows(np.concatenate([p[0].rows for p in pieces]),
                         np.concatenate([p[0].ends + o for p, o in zip(pieces, offsets)]), pieces[0][0].length)
        out = ArrayPart(seq, *(np.concatenate([p[i] for p in pieces]) for i in (1, 3, 2)))  # now, patient, y
        del pieces
        return out


def scaled(part, lo, hi):
    """Min-max scaled as the pipeline's InputScaling (train-part range), so the batches see the values
    the network would; scaling is not what is timed here."""
    import numpy as np

    from insulin_core.models.arrays import ArrayPart

    def unit(x, a, b):
        return ((x - a) / np.where(b > a, b - a, 1.0)).astype(np.float32)

    return ArrayPart(part.seq.map_rows(lambda r: unit(r, lo[0], hi[0])), unit(part.now, lo[1], hi[1]),
                     part.patient, part.y)


def sample(part, n: int, rng):
    import numpy as np

    from insulin_core.models.arrays import ArrayPart
    from insulin_core.prep.windows import RowWindows

    idx = np.sort(rng.choice(len(part), size=min(n, len(part)), replace=False))
    return ArrayPart(RowWindows(part.seq.rows, part.seq.ends[idx], part.seq.length), part.now[idx],
                     part.patient[idx], part.y[idx])


def train_epoch(kept: Kept, patients: int, sample_n: int, meter: Meter) -> dict:
    import numpy as np

    from insulin_core.configs import DEFAULT_SIZES, ModelConfig, TrainConfig
    from insulin_core.models.arrays import TrainData
    from insulin_core.models.train import train_model
    from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES, now_roles

    reset_peak()
    t = time.perf_counter()
    train, val = kept.part("train"), kept.part("val")
    lo = (train.seq.rows.min(0), train.now.min(0))
    hi = (train.seq.rows.max(0), train.now.max(0))
    train, val = scaled(train, lo, hi), scaled(val, lo, hi)
    assemble_s, assemble_peak = time.perf_counter() - t, peak_mb()
    held_mb = sum(a.nbytes for p in (train, val) for a in (p.seq.rows, p.seq.ends, p.now, p.y, p.patient)) / 2**20
    rng = np.random.default_rng(0)
    n_val = max(1, round(sample_n * VAL_SHARE / TRAIN_SHARE))
    data = TrainData(sample(train, sample_n, rng), sample(val, n_val, rng))
    cfg = ModelConfig(n_seq_features=len(SEQ_FEATURES), n_now_features=len(NOW_FEATURES), n_patients=patients,
                      now_roles=now_roles(NOW_FEATURES), **DEFAULT_SIZES)
    train_cfg = TrainConfig(epochs=2, patience=5, threads=1)
    reset_peak()
    result = train_model(cfg, train_cfg, data)
    h = result.history
    epoch = h[1].elapsed_s - h[0].elapsed_s
    rate = (len(data.train) + len(data.val)) / epoch
    return {"train_windows": len(train), "val_windows": len(val), "sample_train": len(data.train),
            "sample_val": len(data.val), "sample_epoch_s": round(epoch, 2), "first_epoch_s": round(h[0].elapsed_s, 2),
            "windows_per_s": round(rate), "epoch_s_extrapolated": round((len(train) + len(val)) / rate, 1),
            "assemble_s": round(assemble_s, 2), "assemble_peak_mb": round(assemble_peak),
            "train_peak_mb": round(peak_mb()), "held_mb": round(held_mb), "threads": train_cfg.threads}


# ---- the children ---------------------------------------------------------------------------------
def child_cgm(patient_years: int, folder: Path, days: int, max_seconds: float, train_max: int,
              train_sample: int) -> dict:
    import numpy as np  # noqa: F401 (imports before the baseline RSS)
    import insulin_core.prep.windows  # noqa: F401
    import insulin_core.data.readers.hupa_ucm  # noqa: F401

    base = rss_mb()
    meter, kept = Meter(), (Kept() if patient_years <= train_max else None)
    start, done, generate_s = time.perf_counter(), 0, 0.0
    for index in range(1, patient_years + 1):
        if time.perf_counter() - start - generate_s > max_seconds:
            break
        path, seconds = ensure_file(folder, index, days)
        generate_s += seconds
        loaded, timeline, features, ws = patient_stages(path, meter)
        meter.rows["decision_points"] = meter.rows.get("decision_points", 0) + int(timeline["decision_point"].sum())
        if kept is not None:
            kept.add(ws, index)
        del loaded, timeline, features, ws
        done += 1
    out = {"patient_years": patient_years, "patients_done": done, "days": days,
           "generate_s": round(generate_s, 1), "rss_after_imports_mb": round(base),
           "seconds": {s: round(v, 2) for s, v in meter.seconds.items()}, "rows": meter.rows,
           "peak_mb": {s: round(v) for s, v in meter.peak.items()}}
    if kept is not None and done == patient_years:
        out["train"] = train_epoch(kept, patient_years, train_sample, meter)
    return out


def child_aim94(patient_years: int) -> dict:
    from insulin_core.data.aim94 import load_texts
    from insulin_core.data.demo import DemoConfig, generate_cohort
    from insulin_core.prep.features import add_features
    from insulin_core.prep.timeline import build_timeline
    from insulin_core.prep.windows import WindowConfig, make_windows

    base, meter = rss_mb(), Meter()
    for k in range(max(1, round(patient_years / 50))):
        texts = generate_cohort(DemoConfig(patients=50, days=365, seed=k))
        loaded = meter.run("read", load_texts, texts, f"synthetic chunk {k}", rows=lambda r: r.report.lines)
        meter.rows["events"] = meter.rows.get("events", 0) + len(loaded.events)
        timeline = meter.run("timeline", build_timeline, loaded.events)
        meter.rows["decision_points"] = meter.rows.get("decision_points", 0) + int(timeline["decision_point"].sum())
        features = meter.run("features", add_features, timeline)
        meter.run("windows", make_windows, features, WindowConfig())
    return {"patient_years": 50 * max(1, round(patient_years / 50)), "rss_after_imports_mb": round(base),
            "seconds": {s: round(v, 2) for s, v in meter.seconds.items()}, "rows": meter.rows,
            "peak_mb": {s: round(v) for s, v in meter.peak.items()}}


def run_child(args: list[str], timeout: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the report -----------------------------------------------------------------------------------
def per_py(r: dict) -> dict[str, float]:
    """Seconds per patient-year of each stage (over the patients done)."""
    years = r.get("patients_done", r["patient_years"]) * r.get("days", 365) / 365
    return {s: v / years for s, v in r["seconds"].items()}


def table(results: dict) -> list[str]:
    lines = ["| patient-years | stage | rows in | seconds | rows / s | s per patient-year | peak RSS (MB) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["cgm"] + ([results["aim94"]] if results.get("aim94") else []):
        label = f"{r['patient_years']:,}" + ("" if "days" in r else " (AIM94 demo)")
        if r.get("patients_done", r["patient_years"]) < r["patient_years"]:
            label += f" ({r['patients_done']} patients done)"
        unit = {"read": "lines" if "days" not in r else "CSV rows", "timeline": "events", "features": "timeline rows",
                "windows": "timeline rows"}
        rows_in = {"read": r["rows"]["read"], "timeline": r["rows"]["events"], "features": r["rows"]["timeline"],
                   "windows": r["rows"]["features"]}
        for s in STAGES:
            lines.append(f"| {label} | {s} | {rows_in[s]:,} {unit[s]} | {r['seconds'][s]:.1f} | "
                         f"{rows_in[s] / max(r['seconds'][s], 1e-9):,.0f} | {per_py(r)[s]:.3f} | {r['peak_mb'][s]:,} |")
        t = r.get("train")
        if t:
            lines.append(f"| {label} | one epoch | {t['train_windows'] + t['val_windows']:,} windows | "
                         f"~{t['epoch_s_extrapolated']:,.0f} (from {t['sample_train'] + t['sample_val']:,} windows in "
                         f"{t['sample_epoch_s']:.1f} s) | {t['windows_per_s']:,} | "
                         f"{t['epoch_s_extrapolated'] / r['patient_years']:.1f} | {t['train_peak_mb']:,} |")
    return lines


def _ratio(after: float, before: float, digits: int = 2) -> str:
    """after / before as "1.23x"; a stage too quick to time on the small run has no ratio (a few
    milliseconds round to 0.00 s on two patients, and failed a test once by dividing by it)."""
    return f"{after / before:.{digits}f}x" if before > 0 else "n/a (under 10 ms on the smaller run)"


def ratios(results: dict) -> list[str]:
    out = []
    cgm = [r for r in results["cgm"] if r.get("patients_done")]
    stages = list(STAGES)
    if len(cgm) >= 2:
        a, b = cgm[0], cgm[-1]
        pa, pb = per_py(a), per_py(b)
        out.append(f"per patient-year, {b['patient_years']:,} vs {a['patient_years']:,} patient-years: "
                   + ", ".join(f"{s} {_ratio(pb[s], pa[s])}" for s in stages)
                   + f"; data path {_ratio(sum(pb[s] for s in stages), sum(pa[s] for s in stages))} (1.00 = linear)")
    aim = results.get("aim94")
    if aim and cgm:
        c = cgm[-1] if len(cgm) == 1 else cgm[0]
        pc, pa = per_py(c), per_py(aim)
        out.append(f"per patient-year, CGM ({c['patient_years']:,}) vs AIM94 demo ({aim['patient_years']}): "
                   + ", ".join(f"{s} {_ratio(pc[s], pa[s], 0)}" for s in stages)
                   + f"; data path {_ratio(sum(pc[s] for s in stages), sum(pa[s] for s in stages), 0)}; "
                   f"rows read {c['rows']['read'] / c['patients_done'] / (aim['rows']['read'] / aim['patient_years']):.0f}x, "
                   f"windows {c['rows']['windows'] / c['patients_done'] / (aim['rows']['windows'] / aim['patient_years']):.0f}x")
    return out


def main() -> int:
    from scaling import machine  # the machine line bench/scaling.py prints

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patient-years", default="100,1000", help="sizes, comma separated")
    ap.add_argument("--days", type=int, default=365, help="days per patient (a patient-year: 365)")
    ap.add_argument("--folder", default="/tmp/cgm_scale", help="where the generated CSVs are kept")
    ap.add_argument("--max-seconds", default="3000", help="the data path's time budget per size (one for all, or "
                    "one per size, comma separated)")
    ap.add_argument("--train-max-py", type=int, default=100, help="largest size whose windows are held and trained on")
    ap.add_argument("--train-sample", type=int, default=131072, help="training windows in the timed epoch")
    ap.add_argument("--aim94-py", type=int, default=50, help="AIM94 demo patient-years measured alike (0: none)")
    ap.add_argument("--json", default="bench/cgm_scale_results.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, size = args.child[0], int(args.child[1])
        r = (child_aim94(size) if kind == "aim94" else
             child_cgm(size, Path(args.folder), args.days, float(args.max_seconds), args.train_max_py, args.train_sample))
        print(json.dumps(r))
        return 0
    common = ["--folder", args.folder, "--days", str(args.days), "--train-max-py", str(args.train_max_py),
              "--train-sample", str(args.train_sample)]
    sizes = [int(s) for s in args.patient_years.split(",") if s]
    budgets = [float(b) for b in args.max_seconds.split(",") if b]
    budgets = budgets * len(sizes) if len(budgets) == 1 else budgets
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
               "load_average_start": round(os.getloadavg()[0], 1),
               "command": "bench/cgm_scale.py " + " ".join(sys.argv[1:]), "cgm": [], "aim94": None}
    print(f"{results['machine']}; load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.aim94_py:
        results["aim94"] = run_child(["aim94", str(args.aim94_py)], timeout=1800)
        print("AIM94", json.dumps(results["aim94"]), flush=True)
    for size, budget in zip(sizes, budgets):
        r = run_child(["cgm", str(size), *common, "--max-seconds", str(budget)], timeout=budget * 3 + 3600)
        results["cgm"].append(r)
        print("CGM", json.dumps(r), flush=True)
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    results["table"], results["ratios"] = table(results), ratios(results)
    print("\n".join(results["table"] + [""] + results["ratios"]))
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
