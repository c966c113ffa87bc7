"""Safe zip reading with crafted archives: bombs with true and false headers, bad CRC, unknown
compression, encryption, too many members; and the bundle upload that uses it."""
from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
import zipfile

import pytest

from insulin_core.bundles.registry import BundleError
from insulin_core.data.safezip import ZipError, open_zip, read_member
from ui.bundles import bundle_from_zip

BOMB_BYTES = 64 * 2**20  # zeros: a 64 KB deflate stream


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def bomb(name: str = "data-01") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(name, "w") as member:
        for _ in range(BOMB_BYTES // 2**20):
            member.write(bytes(2**20))
    return buffer.getvalue()


def patch_headers(data: bytes, local_offset: int, central_offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field in the (only) member's local header and central directory entry."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        at = out.index(signature) + offset
        out[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def false_size(data: bytes, size: int) -> bytes:
    return patch_headers(data, 22, 24, "<I", size)  # uncompressed size


def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
    except ZipError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def read_only(data: bytes, max_bytes: int = 2**20) -> bytes:
    archive = open_zip(data)
    return read_member(archive, archive.infolist()[0], max_bytes)


@pytest.mark.parametrize("header", ["true", "false"])
def test_a_bomb_is_refused_while_it_streams(header):
    data = bomb() if header == "true" else false_size(bomb(), 1_000)
    assert len(data) < 200_000
    with pytest.raises(ZipError, match="unpacks to more than|damaged"):
        read_only(data)
    assert peak_bytes(lambda: read_only(data)) < 4 * 2**20  # zipfile.read would hold 64 MB (2 GB for 2 MB)


def test_an_honest_member_within_the_limit_is_read():
    assert read_only(zipped({"data-01": b"04-21-1991\t9:09\t58\t100\n"})) == b"04-21-1991\t9:09\t58\t100\n"


def test_bad_crc_is_a_message():
    data = bytearray(zipped({"data-01": b"A" * 100}, zipfile.ZIP_STORED))
    data[data.index(b"A" * 100)] = ord("B")
    with pytest.raises(ZipError, match="damaged.*CRC"):
        read_only(bytes(data))


def test_unknown_compression_method_is_a_message():
    data = patch_headers(zipped({"data-01": b"x" * 100}), 8, 10, "<H", 99)
    with pytest.raises(ZipError, match="compression method"):
        read_only(data)


def test_encrypted_member_is_a_message():
    data = patch_headers(zipped({"data-01": b"x" * 100}), 6, 8, "<H", 0x1)
    with pytest.raises(ZipError, match="encrypted"):
        read_only(data)


def test_not_a_zip_and_too_many_members(monkeypatch):
    with pytest.raises(ZipError, match="not a readable zip"):
        open_zip(b"PK\x03\x04 definitely not a zip")
    monkeypatch.setattr("insulin_core.data.safezip.MAX_MEMBERS", 3)
    with pytest.raises(ZipError, match="at most 3"):
        open_zip(zipped({f"f{i}": b"" for i in range(5)}))


# ---- bundle uploads ------------------------------------------------------------------------------
@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """tempfile's folder, empty: what is left in it afterwards was left behind by the code."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("weights, message", [
    (None, "damaged.*CRC"),  # a 64 MB bomb whose header claims 1 KB: 1 KB is read, then the CRC fails
    (b"not torch weights", "format version"),  # fails inside load_bundle, after extraction
])
def test_bundle_upload_errors_are_messages_and_leave_no_folder(scratch, weights, message):
    data = false_size(bomb("b/weights.pt"), 1_000) if weights is None else zipped({"b/weights.pt": weights})
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("b/bundle.json", '{"name": "b", "model_config": {}}')
    data = buffer.getvalue()
    with pytest.raises(BundleError, match=message):
        bundle_from_zip(data)
    assert list(scratch.iterdir()) == []
