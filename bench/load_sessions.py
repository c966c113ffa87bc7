"""Load test: N concurrent sessions walk through every page of a real `streamlit run` server.

Each session is a websocket client speaking Streamlit's own protocol (the BackMsg / ForwardMsg
protobufs the browser sends and receives on /_stcore/stream): it asks for each page in turn
(`rerun_script` with the page's URL path, as a browser does on a direct visit) and times it from the
request to the server's `script_finished`. Every element the server sends is checked: an
exception element or an error alert counts as an error.

Why websockets and not N Playwright browser contexts: what serialises sessions is the server's
Python (one process, one GIL); drawing the charts happens in each user's own browser. Fifty
Chromium renderers on the same 2 cores would measure Chromium fighting the server for the CPU, not
the server. The browser test (tests/test_browser.py) covers what the browser does, with one tab.

Run:  .venv/bin/python bench/load_sessions.py --sessions 20 50          (demo cohort)
      AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/load_sessions.py --sessions 20 50
Writes a markdown table to bench/out/load_sessions.md (and prints it).
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # ui.streamlit_internals: Streamlit's websocket messages
# (url path, name): every page the app declares; "" is the default page, the Overview
PAGES = [("", "overview"), ("patients", "patients"), ("train", "train"), ("tune", "tune"), ("models", "models"),
         ("predictions", "predictions"), ("whatif", "whatif")]
PAGE_TIMEOUT_S = 300


# ---- the server ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path
    started: float  # perf_counter() just before the process was started
    healthy: float = 0.0  # perf_counter() when /_stcore/health first answered ok

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, from /proc): unlike wall
        times it does not grow when other jobs share the machine."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(models_dir: Path, port: int | None = None, aim94_dir: str | None = None,
                 log: Path | None = None, timeout: float = 90) -> Server:
    """`streamlit run app.py` as users run it, on `port`, reading models from `models_dir`; the
    real data when `aim94_dir` is given (else the demo cohort). Returns once /_stcore/health says ok."""
    port = port or free_port()
    env = {**os.environ, "INSULIN_DASH_MODELS_DIR": str(models_dir), "OMP_NUM_THREADS": "1"}
    env.pop("AIM94_DIR", None)
    if aim94_dir:
        env["AIM94_DIR"] = aim94_dir
    log = log or Path(tempfile.mkdtemp(prefix="insulin-dash-server-")) / "streamlit.log"
    out = open(log, "w")
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    server = Server(proc, f"http://127.0.0.1:{port}", log, started)
    deadline = started + timeout
    while True:
        try:
            if urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2).read() == b"ok":
                server.healthy = time.perf_counter()
                return server
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() > deadline:
            server.stop()
            raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def demo_models(folder: Path) -> Path:
    """A models folder holding a copy of the shipped demo bundle (models/ itself is never touched)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "models" / "demo", folder / "demo", dirs_exist_ok=True)
    return folder


# ---- one session ----------------------------------------------------------------------------------
@dataclass
class SessionResult:
    times: dict[str, float] = field(default_factory=dict)  # page -> seconds
    errors: list[str] = field(default_factory=list)


def _problems(msg) -> list[str]:
    """An exception element or an error alert in one ForwardMsg."""
    if msg.WhichOneof("type") != "delta" or msg.delta.WhichOneof("type") != "new_element":
        return []
    element = msg.delta.new_element
    kind = element.WhichOneof("type")
    if kind == "exception":
        return [f"exception {element.exception.type}: {element.exception.message[:200]}"]
    if kind == "alert" and element.alert.format == 1:  # Alert.Format.ERROR
        return [f"error: {element.alert.body[:200]}"]
    return []


async def run_session(url: str, pages=PAGES) -> SessionResult:
    """One user: connect, then every page in turn, each timed from request to script_finished."""
    import websockets

    from ui.streamlit_internals import BackMsg, ForwardMsg

    result = SessionResult()
    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    try:
        async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None,
                                      open_timeout=PAGE_TIMEOUT_S, ping_interval=None) as ws:
            for path, name in pages:
                back = BackMsg()
                back.rerun_script.query_string = ""
                back.rerun_script.page_name = path
                back.rerun_script.page_script_hash = ""
                start = time.perf_counter()
                await ws.send(back.SerializeToString())
                while True:
                    raw = await asyncio.wait_for(ws.recv(), PAGE_TIMEOUT_S)
                    msg = ForwardMsg()
                    msg.ParseFromString(raw)
                    result.errors += [f"{name}: {p}" for p in _problems(msg)]
                    kind = msg.WhichOneof("type")
                    if kind == "page_not_found":
                        result.errors.append(f"{name}: page not found")
                    if kind == "script_finished":
                        if msg.script_finished == 1:  # FINISHED_WITH_COMPILE_ERROR
                            result.errors.append(f"{name}: script did not compile")
                        if msg.script_finished != 2:  # 2: finished early for a rerun; wait for the rerun
                            break
                result.times[name] = time.perf_counter() - start
    except Exception as exc:  # a dropped or refused connection is an error of this session, not a crash
        result.errors.append(f"session: {type(exc).__name__}: {exc}")
    return result


