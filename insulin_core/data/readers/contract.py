"""The reader contract: `Reader` (`name`, `detect`, `read`) and `RecordReader`, a reader of
record-by-record formats on the shared steps of records.py; `json_records` for the JSON exports.
The one event model every reader writes is base.py's."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import ClassVar

import pandas as pd

from .. import aim94_folder, aim94_lines
from ..aim94 import LoadResult
from .base import HEAD_CHARS
from .records import Records


# ---- the contract ----------------------------------------------------------------------------------
class Reader(ABC):
    """One format: `detect` says whether files are of it, `read` turns them into events + report."""

    name: ClassVar[str]
    looked_for: ClassVar[str]  # what detect looks for, in words (detect.py's messages)
    reasons: ClassVar[dict[str, str]]

    def detect(self, files: Mapping[str, bytes]) -> str:
        """"" when none of the files is of this format, else a short reason why they are."""
        for name in sorted(files):
            why = self.detect_file(name, files[name])
            if why:
                return f"{name}: {why}"
        return ""

    @abstractmethod
    def detect_file(self, name: str, data: bytes | str) -> str:
        """"" when this file is not of the format, else why it is."""

    @abstractmethod
    def read(self, files: Mapping[str, bytes], source: str) -> LoadResult:
        """The events table (EVENT_COLUMNS, extras after) and the quality report."""


class RecordReader(Reader):
    """A reader of record-by-record formats: decoding, per-file detection, skipped files and the
    shared steps live here; a format says how to tell its files (`sniff`) and read them (`parse`)."""

    record_name: ClassVar[str] = "record"
    actions: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def sniff(self, name: str, head: str) -> str:
        """"" unless the start of this file (`head`, decoded) is of the format; else why it is."""

    @abstractmethod
    def parse(self, files: list[tuple[str, str]], log: Records) -> None:
        """Read the (name, text) files of the format into `log`, record by record."""

    def derived_events(self, items: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
        """Events made from several accepted records at once (e.g. exercise bouts from steps)."""
        return []

    def detect_file(self, name: str, data: bytes | str) -> str:
        text, why = aim94_lines._decode(data[: HEAD_CHARS * 4] if isinstance(data, bytes) else data[:HEAD_CHARS])
        return "" if why else self.sniff(name, text.decode("utf-8", errors="replace")[:HEAD_CHARS])

    def read(self, files: Mapping[str, bytes], source: str) -> LoadResult:
        log = Records()
        self.parse(list(self._own_files(files, log)), log)
        return log.result(self, source)

    def _own_files(self, files: Mapping[str, bytes], log: Records) -> Iterator[tuple[str, str]]:
        """(name, text) of the files of this format; every other one is in `log.skipped` with why."""
        for name in sorted(files):
            data = files[name]
            if len(data) > aim94_folder.MAX_FILE_BYTES:
                log.skipped.append(f"{name}: too large (over {aim94_folder.MAX_FILE_BYTES / 2**20:,.0f} MB)")
                continue
            text, why = aim94_lines._decode(data)
            if why:
                log.skipped.append(f"{name}: {why}")
            elif not text.strip():
                log.skipped.append(f"{name}: an empty file")
            elif not self.sniff(name, text[: HEAD_CHARS * 4].decode("utf-8", errors="replace")[:HEAD_CHARS]):
                log.skipped.append(f"{name}: not a {self.name} file (looked for {self.looked_for})")
            else:
                log.files_read += 1
                yield name, text.decode("utf-8")


def json_records(name: str, text: str, log: Records) -> list | None:
    """The records of a JSON export (a top-level array), or None with the file in `log.skipped`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        log.skipped.append(f"{name}: not JSON ({str(exc)[:80]})")
        log.files_read -= 1
        return None
    if not isinstance(data, list):
        log.skipped.append(f"{name}: JSON but not an array of records")
        log.files_read -= 1
        return None
    return data
