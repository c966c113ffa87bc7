"""The `tune` command: run or join an Optuna study, and train its best trial."""
from __future__ import annotations

import argparse

from ..data.codes import DEFAULT_DOSE_WINDOW_MIN
from .common import (CliError, _add_baselines, _add_cgm_every, _add_data_args, _baselines_note, _dose_window,
                     _load_cohort, _non_negative_int, _patients, _positive_int, _print_metrics, _save)


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

    from ..bundles.registry import BundleError, check_name
    from ..jobs.study_storage import storage_label
    from ..jobs.tune import TuneSettings, best_trials, default_study_name, run_study, train_best

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is printed here instead
    try:
        if args.save:
            check_name(args.save)
        settings = TuneSettings(args.split, args.target, args.dose_window, args.patients, args.epochs,
                                args.patience, args.seed, args.members, args.cgm_every)
    except (ValueError, BundleError) as exc:
        raise CliError(str(exc)) from None
    cohort = _load_cohort(args)
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
    result, meta = train_best(cohort.features, run.study, args.storage, cohort.source.label, cohort.fingerprint,
                              baselines=args.baselines)
    print(f"Trained trial {meta['study']['trial']}'s configuration: {result.training.message}")
    if note := _baselines_note(args.baselines):
        print(note)
    _print_metrics(result.evaluation.metrics)
    return _save(result.training.model, meta, args.save, args)


def _add_tune(sub) -> None:
    from ..configs import DEFAULT_SIZES, TrainConfig
    from ..paths import DEFAULT_MODELS_DIR
    from ..prep.splits import DEFAULT_SPLIT, SPLITS
    from ..prep.windows import TARGETS, WindowConfig

    T, W = TrainConfig(), WindowConfig()
    tune = sub.add_parser("tune", help="search model settings with Optuna (run or join a study)")
    tune.add_argument("--trials", type=_non_negative_int, required=True,
                      help="the study's budget: trials in all, over every worker that joins it")
    tune.add_argument("--timeout", type=_seconds, help="stop starting trials after this many seconds")
    tune.add_argument("--storage", help="a SQLAlchemy URL (sqlite:///study.db, postgresql://user@host/db) or a "
                                        "journal file path (default: data/optuna.journal)")
    tune.add_argument("--study", help="study name (default: from the split and the data's fingerprint)")
    _add_data_args(tune)
    tune.add_argument("--patients", type=_patients, default=(), help="all, or numbers like 1,5,9")
    tune.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    tune.add_argument("--target", choices=TARGETS, default=W.target)
    tune.add_argument("--dose-window", type=_dose_window, default=DEFAULT_DOSE_WINDOW_MIN, metavar="MIN")
    _add_cgm_every(tune)
    tune.add_argument("--epochs", type=_positive_int, default=T.epochs, help="at most, per trial")
    tune.add_argument("--patience", type=_positive_int, default=T.patience)
    tune.add_argument("--seed", type=_non_negative_int, default=T.seed)
    tune.add_argument("--members", type=_positive_int, default=DEFAULT_SIZES["members"],
                      help="ensemble members per trial (held fixed, not searched)")
    tune.add_argument("--show", type=_positive_int, default=5, help="how many best trials to print")
    tune.add_argument("--save", metavar="NAME", help="train the best configuration and save it as a bundle")
    _add_baselines(tune, "the model --save trains")
    tune.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    tune.add_argument("--overwrite", action="store_true")
    tune.set_defaults(run=cmd_tune)
