"""Issue 10's fast clicks in a real browser: a fresh `streamlit run` server per data set (the demo
cohort and, with AIM94_DIR, the real data), its start, What-if slider moves, patient and model
switches, each checked and timed.

Its own module (moved from tests/test_browser.py, unchanged), so that `make test`'s loadscope
scheduling runs it on the other worker beside the every-page test: the two share nothing but the
helpers imported here (each module starts its own Chromium and servers).

Run: .venv/bin/python -m pytest tests/test_browser_clicks.py -q -s   (needs /usr/bin/chromium; `make browser`)
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

from bench.load_sessions import start_server, write_section
from tests.test_browser import CHROMIUM, OUT, ROOT, assert_clean, chromium, wait_idle  # noqa: F401 (fixture)
from tests.waits import WAIT_MS, WAIT_S

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),  # a stuck server or browser fails here, not at CI's limit
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (install it with `make browser`)"),
]


# ---- fast clicks: server start, a slider move, a patient and a model switch (issue 10) ------------
# The targets: asserted only on a run that says the machine is idle (INSULIN_DASH_IDLE=1), with 3
# starts and 6 moves to take medians of (as `make screenshots` measures them for docs/performance.md).
# Any other run (make test, CI, a busy laptop) checks that every click works and records its times,
# but asserts none: a bound on wall-clock seconds fails on a machine that is merely busy (issue 18).
TARGETS_S = {"start": 3.0, "slider": 0.3, "patient": 1.0, "model": 1.0}
IDLE_COUNTS = {"starts": 3, "moves": 6, "switches": 4}
CHECK_COUNTS = {"starts": 1, "moves": 2, "switches": 2}
CLICKS = OUT / "dashboard_clicks.md"
PERFORMANCE = ROOT / "docs" / "performance.md"
CLICKS_HEADING = "### Latest run of the browser test"  # inside "## Dashboard clicks"
# The same test run on main before the speed work (bffa946), on the same machine, busy as this run
# was (load average 12-15 from other jobs): kept here so the docs show both.
BEFORE_CLICKS = """Before (main at bffa946, same test, same machine, load average 12-15), median s: demo cohort: start 23.2
(heading 20.7), slider 1.68, patient switch 2.41, model switch 1.55; real AIM94: start 26.3 (heading 24.0), slider
2.25, patient switch 3.35, model switch 4.30."""

# Counts the script runs that end from now on: an attribute change from 'running' to anything else, on
# whichever element carries the state. The whole page is observed, not one stApp element: once (a slider
# move, 2026-12-04) the rerun's new text was on screen while the counter stayed at 0 for 300 s, and an
# observer on one element misses everything once that element is replaced. Records come in batches: a
# record's new value is the next record's old value on the same element, or the current one.
ARM_JS = """() => {
    window.__runsEnded = 0;
    if (window.__runObserver) window.__runObserver.disconnect();
    window.__runObserver = new MutationObserver(records => records.forEach((r, i) => {
        if (r.oldValue !== 'running') return;
        const later = records.slice(i + 1).find(s => s.target === r.target);
        if ((later ? later.oldValue : r.target.getAttribute('data-test-script-state')) !== 'running') window.__runsEnded++;
    }));
    window.__runObserver.observe(document.body, {subtree: true, attributes: true, attributeOldValue: true,
                                                 attributeFilter: ['data-test-script-state']});
}"""
# Finished: the text the click had to change is gone (only a run changes it), or, where there is none,
# a run ended; none is running; every visible chart and table is drawn.
DONE_JS = """([before]) => {
    const app = document.querySelector('[data-testid="stApp"]');
    const ran = before === null ? window.__runsEnded > 0 : !document.body.innerText.includes(before);
    return ran && app.getAttribute('data-test-script-state') === 'notRunning' &&
        [...document.querySelectorAll('[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]')]
            .filter(e => e.checkVisibility()).every(e => e.querySelector('canvas, svg'));
}"""
PAINTED_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def timed(page, action, before_text: str | None = None) -> float:
    """Seconds from `action()` to: the rerun it caused finished, `before_text` gone from the page
    (when given), every visible chart and table drawn, and two frames painted after that."""
    page.evaluate(ARM_JS)
    start = time.perf_counter()
    action()
    return finished(page, start, before_text)


def finished(page, start: float, before_text: str | None = None) -> float:
    """Seconds since `start` once the rerun armed before it has ended (see timed)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(DONE_JS, arg=[before_text], polling="raf", timeout=WAIT_MS)
    except PlaywrightTimeout:  # say what the page showed: a run that never ended, or a click that never ran one
        (ROOT / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "timed-out-click.png"), full_page=True)
        state = page.evaluate("""() => ({runsEnded: window.__runsEnded, script: document.querySelector(
            '[data-testid="stApp"]').getAttribute('data-test-script-state'), undrawn: [...document.querySelectorAll(
            '[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]')].filter(e => e.checkVisibility()
            && !e.querySelector('canvas, svg')).length})""")
        raise AssertionError(f"no finished rerun {WAIT_S} s after the click: {state}; the page shows:\n"
                             + page.locator("[data-testid='stMain']").inner_text()[-2000:]) from None
    page.evaluate(PAINTED_JS)
    return time.perf_counter() - start


