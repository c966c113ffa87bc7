"""Every dashboard page through Streamlit's AppTest: renders, main widgets exist (by key), sliders
change what is shown, a tiny model trains through the form, bad input shows as a message.

The app reads its models from a temporary folder ($INSULIN_DASH_MODELS_DIR) holding one tiny
bundle named like the shipped one, trained here on the demo cohort, so the tests neither depend on
nor touch `models/`.
"""
from __future__ import annotations

import datetime
import io
import json
import re
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from insulin_core.prep.dataset import load_cohort
from insulin_core.data.demo import DemoConfig, generate_cohort
from insulin_core.data.demo_modern import ModernDemoConfig, modern_files
from insulin_core.labels import LEVEL_PHRASES
from insulin_core.evaluation.pipeline import ExperimentConfig, bundle_meta, run_experiment
from insulin_core.bundles.registry import save_bundle
from insulin_core.data.source import DataSource
from insulin_core.models.train import TrainConfig
from ui.bundles import zip_bundle
from tests.waits import WAIT_S

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = ["overview", "patients", "train", "tune", "models", "predictions", "whatif"]
TINY = dict(lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2, members=1)  # the pages, not the ensemble, are under test

torch.set_num_threads(1)


def make_models_dir(folder: Path) -> Path:
    """A models folder with one tiny bundle called 'demo', trained on the demo cohort."""
    cohort = load_cohort(DataSource("demo"))
    exp, cfg = ExperimentConfig(), TrainConfig(epochs=3, threads=1)
    result = run_experiment(cohort.features, exp, TINY, cfg, baselines=["previous_row"])
    save_bundle(result.training.model, bundle_meta(result, exp, cfg, cohort.source.label, cohort.fingerprint),
                "demo", folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    return make_models_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture
def models_dir(tiny_models, tmp_path, monkeypatch) -> Path:
    """A fresh copy per test, so saving and deleting in one test never leaks into another."""
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    monkeypatch.setenv("INSULIN_DASH_MODELS_DIR", str(folder))
    monkeypatch.setenv("INSULIN_DASH_TUNE_STORAGE", str(tmp_path / "optuna.journal"))  # never data/
    monkeypatch.delenv("AIM94_DIR", raising=False)
    return folder


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def frame_with(at: AppTest, *columns: str):
    """The first table showing all these columns (st.dataframe keys are not visible to AppTest)."""
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}")


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ---- every page -----------------------------------------------------------------------------
MAIN_WIDGETS = {
    "overview": {"radio": ["source_kind"], "button": ["source_use_demo"]},
    "patients": {"multiselect": ["patients_select"], "slider": ["patients_range"]},
    "train": {"slider": ["train_window", "train_epochs", "train_dropout", "train_members"], "multiselect": ["train_patients"],
              "select_slider": ["train_lstm_hidden", "train_lr"], "text_input": ["train_dense"]},
    "tune": {"text_input": ["tune_study"], "number_input": ["tune_trials", "tune_timeout_min", "tune_members", "tune_seed"],
             "selectbox": ["tune_split"], "multiselect": ["tune_patients"], "slider": ["tune_epochs"]},
    "models": {"selectbox": ["models_pick"], "multiselect": ["models_compare"], "file_uploader": ["models_upload"],
               "button": ["models_use"], "download_button": ["models_download"]},
    "predictions": {"selectbox": ["active_model", "pred_patient", "pred_part"], "multiselect": ["pred_baselines"],
                    "select_slider": ["pred_week"], "download_button": ["pred_csv"]},
    "whatif": {"selectbox": ["active_model", "whatif_patient", "whatif_point"],
               "slider": ["whatif_glucose", "whatif_time"], "segmented_control": ["whatif_meal", "whatif_exercise"],
               "toggle": ["whatif_hypo"], "button": ["whatif_reset", "whatif_save"], "text_input": ["whatif_save_name"]},
}


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_its_widgets_and_the_disclaimer(page, models_dir):
    at = open_page(page)
    no_errors(at)
    for kind, keys in MAIN_WIDGETS[page].items():
        for key in keys:
            assert getattr(at, kind)(key=key) is not None
    assert "not a dosing device" in texts(at.warning)


def magic_writes(source: str) -> list[int]:
    """Lines of the expression statements Streamlit's "magic" would write to the page: a value on
    a line of its own (not a call, and not a docstring-like string)."""
    import ast

    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom))
            and not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))]


def test_magic_is_off_and_no_page_needs_it():
    """.streamlit/config.toml turns magic off (it re-parsed every page on every AppTest run); a
    page that shows something through a bare expression would then show nothing."""
    import tomllib

    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["runner"]["magicEnabled"] is False
    assert magic_writes('"""doc"""\nimport streamlit as st\nst.write(1)\nx = 2\nx\n') == [5]  # the check sees one
    scripts = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
    assert {p.name: magic_writes(p.read_text()) for p in scripts} == {p.name: [] for p in scripts}


