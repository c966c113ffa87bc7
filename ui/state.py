"""Session state and caches between the pages and the core.

- The data source and the model a user picked live in `st.session_state`, per session.
- `st.cache_data` holds cohorts and prediction tables (plain data, shared, keyed by source and by a
  saved bundle's path + created time); `st.cache_resource` holds loaded saved bundles keyed by
  path + mtime, so a bundle replaced on disk is read again.
- A model trained in this session lives only in `st.session_state["session_models"]`: never in a
  shared cache, so one user's training never replaces what another user sees.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import streamlit as st

from insulin_core.aim94 import load_texts, patient_id_of
from insulin_core.baselines import BASELINES
from insulin_core.dataset import Cohort, cohort_from_load, load_cohort
from insulin_core.download import DownloadError
from insulin_core.registry import (DEFAULT_MODELS_DIR, BundleError, ModelBundle, bundle_stamp, check_name, list_bundles,
                                   load_bundle)
from insulin_core.serving import bundle_experiment, predictions_table
from insulin_core.source import DataSource, resolve_source, upload_source
from insulin_core.windows import WindowError

DISCLAIMER = (
    "**Research and demo tool, not a dosing device.** Predictions come from a model trained on "
    "1989-1991 records of 70 patients (or on synthetic data). Never use them to choose an insulin dose."
)
MODELS_DIR_ENV = "INSULIN_DASH_MODELS_DIR"  # tests and demos point the app at another models folder
SHIPPED_MODEL = "demo"
# The fast baselines; the two gradient-boosting ones take seconds each, so they are opt-in.
# Every baseline, the gradient-boosting ones (the strongest) included: a model is judged beside all of them.
DEFAULT_BASELINES = list(BASELINES)
# Uploads are parsed in memory and kept per session: bound how much one visitor can make us hold.
MAX_UPLOADS_PER_SESSION = 20
MAX_UPLOAD_FILES = 100  # the real set is 70 files
MAX_UPLOAD_BYTES = 64 * 2**20  # the real set is under 1 MB
# Errors the core raises for bad input; anything else is a bug and is shown as one (see shows_errors).
CORE_ERRORS = (WindowError, ValueError, BundleError, DownloadError, FileNotFoundError, NotADirectoryError,
               PermissionError, OSError)


@contextmanager
def shows_errors(what: str, stop: bool = True):
    """Turn the core's errors into one clear st.error (never a traceback on the page)."""
    try:
        yield
    except CORE_ERRORS as exc:
        st.error(f"{what}: {exc}", icon=":material/error:")
        if stop:
            st.stop()


DECLARED_PAGES_KEY = "declared_pages_seen"


def leave_legacy_pages_mode() -> None:
    """Streamlit treats a `pages/` folder next to the entry script as a legacy multipage app until
    the first `st.navigation` call of the server's life: a first visit straight to /whatif would run
    that file alone, with the files listed by name in the sidebar. Switch the flag off and, if this
    session has never run app.py's navigation, rerun so its declared pages take over
    (streamlit/runtime/pages_manager.py, Streamlit 1.67). AppTest resets the flag on every run, so
    rerunning only once per session also keeps its widget events."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get(DECLARED_PAGES_KEY):
            st.rerun()


def page_header(title: str, caption: str | None = None) -> None:
    """Every page starts here: its title and the research-tool disclaimer."""
    leave_legacy_pages_mode()
    st.title(title)
    st.warning(DISCLAIMER, icon=":material/health_and_safety:")
    if caption:
        st.caption(caption)


# ---- data ------------------------------------------------------------------------------------
@st.cache_data(show_spinner="Loading and checking the data...", max_entries=8)
def cached_cohort(source: DataSource) -> Cohort:
    return load_cohort(source)


def current_source() -> DataSource:
    """The source picked in this session; the documented default order otherwise."""
    if "data_source" not in st.session_state:
        st.session_state["data_source"] = resolve_source(None)
    return st.session_state["data_source"]


def set_source(source: DataSource) -> None:
    st.session_state["data_source"] = source


def current_cohort() -> Cohort | None:
    """The cohort of the current source, or None after showing a clear message."""
    source = current_source()
    if source.kind == "upload":  # parsed on upload, held by this session only
        cohort = st.session_state.get("upload_cohort")
        if cohort is None or cohort.source != source:
            st.error("The uploaded files are gone from this session; upload them again.", icon=":material/error:")
            return None
        return cohort
    try:
        return cached_cohort(source)
    except CORE_ERRORS as exc:
        st.error(f"Could not load the data from {source.label}: {exc}", icon=":material/error:")
        return None


def load_upload(files: list) -> Cohort:
    """Uploaded files (Streamlit UploadedFile) parsed in memory, never written to disk; ValueError
    when over a bound, when no file is named data-NN, or when no line is usable."""
    used = st.session_state.get("uploads_used", 0)
    if used >= MAX_UPLOADS_PER_SESSION:
        raise ValueError(f"this session has used its {MAX_UPLOADS_PER_SESSION} uploads; reload the page to start a new one")
    st.session_state["uploads_used"] = used + 1
    if len(files) > MAX_UPLOAD_FILES or sum(f.size for f in files) > MAX_UPLOAD_BYTES:
        raise ValueError(f"at most {MAX_UPLOAD_FILES} files and {MAX_UPLOAD_BYTES / 2**20:.0f} MB per upload")
    texts = {Path(f.name).name: f.getvalue() for f in files}
    if not any(patient_id_of(name) is not None for name in texts):
        raise ValueError("none of the uploaded files is named like an AIM94 diary (data-01 ... data-70)")
    source = upload_source(texts)
    loaded = load_texts(texts, source.label)
    if reason := loaded.report.unusable_reason():
        raise ValueError(f"nothing usable in the upload ({reason})")
    return cohort_from_load(source, loaded)


def adopt_upload(cohort: Cohort) -> None:
    """Make an uploaded cohort this session's data source (replacing any earlier upload)."""
    st.session_state["upload_cohort"] = cohort
    set_source(cohort.source)