def wait_rendered(page, title: str) -> None:
    """wait_idle without its grace pause: the first page is rendered when this returns."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.wait_for_function("""() => document.querySelector('[data-testid="stApp"]')
            .getAttribute('data-test-script-state') === 'notRunning' &&
        [...document.querySelectorAll('[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]')]
            .filter(e => e.checkVisibility()).every(e => e.querySelector('canvas, svg'))""", polling="raf")
    page.evaluate(PAINTED_JS)


def open_options(page, key: str) -> list[str]:
    """Open the selectbox whose widget key is `key`; its options. Retried: a click landing while a
    rerun redraws the widget can close the list again (about one open in four, idle or busy). Each
    retry waits twice as long as the one before (5, 10, 20, 40 s): quick when a click was lost,
    patient when the machine is slow."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(4):
        page.locator(f".st-key-{key} input[role='combobox']").first.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=5_000 * 2**attempt)
            return [o.strip() for o in page.get_by_role("option").all_inner_texts()]
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"the selectbox {key} never opened")


# A click on an option took when a rerun ran or runs, not when the box merely shows the option: twice
# (a What-if patient switch) the box showed it and no run end was seen for 300 s, with the observer's
# blind spot above or a click that ran nothing; either way the click is now retried within seconds.
TOOK_JS = """() => window.__runsEnded > 0 ||
    document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'running'"""


