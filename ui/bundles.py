"""Bundles as zip files, for the Models page: pack a bundle folder, unpack an upload safely.

An upload is never trusted: only the two bundle files are taken (by base name, wherever they sit in
the zip), their real decompressed sizes are capped as they stream (`insulin_core.data.safezip`), nothing
is extracted elsewhere, the scratch folder is removed once the bundle is in memory, and the result
is loaded through `registry.load_bundle` (weights_only) before the user can use it.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from insulin_core.bundles.registry import META_FILE, WEIGHTS_FILE, BundleError, ModelBundle, bundle_files, load_bundle
from insulin_core.data.safezip import ZipError, files, open_zip, read_member

MAX_BUNDLE_BYTES = 50 * 1024 * 1024


def zip_bundle(path: Path) -> bytes:
    """The bundle folder as a zip, files at the top level under the bundle's name."""
    buffer = io.BytesIO()
    contents = bundle_files(path)  # both files from one save, even while it is being overwritten
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (META_FILE, WEIGHTS_FILE):
            archive.writestr(f"{Path(path).name}/{name}", contents[name])
    return buffer.getvalue()


def bundle_from_zip(data: bytes) -> ModelBundle:
    """Load a bundle from uploaded zip bytes; raises BundleError with a clear message."""
    try:
        archive = open_zip(data)
    except ZipError:
        raise BundleError("the upload is not a zip file; download a bundle from this page to see the format") from None
    wanted = {}
    for info in files(archive):
        base = PurePosixPath(info.filename).name
        if base in (META_FILE, WEIGHTS_FILE):
            if base in wanted:
                raise BundleError(f"the zip holds more than one {base}; upload one bundle at a time")
            if info.file_size > MAX_BUNDLE_BYTES:
                raise BundleError(f"{base} is {info.file_size / 1e6:.0f} MB, over the {MAX_BUNDLE_BYTES / 1e6:.0f} MB limit")
            wanted[base] = info
    missing = [n for n in (META_FILE, WEIGHTS_FILE) if n not in wanted]
    if missing:
        raise BundleError(f"the zip lacks {' and '.join(missing)}; a bundle holds {META_FILE} and {WEIGHTS_FILE}")
    with tempfile.TemporaryDirectory(prefix="insulin-dash-bundle-") as scratch:
        folder = Path(scratch) / "uploaded"
        folder.mkdir()
        for base, info in wanted.items():
            try:
                (folder / base).write_bytes(read_member(archive, info, MAX_BUNDLE_BYTES))
            except ZipError as exc:
                raise BundleError(str(exc)) from None
        bundle = load_bundle(folder)  # weights are in memory after this: the folder can go
    bundle.path = None  # not a saved bundle until the user adds it
    return bundle
