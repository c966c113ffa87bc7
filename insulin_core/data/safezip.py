"""Read zip archives from strangers: real sizes counted as the bytes are decompressed, every failure
one readable message.

A zip member's header states its size, but nothing makes it true: `ZipFile.read` asks the
decompressor for up to 2 GiB at a time, so a 2 MB bomb with a false header allocates gigabytes
before any check can run. Here a member is read in CHUNK-sized pieces with a running total and
refused as soon as the total passes the limit. Damaged data (bad CRC, truncated), compression
methods Python lacks and encrypted members become a `ZipError`, never a traceback.
"""
from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator

CHUNK = 64 * 1024
MAX_MEMBERS = 10_000  # a central directory listing millions of entries is an attack, not data


class ZipError(ValueError):
    """A zip that cannot be read safely; the message is meant for a person."""


def open_zip(data: bytes, name: str = "the upload") -> zipfile.ZipFile:
    """The archive in `data`; ZipError when it is not a zip or lists too many members."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ZipError(f"{name} is not a readable zip file ({exc})") from None
    if len(archive.infolist()) > MAX_MEMBERS:
        raise ZipError(f"{name} lists {len(archive.infolist()):,} members; at most {MAX_MEMBERS:,} are read")
    return archive


def files(archive: zipfile.ZipFile) -> Iterator[zipfile.ZipInfo]:
    """The regular-file members (folders left out)."""
    return (info for info in archive.infolist() if not info.is_dir())


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    """The decompressed bytes of one member, at most `max_bytes` of them, counted as they come."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise ZipError(f"{name} in the zip is encrypted; upload it without a password")
    try:
        data = _read_at_most(archive, info, max_bytes)
    except NotImplementedError as exc:
        raise ZipError(f"{name} in the zip uses a compression method this app cannot read ({exc})") from None
    except RuntimeError as exc:  # zipfile's "password required" for encryption it did not flag above
        raise ZipError(f"{name} in the zip cannot be read: {exc}") from None
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
        raise ZipError(f"{name} in the zip is damaged ({exc})") from None
    if data is None:
        raise ZipError(f"{name} in the zip unpacks to more than {max_bytes / 2**20:,.1f} MB; refused")
    return data


def _read_at_most(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes | None:
    """The member's bytes, or None as soon as more than `max_bytes` have come out."""
    out = bytearray()
    with archive.open(info) as stream:
        while chunk := stream.read(CHUNK):
            if len(out) + len(chunk) > max_bytes:
                return None
            out += chunk
    return bytes(out)
