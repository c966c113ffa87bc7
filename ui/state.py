"""Cached access to the core, and the data source the user picked (kept in session state)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import streamlit as st

from insulin_core.dataset import Cohort, load_cohort
from insulin_core.source import DataSource, resolve_source

DISCLAIMER = (
    "**Research and demo tool, not a dosing device.** Predictions come from a model trained on "
    "1989-1991 records of 70 patients (or on synthetic data). Never use them to choose an insulin dose."
)


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
    try:
        return cached_cohort(source)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as exc:
        st.error(f"Could not load the data from {source.label}: {exc}")
        return None


def upload_folder() -> Path:
    """A per-session folder for uploaded AIM94 files."""
    if "upload_dir" not in st.session_state:
        st.session_state["upload_dir"] = tempfile.mkdtemp(prefix="insulin-dash-upload-")
    return Path(st.session_state["upload_dir"])


def env_data_dir() -> str | None:
    return os.environ.get("AIM94_DIR") or None
