"""Bundles as zip files, for the Models page: pack a bundle folder, unpack an upload safely.

An upload is never trusted: only the two bundle files are taken (by base name, wherever they sit in
the zip), sizes are capped, nothing is extracted elsewhere, and the result is loaded through
`registry.load_bundle` (weights_only) before the user can use it.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from insulin_core.registry import META_FILE, WEIGHTS_FILE, BundleError, ModelBundle, bundle_files, load_bundle

MAX_BUNDLE_BYTES = 50 * 1024 * 1024


def zip_bundle(path: Path) -> bytes:
    """The bundle folder as a zip, files at the top level under the bundle's name."""
    buffer = io.BytesIO()
    files = bundle_files(path)  # both files from one save, even while it is being overwritten
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (META_FILE, WEIGHTS_FILE):
            archive.writestr(f"{Path(path).name}/{name}", files[name])
    return buffer.getvalue()


def bundle_from_zip(data: bytes) -> ModelBundle:
    """Load a bundle from uploaded zip bytes; raises BundleError with a clear message."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BundleError("the upload is not a zip file; download a bundle from this page to see the format") from None
    wanted = {}
    for info in archive.infolist():
        base = PurePosixPath(info.filename).name
        if base in (META_FILE, WEIGHTS_FILE) and not info.is_dir():
            if base in wanted:
                raise BundleError(f"the zip holds more than one {base}; upload one bundle at a time")
            if info.file_size > MAX_BUNDLE_BYTES:
                raise BundleError(f"{base} is {info.file_size / 1e6:.0f} MB, over the {MAX_BUNDLE_BYTES / 1e6:.0f} MB limit")
            wanted[base] = info
    missing = [n for n in (META_FILE, WEIGHTS_FILE) if n not in wanted]
    if missing:
        raise BundleError(f"the zip lacks {' and '.join(missing)}; a bundle holds {META_FILE} and {WEIGHTS_FILE}")
    folder = Path(tempfile.mkdtemp(prefix="insulin-dash-bundle-")) / "uploaded"
    folder.mkdir()
    for base, info in wanted.items():
        (folder / base).write_bytes(archive.read(info))
    bundle = load_bundle(folder)
    bundle.path = None  # not a saved bundle until the user adds it
    return bundle
