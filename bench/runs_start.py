"""How long a background training run takes to start (insulin_core/jobs/runs.py): from `start()` to its
first epoch on disk, for the first run of a server (the forkserver imports torch then) and for later
runs (a fork of it), beside the same tiny training run in this process as the reference.

Run: .venv/bin/python bench/runs_start.py   (2-core CPU: compare the ratios, not the seconds)
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from insulin_core.prep.dataset import load_cohort
from insulin_core.jobs.machinery import new_owner
from insulin_core.evaluation.pipeline import ExperimentConfig, run_experiment
from insulin_core.jobs.runs import RunManager, RunSpec
from insulin_core.data.source import DataSource
from insulin_core.models.train import TrainConfig

TINY = dict(lstm_hidden=8, gru_hidden=8, dense=(8,), patient_embedding=2)


def timed_run(manager: RunManager, features, spec: RunSpec) -> tuple[float, float]:
    """(seconds to the first epoch on disk, seconds to finished)."""
    t0 = time.perf_counter()
    run_id = manager.start(new_owner(), features, spec)
    while not manager.get(run_id).history:
        time.sleep(0.01)
    first = time.perf_counter() - t0
    info = manager.wait(run_id, poll_s=0.01)
    assert info.state == "finished", info.error
    return first, time.perf_counter() - t0


def main() -> None:
    cohort = load_cohort(DataSource("demo"))
    cfg = TrainConfig(epochs=3, threads=1)
    spec = RunSpec(ExperimentConfig(patients=(1, 2, 3)), TINY, cfg, ("previous_row",), cohort.source.label,
                   cohort.fingerprint, "demo")
    run_experiment(cohort.features, spec.exp, TINY, cfg, baselines=["previous_row"])  # warm: lazy imports, caches
    t0 = time.perf_counter()
    run_experiment(cohort.features, spec.exp, TINY, cfg, baselines=["previous_row"])
    inline = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        manager = RunManager(Path(folder))
        cold = timed_run(manager, cohort.features, spec)
        warm = [timed_run(manager, cohort.features, spec) for _ in range(3)]
    print(f"same run in this process: {inline:.2f} s")
    print(f"first background run (forkserver starts): first epoch after {cold[0]:.2f} s, finished after {cold[1]:.2f} s")
    for first, done in warm:
        print(f"later background run: first epoch after {first:.2f} s, finished after {done:.2f} s "
              f"({done / inline:.2f}x the in-process run)")


if __name__ == "__main__":  # the workers' forkserver imports this file's main module: keep the guard
    main()
