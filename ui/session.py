"""Per-session state of the pages: the page header, the data source and the model a user picked,
uploads, and the models trained in this session (in `st.session_state["session_models"]`, never in
a shared cache: one user's training never replaces what another user sees). What is shared between
sessions is in ui/cache.py."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from insulin_core.aim94 import load_texts, patient_id_of
from insulin_core.dataset import Cohort, cohort_from_load
from insulin_core.download import DownloadError
from insulin_core.errors import BundleError
from insulin_core.source import DataSource, resolve_source, upload_source
from insulin_core.windows import WindowError
from ui.cache import cached_cohort, load_saved, models_dir
from ui.streamlit_internals import DECLARED_PAGES_KEY, leave_legacy_pages_mode  # noqa: F401 (app.py reads the key)

if TYPE_CHECKING:
    from insulin_core.registry import ModelBundle
# Speed: torch (registry) and scikit-learn (baselines) are imported where first used, not here, so the
# Overview opens without them (they take seconds to import); see app.py's sidebar.

DISCLAIMER = (
    "**Research and demo tool, not a dosing device.** Predictions come from a model trained on "
    "1989-1991 records of 70 patients (or on synthetic data). Never use them to choose an insulin dose."
)
SHIPPED_MODEL = "demo"
# The fast baselines; the two gradient-boosting ones take seconds each, so they are opt-in.
# Every baseline, the gradient-boosting ones (the strongest) included: a model is judged beside all of them.
# DEFAULT_BASELINES = list(BASELINES), computed on first use (module __getattr__ below): it imports sklearn.
# Uploads are parsed in memory and kept per session: bound how much one visitor can make us hold.
MAX_UPLOADS_PER_SESSION = 20
MAX_UPLOAD_FILES = 100  # the real set is 70 files
MAX_UPLOAD_BYTES = 64 * 2**20  # the real set is under 1 MB
# Errors the core raises for bad input; anything else is a bug and is shown as one (see shows_errors).
CORE_ERRORS = (WindowError, ValueError, BundleError, DownloadError, FileNotFoundError, NotADirectoryError,
               PermissionError, OSError)


def __getattr__(name: str):
    if name == "DEFAULT_BASELINES":
        from insulin_core.baselines import BASELINES

        return list(BASELINES)
    raise AttributeError(name)


@contextmanager
def shows_errors(what: str, stop: bool = True):
    """Turn the core's errors into one clear st.error (never a traceback on the page)."""
    try:
        yield
    except CORE_ERRORS as exc:
        st.error(f"{what}: {exc}", icon=":material/error:")
        if stop:
            st.stop()


def page_header(title: str, caption: str | None = None) -> None:
    """Every page starts here: its title and the research-tool disclaimer."""
    leave_legacy_pages_mode()
    st.title(title)
    st.warning(DISCLAIMER, icon=":material/health_and_safety:")
    if caption:
        st.caption(caption)


# ---- data ------------------------------------------------------------------------------------
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
def saved_models() -> list[dict]:
    """Every bundle folder, broken ones with ok=False (list_bundles checks each in full)."""
    from insulin_core.registry import list_bundles

    try:
        return list_bundles(models_dir())
    except BundleError as exc:  # the folder stayed locked: show the pages without saved models
        st.warning(f"The saved models cannot be listed right now: {exc}", icon=":material/warning:")
        return []


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




def form_defaults(defaults: dict, patients_key: str, cohort: Cohort) -> None:
    """A form's widget values start at `defaults` once per session; its patient pick keeps only
    patients of the data in use (the source may have changed since)."""
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    st.session_state[patients_key] = [p for p in st.session_state[patients_key] if p in cohort.patients]
