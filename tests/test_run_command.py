"""What `make run` does on a machine without a display: the server starts headless, opens no
browser, and prints the URL to open, as the README says."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.load_sessions import free_port

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


def test_make_runs_server_prints_the_url_to_open_as_the_readme_says(tmp_path):
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "INSULIN_DASH_MODELS_DIR": str(tmp_path), "DISPLAY": "", "BROWSER": "false"}
    with open(log, "w") as out:  # the Makefile's command, with only the port changed
        proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while f"localhost:{port}" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        printed = log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert f"Local URL: http://localhost:{port}" in printed, printed[-2000:]
    readme = (ROOT / "README.md").read_text()
    assert "prints `Local URL: http://localhost:8501`" in readme and "$(VENV)/bin/streamlit run app.py" in (ROOT / "Makefile").read_text()
