"""Caches between the pages and the core: plain data and loaded models shared by every session.

- Cohorts are held by `CohortCache`, a least-recently-used cache bounded by the bytes its cohorts
  take (DataFrame.memory_usage(deep=True)), not by their count: one real 70-patient cohort weighs
  what many demo ones do, and a folder or a download is whatever size the user points at. The
  budget is INSULIN_DASH_COHORT_CACHE_MB (default 512). `st.cache_data` has no byte bound (only
  max_entries and ttl), hence cachetools' LRUCache with a getsizeof.
- Prediction tables and decision-point lists are in `st.cache_resource`, keyed by the data source
  and by a saved bundle's path + created time; the baselines' columns of those tables once per
  data source and experiment (split, window, seed), so every bundle trained under the same settings
  shares one fit of the baselines; loaded saved bundles are there too, keyed by path + on-disk
  version, so a bundle replaced on disk is read again.
- Every cached object is shared, not copied per rerun (`st.cache_data` unpickles a fresh copy on
  every call: for a cohort, tens of milliseconds of GIL-bound work on each page view of each
  session). So callers never change a cached cohort or table in place (pages build new frames).
- Every model is a saved bundle (training runs in a background worker and saves its model), so
  one user's training adds a model beside the others and never replaces what another user sees.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import astuple, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cachetools
import pandas as pd
import streamlit as st

from insulin_core.prep.dataset import Cohort, load_cohort
from insulin_core.paths import DEFAULT_MODELS_DIR
from insulin_core.data.source import DataSource

if TYPE_CHECKING:
    from insulin_core.bundles.registry import ModelBundle
# The registry and serving import torch (seconds): imported where first used, so the Overview opens
# without them (see app.py).

MODELS_DIR_ENV = "INSULIN_DASH_MODELS_DIR"  # tests and demos point the app at another models folder
COHORT_BUDGET_ENV = "INSULIN_DASH_COHORT_CACHE_MB"
DEFAULT_COHORT_BUDGET_MB = 512


def cohort_bytes(cohort: Cohort) -> int:
    """What a cohort holds in memory: its events and features frames (the report is small)."""
    return int(sum(frame.memory_usage(deep=True).sum() for frame in (cohort.events, cohort.features)))


class CohortCache:
    """Cohorts by data source, least recently used first out when their bytes pass the budget.

    Thread-safe (sessions run in threads) and one load per source: concurrent misses of the same
    source wait for the first one's load (cachetools' `condition`) instead of parsing it again.
    A cohort bigger than the whole budget is returned but not kept."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.cache = cachetools.LRUCache(maxsize=budget_bytes, getsizeof=cohort_bytes)
        self.lock = threading.Condition()
        # a lambda, not load_cohort itself: the module attribute is looked up at call time (tests patch it)
        self.get = cachetools.cached(self.cache, key=lambda source: source, condition=self.lock)(
            lambda source: load_cohort(source))

    def held_bytes(self) -> int:
        return int(self.cache.currsize)

    def clear(self) -> None:
        with self.lock:
            self.cache.clear()


def cohort_budget_bytes(env: dict | None = None) -> int:
    """INSULIN_DASH_COHORT_CACHE_MB as bytes; the default when unset or not a positive number."""
    raw = (os.environ if env is None else env).get(COHORT_BUDGET_ENV, "")
    try:
        mb = float(raw)
    except ValueError:
        mb = 0
    return int((mb if mb > 0 else DEFAULT_COHORT_BUDGET_MB) * 2**20)


@st.cache_resource(show_spinner=False)
def cohort_cache() -> CohortCache:
    """One per server process (cleared with Streamlit's own caches)."""
    return CohortCache(cohort_budget_bytes())


def cached_cohort(source: DataSource) -> Cohort:
    """The cohort of a data source, loaded once and shared by every session (never change it)."""
    cache = cohort_cache()
    if source in cache.cache:  # no spinner for a hit: it would flash on every page view
        return cache.get(source)
    with st.spinner("Loading and checking the data..."):
        return cache.get(source)


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


@st.cache_resource(max_entries=16, show_spinner="Loading the model...")
def _cached_bundle(path: str, stamp: tuple) -> ModelBundle:
    from insulin_core.bundles.registry import load_bundle

    return load_bundle(Path(path))


def load_saved(name: str) -> ModelBundle:
    """A saved bundle, read once per version on disk (a save replaces the folder: a new stamp);
    raises BundleError."""
    from insulin_core.bundles.registry import bundle_stamp, check_name

    path = models_dir() / check_name(name)
    return _cached_bundle(str(path), bundle_stamp(path))


def bundle_key(bundle: ModelBundle) -> tuple:
    """What identifies a bundle's predictions: its path and created time (not its weights' bytes)."""
    return (str(bundle.path), bundle.meta.get("created", ""), bundle.name)


@st.cache_resource(max_entries=16, show_spinner="Predicting every decision point...")
def _cached_predictions(key: tuple, source: DataSource, baselines: tuple[str, ...], _bundle: ModelBundle,
                        _cohort: Cohort) -> pd.DataFrame:
    from insulin_core.bundles.serving import bundle_experiment, predictions_table

    # every patient is predicted whichever the bundle trained on, so its selection is not in the key
    exp = replace(bundle_experiment(_bundle), patients=())
    columns = _cached_baselines(json.dumps(exp.to_dict(), sort_keys=True), source, baselines, _cohort)
    return predictions_table(_bundle, _cohort, baseline_columns=columns)


@st.cache_resource(max_entries=16, show_spinner="Fitting the baselines...")
def _cached_baselines(experiment: str, source: DataSource, baselines: tuple[str, ...], _cohort: Cohort) -> pd.DataFrame:
    """The baselines' columns of a predictions table: fit once per data and experiment, whichever
    bundle (saved, uploaded, retrained under the same settings) they are shown beside."""
    from insulin_core.evaluation.pipeline import ExperimentConfig
    from insulin_core.bundles.serving import baseline_table

    return baseline_table(_cohort, ExperimentConfig.from_dict(json.loads(experiment)), list(baselines))


def predictions(bundle: ModelBundle, cohort: Cohort, baselines: list[str]) -> pd.DataFrame:
    """The predictions table of a bundle on the current cohort (cached; see the module docstring)."""
    return _cached_predictions(bundle_key(bundle), cohort.source, tuple(sorted(baselines)), bundle, cohort)


@st.cache_resource(max_entries=16, show_spinner=False)
def decision_points(window: tuple, source: DataSource, _cohort: Cohort) -> pd.DataFrame:
    """The windows' context (one row per decision point) for a window config; cheap to cache."""
    from insulin_core.prep.windows import WindowConfig, make_windows

    return make_windows(_cohort.features, WindowConfig(*window)).context


def window_key(bundle: ModelBundle) -> tuple:
    from insulin_core.bundles.serving import bundle_experiment

    return astuple(bundle_experiment(bundle).window)  # every field, in WindowConfig's order
