"""The `predict` command: a what-if dose for a patient's decision moment, and sweeps."""
from __future__ import annotations

import argparse
import json

from .common import CliError, _add_data_args, _bundle_and_cohort, _positive_int


def _sweep_points(text: str) -> int:
    from ..whatif.engine import MAX_SWEEP_POINTS

    value = _positive_int(text)
    if value > MAX_SWEEP_POINTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SWEEP_POINTS:,} points, got {value:,}")
    return value


def _glucose_arg(text: str) -> float:
    from ..whatif.engine import check_glucose

    try:
        return check_glucose(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_predict(args: argparse.Namespace) -> int:
    from ..bundles.serving import bundle_experiment
    from ..whatif.engine import Scenario, WhatIf

    bundle, cohort = _bundle_and_cohort(args)
    try:
        scenario = Scenario(args.patient, args.at, glucose_now=args.glucose,
                            meal_now=args.meal, exercise_now=args.exercise)
        engine = WhatIf(bundle, cohort.events, cohort.features)
        pred = engine.predict(scenario)
        sweep = None
        if args.sweep == "glucose":
            sweep = engine.sweep_glucose(scenario, points=args.points)
        elif args.sweep == "meal":
            sweep = engine.sweep_meal(scenario)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        out = pred.to_dict()
        if sweep is not None:
            out["sweep"] = {"variable": sweep.variable,
                            "curve": json.loads(sweep.table().to_json(orient="records"))}
        print(json.dumps(out, indent=2, default=str))
        return 0
    inputs = pred.inputs
    glucose = "none" if inputs["glucose_now"] is None else f"{inputs['glucose_now']:g} mg/dL"
    print(f"Patient {pred.patient_id} at {pred.moment:%Y-%m-%d %H:%M} ({pred.day_part}); glucose {glucose}, "
          f"meal {inputs['meal_now']}, exercise {inputs['exercise_now']}")
    uncertain = "  UNCERTAIN: dose or no dose" if any(f.kind == "uncertain" for f in pred.flags) else ""
    window = bundle_experiment(bundle).window.dose_window
    print(f"Decision dose of Regular (at the moment or written within {window} min): {pred.dose:g} U  "
          f"(90% interval {pred.low:g}-{pred.high:g} U, P(dose) {pred.p_dose:.2f}){uncertain}")
    print(f"Unedited: {pred.unedited_dose:g} U  (change {pred.change:+g} U)")
    for flag in pred.flags:
        print(f"FLAG {flag.kind}: {flag.message}")
    if not pred.flags:
        print("No safety flags.")
    if sweep is not None:
        print(sweep.table().to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _add_predict(sub) -> None:
    from ..data.codes import LEVEL_NAMES
    from ..paths import DEFAULT_MODELS_DIR

    predict = sub.add_parser("predict", help="what-if dose for a patient's decision moment")
    predict.add_argument("--model", required=True)
    predict.add_argument("--patient", type=int, required=True)
    predict.add_argument("--at", default="next", help="a decision point's timestamp (e.g. 1991-03-05 12:30), or next")
    predict.add_argument("--glucose", type=_glucose_arg, help="glucose now, mg/dL")
    predict.add_argument("--meal", choices=LEVEL_NAMES)
    predict.add_argument("--exercise", choices=LEVEL_NAMES)
    predict.add_argument("--sweep", choices=("glucose", "meal"))
    predict.add_argument("--points", type=_sweep_points, default=25, help="points of a glucose sweep (at most 1,000)")
    predict.add_argument("--json", action="store_true")
    _add_data_args(predict)
    predict.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    predict.set_defaults(run=cmd_predict)