def switch(page, key: str, option: str, attempts: int = 3) -> float:
    """Seconds to switch the selectbox `key` to `option`: from the click on the option (the list is
    opened first, untimed) to the page redrawn (see timed). A click that lands while the list is
    redrawn can be lost on a busy machine (no rerun): the list is opened and the option clicked
    again, and the time counted from that click. Where the lost click left the box showing the
    option, a second click on it would change nothing, so the box goes through another option first."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        if attempt and picked(page, key) == option:
            options = open_options(page, key)
            page.keyboard.press("Escape")
            switch(page, key, next(o for o in options if o != option), attempts=1)
        open_options(page, key)
        page.evaluate(ARM_JS)
        start = time.perf_counter()
        page.get_by_role("option", name=option, exact=True).first.click()
        try:  # a rerun starts at once when the click took: 10, 20, 40 s is ample
            page.wait_for_function(TOOK_JS, polling="raf", timeout=10_000 * 2**attempt)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        return finished(page, start)
    raise AssertionError(f"{attempts} clicks on {option!r} in {key} never ran the page")


def picked(page, key: str) -> str:
    """The value a selectbox shows."""
    return page.locator(f".st-key-{key} input[role='combobox']").first.input_value()


def tiny_bundle(folder: Path, aim94_dir: str | None, name: str = "tiny") -> None:
    """A second model to switch to: a tiny network trained here on the data the server shows."""
    from insulin_core.prep.dataset import load_cohort
    from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment
    from insulin_core.bundles.registry import save_bundle
    from insulin_core.data.source import DataSource
    from insulin_core.models.train import TrainConfig
    from tests.test_app import TINY

    cohort = load_cohort(DataSource("env", aim94_dir) if aim94_dir else DataSource("demo"))
    exp, cfg = ExperimentConfig(), TrainConfig(epochs=1, threads=1)
    result = run_experiment(cohort.features, exp, TINY, cfg, baselines=["previous_row"])
    save_bundle(result.training.model, bundle_meta(result, exp, cfg, cohort.source.label, cohort.fingerprint), name,
                folder)


def measure_clicks(browser, models: Path, aim94_dir: str | None, log_dir: Path, starts: int = 3, moves: int = 6,
                   switches: int = 4) -> dict[str, list[float]]:
    """Seconds per interaction on fresh servers (see the docs/performance.md section for what each
    one covers). `models` holds `demo` and `tiny`."""
    found: dict[str, list[float]] = {"start": [], "start_health": [], "start_heading": [],
                                     "slider": [], "patient": [], "model": []}
    srv = None
    for n in range(starts):  # a fresh server each time: server start -> the Overview rendered
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        srv = start_server(models, aim94_dir=aim94_dir, log=log_dir / f"start-{n}.log", timeout=WAIT_S)
        found["start_health"].append(srv.healthy - srv.started)
        page.goto(srv.url)
        page.get_by_role("heading", name="insulin-dash", exact=True).first.wait_for()
        found["start_heading"].append(time.perf_counter() - srv.started)
        wait_rendered(page, "insulin-dash")
        found["start"].append(time.perf_counter() - srv.started)
        assert_clean(page, "the first page")
        if n < starts - 1:
            context.close()
            srv.stop()
    try:
        page.goto(f"{srv.url}/whatif")
        # idle, not just rendered: a first visit straight to a page reruns once (streamlit_internals) and a
        # key press landing on that rerun went to a slider about to be replaced (a CI flake: no run followed)
        wait_idle(page, "What if?")
        assert_clean(page, "what-if")
        slider = page.get_by_role("slider", name="Glucose now (mg/dL)")
        for n in range(moves):  # up, down, up...: stays inside the meter range
            before = page.get_by_text("Scenario: glucose").first.inner_text()
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            slider.focus()
            found["slider"].append(timed(page, lambda: page.keyboard.press("PageUp" if n % 2 == 0 else "PageDown"),
                                         before))
            assert page.get_by_text("Scenario: glucose").first.inner_text() != before
        assert_clean(page, "what-if after the slider moves")
        first = picked(page, "whatif_patient")
        options = open_options(page, "whatif_patient")
        page.keyboard.press("Escape")
        other = next(o for o in options if o != first)
        for n in range(switches):
            target = other if n % 2 == 0 else first
            found["patient"].append(switch(page, "whatif_patient", target))
            assert picked(page, "whatif_patient") == target
        assert_clean(page, "what-if after patient switches")
        start_model = picked(page, "active_model")  # the newest model trained on the data on screen
        options = open_options(page, "active_model")  # a model of other data is labelled so
        page.keyboard.press("Escape")
        other_model = next(o for o in options if o != start_model and o.split(" (")[0] in ("demo", "tiny"))
        for n in range(switches):
            target = other_model if n % 2 == 0 else start_model
            found["model"].append(switch(page, "active_model", target))
            assert picked(page, "active_model") == target
        assert_clean(page, "what-if after model switches")
    finally:
        srv.stop()
    return found


def clicks_table(rows: dict[str, dict[str, list[float]]]) -> str:
    """Markdown: one row per (data, interaction): median, slowest, every run, the target."""
    names = {"start": "server start -> Overview rendered", "start_heading": "server start -> Overview heading shown",
             "start_health": "server start -> server answers /_stcore/health (Streamlit's own start)",
             "start_model_label": "server start -> sidebar model label shown",
             "slider": "What-if glucose slider move -> new dose and charts", "patient": "What-if patient switch",
             "model": "What-if model switch (demo <-> tiny)"}
    lines = ["| data | interaction | median (s) | slowest (s) | target (s) | runs (s) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for data, found in rows.items():
        for key, values in found.items():
            target = f"< {TARGETS_S[key]:g}" if key in TARGETS_S else ""
            lines.append(f"| {data} | {names[key]} | {statistics.median(values):.3f} | {max(values):.3f} | {target} | "
                         + ", ".join(f"{v:.3f}" for v in values) + " |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def click_models(tmp_path_factory):
    """Per data set: a models folder with the shipped `demo` and a `tiny` trained on that data."""
    folders = {}
    for data, aim94 in [("demo cohort", None), ("real AIM94", os.environ.get("AIM94_DIR") or None)]:
        if data == "real AIM94" and aim94 is None:
            continue
        folder = tmp_path_factory.mktemp("click-models")
        shutil.copytree(ROOT / "models" / "demo", folder / "demo")
        tiny_bundle(folder, aim94)
        folders[data] = (folder, aim94)
    return folders

def test_fast_clicks(click_models, chromium, tmp_path):
    """Issue 10's three interactions on fresh servers, with the demo cohort and (with AIM94_DIR) the
    real data; the table goes to tests/artifacts/dashboard_clicks.md (and docs/performance.md under
    `make screenshots`)."""
    idle = os.environ.get("INSULIN_DASH_IDLE") == "1"
    counts = IDLE_COUNTS if idle or os.environ.get("INSULIN_DASH_SCREENSHOTS") else CHECK_COUNTS
    rows = {data: measure_clicks(chromium, models, aim94, tmp_path, **counts) for data, (models, aim94) in click_models.items()}
    body = ("Measured by `tests/test_browser_clicks.py::test_fast_clicks` (headless Chromium 1400x1000, the real "
            "`streamlit run` server started afresh for each start, `OMP_NUM_THREADS=1`; "
            f"{'an idle' if idle else 'a possibly busy'} 2-core machine). A time ends when the rerun has finished, "
            "the changed text is shown, every visible chart and table is drawn and two frames are painted.\n\n"
            + clicks_table(rows) + "\n\n" + BEFORE_CLICKS.replace("\n", " "))
    CLICKS.parent.mkdir(parents=True, exist_ok=True)
    CLICKS.write_text(f"{CLICKS_HEADING}\n\n{body}\n")
    if os.environ.get("INSULIN_DASH_SCREENSHOTS"):
        write_section(PERFORMANCE, CLICKS_HEADING, body, parent="## Dashboard clicks")
    print("\n" + clicks_table(rows))
    for data, found in rows.items():  # every interaction was measured as often as asked
        assert {key: len(found[key]) for key in ("start", "slider", "patient", "model")} == {
            "start": counts["starts"], "slider": counts["moves"], "patient": counts["switches"],
            "model": counts["switches"]}, data
    if idle:
        for data, found in rows.items():
            for key, target in TARGETS_S.items():
                assert statistics.median(found[key]) < target, (
                    f"{data}: {key} median {statistics.median(found[key]):.2f} s, target {target:g} s")

