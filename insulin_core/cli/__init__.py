"""`python -m insulin_core COMMAND`: the headless face of the core.

Every failure a user can cause (bad arguments, missing folders, broken files, unknown models)
ends in one line on stderr and exit code 2, never a traceback.

One module per command group: data.py, training.py (train, evaluate), predict.py, tuning.py;
common.py holds what they share. `__main__.py` calls `main`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..data.codes import DEFAULT_DOSE_WINDOW_MIN
from .common import CliError, _add_cgm_every, _add_data_args, _dose_window, _Parser, _positive_int
from .data import cmd_check_data, cmd_demo_data, cmd_download_data
from .training import _add_train
from .predict import _add_predict
from .tuning import _add_tune


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m insulin_core", description="insulin-dash core: data, models, what-if.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check-data", help="print the data-quality report")
    _add_data_args(check)
    check.add_argument("--json", action="store_true")
    check.add_argument("--dose-window", type=_dose_window, default=DEFAULT_DOSE_WINDOW_MIN, metavar="MIN",
                       help="minutes after a decision point whose insulin-only Regular counts as its dose")
    _add_cgm_every(check)
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
    from ..glossary import glossary_text

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
