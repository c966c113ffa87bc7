"""What the two synthetic cohorts (demo.py, demo_modern.py) share: the checks of their configs'
size, seed and start, and their folder: the files and a README that labels them synthetic, written
over an earlier copy of the same demo but never over anything else."""
from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

README_NAME = "README.md"


def check_demo_size(patients: object, days: object, seed: object, start: object, names: str) -> None:
    """ValueError naming the first of a demo config's values out of range (`names`: the patients'
    file names, e.g. "data-01..data-99")."""
    if not _whole(patients) or not 1 <= patients <= 99:
        raise ValueError(f"patients must be a whole number from 1 to 99 ({names}), got {patients!r}")
    if not _whole(days) or not 1 <= days <= 1000:
        raise ValueError(f"days must be a whole number from 1 to 1000, got {days!r}")
    if not _whole(seed) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not isinstance(start, date):
        raise ValueError(f"start must be a datetime.date, got {start!r}")


def _whole(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class DemoFolder:
    """How a demo's folder is told apart: its file names, and the label its README carries."""

    files: re.Pattern  # the names of the demo's data files
    label: str  # in the README of every folder the demo wrote
    files_word: str  # the data files in words ("data-NN files")
    cohort_word: str  # the demo in words ("a demo cohort")


def write_demo_folder(dest: Path, kind: DemoFolder, files: Mapping[str, bytes], readme: str) -> list[Path]:
    """Write the files and the README into `dest`; returns the paths written, the README last."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _clear_old_demo(dest, kind)
    paths = [dest / name for name in files]
    for path, blob in zip(paths, files.values()):
        path.write_bytes(blob)
    (dest / README_NAME).write_text(readme, encoding="utf-8")
    return [*paths, dest / README_NAME]


def _clear_old_demo(dest: Path, kind: DemoFolder) -> None:
    """Remove an earlier copy's data files (a smaller cohort leaves none of its own behind); refuse
    when such files are there without the demo's README, since they may be someone's real data."""
    old = [p for p in dest.iterdir() if kind.files.fullmatch(p.name)]
    if not old:
        return
    readme = dest / README_NAME
    if not (readme.is_file() and kind.label in readme.read_text(encoding="utf-8", errors="replace")):
        raise ValueError(f"{dest} already holds {kind.files_word} that are not {kind.cohort_word}; "
                         "refusing to overwrite them")
    for path in old:
        path.unlink()
