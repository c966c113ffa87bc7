"""Does tuning the P(dose) threshold on the validation part help on the test part? And what does a
small seed ensemble buy? Chrono split, default sizes unless given.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/threshold.py [--seeds 3] [--pooled] [--batch 512]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.models.dose_rule import DOSE_THRESHOLD, to_dose  # noqa: E402
from insulin_core.evaluation.metrics import dose_metrics  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, model_config_for, prepare  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.arrays import predict_raw  # noqa: E402
from insulin_core.models.train import THRESHOLD_GRID, TrainConfig, train_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pooled", action="store_true")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    cohort = load_cohort(resolve_source(None))
    prepared = prepare(cohort.features, ExperimentConfig())
    sizes = {"patient_embedding": 0} if args.pooled else {}
    parts = {"val": prepared.val_idx, "test": prepared.split.test}
    outputs = {name: [] for name in parts}
    start = time.perf_counter()
    for seed in range(args.seeds):
        result = train_model(model_config_for(prepared, **sizes), TrainConfig(seed=seed, batch=args.batch),
                             prepared.train_data())
        for name, idx in parts.items():
            amount, p = predict_raw(result.model, prepared.part(idx))
            outputs[name].append((amount[:, 0], p[:, 0]))
        print(f"seed {seed}: best epoch {result.best_epoch}, {time.perf_counter() - start:.0f} s", flush=True)
    y = {name: prepared.ws.y[idx, 0] for name, idx in parts.items()}
    mean = {name: (np.mean([a for a, _ in out], 0), np.mean([p for _, p in out], 0)) for name, out in outputs.items()}
    val_mae = [np.abs(to_dose(*mean["val"], th) - y["val"]).mean() for th in THRESHOLD_GRID]
    tuned = float(THRESHOLD_GRID[int(np.argmin(val_mae))])
    print(f"Data: {cohort.source.label}; chrono split; sizes {sizes or 'default'}; batch {args.batch}")
    for seed, (amount, p) in enumerate(outputs["test"]):
        print(f"  seed {seed} alone, threshold {DOSE_THRESHOLD:g}: test MAE "
              f"{dose_metrics(y['test'], to_dose(amount, p, DOSE_THRESHOLD))['mae']:.3f}")
    for label, th in ((f"ensemble of {args.seeds}, threshold {DOSE_THRESHOLD:g}", DOSE_THRESHOLD),
                      (f"ensemble, threshold tuned on val ({tuned})", tuned)):
        m = dose_metrics(y["test"], to_dose(*mean["test"], th))
        print(f"  {label}: test MAE {m['mae']:.3f}, R2 {m['r2']:.3f}, MAE on dose occasions {m['mae_dose']:.3f}")


if __name__ == "__main__":
    main()
