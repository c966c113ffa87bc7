"""insulin_core/jobs/runs.py: background training runs in worker processes, kept on disk.

Tiny models on three demo patients, so each run takes a few seconds (most of it the worker's
start and the baselines' scoring)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import pytest

from insulin_core.prep.dataset import load_cohort
from insulin_core.jobs.machinery import FAILED, FINISHED, new_owner
from insulin_core.evaluation.pipeline import ExperimentConfig
from insulin_core.bundles.registry import list_bundles, load_bundle
from insulin_core.jobs.runs import RunManager, RunSpec
from insulin_core.data.source import DataSource
from insulin_core.jobs.studies import StudyManager
from insulin_core.models.train import TrainConfig
from insulin_core.jobs.tune import TuneSettings, find_study
from insulin_core.prep.windows import WindowConfig
from tests.waits import WAIT_S

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(600)

# one ensemble member: the job machinery, not the ensemble, is under test here
TINY = dict(lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2, members=1)


@pytest.fixture(scope="module")
def cohort():
    return load_cohort(DataSource("demo"))


def spec_of(cohort, epochs: int = 3, patience: int = 50, window: int = 10) -> RunSpec:
    return RunSpec(ExperimentConfig(WindowConfig(window), patients=(1, 2, 3)), TINY,
                   TrainConfig(epochs=epochs, patience=patience, threads=1), ("previous_row",),
                   cohort.source.label, cohort.fingerprint, "demo")


@pytest.fixture
def manager(tmp_path):
    m = RunManager(tmp_path / "models")
    yield m
    m.shutdown()


def wait_for_epochs(manager: RunManager, run_id: str, n: int, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while manager.get(run_id).epochs_done < n:
        assert manager.get(run_id).active, manager.get(run_id).error
        assert time.monotonic() < deadline, f"fewer than {n} epochs after {timeout_s} s"
        time.sleep(0.05)


def test_a_run_reports_progress_then_is_saved_as_a_model(manager, cohort):
    owner = new_owner()
    run_id = manager.start(owner, cohort.features, spec_of(cohort, epochs=4))
    assert run_id.startswith("run-") and run_id.endswith("-demo")
    seen_states = set()
    while (info := manager.get(run_id)).active:
        seen_states.add(info.state)
        assert 0.0 <= info.fraction <= 1.0
        time.sleep(0.02)
    assert info.state == FINISHED, info.error
    assert seen_states <= {"starting", "preparing", "training", "evaluating", "saving"} and "training" in seen_states
    assert [h["epoch"] for h in info.history] == [1, 2, 3, 4] and info.stop_reason == "max_epochs"
    assert info.bundle == run_id and info.name == run_id
    assert set(info.metrics["name"]) == {"model", "previous_row"}
    bundle = load_bundle(manager.models_dir / run_id)  # a whole, checked bundle through the registry
    assert bundle.meta["metrics"]["model"]["mae"] == pytest.approx(
        info.metrics.query("name == 'model' and rows == 'all'")["mae"].iloc[0])
    assert [r["name"] for r in list_bundles(manager.models_dir)] == [run_id]  # the runs folder is not a model
    assert [r.id for r in manager.runs(owner)] == [run_id]


def test_the_forkserver_preloads_what_a_job_imports_and_starts_no_thread():
    """A job forked from the forkserver should find its imports done (training's deterministic mode
    imports torch._inductor and sympy: 1.6 s a job), and the preload must start no thread, or the
    fork that makes each job is not safe (torch's pool, issue 18)."""
    import subprocess
    import sys

    # Threads but jemalloc's background one (pyarrow's allocator, which pandas loads; jemalloc
    # re-creates it in a forked child by its own fork handlers).
    code = ("import os, sys, threading\n"
            "def threads(): return [t for t in os.listdir('/proc/self/task')\n"
            "                       if open(f'/proc/self/task/{t}/comm').read().strip() != 'jemalloc_bg_thd']\n"
            "import torch\n"
            "tasks = len(threads())\n"
            "from insulin_core.jobs.machinery import PRELOAD\n"
            "for name in PRELOAD: __import__(name)\n"
            "before = set(sys.modules)\n"
            "torch.use_deterministic_algorithms(True)\n"
            "print(len(threads()) - tasks, threading.active_count(), sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 1 []"


def test_a_runs_worker_trains_what_run_experiment_trains(tmp_path, cohort, monkeypatch):
    """The worker's body (here in this process) goes through pipeline.run_experiment: the same
    weights and test metrics, and it says "evaluating" between training and evaluation."""
    import torch

    from insulin_core.jobs import runs
    from insulin_core.evaluation.pipeline import run_experiment

    states, real_status = [], runs.write_status
    monkeypatch.setattr(runs, "write_status", lambda run_dir, state, **extra: (
        states.append(state), real_status(run_dir, state, **extra)))
    spec = spec_of(cohort, epochs=2)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"id": "inproc"}))
    runs.work(str(tmp_path / "run"), str(tmp_path / "models"), cohort.features, spec)
    assert states == ["preparing", "training", "evaluating", "saving", FINISHED]
    saved = load_bundle(tmp_path / "models" / "inproc")
    direct = run_experiment(cohort.features, spec.exp, spec.sizes, spec.train_cfg, baselines=list(spec.baselines))
    for name, value in direct.training.model.state_dict().items():
        assert torch.equal(saved.model.state_dict()[name], value), name
    assert saved.meta["metrics"]["model"] == direct.evaluation.headline()


