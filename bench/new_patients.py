"""How should the network serve a patient it has no embedding row for? Issue 17's probe.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/new_patients.py --split patients|heldout
        [--seeds 0,1,2] [--patient-dropout 0.1] [--data-dir DIR] [--thresholds]

Trains the default model (TrainConfig's patient dropout unless given) per seed and scores the
patients no training saw, the patients split's test part (and its validation part, also unseen
patients) or bench/accuracy.py's 10 held-out patients, four ways:

- the unknown row: the model as it is (amount and P(dose) of embedding row 0, gated at its new-patient
  threshold), and the same at 0.5;
- the mean over every known patient's embedding of the amount and of P(dose);
- the mean amount over known patients with the unknown row's P(dose);
- half and half: the mean of the unknown row's and the known patients' mean heads;

beside the two-stage GBM fit on the same training part. MAE, dose-occasion MAE, missed and
unwanted doses as evaluation/metrics.py counts them (whole units; P(dose) > 0.5 but where a line names
its threshold).

--thresholds also scores the unknown row at thresholds chosen on the validation part seen through row 0
(the identity hidden; `validation_thresholds`): never on the part it is scored on.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accuracy import held_out_split  # noqa: E402
from insulin_core.configs import DEFAULT_SIZES, TrainConfig  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.evaluation.metrics import dose_metrics  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, model_config_for, prepare  # noqa: E402
from insulin_core.models.baselines import make_baseline  # noqa: E402
from insulin_core.models.dose_rule import to_dose  # noqa: E402
from insulin_core.models.predictor import BaselinePredictor  # noqa: E402
from insulin_core.models.train import train_model  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.prep.windows import WindowConfig  # noqa: E402


def parts(features, split: str):
    """(prepared, [(name, windows, indices)]): the training setup and the unseen patients' parts."""
    if split == "heldout":
        prepared, ws, _ = held_out_split(features, WindowConfig())
        return prepared, [("held out", ws, np.arange(len(ws)))]
    prepared = prepare(features, ExperimentConfig(WindowConfig(), split=split))
    return prepared, [(part, prepared.ws, getattr(prepared.split, part)) for part in ("val", "test")]


def scores(dose: np.ndarray, y: np.ndarray) -> str:
    m = dose_metrics(y, dose)
    return (f"MAE {m['mae']:.3f}, dose-occasion MAE {m['mae_dose']:.3f}, "
            f"missed {m['missed']}, unwanted {m['unwanted']}")


# Finer and wider than train.THRESHOLD_GRID (the model's own validation-tuned threshold, 0.3-0.7 by 0.05,
# ties to 0.5): this probe asks where each rule lands, not which threshold to ship.
THRESHOLD_GRID = np.arange(0.200, 0.800, 0.025)


def validation_thresholds(amount: np.ndarray, p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Thresholds for the unknown row read off validation rows: the dose rate matched (the share above
    it equals the share of rows with a dose), the MAE-best, and the best MAE + dose-occasion MAE."""
    scored = [dose_metrics(y, to_dose(amount, p, t)) for t in THRESHOLD_GRID]
    best = lambda key: float(THRESHOLD_GRID[int(np.argmin([key(m) for m in scored]))])  # noqa: E731
    return {"dose rate matched": float(np.quantile(p, 1 - (y > 0).mean())), "MAE-best": best(lambda m: m["mae"]),
            "MAE + dose-occasion MAE": best(lambda m: m["mae"] + m["mae_dose"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=("patients", "heldout"), default="patients")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--patient-dropout", type=float, default=TrainConfig().patient_dropout)
    parser.add_argument("--data-dir", default="../shared/data/aim94")
    parser.add_argument("--thresholds", action="store_true", help="the unknown row at validation-chosen thresholds")
    args = parser.parse_args()
    cohort = load_cohort(resolve_source(args.data_dir))
    prepared, unseen = parts(cohort.features, args.split)
    n_known = len(prepared.scaling.patient_index)
    gbm = BaselinePredictor(make_baseline("two_stage_gbm").fit(prepared.ws, prepared.train_idx))
    for name, ws, idx in unseen:
        print(f"{args.split}, {name} ({len(idx)} decision points): two-stage GBM {scores(gbm.dose(ws, idx), ws.y[idx, 0])}")
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        cfg = TrainConfig(seed=seed, patient_dropout=args.patient_dropout)
        model = train_model(model_config_for(prepared, **DEFAULT_SIZES), cfg, prepared.train_data()).model
        predictor = prepared.predictor(model)
        print(f"seed {seed} (patient dropout {args.patient_dropout}, trained in {time.perf_counter() - start:.0f} s):")
        unknown_row = {}  # part -> (amount, P(dose), y) of the unknown row, for --thresholds
        for name, ws, idx in unseen:
            inputs, y = prepared.scaling.part(ws, idx), ws.y[idx, 0]
            assert (inputs.patient == 0).all()  # every one of them is new to the model
            a0, p0 = predictor.heads_of_inputs(inputs)
            unknown_row[name] = (a0, p0, y)
            known = [predictor.heads_of_inputs(replace(inputs, patient=np.full_like(inputs.patient, k)))
                     for k in range(1, n_known + 1)]
            am, pm = (np.mean([h[i] for h in known], axis=0) for i in (0, 1))
            tuned = predictor.new_patient_threshold  # train.tune_new_patient_threshold's, on validation
            for label, (a, p, t) in {f"unknown row (the model, threshold {tuned:.2f})": (a0, p0, tuned),
                                     "unknown row at 0.5": (a0, p0, 0.5), "mean over known patients": (am, pm, 0.5),
                                     "known patients' amount, unknown row's P": (am, p0, 0.5),
                                     "half and half": ((a0 + am) / 2, (p0 + pm) / 2, 0.5)}.items():
                print(f"  {name:9s} {label:42s} {scores(to_dose(a, p, t), y)}", flush=True)
        if args.thresholds:
            val = prepared.scaling.part(prepared.ws, prepared.val_idx)
            heads = predictor.heads_of_inputs(replace(val, patient=np.zeros_like(val.patient)))
            for rule, t in validation_thresholds(*heads, prepared.ws.y[prepared.val_idx, 0]).items():
                for name, (a, p, y) in unknown_row.items():
                    print(f"  {name:9s} unknown row, threshold {t:.3f} ({rule}) {scores(to_dose(a, p, t), y)}",
                          flush=True)


if __name__ == "__main__":
    main()
