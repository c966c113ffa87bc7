"""End to end in a real browser: the real `streamlit run` server and Debian's headless Chromium.

Visits every page (timing each load, saving a screenshot to docs/screenshots/), moves a slider,
trains a tiny model and stops it with the Stop button, follows another run through a reload and a
page switch to its end, and checks that no page ever shows an exception or an error. Page load times
go to docs/page_load_times.md. The fast clicks (fresh servers, timed): tests/test_browser_clicks.py.

Run: .venv/bin/python -m pytest tests/test_browser.py -q -s   (needs /usr/bin/chromium; `make browser`)
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.load_sessions import load, start_server
from tests.waits import WAIT_MS, WAIT_S

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# `make screenshots` refreshes the README's pictures and load times in docs/ (INSULIN_DASH_SCREENSHOTS=1);
# `make test` writes them to the git-ignored tests/artifacts/, so it leaves the git tree clean.
ARTIFACTS = ROOT / "tests" / "artifacts"  # git-ignored
OUT = ROOT / "docs" if os.environ.get("INSULIN_DASH_SCREENSHOTS") else ARTIFACTS
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


@contextmanager
def new_tab(chromium):
    """A page in a context of its own: a new Streamlit session (and owner token) on first visit."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def tab(server, chromium):
    with new_tab(chromium) as page:
        yield page


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


def clear_baselines(page) -> None:
    """Take every baseline off the Train form (all eight are on by default): fitting them after the
    last epoch costs a test that follows a run, not its comparison, seconds (test_app_train checks
    the comparison). Backspace in the multiselect takes its last chip off."""
    chips = ".st-key-train_baselines [data-tag]"
    assert page.locator(chips).count() == 8
    page.locator(".st-key-train_baselines input").first.click()
    for _ in range(12):
        page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    page.wait_for_function(f"() => !document.querySelector('{chips}')")


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


def tiny_network(page) -> None:
    """The Train form's smallest network: LSTM and GRU widths 4, one dense layer of 8, one member."""
    for label in ("LSTM hidden units", "GRU hidden units"):
        page.get_by_role("slider", name=label).focus()
        page.keyboard.press("Home")
    page.get_by_label("Dense layers (widths, comma separated)").fill("8")
    page.get_by_role("slider", name="Ensemble members").focus()
    page.keyboard.press("Home")


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
    tiny_network(page)  # the form and Stop are under test, not the network
    for label in ("Epochs (at most)", "Early-stopping patience (epochs)"):
        page.get_by_role("slider", name=label).focus()
        page.keyboard.press("End")  # 300 epochs, patience 50: only Stop ends this run early
    if not os.environ.get("INSULIN_DASH_SCREENSHOTS"):  # the README's picture shows the model beside its baselines
        clear_baselines(page)
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


RUN_EPOCHS = 60  # long enough to still run through a reload and a page switch (about 0.3 s an epoch here, idle)


def epoch_shown(page) -> int:
    """The epoch number in the live panel's progress text (0 before the first one)."""
    found = re.search(rf"Epoch (\d+)/{RUN_EPOCHS}", page.locator("body").inner_text())
    return int(found.group(1)) if found else 0


def wait_for_epoch_above(page, n: int, timeout_ms: int = WAIT_MS) -> int:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"""() => {{ const m = document.body.innerText.match(/Epoch (\\d+)\\/{RUN_EPOCHS}/);
                                             return m && Number(m[1]) > {n}; }}""", timeout=timeout_ms)
    except PlaywrightTimeout:  # say what the page showed instead (a message, the runs table, nothing)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "training-no-epoch.png"), full_page=True)
        raise AssertionError(f"no epoch above {n} within {timeout_ms / 1000:.0f} s; the page shows:\n"
                             + page.locator("[data-testid='stMain']").inner_text()[-3000:]) from None
    return epoch_shown(page)


@pytest.fixture
def own_tab(chromium):
    """A browser of its own (a new session and owner) beside the module's `tab`."""
    with new_tab(chromium) as page:
        yield page


def test_a_run_goes_on_through_a_reload_and_a_page_switch(server, own_tab):
    """Background training: a run started on the Train page goes on through a page reload and a page
    switch (the worker belongs to the server, the owner token to the URL), and its live panel follows
    it to the end; then the sidebar names the run's model. On this module's server, in its own tab: a
    second server and Chromium cost more CPU than the test itself (issue 18)."""
    page = own_tab
    page.goto(f"{server}/train")
    wait_idle(page, "Train a model")
    tiny_network(page)  # more, shorter epochs than the default's
    page.get_by_role("slider", name="Early-stopping patience (epochs)").focus()
    page.keyboard.press("End")  # patience 50: the run goes to its last epoch
    epochs = page.get_by_role("slider", name="Epochs (at most)")
    epochs.focus()
    page.keyboard.press("Home")
    for _ in range(RUN_EPOCHS - 1):
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
    page.locator(ALERT, has_text=f"Reached the maximum of {RUN_EPOCHS} epochs").first.wait_for(timeout=WAIT_MS)
    wait_idle(page, "Train a model")
    run = page.get_by_role("heading", name=re.compile(r"Result: run-")).first.inner_text().split(": ", 1)[1]
    # the sidebar names the finished run's model: it became the active one
    assert page.locator('[data-testid="stSidebar"]').get_by_text(f"Model: {run}").count() == 1
    assert_clean(page, "train after a reload and a page switch")


def test_concurrent_sessions_have_no_errors(server):
    """Five sessions at once through every page (bench/load_sessions.py has the 20 and 50 runs)."""
    summary = load(server, 5)
    assert summary.errors == []
    assert summary.sessions == 5 and summary.per_page_median["whatif"] > 0