def test_only_the_declared_pages_exist():
    """st.navigation declares the pages; the pages/ folder must hold exactly those (nothing else
    that an automatic page scan could ever pick up)."""
    declared = set(re.findall(r'st\.Page\("pages/(\w+)\.py"', (ROOT / "app.py").read_text()))
    on_disk = {p.stem for p in (ROOT / "pages").glob("*.py")}
    assert declared == on_disk == set(PAGES)


# ---- overview -------------------------------------------------------------------------------
def use_folder(at: AppTest, folder) -> AppTest:
    at.radio(key="source_kind").set_value("folder").run()
    at.text_input(key="source_folder").set_value(str(folder)).run()
    return at.button(key="source_use_folder").click().run()


def test_overview_folder_box_reads_only_below_the_data_root(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INSULIN_DASH_DATA_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    at = open_page("overview")
    messages = []
    for outside in (tmp_path / "nowhere", tmp_path, Path("/etc"), tmp_path / "root" / ".." / "elsewhere"):
        use_folder(at, outside)
        assert not at.exception
        messages.append(texts(at.error))
        assert at.session_state["data_source"].kind == "demo"  # the refused folder did not replace the data
    assert len(set(messages)) == 1 and "reads folders only under its data folder" in messages[0]
    assert str(tmp_path) not in messages[0]  # the same words whether or not the folder exists
    use_folder(at, tmp_path / "root" / "nowhere")
    assert "not found" in texts(at.error)  # below the root, the usual message


def test_overview_folder_under_the_root_or_aim94_dir_is_used_unless_wholly_rejected(models_dir, tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "aim94"
    for folder, files in ((root / "good", generate_cohort(DemoConfig(patients=2, seed=1))),
                          (root / "junk", {"data-01": "junk\n" * 5}), (outside, generate_cohort(DemoConfig(patients=3)))):
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    monkeypatch.setenv("INSULIN_DASH_DATA_ROOT", str(root))
    monkeypatch.setenv("AIM94_DIR", str(outside))
    at = open_page("overview")
    use_folder(at, root / "junk")
    assert "nothing usable there (5 lines read, none accepted; rejected: 5 not four tab-separated fields)" in texts(at.error)
    assert at.session_state["data_source"].kind != "folder"
    use_folder(at, root / "good")
    no_errors(at)
    assert at.session_state["data_source"].path == str(root / "good") and at.metric[0].value == "2"
    use_folder(at, outside)  # $AIM94_DIR is always allowed
    no_errors(at)
    assert at.metric[0].value == "3"


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.file_uploader(key="source_upload").set_value([(name, data, "text/plain") for name, data in files]).run()
    return at.button(key="source_use_upload").click().run()


def test_overview_upload_bad_then_good_files(models_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # anything written to disk would show here
    before = set(tmp_path.iterdir())
    at = open_page("overview")
    at.radio(key="source_kind").set_value("upload").run()
    upload(at, ("notes.txt", b"hello"))
    assert "No supported format in 1 file(s) (notes.txt)" in texts(at.error)  # and what each format looks like
    assert "Nightscout" in texts(at.error) and "data-01 ... data-70" in texts(at.error)

    diaries = generate_cohort(DemoConfig(patients=3, seed=1))
    upload(at, *[(name, text.encode()) for name, text in diaries.items()])
    no_errors(at)
    source = at.session_state["data_source"]
    assert source.kind == "upload" and at.metric[0].value == "3"  # patients

    # an empty, wholly rejected or unreadable upload keeps the previous source and says why
    for bad, why in (((b"",), "0 lines read, none accepted"),
                     ((b"junk\n" * 4,), "4 lines read, none accepted; rejected: 4 not four tab-separated fields"),
                     (("04-21-1991\t9:09\t58\t100\n".encode("utf-16"),), "data-01: UTF-16 text")):
        upload(at, ("data-01", bad[0]))
        assert not at.exception and why in texts(at.error) and "nothing usable in the upload" in texts(at.error)
        assert at.session_state["data_source"] == source and at.metric[0].value == "3"
    at.switch_page("pages/patients.py").run()
    no_errors(at)  # other pages read the uploaded cohort from the session
    assert set(tmp_path.iterdir()) == before  # no upload folder left behind (none is made)


def test_a_pump_and_cgm_export_is_uploaded_read_and_named_on_every_page(models_dir):
    """Any supported export, not only AIM94: a Nightscout export (mmol/L for one patient) is read,
    its format, glucose unit and quality report shown, and every page works on it."""
    files = modern_files(ModernDemoConfig(patients=2, days=4))
    at = open_page("overview")
    at.radio(key="source_kind").set_value("upload").run()
    upload(at, *files.items())
    no_errors(at)
    source = at.session_state["data_source"]
    assert source.kind == "upload" and source.format == "Nightscout" and at.metric[0].value == "2"
    shown = texts(at.caption) + texts(at.markdown)
    assert "[Nightscout; glucose in" in shown and "records read (Nightscout)" in shown
    assert "Nightscout export uploaded (2 patients; glucose in" in texts(at.warning)  # the disclaimer on every page
    for page in PAGES[1:]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert "Nightscout export uploaded" in texts(at.warning), page


def test_the_pump_and_cgm_demo_is_one_click_away(models_dir):
    at = open_page("overview")
    at.button(key="source_use_modern_demo").click().run()
    no_errors(at)
    assert at.session_state["data_source"].demo == "modern"
    assert "SYNTHETIC pump + CGM demo cohort" in texts(at.caption)
    assert "synthetic pump + CGM demo cohort, Nightscout format" in texts(at.warning)


def test_the_train_page_asks_for_a_cgm_cadence_only_where_the_data_has_cgm_readings(models_dir):
    at = open_page("train")
    no_errors(at)
    assert "train_cgm_every" not in [w.key for w in at.number_input]  # AIM94-format demo: no CGM stream
    at.switch_page("pages/overview.py").run()
    at.button(key="source_use_modern_demo").click().run()
    at.switch_page("pages/train.py").run()
    no_errors(at)
    assert at.number_input(key="train_cgm_every").value == 60  # the form's value reaches the run: test_train_form


def test_the_what_if_takes_carbohydrates_in_grams_where_the_data_has_them(models_dir):
    """On a pump export the meal is a number of grams, read as the model reads a meal: against the
    patient's usual meal before the moment (less under 2/3 of it, more over 1.5x)."""
    at = open_page("overview")
    at.button(key="source_use_modern_demo").click().run()
    at.switch_page("pages/whatif.py").run()
    picker = at.selectbox(key="active_model")  # no model was trained on it: the shipped one, labelled other data
    picker.set_value(picker.options[0]).run()
    no_errors(at)
    carbs = at.number_input(key="whatif_carbs_g")
    assert not [w for w in at.get("button_group") if getattr(w, "key", None) == "whatif_meal"]  # grams replace levels
    usual = float(re.search(r"usual meal (\d+) g", texts(at.caption)).group(1))
    for grams, level in ((round(usual * 0.4), "less"), (round(usual), "typical"), (300, "more"), (0, "none")):
        carbs.set_value(grams).run()
        no_errors(at)
        assert f"The model reads **{level}**" in texts(at.caption), grams
        scenario = next(c for c in texts(at.caption).splitlines() if c.startswith("Scenario:"))
        assert LEVEL_PHRASES["meal"][level] in scenario, (grams, scenario)
    carbs.set_value(10_000).run()  # past the field's bound: refused by the field, never passed on
    no_errors(at)
    assert 0 <= at.session_state["whatif_carbs_g"] <= 300


def test_overview_uploads_per_session_are_bounded(models_dir):
    at = open_page("overview")
    at.radio(key="source_kind").set_value("upload").run()
    at.session_state["uploads_used"] = 20
    upload(at, ("data-01", b"04-21-1991\t9:09\t58\t100\n"))
    assert "used its 20 uploads" in texts(at.error)
    assert at.session_state["data_source"].kind == "demo"


# ---- patients -------------------------------------------------------------------------------
def test_patients_range_slider_changes_what_is_shown(models_dir):
    at = open_page("patients")
    before = texts(at.caption)
    start, end = at.slider(key="patients_range").value
    at.slider(key="patients_range").set_value((start, start)).run()
    no_errors(at)
    assert texts(at.caption) != before
    at.multiselect(key="patients_select").set_value([]).run()
    assert "Pick at least one patient" in texts(at.warning)


def chart_data(chart) -> dict:
    """The data sets Streamlit sends with a chart, by name, as DataFrames."""
    from ui.streamlit_internals import arrow_frame

    return {d.name: arrow_frame(d.data.data) for d in chart.proto.datasets}


def test_patients_regular_panel_shared_axis_and_implausible_dose_marked(models_dir, tmp_path, monkeypatch):
    import json

    folder = tmp_path / "aim94"
    folder.mkdir()
    for name, text in generate_cohort(DemoConfig(patients=2, seed=1)).items():
        if name == "data-01":  # an NPH typing error (as the real 163 U) at the same moment as a Regular dose
            text += text.split("\t", 1)[0] + "\t17:23\t34\t163\n" + text.split("\t", 1)[0] + "\t17:23\t33\t7\n"
        (folder / name).write_text(text)
    monkeypatch.setenv("AIM94_DIR", str(folder))
    at = open_page("patients")
    no_errors(at)
    assert "NPH 163 U on" in texts(at.caption) and "implausible" in texts(at.caption)
    chart = at.get("vega_lite_chart")[0]
    spec, data = json.loads(chart.proto.spec), chart_data(chart)
    panels = spec
    assert panels["resolve"]["scale"]["x"] == "shared"  # one time axis for every panel
    titles = [p.get("title") for p in panels["vconcat"]]
    assert titles[0].startswith("Blood glucose") and titles[1].startswith("Regular insulin")  # Regular on its own
    regular, basal = panels["vconcat"][1], panels["vconcat"][2]
    regular_rows = data[regular["layer"][0]["data"]["name"]]
    assert set(regular_rows["insulin"]) == {"Regular"} and (regular_rows["recorded"] == 7).any()
    basal_rows = data[basal["layer"][0]["data"]["name"]]
    assert "Regular" not in set(basal_rows["insulin"])
    typo = basal_rows[basal_rows["recorded"] == 163]
    assert len(typo) == 1 and typo["units"].iloc[0] == 100  # clipped (flagged by the marker below)
    marker = basal["layer"][1]
    assert marker["mark"]["shape"] == "triangle-down"
    marked = data[marker["data"]["name"]]
    assert list(marked["recorded"]) == [163] and "recorded 163 U" in marked["note"].iloc[0]
    assert basal_rows["units"].max() <= 100 and regular_rows["units"].max() <= 40


# ---- train ----------------------------------------------------------------------------------
def set_tiny_form(at: AppTest, epochs: int = 2) -> None:
    at.multiselect(key="train_patients").set_value([1, 2, 3])
    at.select_slider(key="train_lstm_hidden").set_value(8)
    at.select_slider(key="train_gru_hidden").set_value(8)
    at.text_input(key="train_dense").set_value("8")
    at.select_slider(key="train_embedding").set_value(2)
    at.slider(key="train_epochs").set_value(epochs)
    at.slider(key="train_members").set_value(1)
    at.multiselect(key="train_baselines").set_value(["previous_row", "last_same_daypart"])


# Training itself (background runs, the run list, rename, delete, bad settings): tests/test_app_train.py


# ---- tune -----------------------------------------------------------------------------------
def run_tiny_study(at: AppTest, trials: int = 3) -> None:
    at.multiselect(key="tune_patients").set_value([1, 2, 3])
    at.slider(key="tune_epochs").set_value(2)
    at.number_input(key="tune_members").set_value(1)  # one member per trial: a fifth of the default's cost
    at.number_input(key="tune_trials").set_value(trials)
    at.button(key="tune_go").click().run()


def study_running(at: AppTest) -> bool:
    """The live panel (with its Stop button) is drawn only while this browser's study runs."""
    return any((b.key or "").startswith("tune_stop_") for b in at.button)


def rerun_until(at: AppTest, ready, what: str, timeout_s: float = WAIT_S) -> None:
    """Rerun the page, as the live panel's timer would, until `ready(at)`."""
    deadline = time.monotonic() + timeout_s
    while not ready(at):
        assert time.monotonic() < deadline, f"{what} after {timeout_s} s"
        time.sleep(0.3)
        at.run()
        no_errors(at)


def test_tune_runs_a_study_in_the_background_and_sends_the_best_to_the_train_form(models_dir):
    at = open_page("tune")
    assert "No study named" in texts(at.info)
    run_tiny_study(at)
    no_errors(at)
    assert study_running(at)  # the script returned at once; the study goes on in its worker
    assert "trials done" in at.get("progress")[0].proto.text
    # a page switch ends the page script, not the study
    at.switch_page("pages/models.py").run()
    no_errors(at)
    at.switch_page("pages/tune.py").run()
    no_errors(at)
    assert study_running(at)
    rerun_until(at, lambda at: not study_running(at), "the study still runs")
    assert "Done: the background study ran 3 trial(s)" in texts(at.success)
    assert {m.label: m.value for m in at.metric}["Trials"] == "3"
    table = frame_with(at, "trial", "state", "val_mae", "lstm_hidden")
    assert list(table["trial"]) == [0, 1, 2] and bool(table["default"].iloc[0])
    assert len(at.get("vega_lite_chart")) == 2  # MAE by trial, and per setting
    best = table.sort_values(["val_mae", "trial"]).iloc[0]

    at.button(key="tune_send").click().run()
    no_errors(at)
    at.switch_page("pages/train.py").run()
    no_errors(at)
    assert at.select_slider(key="train_lstm_hidden").value == best["lstm_hidden"]
    assert at.select_slider(key="train_lr").value == best["lr"]
    assert at.slider(key="train_window").value == best["window"]
    assert at.text_input(key="train_dense").value.replace(" ", "") == best["dense"]
    assert at.multiselect(key="train_patients").value == [1, 2, 3] and at.slider(key="train_epochs").value == 2
    # the saved run below scores the Train form's baselines as last submitted (all eight by default: seconds
    # of fitting here); set as a submit would leave them, without starting a run
    at.session_state["train_baselines"] = ["previous_row"]
    at.run()

    # the same study with other settings is refused with a message, before any worker starts
    at.switch_page("pages/tune.py").run()
    at.slider(key="tune_epochs").set_value(3)
    at.button(key="tune_go").click().run()
    assert not at.exception
    assert "other settings ['epochs']" in texts(at.error) and not study_running(at)

    # save the best configuration: a background training run, saved under the typed name
    at.slider(key="tune_epochs").set_value(2).run()
    at.text_input(key="tune_save_name").set_value("tuned").run()
    at.button(key="tune_save").click().run()
    no_errors(at)
    assert "Training the best configuration in the background" in texts(at.success)
    at.switch_page("pages/train.py").run()
    no_errors(at)

    def run_ended(at: AppTest) -> bool:
        return not frame_with(at, "run", "status")["status"].isin(
            ["starting", "preparing", "Training", "evaluating", "saving"]).any()

    rerun_until(at, run_ended, "the run still trains")
    runs = frame_with(at, "run", "status")
    assert list(runs["run"]) == ["tuned"] and list(runs["status"]) == ["finished"], runs
    meta = json.loads((models_dir / "tuned" / "bundle.json").read_text())
    assert meta["study"]["trial"] == best["trial"] and meta["study"]["storage"].endswith("optuna.journal")
    assert meta["train_config"]["epochs"] == 2 and meta["window"]["length"] == best["window"]
    assert meta["model_config"]["members"] == 1  # the study's ensemble size
    assert {name.split(" (")[0] for name in meta["metrics"]} == {"model", "previous_row"}  # the Train form's
    assert at.session_state["active_model"] == "saved:tuned"


def test_tune_study_stops_only_for_the_browser_that_started_it_and_others_see_its_trials(models_dir):
    def long_study(at: AppTest) -> AppTest:
        at.multiselect(key="tune_patients").set_value([1, 2, 3])
        at.slider(key="tune_epochs").set_value(300)
        at.number_input(key="tune_members").set_value(1)
        at.number_input(key="tune_trials").set_value(3)
        return at

    mine = long_study(open_page("tune"))
    mine.button(key="tune_go").click().run()
    no_errors(mine)
    assert study_running(mine)
    theirs = long_study(open_page("tune"))  # another browser (owner token), the same settings: the same study

    def sees_first_trial(at: AppTest) -> bool:
        """The study is stored before its first trial (the worker prepares the data in between, a
        second or so): wait for the trial, not only the study."""
        if "No study named" in texts(at.info):
            return False
        try:
            return 0 in list(frame_with(at, "trial", "state")["trial"])
        except AssertionError:  # no trials table yet
            return False

    rerun_until(theirs, sees_first_trial, "the study's first trial is not in the storage")
    assert not study_running(theirs)  # its trials, not its Stop button

    [stop] = [b for b in mine.button if (b.key or "").startswith("tune_stop_")]
    stop.click().run()
    no_errors(mine)
    rerun_until(mine, lambda at: not study_running(at), "the study still runs after Stop")
    assert "Stopped: 0 trial(s) finished" in texts(mine.warning)
    table = frame_with(mine, "trial", "state")
    assert list(table["state"]) == ["fail"] and table["epochs"].iloc[0] < 300


def test_every_value_the_search_can_suggest_is_a_train_form_option(models_dir):
    """A value outside a select_slider's options is silently replaced by the first option (Streamlit
    1.67), so render the Train page with each choice and read every widget back."""
    from insulin_core.jobs.tune import SEARCH_SPACE
    from ui.train_form import train_config_form

    at = open_page("train")
    kinds = {"train_lstm_hidden": "select_slider", "train_gru_hidden": "select_slider", "train_lr": "select_slider",
             "train_batch": "select_slider", "train_window": "slider", "train_lstm_layers": "slider",
             "train_gru_layers": "slider", "train_dropout": "slider", "train_dense": "text_input",
             "train_attention": "toggle"}
    for i in range(max(len(choices) for choices in SEARCH_SPACE.values())):
        form = train_config_form({name: choices[i % len(choices)] for name, choices in SEARCH_SPACE.items()})
        assert set(form) == set(kinds)
        for key, value in form.items():
            at.session_state[key] = value
        at.run()
        no_errors(at)
        for key, value in form.items():
            assert getattr(at, kinds[key])(key=key).value == value, (key, value)


# ---- models ---------------------------------------------------------------------------------
def test_models_upload_bad_and_good_bundles(models_dir, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where bundle_from_zip unpacks
    at = open_page("models")
    at.file_uploader(key="models_upload").set_value(("model.zip", b"not a zip", "application/zip")).run()
    assert not at.exception
    assert "not a zip file" in texts(at.error)

    only_meta = io.BytesIO()
    with zipfile.ZipFile(only_meta, "w") as z:
        z.writestr("x/bundle.json", (models_dir / "demo" / "bundle.json").read_text())
    at.file_uploader(key="models_upload").set_value(("x.zip", only_meta.getvalue(), "application/zip")).run()
    assert "lacks weights.pt" in texts(at.error)

    at.file_uploader(key="models_upload").set_value(("demo.zip", zip_bundle(models_dir / "demo"), "application/zip")).run()
    no_errors(at)
    assert "Valid bundle" in texts(at.success)
    at.text_input(key="models_upload_name").set_value("uploaded-copy").run()
    at.button(key="models_add").click().run()
    no_errors(at)
    assert (models_dir / "uploaded-copy" / "weights.pt").is_file()
    assert list(scratch.iterdir()) == []  # every unpacking folder was removed


def test_models_delete_asks_first(models_dir):
    import shutil

    shutil.copytree(models_dir / "demo", models_dir / "spare")
    at = open_page("models")
    at.selectbox(key="models_delete_name").set_value("spare")
    at.button(key="models_delete").click().run()
    assert "cannot be undone" in texts(at.warning)
    assert (models_dir / "spare").is_dir()
    at.button(key="models_delete_confirm").click().run()
    no_errors(at)
    assert not (models_dir / "spare").exists()


def test_a_broken_bundle_is_a_note_on_every_page_and_can_be_deleted(models_dir):
    import json
    import shutil

    shutil.copytree(models_dir / "demo", models_dir / "broken")
    meta = json.loads((models_dir / "broken" / "bundle.json").read_text())
    (models_dir / "broken" / "bundle.json").write_text(json.dumps({**meta, "metrics": "x"}))
    for page in PAGES:
        at = open_page(page)
        assert not at.exception, (page, [e.value for e in at.exception])
    at = open_page("models")
    assert "**broken** cannot be used: broken: bundle.json is invalid: metrics" in texts(at.warning)
    at.selectbox(key="models_delete_name").set_value("broken")
    at.button(key="models_delete").click().run()
    at.button(key="models_delete_confirm").click().run()
    no_errors(at)
    assert not (models_dir / "broken").exists()
    # only broken bundles left: the page still lists them (no table of usable ones) and can delete them
    shutil.move(models_dir / "demo", models_dir / "broken2")
    (models_dir / "broken2" / "bundle.json").write_text(json.dumps({**meta, "metrics": "x"}))
    at = open_page("models")
    assert "**broken2** cannot be used" in texts(at.warning)


def test_no_model_yet_says_train_one(models_dir):
    import shutil

    shutil.rmtree(models_dir / "demo")
    for page in ("predictions", "whatif"):
        at = open_page(page)
        no_errors(at)
        assert "No model yet" in texts(at.info)


# ---- predictions ----------------------------------------------------------------------------
def test_predictions_week_slider_and_baselines(models_dir):
    at = open_page("predictions")
    no_errors(at)
    before = texts(at.caption)
    week = at.select_slider(key="pred_week").value
    at.select_slider(key="pred_week").set_value(week - datetime.timedelta(days=7)).run()
    assert texts(at.caption) != before
    at.multiselect(key="pred_baselines").set_value(["sliding_scale"]).run()
    no_errors(at)
    metrics = frame_with(at, "model or baseline", "MAE (U)")
    assert list(metrics["model or baseline"]) == ["LSTM-GRU model", "the patient's own sliding scale"]
    # beside the errors, the two kinds of a 0/dose answer's mistakes, as whole counts
    counts = metrics[["doses missed", "unwanted doses"]].astype(float)
    assert (counts >= 0).all().all() and (counts == counts.round()).all().all()
    table = frame_with(at, "patient", "MAE (U) on dose occasions")
    assert len(table) == 20
    # every predictor's 90% interval, the baseline's beside the model's
    coverage = frame_with(at, "predictor", "coverage")
    assert list(coverage["predictor"]) == ["LSTM-GRU model", "the patient's own sliding scale"]
    assert ((coverage["coverage"] >= 50) & (coverage["coverage"] <= 100)).all()  # shown in %
    # the per-patient dose-occasion scores: both tables of this patient, and the per-patient notes
    assert frame_with(at, "model or baseline", "RMSE (U)")["model or baseline"].tolist() == list(metrics["model or baseline"])
    assert "note" not in table.columns  # notes are captions under the table (a column of sentences scrolled sideways)


# ---- what-if --------------------------------------------------------------------------------
def scenario_line(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Scenario:"))


def reading_keys(at: AppTest) -> list[str]:
    return [w.key for w in at.number_input if w.key and w.key.startswith("whatif_reading_")]


@pytest.fixture
def whatif(models_dir) -> AppTest:
    at = open_page("whatif")
    no_errors(at)
    return at


def test_whatif_shows_the_recorded_moment_and_its_prediction(whatif):
    at = whatif
    labels = {m.label for m in at.metric}
    assert {"Predicted Regular dose", "90% interval", "P(dose)", "Unedited prediction",
            "Regular given"} <= labels
    assert "change +0 U" in scenario_line(at)  # nothing edited yet
    assert at.selectbox(key="whatif_point").options[0] == "next (after their last entry)"
    window = frame_with(at, "timestamp", "glucose", "regular", "meal")
    assert len(window) == 11  # the 10-row window and the decision row


def test_whatif_glucose_slider_moves_the_dose_and_interval(whatif):
    at = whatif
    before = scenario_line(at)
    for glucose in (40, 560):
        at.slider(key="whatif_glucose").set_value(glucose).run()
        no_errors(at)
        line = scenario_line(at)
        assert f"glucose {glucose} mg/dL" in line and "90% interval" in line
        assert line != before
        before = line
    at.segmented_control(key="whatif_meal").set_value("more").run()
    no_errors(at)
    assert "a larger meal than usual" in scenario_line(at)  # words, not "meal more"


def test_whatif_out_of_range_reading_is_refused(whatif):
    at = whatif
    key = reading_keys(at)[0]
    recorded_line = scenario_line(at)
    at.number_input(key=key).set_value(900).run()
    assert not at.exception
    assert "outside the meter range" in texts(at.error) and "Refused" in texts(at.error)
    assert scenario_line(at) == recorded_line  # the refused value was not used
    at.number_input(key=key).set_value(300).run()
    no_errors(at)
    assert "1 window reading(s) edited" in scenario_line(at)


def test_whatif_save_two_scenarios_compare_and_reset(whatif):
    at = whatif
    recorded = {k: at.session_state[k] for k in ("whatif_glucose", "whatif_meal", "whatif_exercise", "whatif_hypo",
                                                  "whatif_time", *reading_keys(at))}
    at.slider(key="whatif_glucose").set_value(300).run()
    at.text_input(key="whatif_save_name").set_value("high glucose").run()
    at.button(key="whatif_save").click().run()
    at.segmented_control(key="whatif_meal").set_value("more")
    at.toggle(key="whatif_hypo").set_value(True)
    at.number_input(key=reading_keys(at)[-1]).set_value(45)
    at.text_input(key="whatif_save_name").set_value("big meal, hypo").run()
    at.button(key="whatif_save").click().run()
    no_errors(at)
    table = frame_with(at, "name", "dose", "low", "high", "edits")
    assert list(table["name"]) == ["high glucose", "big meal, hypo"]
    assert "glucose now 300 mg/dL" in table["edits"].iloc[0] and "P(dose)" in table.columns  # words, not identifiers
    assert at.get("download_button")[0].proto.label == "Download the comparison (CSV)"

    at.button(key="whatif_reset").click().run()
    no_errors(at)
    assert {k: at.session_state[k] for k in recorded} == recorded
    assert "change +0 U" in scenario_line(at)
    assert len(frame_with(at, "name", "dose", "edits")) == 2  # saved scenarios survive a reset

    at.button(key="whatif_clear").click().run()  # a whole-page run carrying the click: no error, the list emptied
    no_errors(at)
    assert at.session_state["whatif_saved"] == [] and "Nothing saved yet" in texts(at.caption)


def test_whatif_next_moment_and_other_points(whatif):
    at = whatif
    at.selectbox(key="whatif_point").set_value("next").run()
    no_errors(at)
    assert any(m.label == "Regular given" and m.value == "not yet" for m in at.metric)
    assert "no glucose reading" in scenario_line(at)
    at.toggle(key="whatif_glucose_on").set_value(True).run()
    at.slider(key="whatif_glucose").set_value(320).run()
    no_errors(at)
    assert "glucose 320 mg/dL" in scenario_line(at)
    # safety flags are shown as warnings with their text (here: the "next" moment's timing features
    # lie outside the training range for the tiny model)
    flags = [w.value for w in at.warning if "not a dosing device" not in w.value]
    assert flags and all(f.startswith("**") and len(f) > 40 for f in flags)
    # a new patient starts from their own recorded values
    at.selectbox(key="whatif_patient").set_value(2).run()
    no_errors(at)
    assert "change +0 U" in scenario_line(at)
    at.slider(key="whatif_time").set_value(datetime.time(7, 30)).run()
    no_errors(at)
    assert "07:30" in scenario_line(at)


# ---- honest defaults ------------------------------------------------------------------------
def save_tiny(cohort, name: str, folder: Path) -> None:
    exp, cfg = ExperimentConfig(), TrainConfig(epochs=1, threads=1)
    result = run_experiment(cohort.features, exp, TINY, cfg, baselines=["previous_row"])
    save_bundle(result.training.model, bundle_meta(result, exp, cfg, cohort.source.label, cohort.fingerprint), name, folder)


def sidebar_text() -> str:
    """The sidebar's captions on the first page (AppTest drops the sidebar after switch_page)."""
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.run()
    return texts(at.sidebar.caption)


@pytest.fixture
def real_dir(models_dir, tmp_path, monkeypatch) -> Path:
    """$AIM94_DIR set to a folder of diaries that are not the demo cohort (the models folder holds
    only the synthetic 'demo' model)."""
    folder = tmp_path / "aim94"
    folder.mkdir()
    for name, text in generate_cohort(DemoConfig(patients=3, seed=1)).items():
        (folder / name).write_text(text)
    monkeypatch.setenv("AIM94_DIR", str(folder))
    return folder


def test_real_data_never_defaults_to_the_synthetic_model(real_dir, models_dir):
    at = open_page("overview")
    assert at.radio(key="source_kind").value == "folder"  # the source in use, not "Demo cohort (synthetic)"
    assert at.text_input(key="source_folder").value == str(real_dir)
    disclaimer = texts(at.warning)
    assert "AIM94 diaries from $AIM94_DIR (3 patients; glucose in mg/dL)" in disclaimer and "none trained on this data yet" in disclaimer
    assert "synthetic demo data" not in disclaimer
    assert "Model: none trained on this data yet" in sidebar_text()
    for page in ("predictions", "whatif"):
        at = open_page(page)
        no_errors(at)
        assert "No saved model was trained on the data on screen" in texts(at.info)
        assert any(link.proto.page.endswith("train.py") or "Train" in link.proto.label for link in at.get("page_link"))
        assert at.selectbox(key="active_model").value is None  # nothing silently picked
        assert not at.get("vega_lite_chart")  # no dose shown from a model of other data

    # a person may still pick the demo model: it is used, with a visible warning
    at = open_page("predictions")
    at.selectbox(key="active_model").set_value("saved:demo").run()
    no_errors(at)
    assert "was trained on synthetic demo data (20 made-up patients" in texts(at.warning)
    assert "other data than on screen" in texts(at.warning)  # the disclaimer says it too
    at.switch_page("pages/whatif.py").run()
    no_errors(at)
    assert at.selectbox(key="active_model").value == "saved:demo"  # the pick holds across pages

    # once a model trained on this data is saved, every page starts on it
    save_tiny(load_cohort(DataSource("env", str(real_dir))), "real-tiny", models_dir)
    assert "Model: real-tiny" in sidebar_text()
    for page in ("predictions", "whatif", "models"):
        at = open_page(page)
        no_errors(at)
        disclaimer = next(w.value for w in at.warning if "not a dosing device" in w.value)
        assert "**real-tiny**, trained on real AIM94 diaries of 3 patients" in disclaimer
        assert "other data" not in disclaimer
    assert at.session_state["active_model"] == "saved:real-tiny"


def test_demo_data_uses_the_demo_model_and_says_it_is_synthetic(models_dir):
    at = open_page("models")  # (a fast page: the disclaimer is the same on every page)
    no_errors(at)
    assert at.session_state["active_model"] == "saved:demo"
    disclaimer = next(w.value for w in at.warning if "not a dosing device" in w.value)
    assert "synthetic demo cohort, AIM94 format (20 patients; glucose in mg/dL" in disclaimer and "trained on synthetic demo data" in disclaimer
    assert "70 patients" not in disclaimer and "1989" not in disclaimer


def test_the_glossary_opens_from_the_sidebar(models_dir):
    at = AppTest.from_file(APP, default_timeout=WAIT_S)
    at.run()
    no_errors(at)
    popover = next(p for p in at.sidebar.get("popover") if p.proto.popover.label == "Glossary")
    text = texts(popover.markdown)
    for term in ("Decision dose", "MAE", "R²", "Within ±1 U", "P(dose)", "90% interval", "Split: chrono", "Baselines"):
        assert f"**{term}**" in text



def test_tables_show_missing_values_as_a_dash_and_numbers_by_unit():
    import numpy as np
    import pandas as pd

    from ui.tables import display

    table = pd.DataFrame({"predictor": ["LSTM-GRU model", None], "MAE (U)": [0.71234, np.nan], "within ±1 U": [0.8712, np.nan],
                          "decision points": [1077.0, 3.0], "R²": [0.5, 0.25]})
    shown, config = display(table, digits=3, percent=("within ±1 U",), integers=("decision points",))
    # a column with a gap becomes right-aligned text with a dash (st.dataframe would draw "None")
    assert shown["MAE (U)"].tolist() == ["0.712", "–"] and shown["within ±1 U"].tolist() == ["87%", "–"]
    assert shown["predictor"].tolist() == ["LSTM-GRU model", "–"]
    assert config["MAE (U)"]["type_config"]["type"] == "text" and config["MAE (U)"]["alignment"] == "right"
    # a column without gaps stays numeric (it sorts as numbers), formatted by unit
    assert shown["decision points"].tolist() == [1077.0, 3.0] and config["decision points"]["type_config"]["format"] == "%d"
    assert config["R²"]["type_config"]["format"] == "%.3f"
    assert not table["MAE (U)"].isna().all()  # the caller's table is not changed

def test_whatif_names_the_threshold_a_patient_new_to_the_model_gets(models_dir):
    """A bundle whose training did not include patient 1: the What-if says so and which P(dose)
    threshold serves them; patient 2, whom it knows, gets no such note."""
    import torch

    meta_path = models_dir / "demo" / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["patient_index"].pop("1")
    meta_path.write_text(json.dumps(meta))
    new = float(torch.load(models_dir / "demo" / "weights.pt", weights_only=True)["new_patient_threshold"][0])
    at = open_page("whatif")
    no_errors(at)
    assert at.session_state["whatif_patient"] == 1
    assert "Patient 1 is not in this model's training" in texts(at.info)
    assert f"above P(dose) {new:.0%}, its threshold for new patients" in texts(at.info)
    at.selectbox(key="whatif_patient").set_value(2).run()
    no_errors(at)
    assert "not in this model's training" not in texts(at.info)