async def run_sessions(url: str, n: int, pages=PAGES) -> tuple[list[SessionResult], float]:
    """`n` sessions started together; returns their results and the wall time of the whole load."""
    start = time.perf_counter()
    results = await asyncio.gather(*(run_session(url, pages) for _ in range(n)))
    return list(results), time.perf_counter() - start


@dataclass
class LoadSummary:
    sessions: int
    median_s: float
    p90_s: float
    slowest_s: float
    slowest_page: str
    wall_s: float
    errors: list[str]
    per_page_median: dict[str, float]
    server_cpu_per_view_s: float = float("nan")  # server CPU seconds per page view (when the bench started it)


def summarise(results: list[SessionResult], wall: float) -> LoadSummary:
    times = [(t, page) for r in results for page, t in r.times.items()]
    values = sorted(t for t, _ in times) or [float("nan")]
    slowest = max(times) if times else (float("nan"), "-")
    per_page = {name: statistics.median([r.times[name] for r in results if name in r.times] or [float("nan")])
                for _, name in PAGES}
    return LoadSummary(len(results), statistics.median(values), values[int(0.9 * (len(values) - 1))], slowest[0],
                       slowest[1], wall, [e for r in results for e in r.errors], per_page)


def _run(coroutine):
    """asyncio.run in a thread of its own: the caller's thread may run a loop already (Playwright's
    sync API in the browser tests does)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def load(url: str, n: int, warm: bool = True, server: Server | None = None) -> LoadSummary:
    """Measure `n` concurrent sessions; with `warm`, one session walks every page first (so the
    figures are about sharing the server, not the first visitor's cold caches)."""
    if warm:
        _run(run_session(url))
    cpu = server.cpu_seconds() if server else float("nan")
    summary = summarise(*_run(run_sessions(url, n)))
    if server:
        summary.server_cpu_per_view_s = (server.cpu_seconds() - cpu) / (n * len(PAGES))
    return summary


def table(rows: list[LoadSummary], data: str) -> str:
    lines = [f"Data: {data}. Each session requests all {len(PAGES)} pages in turn; page time = request to the "
             "server's script_finished.", "",
             "| sessions | median page (s) | 90th pct (s) | slowest page (s) | slowest is | whole load (s) | "
             "server CPU per page view (s) | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {s.sessions} | {s.median_s:.2f} | {s.p90_s:.2f} | {s.slowest_s:.2f} | {s.slowest_page} | "
              f"{s.wall_s:.1f} | {s.server_cpu_per_view_s:.3f} | {len(s.errors)} |" for s in rows]
    lines += ["", "Median per page (s): " + "; ".join(
        f"{s.sessions} sessions: " + ", ".join(f"{p} {t:.2f}" for p, t in s.per_page_median.items()) for s in rows)]
    return "\n".join(lines)


PERFORMANCE = ROOT / "docs" / "performance.md"
SESSIONS_HEADING = "### Latest run of bench/load_sessions.py"  # inside "## Concurrent sessions"


def write_section(path: Path, heading: str, body: str, parent: str = "") -> None:
    """Replace the section `heading` ("## ..." or "### ...") of a markdown file up to the next heading
    of its level or above, leaving the rest as it is; a missing one is added at the end of `parent`
    (a "## " section) or of the file."""
    text = path.read_text() if path.exists() else "# Performance\n"
    level = heading.split(" ", 1)[0]
    ends = [f"\n{'#' * n} " for n in range(2, len(level) + 1)]

    def end_of(start: int) -> int:
        found = [i for i in (text.find(e, start) for e in ends) if i >= 0]
        return min(found) if found else len(text)

    block = f"{heading}\n\n{body.rstrip()}\n"
    start = text.find(heading + "\n")
    if start >= 0:
        end = end_of(start + len(heading))
        text = text[:start] + block + ("\n" + text[end:].lstrip("\n") if end < len(text) else "")
    elif parent and (p := text.find(parent + "\n")) >= 0:
        end = text.find("\n## ", p + len(parent))
        end = len(text) if end < 0 else end
        text = text[:end].rstrip("\n") + f"\n\n{block}" + ("\n" + text[end:].lstrip("\n") if end < len(text) else "")
    else:
        text = text.rstrip("\n") + f"\n\n{block}"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--url", help="an already running server (else one is started here)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "load_sessions.md")
    parser.add_argument("--docs", action="store_true", help=f"also write the table to docs/performance.md "
                                                              f"under {SESSIONS_HEADING!r}")
    args = parser.parse_args(argv)
    aim94 = os.environ.get("AIM94_DIR")
    data = f"real AIM94 data ({aim94})" if aim94 else "demo cohort"
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            url = args.url
        else:
            server = start_server(demo_models(Path(tmp) / "models"), args.port, aim94)
            url = server.url
        try:
            rows = []
            for n in args.sessions:
                rows.append(load(url, n, server=server))
                s = rows[-1]
                print(f"{n} sessions: median {s.median_s:.2f} s, slowest {s.slowest_s:.2f} s ({s.slowest_page}), "
                      f"server CPU {s.server_cpu_per_view_s:.3f} s a page view, {len(s.errors)} errors {s.errors[:3]}",
                      flush=True)
        finally:
            if server:
                server.stop()
    text = table(rows, data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    if args.docs:
        write_section(PERFORMANCE, SESSIONS_HEADING, text, parent="## Concurrent sessions")
    print(text)
    return 1 if any(s.errors for s in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
