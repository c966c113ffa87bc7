"""The UCI downloader against archives served from a local HTTP server (no real network)."""
from __future__ import annotations

import functools
import io
import socket
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from insulin_core.data.download import DownloadError, download_aim94

GOOD = "04-21-1991\t9:09\t58\t100\n04-21-1991\t9:09\t33\t009\n04-21-1991\t9:09\t34\t013\n"
CODES = "33 = Regular insulin dose\n"


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def tar_gz_bytes(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, blob in members.items():
            data = blob.encode() if isinstance(blob, str) else blob
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


def local_server(root: Path, handler: type[SimpleHTTPRequestHandler] = QuietHandler, prefix: str = "") -> Iterator:
    """publish(name, bytes) -> URL of that file (after `prefix`) on a local server (127.0.0.1, random
    free port) serving `root` with `handler`, for as long as the generator runs."""
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def publish(name: str, blob: bytes) -> str:
        (root / name).write_bytes(blob)
        return f"http://127.0.0.1:{server.server_address[1]}{prefix}/{name}"

    yield publish
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """serve(name, bytes) -> URL of that file on a local server (127.0.0.1, random free port)."""
    yield from local_server(tmp_path / "www")


def test_without_an_address_the_uci_diabetes_archive_is_asked_for(monkeypatch, tmp_path, capsys):
    """UCI serves its data set 34 (Diabetes: the AIM94 files) as static/public/<id>/<name>.zip; the
    downloader's default and the CLI's download-data without --url both ask for it over https
    (no network: urlopen is replaced by one that records the request and is offline)."""
    from insulin_core.cli import main

    asked = []

    def offline(request, timeout):
        asked.append(request.full_url)
        raise urllib.error.URLError("offline in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError, match="Could not reach archive.ics.uci.edu: offline in this test"):
        download_aim94(tmp_path / "out")
    assert main(["download-data", "--dest", str(tmp_path / "cli")]) == 2
    assert "Could not reach archive.ics.uci.edu" in capsys.readouterr().err
    uci = ("https", "archive.ics.uci.edu", "/static/public/34/diabetes.zip")
    assert [urllib.parse.urlsplit(url)[:3] for url in asked] == [uci, uci]


def test_zip_is_extracted_flat_and_verified_with_progress(serve, tmp_path):
    url = serve("diabetes.zip", zip_bytes({
        "Diabetes-Data/data-01": GOOD, "Diabetes-Data/data-02": GOOD * 2,
        "Diabetes-Data/Data-Codes": CODES, "Diabetes-Data/README-DIABETES": "about\n",
    }))
    seen: list[tuple[int, int | None]] = []
    result = download_aim94(tmp_path / "out", url=url, timeout=5, progress=lambda d, t: seen.append((d, t)))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["Data-Codes", "data-01", "data-02"]
    assert (out / "data-02").read_text() == GOOD * 2
    assert result.files == 2 and result.lines == 9
    assert result.data_files == (out / "data-01", out / "data-02")
    assert result.codes_file == out / "Data-Codes"
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] == result.archive_bytes > 0


def test_tar_gz_inside_a_zip_is_opened(serve, tmp_path):
    inner = tar_gz_bytes({"Diabetes-Data/data-07": GOOD, "Diabetes-Data/Data-Codes": CODES})
    url = serve("diabetes.zip", zip_bytes({"diabetes-data.tar.gz": inner, "readme.txt": "x"}))
    result = download_aim94(tmp_path / "out", url=url, timeout=5)
    assert [p.name for p in result.data_files] == ["data-07"]
    assert (tmp_path / "out" / "data-07").read_text() == GOOD


def test_a_bare_tar_gz_works_too(serve, tmp_path):
    url = serve("diabetes.tar.gz", tar_gz_bytes({"a/b/c/data-03": GOOD}))
    assert download_aim94(tmp_path / "out", url=url, timeout=5).files == 1
    assert (tmp_path / "out" / "data-03").is_file()


def test_member_paths_are_never_trusted(serve, tmp_path):
    url = serve("evil.zip", zip_bytes({
        "deep/nested/folder/data-01": GOOD,
        "../evil": "owned\n",
        "../data-02": GOOD,
        "/abs/data-03": GOOD,
        "ok/../../data-04": GOOD,
    }))
    dest = tmp_path / "sub" / "out"
    result = download_aim94(dest, url=url, timeout=5)
    assert sorted(p.name for p in dest.iterdir()) == ["data-01"]
    assert not list(tmp_path.rglob("evil"))
    assert not (tmp_path / "sub" / "data-02").exists() and not Path("/abs/data-03").exists()
    assert set(result.refused) == {"/abs/data-03 (unsafe path)", "../data-02 (unsafe path)", "ok/../../data-04 (unsafe path)"}


def test_only_compress_z_inside_gives_a_clear_error_naming_it(serve, tmp_path):
    url = serve("diabetes.zip", zip_bytes({"diabetes-data.tar.Z": b"\x1f\x9d\x90" + b"\0" * 50}))
    with pytest.raises(DownloadError, match=r"diabetes-data\.tar\.Z.*\(\.Z\).*Python cannot open"):
        download_aim94(tmp_path / "out", url=url, timeout=5)


def test_compress_z_beside_the_plain_files_is_only_noted(serve, tmp_path):
    url = serve("diabetes.zip", zip_bytes({"diabetes-data.tar.Z": b"\x1f\x9d\x90", "Diabetes-Data/data-01": GOOD}))
    result = download_aim94(tmp_path / "out", url=url, timeout=5)
    assert result.files == 1 and "diabetes-data.tar.Z" in result.notes[0]


def test_a_bare_compress_z_download_is_refused_by_name(serve, tmp_path):
    url = serve("diabetes-data.tar.Z", b"\x1f\x9d\x90" + b"\0" * 50)
    with pytest.raises(DownloadError, match=r"diabetes-data\.tar\.Z is a Unix compress"):
        download_aim94(tmp_path / "out", url=url, timeout=5)


@pytest.mark.parametrize("members, message", [
    ({"notes.txt": "nothing here\n"}, "No data-NN files"),
    ({"data-01": ""}, "data-01 in the download is empty"),
    ({"data-01": "<html>\n<body>not it</body>\n</html>\n"}, "does not look like an AIM94 file"),
])
def test_archives_without_usable_data_are_refused_and_dest_is_untouched(serve, tmp_path, members, message):
    url = serve("bad.zip", zip_bytes(members))
    with pytest.raises(DownloadError, match=message):
        download_aim94(tmp_path / "out", url=url, timeout=5)
    assert not (tmp_path / "out").exists()


def test_a_file_with_a_few_broken_lines_still_verifies(serve, tmp_path):
    text = GOOD * 4 + "\t138\t33\t3A\n"  # 12 good lines, one shifted line like data-27
    url = serve("ok.zip", zip_bytes({"data-27": text}))
    assert download_aim94(tmp_path / "out", url=url, timeout=5).lines == 13


def test_not_an_archive_is_a_download_error(serve, tmp_path):
    url = serve("page.zip", b"<html>Service unavailable</html>")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        download_aim94(tmp_path / "out", url=url, timeout=5)


def test_http_404_is_a_download_error(serve, tmp_path):
    url = serve("present.zip", zip_bytes({"data-01": GOOD})).replace("present.zip", "missing.zip")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_aim94(tmp_path / "out", url=url, timeout=5)
    assert "\n" not in str(info.value)


def test_unreachable_host_says_could_not_reach(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download_aim94(tmp_path / "out", url=f"http://127.0.0.1:{port}/diabetes.zip", timeout=5)
    message = str(info.value)
    assert message.startswith(f"Could not reach 127.0.0.1:{port}: ")
    assert "Check your internet connection, or point AIM94_DIR at a folder with the data-NN files." in message
    assert "\n" not in message


def test_existing_files_in_dest_are_replaced_only_after_verification(serve, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "data-01").write_text("old\n")
    bad = serve("bad.zip", zip_bytes({"data-01": "garbage line\n"}))
    with pytest.raises(DownloadError):
        download_aim94(dest, url=bad, timeout=5)
    assert (dest / "data-01").read_text() == "old\n"
    good = serve("good.zip", zip_bytes({"data-01": GOOD}))
    download_aim94(dest, url=good, timeout=5)
    assert (dest / "data-01").read_text() == GOOD


def test_cli_download_data_reports_what_it_fetched(serve, tmp_path, capsys):
    from insulin_core.cli import main

    url = serve("diabetes.zip", zip_bytes({"diabetes/data-01": GOOD, "diabetes/data-02": GOOD}))
    code = main(["download-data", "--dest", str(tmp_path / "aim94"), "--url", url])
    out = capsys.readouterr().out
    assert code == 0
    assert "Downloaded 2 AIM94 files" in out and f"AIM94_DIR={tmp_path / 'aim94'}" in out
    assert sorted(p.name for p in (tmp_path / "aim94").iterdir()) == ["data-01", "data-02"]


def test_cli_download_data_without_network_is_one_line_and_exit_2(tmp_path, capsys):
    from insulin_core.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["download-data", "--dest", str(tmp_path / "x"), "--url", f"http://127.0.0.1:{port}/d.zip"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: Could not reach") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("claimed", [100, 2**20 - 1])
def test_a_zip_bomb_with_a_false_header_is_a_download_error_while_it_streams(serve, tmp_path, claimed, monkeypatch):
    """A header under the limit passes the header check; the streamed read stops at the claimed
    size (then the CRC fails) or at the limit, never holding the 64 MB."""
    from tests.test_safezip import bomb, false_size

    monkeypatch.setattr("insulin_core.data.download.MAX_MEMBER_BYTES", 2**20)
    blob = false_size(bomb("diabetes/data-01"), claimed)
    with pytest.raises(DownloadError, match=r"data-01 in the zip is damaged \(Bad CRC"):
        download_aim94(tmp_path / "dest", url=serve("bomb.zip", blob))
    assert not (tmp_path / "dest").exists()