def test_stop_ends_after_the_epoch_and_keeps_the_best_weights(manager, cohort):
    owner = new_owner()
    run_id = manager.start(owner, cohort.features, spec_of(cohort, epochs=300, patience=300))
    wait_for_epochs(manager, run_id, 3)
    manager.stop(run_id, owner)
    info = manager.wait(run_id)
    assert info.state == FINISHED and info.stop_reason == "stopped_by_user", info.error
    assert 3 <= info.epochs_done < 300
    meta = load_bundle(manager.models_dir / info.bundle).meta
    val = [h["val_loss"] for h in meta["history"]]
    assert len(val) == info.epochs_done
    assert meta["best_epoch"] == val.index(min(val)) + 1  # the best epoch's weights, not the last one's


def test_two_runs_at_once_both_finish_and_each_owner_sees_only_its_own(manager, cohort):
    a, b = new_owner(), new_owner()
    run_a = manager.start(a, cohort.features, spec_of(cohort, epochs=3))
    run_b = manager.start(b, cohort.features, spec_of(cohort, epochs=3))
    assert run_a != run_b
    for run_id in (run_a, run_b):
        info = manager.wait(run_id)
        assert info.state == FINISHED and info.epochs_done == 3, info.error
        assert (manager.models_dir / info.bundle / "weights.pt").is_file()
    assert [r.id for r in manager.runs(a)] == [run_a] and [r.id for r in manager.runs(b)] == [run_b]
    with pytest.raises(ValueError, match="of yours"):
        manager.delete(run_a, b)  # nor can one owner touch another's run


def test_a_failing_run_reports_its_error(manager, cohort):
    owner = new_owner()
    run_id = manager.start(owner, cohort.features, spec_of(cohort, window=512))
    info = manager.wait(run_id)
    assert info.state == FAILED and "Choose a shorter window" in info.error
    assert not info.bundle and list_bundles(manager.models_dir) == []


def test_a_killed_worker_is_a_failed_run_not_a_run_forever(manager, cohort):
    owner = new_owner()
    run_id = manager.start(owner, cohort.features, spec_of(cohort, epochs=300, patience=300))
    wait_for_epochs(manager, run_id, 1)
    manager.kill(run_id)
    info = manager.get(run_id)
    assert info.state == FAILED and "ended without a result" in info.error
    assert RunManager(manager.models_dir).get(run_id).state == FAILED


def test_runs_survive_a_new_manager_reading_the_disk(manager, cohort):
    """A server restart: a new manager (no worker handles) lists the finished runs, and tells a
    run whose worker still holds its lock from a dead one."""
    owner = new_owner()
    done = manager.wait(manager.start(owner, cohort.features, spec_of(cohort, epochs=2)))
    running = manager.start(owner, cohort.features, spec_of(cohort, epochs=300, patience=300))
    wait_for_epochs(manager, running, 1)

    restarted = RunManager(manager.models_dir)
    runs = {r.id: r for r in restarted.runs(owner)}
    assert runs[done.id].state == FINISHED and runs[done.id].metrics is not None
    assert runs[done.id].history == done.history
    assert runs[running].active  # its worker (another process's) is still alive
    restarted.stop(running, owner)
    assert manager.wait(running).stop_reason == "stopped_by_user"
    assert restarted.runs(new_owner()) == []


def test_rename_and_delete_go_through_the_registry(manager, cohort):
    owner = new_owner()
    info = manager.wait(manager.start(owner, cohort.features, spec_of(cohort, epochs=2)))
    assert manager.rename(info.id, owner, "my-run") == "my-run"
    assert [r["name"] for r in list_bundles(manager.models_dir)] == ["my-run"]
    renamed = manager.get(info.id)
    assert renamed.name == "my-run" and json.loads((manager.models_dir / "my-run" / "bundle.json").read_text())["name"] == "my-run"
    with pytest.raises(Exception, match="Invalid model name"):
        manager.rename(info.id, owner, "../escape")
    manager.delete(info.id, owner)
    assert manager.runs(owner) == [] and list_bundles(manager.models_dir) == []


