"""Caches between the pages and the core: plain data and loaded models shared by every session.

- `st.cache_data` holds cohorts, prediction tables and decision-point lists, keyed by the data
  source and by a saved bundle's path + created time.
- `st.cache_resource` holds loaded saved bundles keyed by path + on-disk version, so a bundle
  replaced on disk is read again.
- A model trained in a session is never put here (ui/session.py keeps it in that session), so one
  user's training never replaces what another user sees; its predictions are memoised in its session.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from insulin_core.dataset import Cohort, load_cohort
from insulin_core.registry import DEFAULT_MODELS_DIR, ModelBundle, bundle_stamp, check_name, load_bundle
from insulin_core.serving import bundle_experiment, predictions_table
from insulin_core.source import DataSource

MODELS_DIR_ENV = "INSULIN_DASH_MODELS_DIR"  # tests and demos point the app at another models folder


@st.cache_data(show_spinner="Loading and checking the data...", max_entries=8)
def cached_cohort(source: DataSource) -> Cohort:
    return load_cohort(source)


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


@st.cache_resource(max_entries=16, show_spinner="Loading the model...")
def _cached_bundle(path: str, stamp: tuple) -> ModelBundle:
    return load_bundle(Path(path))


def load_saved(name: str) -> ModelBundle:
    """A saved bundle, read once per version on disk (a save replaces the folder: a new stamp);
    raises BundleError."""
    path = models_dir() / check_name(name)
    return _cached_bundle(str(path), bundle_stamp(path))


def bundle_key(bundle: ModelBundle) -> tuple:
    """What identifies a bundle's predictions: its path and created time (not its weights' bytes)."""
    return (str(bundle.path), bundle.meta.get("created", ""), bundle.name)


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
