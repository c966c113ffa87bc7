"""End to end in a real browser: the real `streamlit run` server and Debian's headless Chromium.

Visits every page (timing each load, saving a screenshot to docs/screenshots/), moves a slider,
trains a tiny model and stops it with the Stop button, and checks that no page ever shows an
exception or an error. Page load times go to docs/page_load_times.md.

Run: .venv/bin/python -m pytest tests/test_browser.py -q -s   (needs /usr/bin/chromium; `make browser`)
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path

import pytest

from bench.load_sessions import load, start_server, write_section
from tests.waits import WAIT_MS, WAIT_S

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# `make screenshots` refreshes the README's pictures and load times in docs/ (INSULIN_DASH_SCREENSHOTS=1);
# `make test` writes them to the git-ignored tests/artifacts/, so it leaves the git tree clean.
OUT = ROOT / "docs" if os.environ.get("INSULIN_DASH_SCREENSHOTS") else ROOT / "tests" / "artifacts"
SHOTS = OUT / "screenshots"
TIMES = OUT / "page_load_times.md"
# (url path, title shown on the page, screenshot name)
PAGES = [("", "insulin-dash", "overview"), ("patients", "Patients", "patients"), ("train", "Train a model", "train"),
         ("models", "Models", "models"), ("predictions", "Predictions", "predictions"), ("whatif", "What if?", "whatif")]
NAV_TITLES = ["Overview", "Patients", "Train", "Tune", "Models", "Predictions", "What-if"]
ALERT = "[data-testid^=\"stAlertContent\"]"  # a message box (the runs table repeats its text in hidden cells)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update"]

USED: dict[str, str] = {}  # what the run used, for docs/page_load_times.md

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),  # a stuck server or browser fails here, not at CI's limit
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (install it with `make browser`)"),
]


def models_for_screenshots(folder: Path) -> str:
    """The shipped models/demo bundle when it loads and fits the demo cohort (the screenshots then
    show what a new user sees), else a tiny one trained here. Either way a copy: nothing in
    models/ is touched."""
    from insulin_core.prep.dataset import load_cohort
    from insulin_core.bundles.registry import BundleError, load_bundle
    from insulin_core.bundles.serving import check_bundle_fits
    from insulin_core.data.source import DataSource
    from tests.test_app import make_models_dir

    shipped = ROOT / "models" / "demo"
    try:
        check_bundle_fits(load_bundle(shipped), load_cohort(DataSource("demo")))
    except (BundleError, ValueError) as exc:
        make_models_dir(folder)
        return f"tiny bundle trained by the test (shipped one unusable: {exc})"
    shutil.copytree(shipped, folder / "demo")
    return "the shipped models/demo bundle"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app as users run it, on a free port, reading models from a temporary folder."""
    models = tmp_path_factory.mktemp("browser-models")
    USED["models"] = models_for_screenshots(models)
    try:
        srv = start_server(models, log=tmp_path_factory.mktemp("server") / "streamlit.log", timeout=WAIT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def chromium():
    """One Playwright and one Chromium for the module: Playwright's sync API refuses to start a
    second instance while one is open in the same thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tab(server, chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()


def wait_idle(page, title: str) -> None:
    """The page's title is shown and the script has finished its run."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    # charts and tables are drawn after the run ends: wait until each visible one has its canvas or
    # svg (tables in closed expanders and hidden tabs are only drawn when opened)
    page.wait_for_function("""() => [...document.querySelectorAll(
            '[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]')]
        .filter(e => e.checkVisibility()).every(e => e.querySelector('canvas, svg'))""")
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 4000)})
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def assert_clean(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {where}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"error on {where}: {errors.all_inner_texts()}"


def save_scenario(page, name: str, attempts: int = 3) -> None:
    """Click Save until the scenario shows up: a click that lands while the fragment of the
    previous edit is still rerunning can be swallowed by that rerun (seen once in ~10 runs)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        page.locator(".st-key-whatif_save button").first.click()
        try:
            page.get_by_text(name).first.wait_for(state="attached", timeout=30_000)  # then clicked again
            wait_idle(page, "What if?")
            return
        except PlaywrightTimeout:
            wait_idle(page, "What if?")
    raise AssertionError(f"saving the scenario {name!r} never showed it")


def test_a_first_visit_straight_to_a_page_sees_the_declared_pages(server, tab):
    """Runs first, on the fresh server: a link to /whatif must not open Streamlit's legacy
    pages/-folder app (files listed by name, no wide layout)."""
    tab.goto(f"{server}/whatif")
    wait_idle(tab, "What if?")
    links = tab.locator('[data-testid="stSidebarNavLink"]')
    assert [text.split()[-1] for text in links.all_inner_texts()] == NAV_TITLES
    assert_clean(tab, "a first visit to /whatif")


def test_every_page_slider_and_training(server, tab):
    """Every page loads clean and is screenshot; no title, label or metric is cut off at 1280 or
    1400 px and no page scrolls sideways (issue 10); a What-if slider, two saved scenarios; a
    training run through the form, stopped with Stop."""
    page = tab
    SHOTS.mkdir(parents=True, exist_ok=True)
    times, cut = {}, {}
    for path, title, shot in [*PAGES[:-1], ("tune", "Tune the settings", "tune"), PAGES[-1]]:  # What-if last
        start = time.perf_counter()
        page.goto(f"{server}/{path}")
        wait_idle(page, title)
        times[shot] = time.perf_counter() - start
        assert_clean(page, shot)
        if shot != "tune":  # the README shows the other six
            screenshot(page, shot)
        cut.update(cut_off(page, title, shot))
        if shot == "tune":  # the detector itself, on a page left right after
            assert_cut_off_is_found(page)
    assert cut == {}, f"cut off: {cut}"

    # st.navigation declares exactly seven pages, whatever else sits in pages/
    links = page.locator('[data-testid="stSidebarNavLink"]')
    assert [text.split()[-1] for text in links.all_inner_texts()] == NAV_TITLES  # icon ligature, title

    # a slider: the What-if glucose slider reruns only the scenario fragment; time it until the new
    # dose line is shown, then save two scenarios for the comparison and the screenshot
    caption = page.get_by_text("Scenario: glucose")
    rerun_ms, idle_ms = [], []
    for _ in range(3):
        before = caption.inner_text()
        page.get_by_role("slider", name="Glucose now (mg/dL)").focus()
        start = time.perf_counter()
        page.keyboard.press("PageUp")
        page.wait_for_function("b => !document.body.innerText.includes(b)", arg=before)
        rerun_ms.append((time.perf_counter() - start) * 1000)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        idle_ms.append((time.perf_counter() - start) * 1000)
        wait_idle(page, "What if?")
        assert caption.inner_text() != before
        assert_clean(page, "what-if after moving the slider")
    for name in ("higher glucose", "and a big meal"):
        if name == "and a big meal":
            page.locator(".st-key-whatif_meal button", has_text="more").first.click()
            wait_idle(page, "What if?")
        page.locator(".st-key-whatif_save_name input").fill(name)
        page.keyboard.press("Enter")
        wait_idle(page, "What if?")
        save_scenario(page, name)
    page.get_by_text("Download the comparison (CSV)").wait_for()
    assert page.get_by_text("and a big meal").count() >= 1
    wait_idle(page, "What if?")
    assert_clean(page, "what-if after saving two scenarios")
    screenshot(page, "whatif")

    # train a tiny model through the form (same session: use the sidebar link), stop it with Stop
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Train").click()
    wait_idle(page, "Train a model")
    for label in ("LSTM hidden units", "GRU hidden units"):
        page.get_by_role("slider", name=label).focus()
        page.keyboard.press("Home")  # the smallest width, 4
    page.get_by_label("Dense layers (widths, comma separated)").fill("8")
    page.get_by_role("slider", name="Ensemble members").focus()
    page.keyboard.press("Home")  # one network: the form and Stop are under test, not the ensemble
    for label in ("Epochs (at most)", "Early-stopping patience (epochs)"):
        page.get_by_role("slider", name=label).focus()
        page.keyboard.press("End")  # 300 epochs, patience 50: only Stop ends this run early
    page.locator(".st-key-train_go button").first.click()
    page.wait_for_function("() => /Epoch ([3-9]|\\d\\d+)\\/300/.test(document.body.innerText)", timeout=WAIT_MS)
    page.get_by_text("Loss per epoch").first.wait_for()  # the live curve is drawn while training runs
    # ours (one per running run, keyed train_stop_<run id>), not the toolbar's own "Stop"
    page.locator('[class*="st-key-train_stop_"] button').first.click()
    page.locator(ALERT, has_text="Stopped by the user after epoch").first.wait_for(timeout=WAIT_MS)
    wait_idle(page, "Train a model")
    assert page.get_by_text("MAE (units)").count() >= 1
    assert_clean(page, "train after Stop")
    screenshot(page, "train-result")

    lines = ["# Page load times", "",
             "Measured by `tests/test_browser.py` (headless Chromium, the real `streamlit run` server, demo cohort, "
             f"models: {USED.get('models', '?')}; 2 shared CPU cores): from navigation to the script's run finished and the charts drawn. "
             "The first page also pays for loading the cohort; later pages use the cache.", "",
             "| page | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in times.items()]
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text("\n".join(lines) + "\n")
    print("\npage load times (s):", {k: round(v, 2) for k, v in times.items()})
    print("what-if slider moves (ms): press -> new dose shown", [round(t) for t in rerun_ms],
          "; press -> fragment run finished", [round(t) for t in idle_ms])


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

ARM_JS = """() => {  // count the script runs that end from now on (attribute running -> anything else)
    const app = document.querySelector('[data-testid="stApp"]');
    window.__runsEnded = 0;
    if (window.__runObserver) window.__runObserver.disconnect();
    window.__runObserver = new MutationObserver(records => { for (const r of records)
        if (r.oldValue === 'running' && app.getAttribute('data-test-script-state') !== 'running') window.__runsEnded++; });
    window.__runObserver.observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
}"""
DONE_JS = """([before]) => {  // a run ended, none is running, the text changed (when asked), every chart drawn
    const app = document.querySelector('[data-testid="stApp"]');
    const changed = before === null || !document.body.innerText.includes(before);
    return window.__runsEnded > 0 && changed && app.getAttribute('data-test-script-state') === 'notRunning' &&
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


TOOK_JS = """([key, option]) => {  // the click on an option took: a rerun ran, runs, or the box shows it
    const box = document.querySelector(`.st-key-${key} input[role="combobox"]`);
    return window.__runsEnded > 0 || (box && box.value === option) ||
        document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'running';
}"""


def switch(page, key: str, option: str, attempts: int = 3) -> float:
    """Seconds to switch the selectbox `key` to `option`: from the click on the option (the list is
    opened first, untimed) to the page redrawn (see timed). A click that lands while the list is
    redrawn can be lost on a busy machine (no rerun, the old value kept): the list is opened and
    the option clicked again, and the time counted from that click."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        open_options(page, key)
        page.evaluate(ARM_JS)
        start = time.perf_counter()
        page.get_by_role("option", name=option, exact=True).first.click()
        try:  # the box shows the option at once when the click took: 10, 20, 40 s is ample
            page.wait_for_function(TOOK_JS, arg=[key, option], polling="raf", timeout=10_000 * 2**attempt)
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


CUT_OFF_JS = """() => {  // text the page cuts off: wider than its box (ellipsis or clipping), or the page wider than the window
    const clipped = [...document.querySelectorAll('h1, h2, h3, [data-testid="stMetricLabel"], [data-testid="stMetricValue"], '
                                                 + '[data-testid="stWidgetLabel"], [data-testid="stCaptionContainer"]')]
        .filter(e => e.checkVisibility() && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.innerText.slice(0, 80));
    // a table (a canvas grid) wider than its box scrolls sideways: name it by its first column headers
    const tables = [...document.querySelectorAll('[data-testid="stDataFrame"]')]
        .filter(t => t.checkVisibility())
        .filter(t => [...t.querySelectorAll('.dvn-scroller')].some(s => s.scrollWidth > s.clientWidth + 1))
        .map(t => 'a table scrolls sideways: ' + [...t.querySelectorAll('th, [role="columnheader"]')]
                                                    .slice(0, 3).map(h => h.innerText).join(' | '));
    const main = document.querySelector('[data-testid="stMain"]');
    const all = [...clipped, ...tables];
    return main.scrollWidth > main.clientWidth + 1 ? [...all, 'the page scrolls sideways'] : all;
}"""


WIDTHS = (1280, 1400)


def cut_off(page, title: str, shot: str) -> dict[str, list[str]]:
    """What the loaded page cuts off at each of WIDTHS (the window resized, the charts redrawn),
    by "page at width"; the window is left at its own size."""
    size, found = page.viewport_size, {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": size["height"]})
        wait_idle(page, title)
        if clipped := page.evaluate(CUT_OFF_JS):
            found[f"{shot} at {width} px"] = clipped
    page.set_viewport_size(size)
    return found


def assert_cut_off_is_found(page) -> None:
    """The detector itself: a title clipped by its box is found."""
    page.evaluate("""() => { const h = document.createElement('h3');
        h.style.cssText = 'width: 60px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis';
        h.innerText = 'a title far too long for its box';
        document.querySelector('[data-testid="stMain"]').appendChild(h); }""")
    assert page.evaluate(CUT_OFF_JS) == ["a title far too long for its box"]


def test_fast_clicks(click_models, chromium, tmp_path):
    """Issue 10's three interactions on fresh servers, with the demo cohort and (with AIM94_DIR) the
    real data; the table goes to tests/artifacts/dashboard_clicks.md (and docs/performance.md under
    `make screenshots`)."""
    idle = os.environ.get("INSULIN_DASH_IDLE") == "1"
    counts = IDLE_COUNTS if idle or os.environ.get("INSULIN_DASH_SCREENSHOTS") else CHECK_COUNTS
    rows = {data: measure_clicks(chromium, models, aim94, tmp_path, **counts) for data, (models, aim94) in click_models.items()}
    body = ("Measured by `tests/test_browser.py::test_fast_clicks` (headless Chromium 1400x1000, the real "
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


def test_concurrent_sessions_have_no_errors(server):
    """Five sessions at once through every page (bench/load_sessions.py has the 20 and 50 runs)."""
    summary = load(server, 5)
    assert summary.errors == []
    assert summary.sessions == 5 and summary.per_page_median["whatif"] > 0
