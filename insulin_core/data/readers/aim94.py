"""AIM94 as one reader among several: the existing loader (insulin_core/data/aim94.py), unchanged.

Its files are told by their names (`data-01` ... `data-70`, as the loader reads them); its events
have exactly EVENT_COLUMNS (AIM94 has no grams, units or record types to add)."""
from __future__ import annotations

from collections.abc import Mapping

from .. import aim94
from ..aim94 import LoadResult
from .contract import Reader


class AIM94Reader(Reader):
    name = "AIM94"
    looked_for = "AIM94 diaries: files named data-01 ... data-70"
    reasons = aim94.REASONS

    def detect_file(self, name: str, data: bytes | str) -> str:
        return "an AIM94 diary (named data-NN)" if aim94.patient_id_of(name) is not None else ""

    def read(self, files: Mapping[str, bytes], source: str) -> LoadResult:
        return aim94.load_texts(files, source)
