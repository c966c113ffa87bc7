"""Optuna tuning: the search space, a reproducible tiny study, pruning, the objective's blindness to
the test part, two worker processes on one storage, the `tune` command, and a real-data study.

Every study here is tiny (3 demo patients, 2-3 epochs) and lives in tmp_path, never in data/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest

from insulin_core.jobs import tune
from insulin_core.cli import main
from insulin_core.configs import DEFAULT_SIZES, MAX_MEMBERS, TrainConfig
from insulin_core.prep.dataset import load_cohort
from insulin_core.data.source import DataSource
from insulin_core.jobs.study_storage import open_storage
from insulin_core.prep.windows import WindowConfig

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
# one ensemble member per trial: these tests are about the study, and a member is a fifth of the default's cost
TINY = tune.TuneSettings(patients=(1, 2, 3), epochs=3, patience=2, seed=0, members=1)
# The machinery tests (pruning, joining, budgets, saving) search the default and one cheaper value of
# each setting: the full space's small batches and wide layers made them the suite's slowest module
# (median pruner 32 s, tune command 31 s alone, 2026-12-04) and add nothing to what they check. The
# full space is checked where it matters (its values are the Train page's, the default is in it) and
# searched by the two-process test, whose workers are their own processes.
CHEAP_SPACE = {"window": (10, 5), "lstm_hidden": (64, 16), "lstm_layers": (1,), "gru_hidden": (32, 16), "gru_layers": (1,),
               "dense": ("128,64", "32"), "dropout": (0.1, 0.0), "lr": (1e-2, 3e-3), "batch": (1024, 512),
               "attention": (False,)}


@pytest.fixture
def cheap_space(monkeypatch):
    assert set(CHEAP_SPACE) == set(tune.SEARCH_SPACE)
    for name, choices in CHEAP_SPACE.items():
        assert set(choices) <= set(tune.SEARCH_SPACE[name]) and tune.default_params()[name] in choices, name
    monkeypatch.setattr(tune, "SEARCH_SPACE", CHEAP_SPACE)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def demo():
    return load_cohort(DataSource("demo"))


def outcome(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state.name, t.value, t.params) for t in study.get_trials()]


# ---- search space ---------------------------------------------------------------------------
def test_the_default_model_is_a_point_of_the_search_space():
    params = tune.default_params()
    assert set(params) == set(tune.SEARCH_SPACE)
    for name, value in params.items():
        assert value in tune.SEARCH_SPACE[name], name
    sizes = tune.sizes_of(params)
    assert {k: sizes[k] for k in tune.SIZE_PARAMS} == {k: DEFAULT_SIZES[k] for k in tune.SIZE_PARAMS}
    assert (params["window"], params["lr"], params["batch"]) == (WindowConfig().length, TrainConfig().lr,
                                                                 TrainConfig().batch)


def test_a_new_study_starts_with_the_default_and_is_reproducible_under_a_seed(demo, tmp_path, cheap_space):
    runs = [tune.run_study(demo.features, demo.fingerprint, TINY, 5, str(tmp_path / f"{i}.journal"), "s")
            for i in range(2)]
    first, second = (outcome(r.study) for r in runs)
    assert first == second
    states = [state for _, state, _, _ in first]
    assert len(states) == 5 and states[0] == "COMPLETE" and set(states) <= {"COMPLETE", "PRUNED"}
    assert first[0][3] == tune.default_params() and runs[0].study.trials[0].user_attrs["default"]
    assert len({json.dumps(p, sort_keys=True) for *_, p in first}) > 1  # it does search
    assert runs[0].ran == [0, 1, 2, 3, 4] and runs[0].created
    # another seed, another search
    other = tune.run_study(demo.features, demo.fingerprint, tune.TuneSettings(**{**TINY.to_dict(), "seed": 1,
                                                                                 "patients": (1, 2, 3)}),
                           5, str(tmp_path / "other.journal"), "s")
    assert [p for *_, p in outcome(other.study)][1:] != [p for *_, p in first][1:]


def test_the_budget_counts_every_trial_of_the_study(demo, tmp_path, cheap_space):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tune.run_study(demo.features, demo.fingerprint, TINY, 3, storage, "s")
    joined = tune.run_study(demo.features, demo.fingerprint, TINY, 4, storage, "s")
    assert not joined.created and joined.ran == [3]
    assert len(joined.study.trials) == 4
    assert tune.run_study(demo.features, demo.fingerprint, TINY, 4, storage, "s").ran == []


def test_a_pruned_trial_is_recorded_as_pruned(demo, tmp_path, cheap_space):
    # a threshold no validation loss can meet: every trial is pruned at its first report
    run = tune.run_study(demo.features, demo.fingerprint, TINY, 2, str(tmp_path / "j.journal"), "s",
                         pruner=optuna.pruners.ThresholdPruner(upper=-1.0))
    for t in run.study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert list(t.intermediate_values) == [1]  # Optuna keeps that last report as its value
        assert t.user_attrs["epochs_run"] == 1 and t.user_attrs["stop_reason"] == "stopped_by_user"
    assert tune.best_trials(run.study).empty and tune.trials_table(run.study)["val_mae"].isna().all()
    with pytest.raises(ValueError, match="no finished trial"):
        tune.best_trial(run.study)


def test_the_median_pruner_prunes_on_the_validation_loss(demo, tmp_path, cheap_space):
    settings = tune.TuneSettings(patients=(1, 2, 3), epochs=6, patience=6, seed=0, members=1)
    run = tune.run_study(demo.features, demo.fingerprint, settings, 12, str(tmp_path / "j.journal"), "s",
                         pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    states = [t.state for t in run.study.trials]
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states
    for t in run.study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.user_attrs["epochs_run"] < 6 and max(t.intermediate_values) == t.user_attrs["epochs_run"]


def test_the_objective_never_touches_the_test_part(demo, tmp_path, monkeypatch, cheap_space):
    """Every prepared window set has its test rows poisoned (NaN inputs and targets) and every
    array the objective builds is recorded: the trials still train cleanly, and no test row was read."""
    real_prepare, seen, test_rows = tune.prepare, [], []

    def poisoned_prepare(features, exp):
        prepared = real_prepare(features, exp)
        test = prepared.split.test
        # (the windows' rows are shared with the windows before them, so the moment's inputs are poisoned)
        prepared.ws.now, prepared.ws.y = prepared.ws.now.copy(), prepared.ws.y.copy()
        prepared.ws.now[test], prepared.ws.y[test] = np.nan, np.nan
        test_rows.append(set(test.tolist()))
        part = prepared.part

        def recorded_part(idx):
            seen.append((len(test_rows) - 1, set(np.asarray(idx).tolist())))
            return part(idx)

        prepared.part = recorded_part
        return prepared

    monkeypatch.setattr(tune, "prepare", poisoned_prepare)
    run = tune.run_study(demo.features, demo.fingerprint, TINY, 4, str(tmp_path / "j.journal"), "s")
    assert all(t.state == optuna.trial.TrialState.COMPLETE and np.isfinite(t.value) for t in run.study.trials)
    assert seen and test_rows
    for which, rows in seen:
        assert rows and not rows & test_rows[which]


def test_a_study_with_other_settings_or_data_is_refused(demo, tmp_path, cheap_space):
    storage = str(tmp_path / "j.journal")
    tune.run_study(demo.features, demo.fingerprint, TINY, 1, storage, "s")
    other = replace(TINY, epochs=4)
    with pytest.raises(ValueError, match=r"other settings \['epochs'\]"):
        tune.run_study(demo.features, demo.fingerprint, other, 2, storage, "s")
    with pytest.raises(ValueError, match=r"other settings \['members'\]"):
        tune.run_study(demo.features, demo.fingerprint, replace(TINY, members=2), 2, storage, "s")
    with pytest.raises(ValueError, match="other data"):
        tune.run_study(demo.features, "f" * 16, TINY, 2, storage, "s")


def test_a_study_stored_before_members_existed_is_joined_at_the_default_ensemble_size(demo, tmp_path, cheap_space):
    """Studies written by the version before `members` hold no such key: they ran the default
    ensemble, so a worker at the default joins them, and a 1-member worker is refused."""
    storage = str(tmp_path / "j.journal")
    study, _ = tune.open_study("old", storage, replace(TINY, members=DEFAULT_SIZES["members"]), demo.fingerprint)
    stored = {k: v for k, v in study.user_attrs["settings"].items() if k != "members"}
    study.set_user_attr("settings", stored)
    joined, created = tune.open_study("old", storage, replace(TINY, members=DEFAULT_SIZES["members"]), demo.fingerprint)
    assert not created and tune.study_settings(joined).members == DEFAULT_SIZES["members"]
    with pytest.raises(ValueError, match=r"other settings \['members'\]"):
        tune.open_study("old", storage, TINY, demo.fingerprint)


@pytest.mark.parametrize("members", [0, MAX_MEMBERS + 1, 1.5])
def test_an_ensemble_size_out_of_range_is_refused(members):
    with pytest.raises(ValueError, match="members must be a whole number"):
        tune.TuneSettings(members=members)


def test_stop_records_the_running_trial_as_failed_and_ends_the_worker(demo, tmp_path, cheap_space):
    calls = []
    run = tune.run_study(demo.features, demo.fingerprint, TINY, 5, str(tmp_path / "j.journal"), "s",
                         on_epoch=lambda trial, log: calls.append((trial, log.epoch)) or len(calls) >= 2)
    assert run.stopped and calls == [(0, 1), (0, 2)]
    (trial,) = run.study.trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["stopped_by_user"]


def test_storage_labels_never_show_a_password():
    from insulin_core.jobs.study_storage import DEFAULT_STORAGE_FILE, storage_label

    assert storage_label("postgresql://tuner:s3cret@db.lab:5432/optuna") == "postgresql://tuner:***@db.lab:5432/optuna"
    assert storage_label("/tmp/x.journal") == "/tmp/x.journal"
    assert storage_label(None) == str(DEFAULT_STORAGE_FILE)


# ---- the command ----------------------------------------------------------------------------
TUNE_ARGS = ["--patients", "1,2,3", "--epochs", "2", "--patience", "2", "--members", "1"]


def test_tune_command_runs_joins_and_saves_the_best_with_its_study(capsys, tmp_path, monkeypatch, cheap_space):
    monkeypatch.delenv("AIM94_DIR", raising=False)
    storage, models = str(tmp_path / "j.journal"), tmp_path / "models"
    assert main(["tune", "--trials", "3", "--storage", storage, "--study", "cli", *TUNE_ARGS]) == 0
    out = capsys.readouterr().out
    assert "Created the study; this worker ran 3 trials" in out and "Best trials" in out
    assert out.count("val MAE") == 3
    assert main(["tune", "--trials", "3", "--storage", storage, "--study", "cli", *TUNE_ARGS, "--save", "tuned",
                 "--models-dir", str(models), "--baselines", "previous_row"]) == 0  # the study is under test here
    out = capsys.readouterr().out
    assert "Joined the study; this worker ran 0 trials" in out and "Saved" in out
    assert "Baselines: previous_row (--baselines)" in out and "previous row's dose" in out
    meta = json.loads((models / "tuned" / "bundle.json").read_text())
    study = optuna.load_study(study_name="cli", storage=open_storage(storage))
    best = tune.best_trial(study)
    assert meta["study"] == {"name": "cli", "storage": storage, "trial": best.number, "val_mae": best.value}
    assert meta["model_config"]["lstm_hidden"] == best.params["lstm_hidden"]
    assert meta["model_config"]["members"] == 1  # the study's ensemble size (--members 1), not the default
    assert meta["window"]["length"] == best.params["window"] and meta["train_config"]["threads"] == 1


@pytest.mark.parametrize("argv, message", [
    (["tune", "--trials", "-1"], "--trials"),
    (["tune", "--trials", "2", "--timeout", "0"], "--timeout"),
    (["tune", "--trials", "1", "--save", "../evil"], "Invalid model name"),
    (["tune", "--trials", "1", "--members", "0"], "--members"),
    (["tune", "--trials", "1", "--members", str(MAX_MEMBERS + 1)], "members must be a whole number"),
    (["tune", "--trials", "1", "--storage", "postgresql://tuner:s3cret@localhost:1/optuna"], "Cannot open"),
    (["tune", "--trials", "1", "--storage", "nosuchdialect://x/y"], "Cannot open"),
    (["tune", "--trials", "1", "--cgm-every", "0"], "CGM cadence must be a whole number of minutes"),
])
def test_tune_user_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.delenv("AIM94_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "s3cret" not in err


def test_tune_without_finished_trials_cannot_save(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("AIM94_DIR", raising=False)
    code = main(["tune", "--trials", "0", "--storage", str(tmp_path / "j.journal"), "--save", "x",
                 "--models-dir", str(tmp_path / "m"), *TUNE_ARGS])
    out, err = capsys.readouterr()
    assert code == 2 and "No finished trial yet" in out and "no finished trial" in err


def test_an_enqueued_trial_in_sqlite_is_claimed_by_one_worker_only(tmp_path):
    """Two workers asking for a trial at the same moment, each through its own connection to one
    SQLite file: the study's one enqueued trial goes to exactly one of them. Without the storage's
    BEGIN IMMEDIATE both claimed it in 16 of 30 rounds (and in the two-process test below one of
    two `tune` workers then failed: "Cannot tell a COMPLETE trial")."""
    import threading

    url = f"sqlite:///{tmp_path / 'race.db'}"
    stores = [open_storage(url), open_storage(url)]
    for r in range(30):
        optuna.create_study(storage=stores[0], study_name=f"s{r}").enqueue_trial({"x": 1.0})
        studies = [optuna.load_study(study_name=f"s{r}", storage=s) for s in stores]
        barrier, got = threading.Barrier(2), [None, None]

        def ask(i: int) -> None:
            barrier.wait()
            got[i] = studies[i].ask().number

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == [0, 1], (r, got)  # one took the enqueued trial, the other a new one


def test_two_worker_processes_share_one_study(tmp_path):
    """Two `tune` processes on one SQLite file: every trial is recorded once, finished, and run by
    exactly one of them; both took part; the budget holds (at most one extra: one per extra worker)."""
    storage, budget = f"sqlite:///{tmp_path / 'shared.db'}", 10
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("AIM94_DIR", None)
    cmd = [sys.executable, "-m", "insulin_core", "tune", "--trials", str(budget), "--storage", storage,
           "--study", "shared", *TUNE_ARGS]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    ran = [{int(line.split()[1]) for line in out.splitlines() if line.startswith("trial ")} for out, _ in outputs]
    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and budget <= len(numbers) <= budget + 1
    assert all(t.state.is_finished() for t in study.trials)
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == set(numbers)
    assert sum("Created the study" in out for out, _ in outputs) == 1
    assert sum(t.user_attrs.get("default", False) for t in study.trials) == 1  # the default is tried once
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2


# ---- real data ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.realdata
def test_a_tiny_study_on_the_real_data(real_cohort, tmp_path):
    settings = tune.TuneSettings(patients=(1, 2, 3, 4, 5, 6), epochs=2, patience=2, members=1)
    run = tune.run_study(real_cohort.features, real_cohort.fingerprint, settings, 2, str(tmp_path / "j.journal"))
    assert run.study.study_name == f"dose-chrono-{real_cohort.fingerprint[:8]}"
    assert [t.state.name for t in run.study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(0 < t.value < 10 for t in run.study.trials)


def test_settings_read_back_from_a_study_refuse_unknown_keys():
    settings = tune.TuneSettings(split="patients", patients=(1, 2), epochs=3)
    assert tune.TuneSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ValueError, match="unknown TuneSettings keys"):
        tune.TuneSettings.from_dict({**settings.to_dict(), "epoch": 3})
    # a study stored before the CGM cadence was a setting ran at the hour, and its trials train so
    older = {k: v for k, v in settings.to_dict().items() if k != "cgm_every"}
    assert tune.TuneSettings.from_dict(older).cgm_every == 60
    assert tune.TuneSettings(cgm_every=30).experiment(10).window.cgm_every == 30
