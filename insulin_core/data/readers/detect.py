"""Which reader reads these files: every file is offered to every registered reader (READERS, in
order; the first that recognises a file takes it). One format found: its reader. None: a message
naming what was looked for. Two or more: a message naming which files are of which format, since
one load reads one format (a patient's Nightscout export beside another's Tidepool export would
otherwise be read as half of each)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..aim94 import LoadResult
from ...errors import DataFormatError
from .aim94 import AIM94Reader
from .contract import Reader
from .hupa_ucm import HupaUcmReader
from .nightscout import NightscoutReader
from .ohiot1dm import OhioT1DMReader
from .tidepool import TidepoolReader

READERS: tuple[Reader, ...] = (AIM94Reader(), NightscoutReader(), TidepoolReader(), OhioT1DMReader(), HupaUcmReader())
LISTED = 3  # file names a message lists before "..."


@dataclass(frozen=True)
class Detection:
    reader: Reader
    why: dict[str, str]  # file -> why it is of the reader's format
    other: list[str] = field(default_factory=list)  # files of no format: the reader reports them as skipped


def detect(files: Mapping[str, bytes]) -> Detection:
    """The reader of these files; DataFormatError when none fits or formats are mixed."""
    claimed: dict[str, dict[str, str]] = {}
    other = []
    for name in sorted(files):
        found = next(((reader, why) for reader in READERS if (why := reader.detect_file(name, files[name]))), None)
        if found:
            claimed.setdefault(found[0].name, {})[name] = found[1]
        else:
            other.append(name)
    if not claimed:
        given = f"{len(files)} file(s) ({_names(sorted(files))})" if files else "no files"
        raise DataFormatError(f"No supported format in {given}. Looked for: "
                              + "; ".join(f"{r.name}: {r.looked_for}" for r in READERS) + ".")
    if len(claimed) > 1:
        raise DataFormatError("These files mix formats: " + "; ".join(
            f"{name} ({_names(sorted(found))})" for name, found in claimed.items()) + ". Load one format at a time.")
    (name, why), = claimed.items()
    return Detection(next(r for r in READERS if r.name == name), why, other)


def read_files(files: Mapping[str, bytes], source: str) -> LoadResult:
    """Detect the format and read the files with its reader; the result names the format."""
    reader = detect(files).reader
    return replace(reader.read(files, source), format=reader.name)


def _names(names: list[str]) -> str:
    return ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
