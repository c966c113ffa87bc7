"""Screenshots of every page on the real AIM94 data, at 1280 and 1400 px wide, with a model trained
on that data (the default settings), for the README and the issues' closing notes.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/screenshots_real.py [--models DIR]

Trains `aim94-default` into --models (default /tmp/insulin-dash-real-models) unless it is there,
starts `streamlit run` on the real data, and writes docs/screenshots/real/<page>-<width>.png.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_sessions import start_server  # noqa: E402
from tests.test_browser import CHROMIUM, LAUNCH_ARGS, PAGES, screenshot, wait_idle  # noqa: E402
import tests.test_browser as browser_test  # noqa: E402

TUNE = ("tune", "Tune the settings", "tune")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=Path("/tmp/insulin-dash-real-models"))
    args = ap.parse_args()
    aim94 = os.environ.get("AIM94_DIR")
    if not aim94:
        raise SystemExit("set AIM94_DIR to the real data folder")
    args.models.mkdir(parents=True, exist_ok=True)
    if not (args.models / "aim94-default").is_dir():
        subprocess.run([sys.executable, "-m", "insulin_core", "train", "--name", "aim94-default", "--data-dir", aim94,
                        "--models-dir", str(args.models)], cwd=ROOT, check=True)
    if not (args.models / "demo").is_dir():
        shutil.copytree(ROOT / "models" / "demo", args.models / "demo")
    out = ROOT / "docs" / "screenshots" / "real"
    out.mkdir(parents=True, exist_ok=True)
    browser_test.SHOTS = out  # screenshot() writes there
    from playwright.sync_api import sync_playwright

    srv = start_server(args.models, aim94_dir=str(Path(aim94).resolve()))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            for width in (1280, 1400):
                page = browser.new_context(viewport={"width": width, "height": 1000}).new_page()
                page.set_default_timeout(300_000)
                for path, title, name in [*PAGES[:3], TUNE, *PAGES[3:]]:
                    page.goto(f"{srv.url}/{path}")
                    wait_idle(page, title)
                    screenshot(page, f"{name}-{width}")
                    print(f"{out.relative_to(ROOT)}/{name}-{width}.png")
                page.context.close()
            browser.close()
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
