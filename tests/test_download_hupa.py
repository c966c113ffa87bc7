"""The HUPA-UCM downloader against archives served from a local HTTP server (no real network),
laid out as Mendeley Data's zip is: `HUPA-UCM Diabetes Dataset/Preprocessed/HUPA0001P.csv` beside
the raw exports, reached through a redirect as the public API answers."""
from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from insulin_core.cli import main
from insulin_core.data.download import DownloadError
from insulin_core.data.download_hupa import ATTRIBUTION, HUPA_PAGE, HUPA_URL, download_hupa_ucm
from insulin_core.data.readers.detect import read_files
from insulin_core.data.readers.hupa_ucm import HupaUcmReader

from .test_download import QuietHandler, local_server, serve, tar_gz_bytes, zip_bytes  # noqa: F401 (serve: a fixture)
from .test_readers_hupa_ucm import COLUMNS, csv, day

FOLDER = "HUPA-UCM Diabetes Dataset"
ONE, TWO = csv(day()), csv(day()[:10])
RAW = "Fecha;Hora;Glucosa\n13/06/2018;18:00;120\n".encode()  # a raw device export under the same name


def mendeley_zip(**extra: bytes) -> bytes:
    return zip_bytes({f"{FOLDER}/Raw_Data/HUPA0001P.csv": RAW, f"{FOLDER}/Preprocessed/HUPA0001P.csv": ONE,
                      f"{FOLDER}/Preprocessed/HUPA0002P.csv": TWO, f"{FOLDER}/README.txt": "about\n", **extra})


