"""Fetch the real AIM94 set from UCI, extract its `data-NN` files flat into a folder, verify them.

Only urllib. Archives are opened by content, not by name: a zip, a tar (plain, gz, bz2, xz), and
archives nested inside either. Member paths are never trusted: a file is written as
`dest/<basename>` only when its basename is `data-NN` or `Data-Codes`, and members whose path is
absolute or climbs out (`..`) are refused outright. Everything is extracted into a scratch folder
and verified before any file lands in `dest`, so a failed download leaves `dest` as it was.
"""
from __future__ import annotations

import http.client
import io
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .safezip import ZipError, files, open_zip, read_member

UCI_URL = "https://archive.ics.uci.edu/static/public/34/diabetes.zip"
DATASET_PAGE = "https://archive.ics.uci.edu/dataset/34/diabetes"
DATA_NAME = re.compile(r"^data-\d\d$")
CODES_NAME = "Data-Codes"
LINE_SHAPE = re.compile(r"^\S+\t\S+\t\S+\t\S*$")
MIN_GOOD_SHARE = 0.9  # the real files hold a few broken lines; a wrong file holds mostly others
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the real files are tens of KB: anything huge is not ours
MAX_NESTING = 3
CHUNK = 64 * 1024
HINT = "point AIM94_DIR at a folder with the data-NN files"

Progress = Callable[[int, "int | None"], None]


class DownloadError(Exception):
    """A download or extraction failure, with a one-line message meant for a person."""


@dataclass(frozen=True)
class DownloadResult:
    dest: Path
    url: str
    data_files: tuple[Path, ...]
    codes_file: Path | None
    lines: int  # lines over all data files
    archive_bytes: int
    refused: tuple[str, ...] = ()  # members never written: unsafe paths, duplicates, oversize
    notes: tuple[str, ...] = field(default=())  # e.g. a .Z member left unopened

    @property
    def files(self) -> int:
        return len(self.data_files)


def download_aim94(dest: Path, url: str = UCI_URL, timeout: float = 30,
                   progress: Progress | None = None) -> DownloadResult:
    """Download the archive at `url`, extract the AIM94 files into `dest`, verify them."""
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="aim94-") as scratch_dir:
        scratch = Path(scratch_dir)
        archive = scratch / "download"
        size = _fetch(url, archive, timeout, progress)
        staged = scratch / "files"
        staged.mkdir()
        found = _Extraction(staged)
        found.add_archive(archive.read_bytes(), name=_url_name(url), depth=0)
        data = sorted((p for p in staged.iterdir() if DATA_NAME.match(p.name)), key=lambda p: p.name)
        if not data:
            raise DownloadError(_no_data_message(url, found))
        lines = _verify(data)
        dest.mkdir(parents=True, exist_ok=True)
        for path in staged.iterdir():
            shutil.move(str(path), dest / path.name)
    return DownloadResult(
        dest=dest, url=url, data_files=tuple(dest / p.name for p in data),
        codes_file=dest / CODES_NAME if found.has_codes else None,
        lines=lines, archive_bytes=size, refused=tuple(found.refused), notes=tuple(found.notes),
    )


# --- network ------------------------------------------------------------------------------------

def _fetch(url: str, target: Path, timeout: float, progress: Progress | None,
           page: str = DATASET_PAGE, hint: str = HINT) -> int:
    """Stream `url` into `target`; every failure becomes a DownloadError with a readable message
    (`page` and `hint`: where the data set is described and what to do without the download)."""
    host = urllib.parse.urlsplit(url).netloc or url
    request = urllib.request.Request(url, headers={"User-Agent": "insulin-dash (AIM94 downloader)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
            total = _content_length(response)
            done = 0
            if progress:
                progress(0, total)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            return done
    except urllib.error.HTTPError as exc:  # before URLError: it is one
        raise DownloadError(f"{host} answered HTTP {exc.code} {exc.reason} for {url}. "
                            f"Check the address (dataset page: {page}), or {hint}.") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"Could not reach {host}: {_reason(exc.reason)}. "
                            f"Check your internet connection, or {hint}.") from None
    except (TimeoutError, socket.timeout) as exc:
        raise DownloadError(f"Could not reach {host}: timed out after {timeout:g} s ({exc}). "
                            f"Check your internet connection, or {hint}.") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # reset or cut off mid-way, a malformed URL
        raise DownloadError(f"Download from {host} failed: {_reason(exc)}. Try again, or {hint}.") from None


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _reason(reason: object) -> str:
    text = getattr(reason, "strerror", None) or str(reason)
    return " ".join(str(text).split()) or type(reason).__name__


def _url_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlsplit(url).path).name or "download"


# --- archives -----------------------------------------------------------------------------------

