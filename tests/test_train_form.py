"""ui/train_form.py: the Train page's widget keys and the core's configs, both ways."""
from __future__ import annotations

from types import SimpleNamespace

from insulin_core.configs import DEFAULT_SIZES, TrainConfig
from insulin_core.evaluation.pipeline import ExperimentConfig
from insulin_core.data.source import DataSource
from insulin_core.jobs.tune import SEARCH_SPACE, TuneSettings, default_params
from ui.train_form import FORM_DEFAULTS, form_of_trial, run_spec_of, train_config_form

COHORT = SimpleNamespace(source=DataSource("demo"), fingerprint="f")


def test_the_default_form_trains_the_default_configs():
    spec = run_spec_of(FORM_DEFAULTS, COHORT)
    assert spec.exp == ExperimentConfig()
    assert spec.sizes.items() <= DEFAULT_SIZES.items() and "members" in spec.sizes  # the rest: model_config_for's defaults
    assert spec.train_cfg == TrainConfig(threads=1) and spec.data_tag == "demo"


def test_the_forms_cgm_cadence_is_the_runs_and_so_the_models():
    spec = run_spec_of({**FORM_DEFAULTS, "train_cgm_every": 30, "train_dose_window": 45}, COHORT)
    assert (spec.exp.window.cgm_every, spec.exp.window.dose_window) == (30, 45)


def test_a_trial_sent_to_the_form_trains_what_its_study_would():
    """The Tune page's "Send to the Train page", then Train: the experiment, sizes and training
    settings of the trial as its study trains it (tune.TuneSettings)."""
    settings = TuneSettings(split="patients", patients=(1, 2), epochs=7, patience=3, seed=5, dose_window=20, members=1,
                            cgm_every=30)
    for i in range(max(len(choices) for choices in SEARCH_SPACE.values())):
        params = {name: choices[i % len(choices)] for name, choices in SEARCH_SPACE.items()}
        spec = run_spec_of({**FORM_DEFAULTS, **form_of_trial(params, settings), "train_members": 1}, COHORT)
        assert spec.exp == settings.experiment(params["window"]), params
        assert spec.train_cfg == settings.train_config(params), params
        assert settings.sizes(params).items() <= spec.sizes.items(), params


def test_train_page_form_values_of_a_trial():
    form = train_config_form(default_params())
    assert form["train_dense"] == ", ".join(map(str, DEFAULT_SIZES["dense"]))
    assert form["train_lr"] == TrainConfig().lr and form["train_attention"] is DEFAULT_SIZES["attention"]