class RedirectHandler(QuietHandler):
    """/redirect/<name> answers 302 to /<name>, as Mendeley's public API sends to a signed address."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect"))
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def redirected(tmp_path: Path) -> Iterator:
    """redirected(name, bytes) -> an address that redirects to that file on a local server."""
    yield from local_server(tmp_path / "www-redirect", RedirectHandler, prefix="/redirect")


def free_port() -> int:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_an_address_the_mendeley_zip_of_version_1_is_asked_for(monkeypatch, tmp_path, capsys):
    asked = []

    def offline(request, timeout):
        asked.append(request.full_url)
        raise urllib.error.URLError("offline in this test")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError, match="Could not reach data.mendeley.com: offline in this test") as info:
        download_hupa_ucm(tmp_path / "out")
    assert HUPA_PAGE in str(info.value) and "AIM94_DIR" not in str(info.value)
    assert main(["download-data", "--source", "hupa-ucm", "--dest", str(tmp_path / "cli")]) == 2
    assert "Could not reach data.mendeley.com" in capsys.readouterr().err
    mendeley = ("https", "data.mendeley.com", "/public-api/zip/3hbcscwz44/download/1")
    assert [urllib.parse.urlsplit(url)[:3] for url in asked] == [mendeley, mendeley] and asked[0] == HUPA_URL
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_the_preprocessed_files_are_extracted_flat_through_a_redirect_and_read_by_the_reader(redirected, tmp_path):
    seen: list[tuple[int, int | None]] = []
    result = download_hupa_ucm(tmp_path / "out", url=redirected("3hbcscwz44-1.zip", mendeley_zip()), timeout=5,
                               progress=lambda done, total: seen.append((done, total)))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["HUPA0001P.csv", "HUPA0002P.csv"]
    assert (out / "HUPA0001P.csv").read_bytes() == ONE and (out / "HUPA0002P.csv").read_bytes() == TWO  # not the raw one
    assert result.files == 2 and result.lines == len(day()) + 10 and result.codes_file is None
    assert result.refused == (f"{FOLDER}/Raw_Data/HUPA0001P.csv (duplicate of HUPA0001P.csv)",)
    assert result.notes == (ATTRIBUTION,) and "CC BY 4.0" in ATTRIBUTION
    assert seen[-1][0] == seen[-1][1] == result.archive_bytes > 0
    loaded = read_files({p.name: p.read_bytes() for p in out.iterdir()}, "downloaded")
    assert loaded.report.reasons == HupaUcmReader.reasons and loaded.report.patients == 2
    assert loaded.report.accepted == result.lines and not loaded.report.rejected


def test_a_tar_gz_or_a_zip_inside_the_zip_works_too(serve, tmp_path):
    inner = tar_gz_bytes({f"{FOLDER}/Preprocessed/HUPA0007P.csv": ONE})
    result = download_hupa_ucm(tmp_path / "out", url=serve("outer.zip", zip_bytes({"dataset.tar.gz": inner})), timeout=5)
    assert [p.name for p in result.data_files] == ["HUPA0007P.csv"]
    assert (tmp_path / "out" / "HUPA0007P.csv").read_bytes() == ONE


def test_member_paths_are_never_trusted(serve, tmp_path):
    url = serve("evil.zip", zip_bytes({"../HUPA0003P.csv": ONE, "/abs/HUPA0004P.csv": ONE,
                                       f"{FOLDER}/Preprocessed/HUPA0005P.csv": ONE}))
    result = download_hupa_ucm(tmp_path / "sub" / "out", url=url, timeout=5)
    assert sorted(p.name for p in (tmp_path / "sub" / "out").iterdir()) == ["HUPA0005P.csv"]
    assert not (tmp_path / "sub" / "HUPA0003P.csv").exists()
    assert set(result.refused) == {"../HUPA0003P.csv (unsafe path)", "/abs/HUPA0004P.csv (unsafe path)"}


GARBAGE = (";".join(COLUMNS) + "\n" + "yesterday;high;x;y;z;w;v;u\n" * 20).encode()


@pytest.mark.parametrize("blob, message", [
    (b"<html>Service unavailable</html>", "neither a zip nor a tar"),
    (zip_bytes({"notes.txt": "nothing here\n"}), r"No HUPA-UCM preprocessed files \(HUPA0001P.csv ...\)"),
    (zip_bytes({"P/HUPA0001P.csv": "04-21-1991\t9:09\t58\t100\n"}), "HUPA0001P.csv in the download is not a HUPA-UCM"),
    (zip_bytes({"P/HUPA0001P.csv": GARBAGE}), r"only 0% of its rows are accepted \(most rejected as bad_date\)"),
    (zip_bytes({"P/HUPA0001P.csv": ";".join(COLUMNS) + "\n"}), "has a header but no rows"),
    (mendeley_zip()[:400], "neither a zip nor a tar"),  # cut off: its central directory never came
], ids=["not-an-archive", "no-hupa-files", "aim94-content", "garbage-rows", "header-only", "truncated-zip"])
def test_a_bad_archive_or_wrong_content_is_one_clear_message_and_nothing_is_written(serve, tmp_path, blob, message):
    dest = tmp_path / "out"
    with pytest.raises(DownloadError, match=message) as info:
        download_hupa_ucm(dest, url=serve("bad.zip", blob), timeout=5)
    assert "\n" not in str(info.value) and HUPA_PAGE in str(info.value)
    assert not dest.exists()


def test_a_damaged_member_is_a_download_error(serve, tmp_path):
    blob = bytearray(mendeley_zip())  # members stored uncompressed: the header's bytes are there to flip
    at = blob.index(b"time;glucose")
    blob[at:at + 8] = bytes(b ^ 0xFF for b in blob[at:at + 8])
    with pytest.raises(DownloadError, match=rf"{FOLDER}/Preprocessed/HUPA0001P.csv in the zip is damaged \(Bad CRC"):
        download_hupa_ucm(tmp_path / "out", url=serve("damaged.zip", bytes(blob)), timeout=5)
    assert not (tmp_path / "out").exists()


def test_network_failures_are_one_line_naming_the_data_set_page(serve, tmp_path):
    missing = serve("present.zip", mendeley_zip()).replace("present.zip", "missing.zip")
    with pytest.raises(DownloadError, match=f"HTTP 404 .*dataset page: {HUPA_PAGE}"):
        download_hupa_ucm(tmp_path / "out", url=missing, timeout=5)
    port = free_port()
    with pytest.raises(DownloadError) as info:
        download_hupa_ucm(tmp_path / "out", url=f"http://127.0.0.1:{port}/x.zip", timeout=5)
    assert str(info.value).startswith(f"Could not reach 127.0.0.1:{port}: ") and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_existing_files_in_dest_are_replaced_only_after_verification(serve, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "HUPA0001P.csv").write_bytes(b"old\n")
    with pytest.raises(DownloadError):
        download_hupa_ucm(dest, url=serve("bad.zip", zip_bytes({"HUPA0001P.csv": GARBAGE})), timeout=5)
    assert (dest / "HUPA0001P.csv").read_bytes() == b"old\n"
    download_hupa_ucm(dest, url=serve("good.zip", zip_bytes({"HUPA0001P.csv": ONE})), timeout=5)
    assert (dest / "HUPA0001P.csv").read_bytes() == ONE


def test_cli_download_data_source_hupa_ucm_with_url(redirected, tmp_path, capsys):
    url = redirected("hupa.zip", mendeley_zip())
    code = main(["download-data", "--source", "hupa-ucm", "--dest", str(tmp_path / "hupa"), "--url", url])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Downloaded 2 HUPA-UCM preprocessed files ({len(day()) + 10} rows) from {url}" in out
    assert f"note: {ATTRIBUTION}" in out and "AIM94_DIR" not in out
    assert sorted(p.name for p in (tmp_path / "hupa").iterdir()) == ["HUPA0001P.csv", "HUPA0002P.csv"]


def test_cli_refuses_an_unknown_source_in_one_line(tmp_path, capsys):
    assert main(["download-data", "--source", "ohio", "--dest", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'ohio'" in err and "aim94" in err and "hupa-ucm" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()

