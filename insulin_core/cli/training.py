"""The model commands: `train` (one process, or N under torchrun) and `evaluate` (with the predictions CSV
and its column descriptions)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..data.codes import DEFAULT_DOSE_WINDOW_MIN
from ..evaluation.metrics import METRIC_COLUMNS
from .common import (CliError, _add_baselines, _add_cgm_every, _add_data_args, _baselines_note, _bundle_and_cohort,
                     _dense, _dose_window, _load_cohort, _patients, _positive_int, _print_metrics, _save)


def cmd_train(args: argparse.Namespace) -> int:
    if args.nproc > 1:  # the same command in N processes under torchrun, with --distributed
        from ..models.distributed import launch

        return launch(args.nproc, _without_nproc(sys.argv[1:] if args.argv is None else args.argv))
    if args.distributed:
        from ..models.distributed import process_group

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
    from ..models import distributed
    from ..configs import MAX_MEMBERS
    from ..evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment
    from ..bundles.registry import BundleError, check_name
    from ..models.train import TrainConfig
    from ..prep.windows import WindowConfig

    try:
        check_name(args.name)
        window = WindowConfig(args.window, args.target, args.multi_output, args.dose_window, args.cgm_every)
        exp = ExperimentConfig(window, args.split, args.patients, seed=args.seed)
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
    cohort = _load_cohort(args)
    if lead:
        print(f"Data: {cohort.source.label}" + (f"; {distributed.world_size()} processes" if distributed.active() else ""))

    def show(log) -> None:
        print(f"epoch {log.epoch:3d}  train {log.train_loss:.4f}  val {log.val_loss:.4f}  "
              f"val MAE {log.val_mae:.3f} U  lr {log.lr:.1e}  {log.elapsed_s:6.1f}s", flush=True)

    result = run_experiment(cohort.features, exp, sizes, train_cfg, show,
                            baselines=args.baselines if lead else [])
    if not lead:
        return 0
    if note := _baselines_note(args.baselines):
        print(note)
    if result.training.message:
        print(result.training.message)
    print(f"Stopped: {result.training.stop_reason} (best epoch {result.training.best_epoch}); "
          f"prepare {result.seconds['prepare']:.1f}s, train {result.seconds['train']:.1f}s, "
          f"evaluate {result.seconds['evaluate']:.1f}s")
    model = result.training.model
    print(f"A dose is suggested above P(dose) {float(model.dose_threshold[0]):.2f} for the patients it trained on, "
          f"{float(model.new_patient_threshold[0]):.2f} for anyone else (chosen on the validation part)")
    _print_metrics(result.evaluation.metrics)
    meta = bundle_meta(result, exp, train_cfg, cohort.source.label, cohort.fingerprint, cohort.format)
    return _save(result.training.model, meta, args.name, args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..bundles.serving import metrics_of, predictions_table

    bundle, cohort = _bundle_and_cohort(args)
    table = predictions_table(bundle, cohort, baselines=args.baselines)
    if note := _baselines_note(args.baselines):
        print(note, file=sys.stderr if args.json else sys.stdout)
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
    from ..labels import describe_columns

    target = column_descriptions_path(csv_path)
    describe_columns(columns).to_csv(target, index=False)
    return target


def _add_train(sub) -> None:
    from ..configs import DEFAULT_SIZES as D, SCHEDULES, TrainConfig
    from ..paths import DEFAULT_MODELS_DIR
    from ..prep.splits import DEFAULT_SPLIT, SPLITS
    from ..prep.windows import TARGETS, WindowConfig

    T, W = TrainConfig(), WindowConfig()

    train = sub.add_parser("train", help="train a model and save it as a bundle")
    _add_data_args(train)
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
    _add_cgm_every(train)
    train.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    train.add_argument("--multi-output", action="store_true",
                       help="predict Regular, NPH and UltraLente together (metrics stay on Regular)")
    _add_baselines(train)
    train.add_argument("--seed", type=int, default=T.seed)
    train.add_argument("--name", required=True)
    train.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    train.add_argument("--overwrite", action="store_true")
    train.set_defaults(run=cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a saved model and every baseline on the test part")
    evaluate.add_argument("--model", "--bundle", dest="model", required=True,
                          help="a saved model's name; --data-dir / --demo may be another source than it was "
                               "trained on (every patient then new to it)")
    _add_data_args(evaluate)
    evaluate.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--predictions", metavar="FILE.csv")
    _add_baselines(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)
