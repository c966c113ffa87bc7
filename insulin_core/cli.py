"""`python -m insulin_core COMMAND`: the headless face of the core.

Every failure a user can cause (bad arguments, missing folders, broken files, unknown models)
ends in one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .codes import DEFAULT_DOSE_WINDOW_MIN
from .metrics import METRIC_COLUMNS


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage over several lines
        raise CliError(f"{self.prog}: {message}")


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


INSULIN_WORDS = {"regular": "Regular", "nph": "NPH", "ultralente": "UltraLente"}


def cmd_check_data(args: argparse.Namespace) -> int:
    from .source import load_source, resolve_source

    from .features import build_timeline, fold_summary

    source = resolve_source(args.data_dir)
    result = load_source(source)
    report = result.report.to_dict()
    report["source"] = source.label
    report["decision_doses"] = fold_summary(build_timeline(result.events), args.dose_window)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    from .labels import REASON_LABELS

    print(f"Source: {source.label}")
    print(f"Files {report['files']}  lines {report['lines']}  accepted {report['accepted']}  "
          f"rejected {report['rejected_total']}  patients {report['patients']}  events {report['events']}")
    if report["rejected"]:
        print("Lines left out, and why:")
    for reason, count in sorted(report["rejected"].items(), key=lambda kv: -kv[1]):
        example = report["examples"][reason][0]
        print(f"  {count:5d}  {REASON_LABELS.get(reason, reason)}\n"
              f"         e.g. {example['file']} line {example['line']}: {example['text']!r}")
    censored = ", ".join(f"{n} {'above' if k == 'high' else 'below'} the meter's range" for k, n in report["censored"].items())
    implausible = ", ".join(f"{n} {INSULIN_WORDS.get(k, k)}" for k, n in report["implausible"].items())
    print(f"Glucose readings written as 0Hi/0Lo: {censored or 'none'}. Implausible doses (typing errors, kept but "
          f"left out of training): {implausible or 'none'}. Conflicting values at one time: {report['conflicts']}.")
    for entry in report["skipped_files"]:
        print(f"  not read: {entry}")
    fold = report["decision_doses"]
    print(f"Regular written on a row of its own: {fold['insulin_only_regular']}. Counted as the dose of the decision "
          f"point up to {fold['dose_window_min']} min before it: {fold['folded']} (for "
          f"{fold['decision_points_with_folded_dose']} decision points); with no decision point before it, history "
          f"only: {fold['alone']}. Patients who wrote most of their doses that way: {fold['patients_mostly_late']}.")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, write_cohort

    try:
        cfg = DemoConfig(patients=args.patients, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    paths = write_cohort(Path(args.dest), cfg)
    print(f"Wrote a SYNTHETIC demo cohort: {len(paths)} files to {args.dest}")
    return 0


def cmd_download_data(args: argparse.Namespace) -> int:
    from .download import UCI_URL, DownloadError, download_aim94

    try:
        if args.source == "hupa-ucm":
            from .download_hupa import HUPA_URL, download_hupa_ucm

            result = download_hupa_ucm(Path(args.dest), url=args.url or HUPA_URL)
        else:
            result = download_aim94(Path(args.dest), url=args.url or UCI_URL)
    except DownloadError as exc:
        raise CliError(str(exc)) from None
    what = "HUPA-UCM preprocessed files" if args.source == "hupa-ucm" else "AIM94 files"
    rows = "rows" if args.source == "hupa-ucm" else "lines"
    print(f"Downloaded {result.files} {what} ({result.lines:,} {rows}) from {result.url} into {result.dest}")
    for note in (*result.notes, *(f"refused archive member {m}" for m in result.refused)):
        print(f"  note: {note}")
    if args.source == "aim94":
        print(f"Use them with --data-dir {result.dest} or AIM94_DIR={result.dest}")
    return 0


def _dose_window(text: str) -> int:
    from .features import check_dose_window

    try:
        return check_dose_window(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dense(text: str) -> tuple[int, ...]:
    from .configs import parse_dense

    try:
        sizes = parse_dense(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 64,32, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected one or more sizes >= 1, got {text!r}")
    return sizes


def _patients(text: str) -> tuple[int, ...]:
    if text == "all":
        return ()
    try:
        return tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or patient numbers like 1,5,9, got {text!r}") from None


def _load_cohort(data_dir: str | None):
    from .dataset import load_cohort
    from .source import resolve_source

    return load_cohort(resolve_source(data_dir))


def _print_metrics(metrics, cols: list[str] | None = None) -> None:
    """A metrics table with plain column and model / baseline names (insulin_core/labels.py)."""
    from .labels import plain_table

    cols = cols or ["name", "rows", "mae", "rmse", "r2", "within_1u", "mae_dose", "n"]
    print(plain_table(metrics[[c for c in cols if c in metrics.columns]]).to_string(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))


def cmd_train(args: argparse.Namespace) -> int:
    if args.nproc > 1:  # the same command in N processes under torchrun, with --distributed
        from .distributed import launch

        return launch(args.nproc, _without_nproc(sys.argv[1:] if args.argv is None else args.argv))
    if args.distributed:
        from .distributed import process_group

        try:
            group = process_group()
            group.__enter__()
        except ValueError as exc:
            raise CliError(str(exc)) from None
        try:
            return _train_and_save(args)
        finally:
            group.__exit__(None, None, None)
    return _train_and_save(args)


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _train_and_save(args: argparse.Namespace) -> int:
    from . import distributed
    from .configs import MAX_MEMBERS
    from .pipeline import ExperimentConfig, bundle_meta, run_experiment
    from .registry import BundleError, check_name
    from .train import TrainConfig
    from .windows import WindowConfig

    try:
        check_name(args.name)
        exp = ExperimentConfig(WindowConfig(args.window, args.target, args.multi_output, args.dose_window),
                               args.split, args.patients, seed=args.seed)
        train_cfg = TrainConfig(epochs=args.epochs, patience=args.patience, batch=args.batch, lr=args.lr,
                                seed=args.seed, threads=args.threads, schedule=args.schedule,
                                precision=args.precision, ema=args.ema)
        sizes = {"lstm_hidden": args.lstm, "lstm_layers": args.lstm_layers, "gru_hidden": args.gru,
                 "gru_layers": args.gru_layers, "dense": args.dense, "dropout": args.dropout,
                 "patient_embedding": args.embedding, "attention": args.attention, "monotone": args.monotone,
                 "members": args.members}
        if args.members > MAX_MEMBERS:
            raise ValueError(f"--members: at most {MAX_MEMBERS}, got {args.members}")
    except (ValueError, BundleError) as exc:
        raise CliError(str(exc)) from None
    lead = distributed.rank() == 0  # the only process that prints, evaluates baselines and saves
    cohort = _load_cohort(args.data_dir)
    if lead:
        print(f"Data: {cohort.source.label}" + (f"; {distributed.world_size()} processes" if distributed.active() else ""))

    def show(log) -> None:
        print(f"epoch {log.epoch:3d}  train {log.train_loss:.4f}  val {log.val_loss:.4f}  "
              f"val MAE {log.val_mae:.3f} U  lr {log.lr:.1e}  {log.elapsed_s:6.1f}s", flush=True)

    result = run_experiment(cohort.features, exp, sizes, train_cfg, show, baselines=None if lead else [])
    if not lead:
        return 0
    if result.training.message:
        print(result.training.message)
    print(f"Stopped: {result.training.stop_reason} (best epoch {result.training.best_epoch}); "
          f"prepare {result.seconds['prepare']:.1f}s, train {result.seconds['train']:.1f}s, "
          f"evaluate {result.seconds['evaluate']:.1f}s")
    _print_metrics(result.evaluation.metrics)
    meta = bundle_meta(result, exp, train_cfg, cohort.source.label, cohort.fingerprint)
    return _save(result.training.model, meta, args.name, args)


def _save(model, meta: dict, name: str, args: argparse.Namespace) -> int:
    """Save a trained model as a bundle; a taken name or a bad one is one line, exit 2."""
    from .registry import BundleError, save_bundle

    try:
        path = save_bundle(model, meta, name, Path(args.models_dir), overwrite=args.overwrite)
    except BundleError as exc:
        raise CliError(str(exc)) from None
    print(f"Saved {path}")
    return 0


def _bundle_and_cohort(args: argparse.Namespace):
    """The saved bundle --model and the cohort it is used on; notes about the fit go to stderr."""
    from .registry import BundleError, check_name, load_bundle
    from .serving import check_bundle_fits

    try:  # a name inside the models folder, as train saves it: never a path ("../x", "/abs")
        bundle = load_bundle(Path(args.models_dir) / check_name(args.model))
    except BundleError as exc:
        raise CliError(str(exc)) from None
    cohort = _load_cohort(args.data_dir)
    for note in check_bundle_fits(bundle, cohort):
        print(f"note: {note}", file=sys.stderr)
    return bundle, cohort


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .serving import metrics_of, predictions_table

    bundle, cohort = _bundle_and_cohort(args)
    table = predictions_table(bundle, cohort)
    test = table[table["part"] == "test"]
    metrics = metrics_of(table, "test")
    if args.predictions:
        cols = ["patient_id", "timestamp", "part", "actual", "predicted"] + list(metrics["name"][1:])
        written = test[cols].rename(columns={"part": "split"})
        written.to_csv(args.predictions, index=False)
        described = write_column_descriptions(args.predictions, written.columns)
        print(f"Wrote {len(written)} test rows to {args.predictions}; what each column holds: {described}",
              file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"model": args.model, "data": cohort.source.label, "part": "test", "n": len(test),
                          "metrics": metrics.to_dict("records")}, indent=2, default=float))
    else:
        print(f"Model {args.model} on {cohort.source.label}, test part ({len(test)} decision points):")
        _print_metrics(metrics, ["name", *METRIC_COLUMNS])
    return 0


def column_descriptions_path(csv_path: str | Path) -> Path:
    """Where the descriptions of a CSV's columns go: beside it, FILE.columns.csv."""
    path = Path(csv_path)
    return path.with_name(f"{path.stem}.columns.csv")


