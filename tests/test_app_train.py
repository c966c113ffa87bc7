"""The Train page through AppTest: training runs in the background (insulin_core/jobs/runs.py), so a
page switch does not stop it; each browser (owner token in the URL) sees only its own runs; a
finished run is saved, becomes the active model, and can be renamed and deleted."""
from __future__ import annotations

import json

import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP, frame_with, models_dir, no_errors, set_tiny_form, texts, tiny_models  # noqa: F401 (fixtures)
from tests.waits import WAIT_S

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(600)

TIMEOUT_S = WAIT_S


def open_train(owner: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    if owner:
        at.query_params["owner"] = owner
    at.run()
    at.switch_page("pages/train.py").run()
    no_errors(at)
    return at


def owner_of(at: AppTest) -> str:
    return at.session_state["run_owner"]


def runs_shown(at: AppTest) -> list[str]:
    try:
        return list(frame_with(at, "run", "status", "epochs")["run"])
    except AssertionError:
        return []


def wait_until_done(at: AppTest, timeout_s: float = TIMEOUT_S) -> None:
    """Rerun the page (as the live panel's timer would) until no run of this owner is active."""
    deadline = time.monotonic() + timeout_s
    while True:
        at.run()
        no_errors(at)
        table = frame_with(at, "run", "status", "epochs")
        if not table["status"].isin(["starting", "preparing", "Training", "evaluating", "saving"]).any():
            return
        assert time.monotonic() < deadline, f"runs still active after {timeout_s} s:\n{table}"
        time.sleep(0.3)


def model_state(at: AppTest, models_dir) -> str:
    """What decides the active model, for an assertion's message (a CI failure then says why)."""
    from insulin_core.bundles.registry import list_bundles

    keys = ("active_model", "active_model_chosen", "runs_seen_done", "runs_started", "runs_seen_init")
    state = {k: at.session_state[k] if k in at.session_state else "<unset>" for k in keys}
    rows = [{k: r.get(k) for k in ("name", "ok", "error", "fingerprint", "created")} for r in list_bundles(models_dir)]
    return f"session: {state}\nbundles: {rows}\nsidebar: {[c.value for c in at.sidebar.caption]}"


def test_a_run_goes_on_across_a_page_switch_then_is_saved_renamed_and_deleted(models_dir):  # noqa: F811
    at = open_train()
    set_tiny_form(at, epochs=3)
    at.button(key="train_go").click().run()
    no_errors(at)
    [run] = runs_shown(at)
    assert run.startswith("run-") and run.endswith("-demo")
    # the script has returned while the run goes on in its worker; switching pages does not stop it
    at.switch_page("pages/models.py").run()
    no_errors(at)
    at.switch_page("pages/train.py").run()
    assert runs_shown(at) == [run]
    wait_until_done(at)
    table = frame_with(at, "run", "status", "epochs")
    assert list(table["status"]) == ["finished"] and list(table["epochs"]) == ["3/3"]
    assert (models_dir / run / "bundle.json").is_file()
    assert json.loads((models_dir / run / "bundle.json").read_text())["model_config"]["members"] == 1  # the form's
    # the sidebar's label follows at once
    assert at.session_state["active_model"] == f"saved:{run}", model_state(at, models_dir)
    assert at.subheader[-1].value == f"Result: {run}"
    assert "Reached the maximum of 3 epochs" in texts(at.success)
    metrics = frame_with(at, "model or baseline", "MAE (U)")
    assert set(metrics["model or baseline"]) == {"LSTM-GRU model", "previous row's dose", "last dose at this time of day"}

    at.text_input(key="train_rename").set_value("tiny-renamed").run()
    at.button(key="train_rename_go").click().run()
    no_errors(at)
    assert (models_dir / "tiny-renamed" / "bundle.json").is_file() and not (models_dir / run).exists()
    assert runs_shown(at) == ["tiny-renamed"]
    assert at.session_state["active_model"] == "saved:tiny-renamed"

    at.button(key="train_delete").click().run()
    at.button(key="train_delete_yes").click().run()
    no_errors(at)
    assert not (models_dir / "tiny-renamed").exists() and runs_shown(at) == []


def test_two_sessions_see_only_their_own_runs_and_a_refresh_keeps_them(models_dir):  # noqa: F811
    first, second = open_train(), open_train()
    assert owner_of(first) != owner_of(second)
    for at in (first, second):
        set_tiny_form(at, epochs=2)
        at.button(key="train_go").click().run()
        no_errors(at)
    wait_until_done(first)
    wait_until_done(second)
    [mine], [theirs] = runs_shown(first), runs_shown(second)
    assert mine != theirs
    for name in (mine, theirs):  # both finished whole, each saved as a model everyone can use
        assert (models_dir / name / "bundle.json").is_file()
    # a refresh is a new session on the same URL, which carries the owner token
    refreshed = open_train(owner=owner_of(first))
    assert runs_shown(refreshed) == [mine]


def test_a_failing_run_is_reported_not_raised(models_dir):  # noqa: F811
    at = open_train()
    set_tiny_form(at)
    at.slider(key="train_window").set_value(512)  # too few windows for three patients
    at.button(key="train_go").click().run()
    wait_until_done(at)
    table = frame_with(at, "run", "status", "note")
    assert list(table["status"]) == ["failed"] and "Choose a shorter window" in table["note"].iloc[0]
    assert "This run failed: No windows" in texts(at.warning)


def test_settings_that_cannot_be_used_are_a_message_and_start_nothing(models_dir):  # noqa: F811
    at = open_train()
    set_tiny_form(at)
    at.text_input(key="train_dense").set_value("eight")
    at.button(key="train_go").click().run()
    assert not at.exception
    assert "dense layers must be whole numbers" in texts(at.error)
    assert runs_shown(at) == []
    # the form's settings survive a visit to another page
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/train.py").run()
    assert at.slider(key="train_epochs").value == 2 and at.text_input(key="train_dense").value == "eight"


def test_the_form_names_splits_targets_and_baselines_in_words(models_dir):  # noqa: F811
    from insulin_core.models.baselines import BASELINES
    from insulin_core.labels import label

    at = open_train()
    assert set(at.multiselect(key="train_baselines").options) == {label(b) for b in BASELINES}
    assert "by time (each patient's last days are the test part)" in at.selectbox(key="train_split").options
    shown = [*at.multiselect(key="train_baselines").options, *at.selectbox(key="train_split").options,
             *at.selectbox(key="train_target").options]
    assert not any("_" in option or option in BASELINES for option in shown), shown
