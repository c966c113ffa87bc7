"""`python -m insulin_core COMMAND`: the headless face of the core.

Every failure a user can cause (bad arguments, missing folders, broken files, unknown models)
ends in one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage over several lines
        raise CliError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def cmd_check_data(args: argparse.Namespace) -> int:
    from .source import load_source, resolve_source

    source = resolve_source(args.data_dir)
    result = load_source(source)
    report = result.report.to_dict()
    report["source"] = source.label
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"Source: {source.label}")
    print(f"Files {report['files']}  lines {report['lines']}  accepted {report['accepted']}  "
          f"rejected {report['rejected_total']}  patients {report['patients']}  events {report['events']}")
    for reason, count in sorted(report["rejected"].items(), key=lambda kv: -kv[1]):
        example = report["examples"][reason][0]
        print(f"  {reason:22s} {count:5d}   e.g. {example['file']}:{example['line']}  {example['text']!r}")
    print(f"Censored glucose (0Hi/0Lo): {report['censored']}  implausible doses: {report['implausible']}  "
          f"conflicting values at one time: {report['conflicts']}")
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
    from .download import DownloadError, download_aim94

    try:
        result = download_aim94(Path(args.dest))
    except DownloadError as exc:
        raise CliError(str(exc)) from None
    print(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m insulin_core", description="insulin-dash core: data, models, what-if.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check-data", help="print the data-quality report")
    check.add_argument("--data-dir", help="folder of AIM94 data-NN files (default: $AIM94_DIR, else the demo cohort)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(run=cmd_check_data)
    demo = sub.add_parser("demo-data", help="write the synthetic demo cohort")
    demo.add_argument("--dest", required=True)
    demo.add_argument("--patients", type=_positive_int, default=20)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo_data)
    download = sub.add_parser("download-data", help="download the real AIM94 set from UCI")
    download.add_argument("--dest", required=True)
    download.set_defaults(run=cmd_download_data)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Later modules (training, evaluation, what-if) add their sub-commands here.
EXTRA_COMMANDS: list[Callable] = []


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
