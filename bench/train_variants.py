"""One training of a model variant on the chrono split: wall and CPU time, epochs, test scores.
The rows of docs/performance.md "Training: idle measurements and the window / bins trade-off".

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/train_variants.py --window 3 --sizes '{"now_bins": 8}' --seeds 0,1,2
    ... --train '{"precision": "bf16"}'     # any TrainConfig field; --sizes: any model size field

Prints one JSON line per seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.configs import DEFAULT_SIZES  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, evaluate, model_config_for, prepare  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.train import TrainConfig, train_model  # noqa: E402
from insulin_core.prep.windows import WindowConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None, help="AIM94 folder (default: $AIM94_DIR, else the demo cohort)")
    ap.add_argument("--window", type=int, default=WindowConfig().length)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--sizes", default="{}", help="JSON: model sizes that differ from the default")
    ap.add_argument("--train", default="{}", help="JSON: TrainConfig fields that differ from the default")
    args = ap.parse_args()
    cohort = load_cohort(resolve_source(args.data_dir))
    prepared = prepare(cohort.features, ExperimentConfig(WindowConfig(length=args.window), split="chrono"))
    sizes, train = json.loads(args.sizes), json.loads(args.train)
    for seed in map(int, args.seeds.split(",")):
        cfg = TrainConfig(**{"seed": seed, "threads": args.threads, **train})
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_model(model_config_for(prepared, **{**DEFAULT_SIZES, **sizes}), cfg, prepared.train_data())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ev = evaluate(result.model, prepared, baselines=[])
        m = ev.headline()
        print(json.dumps({"data": cohort.source.label, "window": args.window, "sizes": sizes, "train": train,
                          "threads": args.threads, "seed": seed, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                          "epochs": len(result.history), "best": result.best_epoch, "mae": round(m["mae"], 3),
                          "mae_dose": round(m["mae_dose"], 3), "r2": round(m["r2"], 3),
                          "coverage": round(ev.coverage["coverage"], 3)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
