"""Per-session state of the pages: the page header, the data source and the model a user picked,
and uploads. Models are saved bundles, referred to as 'saved:NAME' (training runs in the
background and saves its model, ui/training.py). What is shared between sessions is in ui/cache.py."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from insulin_core.prep.dataset import Cohort, cohort_from_load
from insulin_core.data.download import DownloadError
from insulin_core.errors import BundleError
from insulin_core.data.provenance import Candidate, newest_fitting
from insulin_core.data.source import DataSource, read_upload, resolve_source
from insulin_core.prep.windows import WindowError
from ui.cache import cached_cohort, load_saved, models_dir
from ui.streamlit_internals import DECLARED_PAGES_KEY, leave_legacy_pages_mode  # noqa: F401 (app.py reads the key)

if TYPE_CHECKING:
    from insulin_core.bundles.registry import ModelBundle
# Speed: torch (registry) and scikit-learn (baselines) are imported where first used, not here, so the
# Overview opens without them (they take seconds to import); see app.py's sidebar.

DISCLAIMER = "**Research and demo tool, not a dosing device.** Never use it to choose an insulin dose."
SHIPPED_MODEL = "demo"
TRAIN_PAGE = "pages/train.py"
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
        from insulin_core.models.baselines import BASELINES

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


def page_header(title: str, caption: str | None = None, uses_models: bool = True) -> None:
    """Every page starts here: its title and the research-tool disclaimer, which says what data is
    on screen and what the model in use was trained on (never a claim that can be false). A page
    that `uses_models=False` does not wait for torch to name the model (see models_ready)."""
    leave_legacy_pages_mode()
    st.title(title)
    st.warning(disclaimer(uses_models or models_ready()), icon=":material/health_and_safety:")
    if caption:
        st.caption(caption)


def disclaimer(name_model: bool = True) -> str:
    if not name_model:
        return f"{DISCLAIMER} On screen: {data_words()}. Model in use: being looked up (see the sidebar)."
    found = candidates()
    return f"{DISCLAIMER} On screen: {data_words()}. Model in use: {model_words(active_model_ref(found), found)}."


def models_ready() -> bool:
    """Whether the saved models can be listed without waiting: listing checks their weights, which
    needs torch (seconds to import). app.py imports it in the background after the first page; the
    disclaimer names the model from the first rerun after it is in (no timer rerun: it could
    swallow a click)."""
    return "insulin_core.bundles.registry" in sys.modules


def data_words() -> str:
    """The data on screen in plain words: where from, its format, how many patients and (once
    loaded) the glucose unit the records came in."""
    source = current_source()
    cohort = _quiet_cohort()
    counted = "not loaded" if cohort is None else f"{len(cohort.patients)} patients; glucose in {cohort.glucose_units}"
    if source.is_synthetic:
        what = "pump + CGM demo cohort, Nightscout format" if source.demo == "modern" else "demo cohort, AIM94 format"
        return f"the synthetic {what} ({counted}; made up: no real person)"
    where = {"env": "from $AIM94_DIR", "folder": "from a folder", "upload": "uploaded"}.get(source.kind, "")
    what = "AIM94 diaries" if cohort is None or cohort.format == "AIM94" else f"a {cohort.format} export"
    return f"{what} {where} ({counted})"


def model_words(ref: str | None, found: list[Candidate]) -> str:
    if ref is None:
        return "none trained on this data yet (train one on the Train page)"
    fits = ref in fitting_refs(found)
    return (f"**{model_label(ref)}**, trained on {trained_words(ref, found)}"
            + ("" if fits else " (**other data than on screen**: its answers do not describe these patients)"))


# ---- data ------------------------------------------------------------------------------------
def current_source() -> DataSource:
    """The source picked in this session; the documented default order otherwise."""
    if "data_source" not in st.session_state:
        st.session_state["data_source"] = resolve_source(None)
    return st.session_state["data_source"]


def set_source(source: DataSource) -> None:
    st.session_state["data_source"] = source


def _quiet_cohort() -> Cohort | None:
    """The current cohort without any message (for the sidebar and the disclaimer); None when it
    does not load (the page itself then says why)."""
    source = current_source()
    if source.kind == "upload":
        cohort = st.session_state.get("upload_cohort")
        return cohort if cohort is not None and cohort.source == source else None
    try:
        return cached_cohort(source)
    except CORE_ERRORS:
        return None


def current_fingerprint() -> str | None:
    """The fingerprint of the data in use (memoised per source: hashing the events takes a while)."""
    source = current_source()
    memo = st.session_state.setdefault("fingerprints", {})
    if source not in memo:
        cohort = _quiet_cohort()
        if cohort is None:
            return None
        memo[source] = cohort.fingerprint
    return memo[source]


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
    """Uploaded files (Streamlit UploadedFile) of any supported format (AIM94 diaries, Nightscout,
    Tidepool, OhioT1DM, HUPA-UCM), parsed in memory, never written to disk; ValueError when over a
    bound, when no format fits (the message names what each format looks like), or when no record
    is usable."""
    used = st.session_state.get("uploads_used", 0)
    if used >= MAX_UPLOADS_PER_SESSION:
        raise ValueError(f"this session has used its {MAX_UPLOADS_PER_SESSION} uploads; reload the page to start a new one")
    st.session_state["uploads_used"] = used + 1
    if len(files) > MAX_UPLOAD_FILES or sum(f.size for f in files) > MAX_UPLOAD_BYTES:
        raise ValueError(f"at most {MAX_UPLOAD_FILES} files and {MAX_UPLOAD_BYTES / 2**20:.0f} MB per upload")
    source, loaded = read_upload({Path(f.name).name: f.getvalue() for f in files})
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
    from insulin_core.bundles.registry import list_bundles

    try:
        return list_bundles(models_dir())
    except BundleError as exc:  # the folder stayed locked: show the pages without saved models
        st.warning(f"The saved models cannot be listed right now: {exc}", icon=":material/warning:")
        return []


def model_refs(found: list[Candidate] | None = None) -> list[str]:
    """Every model this session can use ('saved:NAME'): those trained on the data in use first
    (newest first), then the others."""
    fits = fitting_refs(found)
    newest_first = sorted(candidates() if found is None else found, key=lambda c: c.created, reverse=True)
    return [c.ref for c in sorted(newest_first, key=lambda c: c.ref not in fits)]  # a stable sort


def candidates(rows: list[dict] | None = None) -> list[Candidate]:
    """Every usable model with its training data's fingerprint, from `rows` of saved_models() (one
    listing of the models folder when not given)."""
    return [Candidate(f"saved:{row['name']}", row.get("fingerprint"), row.get("created", ""), row.get("trained_on", ""))
            for row in (saved_models() if rows is None else rows) if row["ok"]]


def fitting_refs(found: list[Candidate] | None = None) -> set[str]:
    """The models trained on the data in use."""
    fp = current_fingerprint()
    return {c.ref for c in (candidates() if found is None else found) if fp is not None and c.fingerprint == fp}


def trained_words(ref: str, found: list[Candidate] | None = None) -> str:
    """What a model was trained on, in plain words."""
    return next((c.words for c in (candidates() if found is None else found) if c.ref == ref), "") or "unknown data"


def model_label(ref: str) -> str:
    return ref.split(":", 1)[1]


def active_model_ref(found: list[Candidate] | None = None) -> str | None:
    """The model in use: the one a person picked for the data in use, else the newest model trained
    on that data, else None (never silently a model trained on other data)."""
    found = candidates() if found is None else found
    ref = st.session_state.get("active_model")
    chosen = st.session_state.get("active_model_chosen") == (ref, current_fingerprint())
    if ref in model_refs(found) and (chosen or ref in fitting_refs(found)):
        return ref
    ref = newest_fitting(found, current_fingerprint())
    if ref is None:
        st.session_state.pop("active_model", None)
    else:
        st.session_state["active_model"] = ref
    return ref


def set_active_model(ref: str) -> None:
    """A person's pick (Train's save, Models' "use"): kept for the data in use even when the model
    was trained on other data."""
    st.session_state["active_model"] = ref
    _mark_chosen()


def _mark_chosen() -> None:
    st.session_state["active_model_chosen"] = (st.session_state.get("active_model"), current_fingerprint())


def bundle_of(ref: str) -> ModelBundle:
    return load_saved(model_label(ref))


def model_picker(label: str = "Model") -> ModelBundle | None:
    """The selectbox every model-using page shares (key `active_model`). It starts on the newest
    model trained on the data in use; when there is none it says so, offers training and lets a
    person pick another model explicitly, with a warning. None (after a message) when no model is used."""
    found = candidates()
    ref = active_model_ref(found)
    refs, fits = model_refs(found), fitting_refs(found)
    if not refs:
        st.info("No model yet: train one on the **Train** page, or upload a bundle on **Models**.",
                icon=":material/model_training:")
        st.page_link(TRAIN_PAGE, label="Train a model", icon=":material/model_training:")
        return None
    if ref is None:
        st.info(f"No saved model was trained on the data on screen ({data_words()}). Train one on it, or pick "
                "a model trained on other data below (its answers will not describe these patients).",
                icon=":material/model_training:")
        st.page_link(TRAIN_PAGE, label="Train a model on this data", icon=":material/model_training:")
    # no index when a model is in use: the `active_model` state holds it (index and state together warn)
    extra = {"index": None, "placeholder": "Pick a model trained on other data..."} if ref is None else {}
    st.selectbox(label, refs, key="active_model", persist_state="session", on_change=_mark_chosen,
                 format_func=lambda r: model_label(r) + ("" if r in fits else " (trained on other data)"), **extra)
    ref = st.session_state.get("active_model")
    if ref is None:
        return None
    if ref not in fits:
        st.warning(f"**{model_label(ref)}** was trained on {trained_words(ref, found)}, not on the data on screen: "
                   "its doses and scores do not describe these patients.", icon=":material/warning:")
    try:
        return bundle_of(ref)
    except BundleError as exc:
        st.error(f"This model cannot be used: {exc}", icon=":material/error:")
        return None


def model_page(title: str, caption: str | None, widths: list[float]) -> tuple[Cohort, ModelBundle, list]:
    """The top of a page that shows a model's answers: header, the data (stops with a message when
    it does not load), a row of columns whose first holds the model picker (stops when no model
    is used). The other columns are the page's own."""
    page_header(title, caption)
    cohort = current_cohort()
    if cohort is None:
        st.stop()
    columns = st.columns(widths)
    with columns[0]:
        bundle = model_picker()
    if bundle is None:
        st.stop()
    return cohort, bundle, columns


def form_defaults(defaults: dict, patients_key: str, cohort: Cohort) -> None:
    """A form's widget values start at `defaults` once per session; its patient pick keeps only
    patients of the data in use (the source may have changed since)."""
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    st.session_state[patients_key] = [p for p in st.session_state[patients_key] if p in cohort.patients]
