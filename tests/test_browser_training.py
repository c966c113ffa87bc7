"""Background training in a real browser: a run started on the Train page goes on through a page
reload and a page switch (the worker belongs to the server, the owner token to the URL), and its
live panel follows it to the end; then the sidebar names the run's model.

Run: .venv/bin/python -m pytest tests/test_browser_training.py -q -s   (needs /usr/bin/chromium)
"""
from __future__ import annotations

import re
from pathlib import Path
import time

import pytest

from tests.test_browser import ALERT, CHROMIUM, assert_clean, chromium, clear_baselines, server, tab, wait_idle  # noqa: F401 (fixtures)
from tests.waits import WAIT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),  # a stuck server or browser fails here, not at CI's limit
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (install it with `make browser`)"),
]
EPOCHS = 60  # long enough to still run through a reload and a page switch (about 0.3 s an epoch here, idle)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def epoch_shown(page) -> int:
    """The epoch number in the live panel's progress text (0 before the first one)."""
    found = re.search(rf"Epoch (\d+)/{EPOCHS}", page.locator("body").inner_text())
    return int(found.group(1)) if found else 0


def wait_for_epoch_above(page, n: int, timeout_ms: int = WAIT_MS) -> int:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"""() => {{ const m = document.body.innerText.match(/Epoch (\\d+)\\/{EPOCHS}/);
                                             return m && Number(m[1]) > {n}; }}""", timeout=timeout_ms)
    except PlaywrightTimeout:  # say what the page showed instead (a message, the runs table, nothing)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "training-no-epoch.png"), full_page=True)
        raise AssertionError(f"no epoch above {n} within {timeout_ms / 1000:.0f} s; the page shows:\n"
                             + page.locator("[data-testid='stMain']").inner_text()[-3000:]) from None
    return epoch_shown(page)


def test_a_run_goes_on_through_a_reload_and_a_page_switch(server, tab):  # noqa: F811
    page = tab
    page.goto(f"{server}/train")
    wait_idle(page, "Train a model")
    for label in ("LSTM hidden units", "GRU hidden units"):
        page.get_by_role("slider", name=label).focus()
        page.keyboard.press("Home")  # the smallest width, 4
    page.get_by_label("Dense layers (widths, comma separated)").fill("8")
    page.get_by_role("slider", name="Ensemble members").focus()
    page.keyboard.press("Home")  # one network: more, shorter epochs than the default ensemble's
    page.get_by_role("slider", name="Early-stopping patience (epochs)").focus()
    page.keyboard.press("End")  # patience 50: the run goes to its last epoch
    epochs = page.get_by_role("slider", name="Epochs (at most)")
    epochs.focus()
    page.keyboard.press("Home")
    for _ in range(EPOCHS - 1):
        page.keyboard.press("ArrowRight")
    clear_baselines(page)  # this test follows the run, not its comparison with baselines
    page.locator(".st-key-train_go button").first.click()

    before_reload = wait_for_epoch_above(page, 1)
    assert "owner=" in page.url
    start = time.perf_counter()
    page.reload()  # a new Streamlit session on the same URL: the run is still listed, and still runs
    page.get_by_role("heading", name="Train a model", exact=True).first.wait_for()
    after_reload = wait_for_epoch_above(page, before_reload)
    print(f"\nreload: epoch {before_reload} -> {after_reload} shown {time.perf_counter() - start:.1f} s later")
    page.get_by_text("left at most").first.wait_for()  # the estimated time left

    page.locator('[data-testid="stSidebarNavLink"]', has_text="Patients").click()
    wait_idle(page, "Patients")
    page.wait_for_function("() => location.search.includes('owner=')")  # the token stays in the URL
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Train").click()
    page.get_by_role("heading", name="Train a model", exact=True).first.wait_for()
    page.locator(ALERT, has_text=f"Reached the maximum of {EPOCHS} epochs").first.wait_for(timeout=WAIT_MS)
    wait_idle(page, "Train a model")
    run = page.get_by_role("heading", name=re.compile(r"Result: run-")).first.inner_text().split(": ", 1)[1]
    # the sidebar names the finished run's model: it became the active one
    assert page.locator('[data-testid="stSidebar"]').get_by_text(f"Model: {run}").count() == 1
    assert_clean(page, "train after a reload and a page switch")