def write_column_descriptions(csv_path: str | Path, columns) -> Path:
    """A CSV keeps machine column names; this sidecar (column, description) says what each holds,
    from the same label table as the pages (insulin_core/labels.py)."""
    from .labels import describe_columns

    target = column_descriptions_path(csv_path)
    describe_columns(columns).to_csv(target, index=False)
    return target


def _add_train(sub) -> None:
    from .configs import DEFAULT_SIZES as D, SCHEDULES, TrainConfig
    from .paths import DEFAULT_MODELS_DIR
    from .splits import DEFAULT_SPLIT, SPLITS
    from .windows import TARGETS, WindowConfig

    T, W = TrainConfig(), WindowConfig()

    train = sub.add_parser("train", help="train a model and save it as a bundle")
    train.add_argument("--data-dir")
    train.add_argument("--patients", type=_patients, default=(), help="all, or numbers like 1,5,9")
    train.add_argument("--window", type=_positive_int, default=W.length)
    train.add_argument("--lstm", type=_positive_int, default=D["lstm_hidden"])
    train.add_argument("--lstm-layers", type=_positive_int, default=D["lstm_layers"])
    train.add_argument("--gru", type=_positive_int, default=D["gru_hidden"])
    train.add_argument("--gru-layers", type=_positive_int, default=D["gru_layers"])
    train.add_argument("--dense", type=_dense, default=D["dense"])
    train.add_argument("--dropout", type=float, default=D["dropout"])
    train.add_argument("--embedding", type=int, default=D["patient_embedding"],
                       help="patient embedding size (0 = pooled model)")
    train.add_argument("--attention", action=argparse.BooleanOptionalAction, default=D["attention"],
                       help="attention pooling over the window's GRU outputs, beside the last state")
    train.add_argument("--members", type=_positive_int, default=D["members"],
                       help="networks trained side by side whose answers are averaged (an ensemble)")
    train.add_argument("--monotone", action=argparse.BooleanOptionalAction, default=D["monotone"],
                       help="monotone by construction: the dose never falls as glucose now rises, nor rises with "
                            "exercise now (--no-monotone: the network before it, for comparison)")
    train.add_argument("--epochs", type=_positive_int, default=T.epochs)
    train.add_argument("--patience", type=_positive_int, default=T.patience)
    train.add_argument("--batch", type=_positive_int, default=T.batch)
    train.add_argument("--lr", type=float, default=T.lr)
    train.add_argument("--threads", type=int, default=T.threads, help="torch threads (0 = torch's default)")
    train.add_argument("--schedule", choices=SCHEDULES, default=T.schedule,
                       help="learning-rate schedule: onecycle (warm-up, cosine decay over --epochs) or plateau")
    train.add_argument("--ema", type=float, default=T.ema,
                       help="decay of the weights' moving average kept as the model (0 = the last weights); "
                            "it averages over about 1/(1-ema) optimiser steps")
    train.add_argument("--precision", choices=("fp32", "bf16"), default=T.precision,
                       help="bf16: bfloat16 autocast for the training passes (CPUs with AMX/AVX-512 BF16, GPUs)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel: run under torchrun (torchrun --nproc-per-node N -m insulin_core train "
                            "--distributed ...); gloo on CPU, nccl on GPUs; rank 0 saves the bundle")
    train.add_argument("--nproc", type=_positive_int, default=1,
                       help="start this training under torchrun in N processes on this machine (implies --distributed)")
    train.set_defaults(argv=None)
    train.add_argument("--target", choices=TARGETS, default=W.target)
    train.add_argument("--dose-window", type=_dose_window, default=DEFAULT_DOSE_WINDOW_MIN, metavar="MIN",
                       help="the decision dose: Regular at the decision point plus insulin-only Regular up to MIN "
                            "minutes after it, before the next decision point (0 = the moment's own dose only)")
    train.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    train.add_argument("--multi-output", action="store_true",
                       help="predict Regular, NPH and UltraLente together (metrics stay on Regular)")
    train.add_argument("--seed", type=int, default=T.seed)
    train.add_argument("--name", required=True)
    train.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    train.add_argument("--overwrite", action="store_true")
    train.set_defaults(run=cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a saved model and every baseline on the test part")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--predictions", metavar="FILE.csv")
    evaluate.set_defaults(run=cmd_evaluate)