def env_data_dir() -> str | None:
    return os.environ.get("AIM94_DIR") or None


# ---- models ----------------------------------------------------------------------------------
def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def saved_models() -> list[dict]:
    """Every bundle folder, broken ones with ok=False (list_bundles checks each in full)."""
    try:
        return list_bundles(models_dir())
    except BundleError as exc:  # the folder stayed locked: show the pages without saved models
        st.warning(f"The saved models cannot be listed right now: {exc}", icon=":material/warning:")
        return []


@st.cache_resource(max_entries=16, show_spinner="Loading the model...")
def _cached_bundle(path: str, stamp: tuple) -> ModelBundle:
    return load_bundle(Path(path))


def load_saved(name: str) -> ModelBundle:
    """A saved bundle, read once per version on disk (a save replaces the folder: a new stamp);
    raises BundleError."""
    path = models_dir() / check_name(name)
    return _cached_bundle(str(path), bundle_stamp(path))


def session_models() -> dict[str, ModelBundle]:
    return st.session_state.setdefault("session_models", {})


def model_refs() -> list[str]:
    """Every model this session can use: 'saved:NAME' and 'session:NAME'."""
    refs = [f"saved:{row['name']}" for row in saved_models() if row["ok"]]
    return refs + [f"session:{name}" for name in session_models()]


def model_label(ref: str) -> str:
    kind, name = ref.split(":", 1)
    return name if kind == "saved" else f"{name} (trained in this session, not saved)"


def active_model_ref() -> str | None:
    """The model picked in this session (the `active_model` widget key), kept valid."""
    refs = model_refs()
    ref = st.session_state.get("active_model")
    if ref not in refs:
        ref = f"saved:{SHIPPED_MODEL}" if f"saved:{SHIPPED_MODEL}" in refs else (refs[0] if refs else None)
        if ref is None:
            st.session_state.pop("active_model", None)
        else:
            st.session_state["active_model"] = ref
    return ref


def set_active_model(ref: str) -> None:
    st.session_state["active_model"] = ref


def bundle_of(ref: str) -> ModelBundle:
    kind, name = ref.split(":", 1)
    if kind == "session":
        if name not in session_models():
            raise BundleError(f"The model {name!r} trained in this session is gone; train it again.")
        return session_models()[name]
    return load_saved(name)


def bundle_key(bundle: ModelBundle) -> tuple:
    """What identifies a bundle's predictions: its path and created time (not its weights' bytes)."""
    return (str(bundle.path), bundle.meta.get("created", ""), bundle.name)


def model_picker(label: str = "Model") -> ModelBundle | None:
    """The selectbox every model-using page shares (key `active_model`); None with a message."""
    ref = active_model_ref()
    if ref is None:
        st.info("No model yet: train one on the **Train** page, or upload a bundle on **Models**.",
                icon=":material/model_training:")
        return None
    st.selectbox(label, model_refs(), format_func=model_label, key="active_model", persist_state="session")
    try:
        return bundle_of(st.session_state["active_model"])
    except BundleError as exc:
        st.error(f"This model cannot be used: {exc}", icon=":material/error:")
        return None


@st.cache_data(max_entries=16, show_spinner="Predicting every decision point...")
def _cached_predictions(key: tuple, source: DataSource, baselines: tuple[str, ...], _bundle: ModelBundle,
                        _cohort: Cohort) -> pd.DataFrame:
    return predictions_table(_bundle, _cohort, list(baselines))


def predictions(bundle: ModelBundle, cohort: Cohort, baselines: list[str]) -> pd.DataFrame:
    """The predictions table of a bundle on the current cohort (cached; see the module docstring)."""
    baselines = tuple(sorted(baselines))
    if bundle.path is not None:
        return _cached_predictions(bundle_key(bundle), cohort.source, baselines, bundle, cohort)
    memo = st.session_state.setdefault("session_predictions", {})
    key = (bundle.name, id(bundle), cohort.source, baselines)
    if key not in memo:
        memo.clear()  # one table at a time per session: these can be large
        with st.spinner("Predicting every decision point..."):
            memo[key] = predictions_table(bundle, cohort, list(baselines))
    return memo[key]


@st.cache_data(max_entries=16)
def decision_points(window: tuple, source: DataSource, _cohort: Cohort) -> pd.DataFrame:
    """The windows' context (one row per decision point) for a window config; cheap to cache."""
    from insulin_core.windows import WindowConfig, make_windows

    return make_windows(_cohort.features, WindowConfig(*window)).context


def window_key(bundle: ModelBundle) -> tuple:
    w = bundle_experiment(bundle).window
    return (w.length, w.target, w.multi_output, w.dose_window)

