"""Read data folders safely: which entries of a folder are files to read (nothing opened while
scanning: a FIFO would block forever; links followed only inside the folder), each file opened
non-blocking and checked again, size-capped. An AIM94 folder's `data-NN` files go to the parser in
aim94.py (`load_folder`); any other export's files are read as bytes (`read_export_folder`) for the
reader data/readers/detect.py picks (this module does not import the readers: they import it)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .aim94 import LoadResult, _load, patient_id_of

MAX_FILE_BYTES = 256 * 1024 * 1024  # real files are tens of KB; anything bigger is not a diary


# ---- folders -----------------------------------------------------------------------------------
def scan_folder(folder: Path, any_name: bool = False) -> tuple[list[Path], list[str]]:
    """The `data-NN` files of a folder to read (`any_name`: every file not hidden, for an export of
    another format), and every other entry as "name: why not read".

    Nothing is opened here (a FIFO would block the reader forever); links are resolved and
    followed only when they stay inside the folder."""
    root = Path(os.path.realpath(folder))
    paths, skipped = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        why = _why_not_read(entry, root, any_name)
        if why:
            skipped.append(f"{entry.name}: {why}")
        else:
            paths.append(Path(entry.path))
    return paths, skipped


def _why_not_read(entry: os.DirEntry, root: Path, any_name: bool = False) -> str:
    kind = "a folder" if entry.is_dir(follow_symlinks=False) else ""
    if any_name and entry.name.startswith("."):
        return "a hidden entry" + (f" ({kind})" if kind else "")
    if not any_name and patient_id_of(entry.name) is None:
        return "not named data-NN" + (f" ({kind})" if kind else "")
    if entry.is_symlink():
        target = Path(os.path.realpath(entry.path))
        if not target.is_relative_to(root):
            return "a link leading out of the folder; not followed"
        if not target.exists():
            return "a broken link"
    try:
        info = os.stat(entry.path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return _why_not_regular(info)


def _why_not_regular(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        return f"{kind}, not a regular file; not opened"
    if info.st_size > MAX_FILE_BYTES:
        return f"too large ({info.st_size / 2**20:,.0f} MB; at most {MAX_FILE_BYTES / 2**20:,.0f} MB)"
    return ""


def _read_file(path: Path) -> tuple[bytes, str]:
    """(bytes, "") or (b"", why not): opened non-blocking and checked again after opening, so a file
    swapped for a FIFO or a link between the scan and the read is refused, not waited on."""
    try:
        fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return b"", f"cannot be read ({exc.strerror or exc})"
    with open(fd, "rb") as handle:
        why = _why_not_regular(os.fstat(fd))
        data = b"" if why else handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        why = f"too large (over {MAX_FILE_BYTES / 2**20:,.0f} MB)"
    return (b"", why) if why else (data, "")


def _check_folder(folder: Path) -> None:
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"AIM94 folder not found: {folder}")


def _readable(paths: list[Path], skipped: list[str]):
    """(name, bytes) per readable file, read one at a time; unreadable ones go to `skipped`."""
    for path in paths:
        data, why = _read_file(path)
        if why:
            skipped.append(f"{path.name}: {why}")
        else:
            yield path.name, data


def _no_files(folder: Path, paths: list[Path], skipped: list[str]) -> None:
    if not paths and not any(patient_id_of(s.split(":", 1)[0]) is not None for s in skipped):
        raise FileNotFoundError(f"No AIM94 files (data-01 ... data-70) in {folder}")


def has_aim94_files(folder: Path) -> bool:
    """Whether any entry of the folder is named like an AIM94 diary (nothing opened): such a folder
    is read by the AIM94 path exactly as before other formats were read."""
    return any(patient_id_of(entry.name) is not None for entry in os.scandir(os.path.realpath(folder)))


def read_export_folder(folder: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every readable file of a folder not hidden (subfolders are not entered), as bytes, and the
    entries not read with why; FileNotFoundError when the folder is missing or holds no file."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"Data folder not found: {folder}")
    paths, skipped = scan_folder(Path(folder), any_name=True)
    files = dict(_readable(paths, skipped))
    if not files:
        why = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise FileNotFoundError(f"No readable file in {folder}{why}")
    return files, skipped


def read_folder(folder: Path) -> dict[str, bytes]:
    """The readable `data-NN` files of a folder as bytes (decoded by the parser)."""
    _check_folder(folder)
    paths, skipped = scan_folder(Path(folder))
    _no_files(folder, paths, skipped)
    return dict(_readable(paths, skipped))


def load_folder(folder: Path, source: str | None = None) -> LoadResult:
    """Parse a folder file by file; entries not read are in `report.skipped_files` with the reason."""
    _check_folder(folder)
    paths, skipped = scan_folder(Path(folder))
    _no_files(folder, paths, skipped)
    return _load(_readable(paths, skipped), source or str(folder), skipped)