def _sweep_points(text: str) -> int:
    from .whatif import MAX_SWEEP_POINTS

    value = _positive_int(text)
    if value > MAX_SWEEP_POINTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SWEEP_POINTS:,} points, got {value:,}")
    return value


def _glucose_arg(text: str) -> float:
    from .whatif import check_glucose

    try:
        return check_glucose(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_predict(args: argparse.Namespace) -> int:
    from .serving import bundle_experiment
    from .whatif import Scenario, WhatIf

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
    from .codes import LEVEL_NAMES
    from .paths import DEFAULT_MODELS_DIR

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
    predict.add_argument("--data-dir")
    predict.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    predict.set_defaults(run=cmd_predict)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def cmd_tune(args: argparse.Namespace) -> int:
    import optuna

    from .registry import BundleError, check_name
    from .study_storage import storage_label
    from .tune import TuneSettings, best_trials, default_study_name, run_study, train_best

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is printed here instead
    try:
        if args.save:
            check_name(args.save)
        settings = TuneSettings(args.split, args.target, args.dose_window, args.patients, args.epochs,
                                args.patience, args.seed, args.members)
    except (ValueError, BundleError) as exc:
        raise CliError(str(exc)) from None
    cohort = _load_cohort(args.data_dir)
    name = args.study or default_study_name(settings, cohort.fingerprint)
    print(f"Data: {cohort.source.label}")
    print(f"Study {name!r} in {storage_label(args.storage)}; budget {args.trials} trials in all"
          + (f", at most {args.timeout:g} s here" if args.timeout else ""), flush=True)

    def show(study, trial) -> None:
        # a pruned trial's value is its last validation loss (Optuna's choice), not a MAE
        value = (f"val MAE {trial.value:.3f} U" if trial.state == optuna.trial.TrialState.COMPLETE
                 else trial.state.name.lower())
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        print(f"trial {trial.number:3d}  {value:22s} {trial.user_attrs.get('epochs_run', 0):3d} epochs  {params}",
              flush=True)

    run = run_study(cohort.features, cohort.fingerprint, settings, args.trials, args.storage, name, args.timeout,
                    on_trial=show)
    states = {}
    for t in run.study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"{'Created' if run.created else 'Joined'} the study; this worker ran {len(run.ran)} trials in "
          f"{run.seconds:.1f} s. The study holds " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    best = best_trials(run.study, args.show)
    if best.empty:
        print("No finished trial yet.")
    else:
        print(f"Best trials (validation MAE, {settings.split} split):")
        print(best.drop(columns=["state", "worker"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if not args.save:
        return 0
    result, meta = train_best(cohort.features, run.study, args.storage, cohort.source.label, cohort.fingerprint)
    print(f"Trained trial {meta['study']['trial']}'s configuration: {result.training.message}")
    _print_metrics(result.evaluation.metrics)
    return _save(result.training.model, meta, args.save, args)


def _add_tune(sub) -> None:
    from .configs import DEFAULT_SIZES, TrainConfig
    from .paths import DEFAULT_MODELS_DIR
    from .splits import DEFAULT_SPLIT, SPLITS
    from .windows import TARGETS, WindowConfig

    T, W = TrainConfig(), WindowConfig()
    tune = sub.add_parser("tune", help="search model settings with Optuna (run or join a study)")
    tune.add_argument("--trials", type=_non_negative_int, required=True,
                      help="the study's budget: trials in all, over every worker that joins it")
    tune.add_argument("--timeout", type=_seconds, help="stop starting trials after this many seconds")
    tune.add_argument("--storage", help="a SQLAlchemy URL (sqlite:///study.db, postgresql://user@host/db) or a "
                                        "journal file path (default: data/optuna.journal)")
    tune.add_argument("--study", help="study name (default: from the split and the data's fingerprint)")
    tune.add_argument("--data-dir")
    tune.add_argument("--patients", type=_patients, default=(), help="all, or numbers like 1,5,9")
    tune.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    tune.add_argument("--target", choices=TARGETS, default=W.target)
    tune.add_argument("--dose-window", type=_dose_window, default=DEFAULT_DOSE_WINDOW_MIN, metavar="MIN")
    tune.add_argument("--epochs", type=_positive_int, default=T.epochs, help="at most, per trial")
    tune.add_argument("--patience", type=_positive_int, default=T.patience)
    tune.add_argument("--seed", type=_non_negative_int, default=T.seed)
    tune.add_argument("--members", type=_positive_int, default=DEFAULT_SIZES["members"],
                      help="ensemble members per trial (held fixed, not searched)")
    tune.add_argument("--show", type=_positive_int, default=5, help="how many best trials to print")
    tune.add_argument("--save", metavar="NAME", help="train the best configuration and save it as a bundle")
    tune.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    tune.add_argument("--overwrite", action="store_true")
    tune.set_defaults(run=cmd_tune)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m insulin_core", description="insulin-dash core: data, models, what-if.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check-data", help="print the data-quality report")
    check.add_argument("--data-dir", help="folder of AIM94 data-NN files (default: $AIM94_DIR, else the demo cohort)")
    check.add_argument("--json", action="store_true")
    check.add_argument("--dose-window", type=_dose_window, default=DEFAULT_DOSE_WINDOW_MIN, metavar="MIN",
                       help="minutes after a decision point whose insulin-only Regular counts as its dose")
    check.set_defaults(run=cmd_check_data)
    demo = sub.add_parser("demo-data", help="write the synthetic demo cohort")
    demo.add_argument("--dest", required=True)
    demo.add_argument("--patients", type=_positive_int, default=20)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo_data)
    download = sub.add_parser("download-data", help="download a real data set: AIM94 from UCI (the default) "
                                                    "or HUPA-UCM from Mendeley Data")
    download.add_argument("--dest", required=True)
    download.add_argument("--source", choices=("aim94", "hupa-ucm"), default="aim94")
    download.add_argument("--url", help="another address of the same archive (default: the source's own)")
    download.set_defaults(run=cmd_download_data)
    _add_train(sub)
    _add_predict(sub)
    _add_tune(sub)
    glossary = sub.add_parser("glossary", help="what the words of the dashboard and this tool mean")
    glossary.set_defaults(run=cmd_glossary)
    return parser


def cmd_glossary(args: argparse.Namespace) -> int:
    from .glossary import glossary_text

    print(glossary_text(width=100), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
