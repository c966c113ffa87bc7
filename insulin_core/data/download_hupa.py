"""Fetch the HUPA-UCM data set from Mendeley Data, extract its preprocessed per-patient CSV files
flat into a folder, verify them with the HUPA-UCM reader (readers/hupa_ucm.py).

HUPA-UCM Diabetes Dataset (Hidalgo et al., Data in Brief 2024; Mendeley Data, V1,
doi:10.17632/3hbcscwz44.1; CC BY 4.0): 25 people with type 1 diabetes, a file per patient. The
default address is Mendeley Data's public API for the zip of version 1, which answers with a
redirect to a short-lived signed address (urllib follows it). The zip holds
`HUPA-UCM Diabetes Dataset/Preprocessed/HUPA0001P.csv` ... beside the raw device exports; only
files named HUPA<number><letter>.csv are taken, those under a `Preprocessed` folder first when a
name occurs twice. The safety of download.py holds: member paths are never trusted (a file is
written as `dest/<basename>`, and members with an absolute or climbing path are refused), sizes are
counted as members stream, and everything is verified before any file lands in `dest`, so a failed
download leaves `dest` as it was.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from .download import (MIN_GOOD_SHARE, DownloadError, DownloadResult, Progress, _basename, _fetch, _looks_like_archive,
                       _members, _read, _safe_member, _url_name)
from .readers.hupa_ucm import HupaUcmReader

HUPA_URL = "https://data.mendeley.com/public-api/zip/3hbcscwz44/download/1"
HUPA_PAGE = "https://data.mendeley.com/datasets/3hbcscwz44/1"
ATTRIBUTION = ("HUPA-UCM Diabetes Dataset (Hidalgo et al., Data in Brief 2024; Mendeley Data, "
               "doi:10.17632/3hbcscwz44.1), licensed CC BY 4.0: credit it wherever you use it")
HUPA_FILE = re.compile(r"^HUPA\d+[A-Za-z]?\.csv$", re.IGNORECASE)
PREFERRED_FOLDER = "preprocessed"
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # a patient's preprocessed file is a few MB
MAX_NESTING = 3
HINT = f"download the zip by hand from {HUPA_PAGE} and keep the HUPA*.csv files of its Preprocessed folder"

Member = tuple[str, bytes]  # (path in the archive, its bytes: read as the archive is walked, while it is open)


def download_hupa_ucm(dest: Path, url: str = HUPA_URL, timeout: float = 60,
                      progress: Progress | None = None) -> DownloadResult:
    """Download the archive at `url`, extract the preprocessed HUPA-UCM files into `dest`, verify them."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="hupa-ucm-") as scratch_dir:
        archive = Path(scratch_dir) / "download"
        size = _fetch(url, archive, timeout, progress, page=HUPA_PAGE, hint=HINT)
        candidates: list[Member] = []
        refused: list[str] = []
        _collect(archive.read_bytes(), _url_name(url), 0, candidates, refused)
        chosen = _choose(candidates, refused)
        if not chosen:
            raise DownloadError(f"No HUPA-UCM preprocessed files (HUPA0001P.csv ...) in the archive from {url}. "
                                f"Check the address, or {HINT}.")
        files = {base: blob for base, (_, blob) in sorted(chosen.items())}
        rows = _verify(files)
        staged = Path(scratch_dir) / "files"
        staged.mkdir()
        for base, blob in files.items():
            (staged / base).write_bytes(blob)
        dest.mkdir(parents=True, exist_ok=True)
        for base in files:
            shutil.move(str(staged / base), dest / base)
    return DownloadResult(dest=dest, url=url, data_files=tuple(dest / base for base in files), codes_file=None,
                          lines=rows, archive_bytes=size, refused=tuple(refused), notes=(ATTRIBUTION,))


def _collect(blob: bytes, name: str, depth: int, candidates: list[Member], refused: list[str]) -> None:
    """The HUPA*.csv members of an archive (and of archives inside it), unsafe and oversize ones refused."""
    if depth > MAX_NESTING:
        refused.append(f"{name} (archives nested too deep)")
        return
    for member, size, read in _members(blob, name, HINT):
        base = _basename(member)
        wanted = bool(HUPA_FILE.match(base))
        if not _safe_member(member):
            if wanted or _looks_like_archive(base):
                refused.append(f"{member} (unsafe path)")
        elif size > MAX_MEMBER_BYTES:
            refused.append(f"{member} (too large: {size} bytes)")
        elif wanted:
            candidates.append((member, _read(member, read, HINT)))
        elif _looks_like_archive(base):
            _collect(_read(member, read, HINT), member, depth + 1, candidates, refused)


def _choose(candidates: list[Member], refused: list[str]) -> dict[str, Member]:
    """One member per file name: the first under a Preprocessed folder, else the first; the rest refused."""
    chosen: dict[str, Member] = {}

    def preferred(member: str) -> bool:
        return PREFERRED_FOLDER in (part.lower() for part in member.replace("\\", "/").split("/")[:-1])

    for member, blob in sorted(candidates, key=lambda c: not preferred(c[0])):  # stable: archive order kept
        base = _basename(member)
        if base in chosen:
            refused.append(f"{member} (duplicate of {base})")
        else:
            chosen[base] = (member, blob)
    return chosen


def _verify(files: dict[str, bytes]) -> int:
    """Every file recognised by the HUPA-UCM reader and more than MIN_GOOD_SHARE of its rows
    accepted by it; returns the rows over all files."""
    reader = HupaUcmReader()
    for base, blob in files.items():
        if not reader.detect_file(base, blob):
            raise DownloadError(f"{base} in the download is not a HUPA-UCM preprocessed file "
                                f"(looked for {reader.looked_for}). Check the address, or {HINT}.")
    report = reader.read(files, source="download").report
    for base in files:
        entry = report.per_file.get(base, {"lines": 0, "accepted": 0, "rejected": {}})
        if not entry["lines"]:
            raise DownloadError(f"{base} in the download has a header but no rows. Try again, or {HINT}.")
        share = entry["accepted"] / entry["lines"]
        if share <= MIN_GOOD_SHARE:
            worst = max(entry["rejected"], key=entry["rejected"].get)
            raise DownloadError(f"{base} in the download does not read as HUPA-UCM data: only {share:.0%} of its "
                                f"rows are accepted (most rejected as {worst}). Check the address, or {HINT}.")
    return report.lines