class _Extraction:
    """Walks an archive (and archives inside it), writing the AIM94 files flat into `staged`."""

    def __init__(self, staged: Path) -> None:
        self.staged = staged
        self.refused: list[str] = []
        self.notes: list[str] = []
        self.compress_members: list[str] = []
        self.has_codes = False

    def add_archive(self, blob: bytes, name: str, depth: int) -> None:
        if depth > MAX_NESTING:
            self.refused.append(f"{name} (archives nested too deep)")
            return
        for member, size, read in _members(blob, name):
            self._add_member(member, size, read, depth)

    def _add_member(self, member: str, size: int, read: Callable[[], bytes], depth: int) -> None:
        base = _basename(member)
        wanted = bool(DATA_NAME.match(base)) or base == CODES_NAME
        if not _safe_member(member):
            if wanted or _looks_like_archive(base):
                self.refused.append(f"{member} (unsafe path)")
            return
        if size > MAX_MEMBER_BYTES:
            self.refused.append(f"{member} (too large: {size} bytes)")
            return
        if wanted:
            self._write(member, base, _read(member, read))
        elif base.endswith(".Z"):
            # Unix `compress` (LZW): Python's standard library cannot decompress it.
            self.compress_members.append(member)
            self.notes.append(f"{member}: Unix compress (.Z) archive, which Python cannot open; skipped")
        elif _looks_like_archive(base):
            self.add_archive(_read(member, read), name=member, depth=depth + 1)

    def _write(self, member: str, base: str, blob: bytes) -> None:
        target = self.staged / base
        if target.exists():  # the same file twice (e.g. two folders): keep the first
            self.refused.append(f"{member} (duplicate of {base})")
            return
        target.write_bytes(blob)
        self.has_codes = self.has_codes or base == CODES_NAME


def _members(blob: bytes, name: str, hint: str = HINT) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    """(member path, size, reader) of each regular file in a zip or tar blob."""
    if blob[:2] == b"\x1f\x9d":
        raise DownloadError(f"{name} is a Unix compress (.Z) file, which Python cannot open. "
                            f"Unpack it with `uncompress` or `gzip -d`, then {hint}.")
    if zipfile.is_zipfile(io.BytesIO(blob)):
        try:
            archive = open_zip(blob, name)
        except ZipError as exc:
            raise DownloadError(f"{exc}. Try again, or {hint}.") from None
        for info in files(archive):
            # The header size is a first filter only; read_member counts the real bytes.
            yield info.filename, info.file_size, lambda info=info: read_member(archive, info, MAX_MEMBER_BYTES)
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
            for info in archive:
                if info.isfile():
                    yield info.name, info.size, lambda info=info: archive.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"{name} is neither a zip nor a tar archive ({_reason(exc)}). "
                            f"Check the address, or {hint}.") from None


def _read(member: str, read: Callable[[], bytes], hint: str = HINT) -> bytes:
    try:
        return read()
    except ZipError as exc:
        raise DownloadError(f"{exc}. Try again, or {hint}.") from None
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise DownloadError(f"{member} in the archive is damaged ({exc}). Try again, or {hint}.") from None


def _basename(member: str) -> str:
    return member.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _safe_member(member: str) -> bool:
    """False for absolute paths, drive letters and any `..` component."""
    path = member.replace("\\", "/")
    parts = path.split("/")
    return not (path.startswith("/") or re.match(r"^[A-Za-z]:", path) or ".." in parts)


def _looks_like_archive(base: str) -> bool:
    return base.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".gz"))


def _no_data_message(url: str, found: _Extraction) -> str:
    if found.compress_members:
        members = ", ".join(found.compress_members)
        return (f"The archive from {url} holds the data only inside {members}, a Unix compress (.Z) "
                f"file, which Python cannot open. Unpack it with `uncompress` or `gzip -d`, then {HINT}.")
    return f"No data-NN files in the archive from {url}. Check the address, or {HINT}."


# --- verification -------------------------------------------------------------------------------

def _verify(paths: list[Path]) -> int:
    """Each file non-empty with > MIN_GOOD_SHARE of its lines AIM94-shaped; returns total lines."""
    total = 0
    for path in paths:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        lines = [line.rstrip("\r") for line in lines if line.strip()]
        if not lines:
            raise DownloadError(f"{path.name} in the download is empty. Try again, or {HINT}.")
        good = sum(bool(LINE_SHAPE.match(line)) for line in lines) / len(lines)
        if good <= MIN_GOOD_SHARE:
            raise DownloadError(f"{path.name} in the download does not look like an AIM94 file "
                                f"(only {good:.0%} of its lines are DATE<TAB>TIME<TAB>CODE<TAB>VALUE).")
        total += len(lines)
    return total
