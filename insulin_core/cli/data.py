"""The data commands: `check-data` (the quality report), `demo-data`, `download-data`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import CliError, _source


INSULIN_WORDS = {"regular": "Regular", "nph": "NPH", "ultralente": "UltraLente"}


def cmd_check_data(args: argparse.Namespace) -> int:
    from ..data.source import load_source
    from ..prep.timeline import build_timeline, fold_summary

    source = _source(args)
    result = load_source(source)
    report = result.report.to_dict()
    report["source"] = source.label
    report["format"], report["glucose_units"] = result.format, result.glucose_units
    report["decision_doses"] = fold_summary(build_timeline(result.events, args.cgm_every), args.dose_window)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"Source: {source.label}")
    units = report.get("units") or {}
    print(f"Format: {result.format}; glucose in {result.glucose_units}" + (
        f" (records by unit: {', '.join(f'{u} {n}' for u, n in units.items())})" if units else ""))
    print(f"Files {report['files']}  {result.report.record_name}s {report['lines']}  accepted {report['accepted']}  "
          f"rejected {report['rejected_total']}  patients {report['patients']}  events {report['events']}")
    if report["rejected"]:
        print(f"{result.report.record_name.capitalize()}s left out, and why:")
    for reason, count in sorted(report["rejected"].items(), key=lambda kv: -kv[1]):
        example = report["examples"][reason][0]
        print(f"  {count:5d}  {result.report.reason_words(reason)}\n"
              f"         e.g. {example['file']} line {example['line']}: {example['text']!r}")
    censored = ", ".join(f"{n} {'above' if k == 'high' else 'below'} the meter's range" for k, n in report["censored"].items())
    implausible = ", ".join(f"{n} {INSULIN_WORDS.get(k, k)}" for k, n in report["implausible"].items())
    print(f"Glucose readings written as 0Hi/0Lo: {censored or 'none'}. Implausible doses (typing errors, kept but "
          f"left out of training): {implausible or 'none'}. Conflicting values at one time: {report['conflicts']}.")
    for assumption, count in (report.get("assumed") or {}).items():
        print(f"  read under an assumption: {count} x {assumption}")
    for entry in report["skipped_files"]:
        print(f"  not read: {entry}")
    fold = report["decision_doses"]
    print(f"Regular written on a row of its own: {fold['insulin_only_regular']}. Counted as the dose of the decision "
          f"point up to {fold['dose_window_min']} min before it: {fold['folded']} (for "
          f"{fold['decision_points_with_folded_dose']} decision points); with no decision point before it, history "
          f"only: {fold['alone']} ({fold['alone_units']:.1f} U of {fold['regular_units']:.1f} U). Patients who wrote most of their doses that way: {fold['patients_mostly_late']}.")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from ..data.demo import DemoConfig, write_cohort

    try:
        cfg = DemoConfig(patients=args.patients, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    paths = write_cohort(Path(args.dest), cfg)
    print(f"Wrote a SYNTHETIC demo cohort: {len(paths)} files to {args.dest}")
    return 0


def cmd_download_data(args: argparse.Namespace) -> int:
    from ..data.download import UCI_URL, DownloadError, download_aim94

    try:
        if args.source == "hupa-ucm":
            from ..data.download_hupa import HUPA_URL, download_hupa_ucm

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