def test_runs_beyond_the_limit_are_refused_with_a_message(tmp_path, cohort):
    manager = RunManager(tmp_path / "models", max_active=1)
    try:
        owner = new_owner()
        first = manager.start(owner, cohort.features, spec_of(cohort, epochs=300, patience=300))
        with pytest.raises(ValueError, match="at most 1"):
            manager.start(owner, cohort.features, spec_of(cohort))
        manager.stop(first, owner)
        assert manager.wait(first).state == FINISHED
        manager.wait(manager.start(owner, cohort.features, spec_of(cohort, epochs=1)))  # room again
    finally:
        manager.shutdown()


def test_a_run_saves_under_the_name_asked_for_or_that_name_with_a_suffix(manager, cohort):
    owner = new_owner()
    with pytest.raises(Exception, match="Invalid model name"):
        manager.start(owner, cohort.features, replace(spec_of(cohort), bundle_name="../escape"))
    named = replace(spec_of(cohort, epochs=1), bundle_name="tuned", meta_extra={"study": {"trial": 4}})
    first = manager.wait(manager.start(owner, cohort.features, named))
    second = manager.wait(manager.start(owner, cohort.features, named))
    assert (first.bundle, second.bundle) == ("tuned", "tuned-2"), (first.error, second.error)
    assert first.id.startswith("run-") and load_bundle(manager.models_dir / "tuned").meta["study"] == {"trial": 4}

# ---- Optuna studies in the background (insulin_core/jobs/studies.py, on the same machinery) -------
STUDY = TuneSettings(patients=(1, 2, 3), epochs=2, patience=2, seed=0, members=1)


@pytest.fixture
def studies(tmp_path):
    m = StudyManager(tmp_path / "models")
    yield m
    m.shutdown()


def wait_for_study_epoch(studies: StudyManager, job_id: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while studies.get(job_id).epoch < 1:
        assert studies.get(job_id).active, studies.get(job_id).error
        assert time.monotonic() < deadline, f"no epoch after {timeout_s} s"
        time.sleep(0.05)


def test_a_study_runs_in_a_worker_process_and_its_trials_land_in_the_storage(studies, cohort, tmp_path):
    owner, storage = new_owner(), str(tmp_path / "optuna.journal")
    job_id = studies.start(owner, cohort.features, cohort.fingerprint, STUDY, 2, storage, "s")
    assert studies.get(job_id).active  # start returned at once
    info = studies.wait(job_id)
    assert info.state == FINISHED and info.ran == 2, info.error
    trials = find_study("s", storage).get_trials()
    assert len(trials) == 2 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert workers and str(os.getpid()) not in workers  # trained in another process
    assert [s.id for s in studies.studies(owner)] == [job_id] and studies.studies(new_owner()) == []


def test_a_study_stops_after_the_epoch_only_for_its_owner(studies, cohort, tmp_path):
    owner, storage = new_owner(), str(tmp_path / "optuna.journal")
    long = TuneSettings(patients=(1, 2, 3), epochs=300, patience=300, seed=0, members=1)
    job_id = studies.start(owner, cohort.features, cohort.fingerprint, long, 3, storage, "s")
    wait_for_study_epoch(studies, job_id)
    with pytest.raises(ValueError, match="of yours"):
        studies.stop(job_id, new_owner())
    assert studies.get(job_id).active and not studies.get(job_id).stop_requested
    studies.stop(job_id, owner)
    info = studies.wait(job_id)
    assert info.state == "stopped", info.error
    (trial,) = find_study("s", storage).get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["stopped_by_user"] and trial.user_attrs["epochs_run"] < 300


def test_a_failing_study_is_reported_in_its_status_not_raised(studies, cohort, tmp_path):
    owner = new_owner()
    nobody = TuneSettings(patients=(999,), epochs=2, patience=2)  # no such patient: the worker fails
    info = studies.wait(studies.start(owner, cohort.features, cohort.fingerprint, nobody, 2,
                                      str(tmp_path / "optuna.journal"), "s"))
    assert info.state == FAILED and info.error and "Traceback" not in info.error


def test_a_study_with_other_settings_is_refused_before_a_worker_starts(studies, cohort, tmp_path):
    owner, storage = new_owner(), str(tmp_path / "optuna.journal")
    studies.wait(studies.start(owner, cohort.features, cohort.fingerprint, STUDY, 1, storage, "s"))
    with pytest.raises(ValueError, match=r"other settings \['epochs'\]"):
        studies.start(owner, cohort.features, cohort.fingerprint, replace(STUDY, epochs=3), 2, storage, "s")
    assert len(studies.studies(owner)) == 1
