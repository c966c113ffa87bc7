"""Shared by the commands: the one-line error, the argument types, loading a cohort, printing metrics,
saving a bundle and loading one beside its cohort."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def _checked_minutes(check, text: str) -> int:
    """`text` as whole minutes that `check` (a timeline.check_* function) accepts, or argparse's
    error in the check's words."""
    try:
        return check(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dose_window(text: str) -> int:
    from ..prep.timeline import check_dose_window

    return _checked_minutes(check_dose_window, text)


def _cgm_every(text: str) -> int:
    from ..prep.timeline import check_cgm_every

    return _checked_minutes(check_cgm_every, text)


def _add_cgm_every(parser: argparse.ArgumentParser) -> None:
    """--cgm-every, as check-data, train and tune take it (a bundle keeps the one it was trained with)."""
    from ..data.codes import DEFAULT_CGM_EVERY_MIN

    parser.add_argument("--cgm-every", type=_cgm_every, default=DEFAULT_CGM_EVERY_MIN, metavar="MIN",
                        help="a CGM reading is a decision point only as the first reading in each clock interval "
                             "of MIN minutes (meals, fingersticks and exercise always are); no effect on data "
                             "without CGM readings")


def _dense(text: str) -> tuple[int, ...]:
    from ..configs import parse_dense

    try:
        sizes = parse_dense(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 64,32, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected one or more sizes >= 1, got {text!r}")
    return sizes


def _baselines(text: str) -> list[str] | None:
    """--baselines: "all" (None: every registered baseline), "none", or names like previous_row,gbm."""
    from ..models.baselines import BASELINES

    text = text.strip()
    if text in ("all", "none"):
        return None if text == "all" else []
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in BASELINES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline(s) {', '.join(unknown) or repr(text)}; choose all, "
                                         f"none or names from {', '.join(BASELINES)}")
    return names


def _add_baselines(parser: argparse.ArgumentParser, which: str = "the model") -> None:
    """--baselines, as train, evaluate and tune take it: every baseline unless asked otherwise."""
    parser.add_argument("--baselines", type=_baselines, default=None, metavar="all|none|NAME,...",
                        help=f"the baselines scored beside {which} (default: all; the strongest is then always "
                             "among them). Fewer is quicker: for a quick run, not for a comparison")


def _baselines_note(baselines: list[str] | None) -> str | None:
    """The line that says a run scored fewer than every baseline, or None when it scored all."""
    from ..models.baselines import BASELINES

    if baselines is None or set(baselines) >= set(BASELINES):
        return None
    return (f"Baselines: {', '.join(baselines) or 'none'} (--baselines); not scored: "
            f"{', '.join(b for b in BASELINES if b not in baselines)}")


def _patients(text: str) -> tuple[int, ...]:
    if text == "all":
        return ()
    try:
        return tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or patient numbers like 1,5,9, got {text!r}") from None


DATA_DIR_HELP = ("folder of a supported export: AIM94 data-NN files, Nightscout, Tidepool, OhioT1DM or HUPA-UCM "
                 "(default: $AIM94_DIR, else the AIM94-format demo cohort)")


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    """--data-dir and --demo, the same on every command that reads data."""
    from ..data.source import DEMOS

    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--demo", choices=DEMOS, help="a built-in SYNTHETIC cohort instead of a folder: aim94 (the "
                                                      "AIM94-format demo) or modern (pump + CGM, Nightscout files)")


def _source(args: argparse.Namespace):
    from ..data.source import resolve_source

    try:
        return resolve_source(args.data_dir, demo=getattr(args, "demo", None))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _load_cohort(args: argparse.Namespace):
    from ..prep.dataset import load_cohort

    return load_cohort(_source(args))


def _print_metrics(metrics, cols: list[str] | None = None) -> None:
    """A metrics table with plain column and model / baseline names (insulin_core/labels.py)."""
    from ..labels import plain_table

    cols = cols or ["name", "rows", "mae", "rmse", "r2", "within_1u", "mae_dose", "missed", "unwanted", "n"]
    print(plain_table(metrics[[c for c in cols if c in metrics.columns]]).to_string(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))


def _save(model, meta: dict, name: str, args: argparse.Namespace) -> int:
    """Save a trained model as a bundle; a taken name or a bad one is one line, exit 2."""
    from ..bundles.registry import BundleError, save_bundle

    try:
        path = save_bundle(model, meta, name, Path(args.models_dir), overwrite=args.overwrite)
    except BundleError as exc:
        raise CliError(str(exc)) from None
    print(f"Saved {path}")
    return 0


def _bundle_and_cohort(args: argparse.Namespace):
    """The saved bundle --model and the cohort it is used on; notes about the fit go to stderr."""
    from ..bundles.registry import BundleError, check_name, load_bundle
    from ..bundles.serving import check_bundle_fits

    try:  # a name inside the models folder, as train saves it: never a path ("../x", "/abs")
        bundle = load_bundle(Path(args.models_dir) / check_name(args.model))
    except BundleError as exc:
        raise CliError(str(exc)) from None
    cohort = _load_cohort(args)
    for note in check_bundle_fits(bundle, cohort):
        print(f"note: {note}", file=sys.stderr)
    return bundle, cohort
