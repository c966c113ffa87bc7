"""Data-parallel training (torchrun, gloo on CPU): two processes train as one does, rank 0 saves."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from insulin_core.cli import main
from insulin_core.cli.training import _without_nproc
from insulin_core.data.demo import DemoConfig, write_cohort
from insulin_core.models.distributed import torchrun_command

# A hang (a stuck worker, server or child) fails here in minutes, not at CI's limit.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
# A tiny network without dropout: with the same batches and the same patient dropout on every
# rank, the only differences between 1 and 2 processes are each half-batch normalising its own
# Huber term and the order of floating-point sums.
TINY = ["--epochs", "8", "--lstm", "8", "--gru", "8", "--dense", "16", "--embedding", "4",
        "--dropout", "0", "--threads", "1", "--seed", "0", "--ema", "0",  # 8 short epochs: the last weights
        "--members", "2",  # an ensemble all the same, at 2/5 of the default's cost
        "--baselines", "previous_row"]  # rank 0 still scores a baseline; all eight would double the run's CPU


def test_nproc_is_dropped_from_the_command_torchrun_repeats():
    assert _without_nproc(["train", "--nproc", "2", "--name", "x"]) == ["train", "--name", "x"]
    assert _without_nproc(["train", "--nproc=2", "--name", "x"]) == ["train", "--name", "x"]
    cmd = torchrun_command(2, ["train", "--name", "x"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and cmd[-3:] == ["--name", "x", "--distributed"]


def test_distributed_outside_torchrun_is_one_clear_line(capsys, monkeypatch, tmp_path):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    code = main(["train", "--distributed", "--name", "x", "--models-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "torchrun" in err and "Traceback" not in err


def _train(data: Path, models: Path, runs: dict[str, int]) -> dict[str, str]:
    """The `train` command once per {name: nproc}, all at the same time (each run waits mostly on its
    own start and its own processes; one after the other, the test waited for both in turn): their
    outputs, by name, once every one has succeeded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = {name: subprocess.Popen([sys.executable, "-m", "insulin_core", "train", "--data-dir", str(data),
                                     "--name", name, "--models-dir", str(models), *TINY, "--nproc", str(nproc)],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, nproc in runs.items()}
    outputs = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, (name, err[-2000:])
            outputs[name] = out
    finally:
        for proc in procs.values():  # a failed or timed-out run does not leave the other one running
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


@pytest.mark.slow
def test_two_processes_train_as_one_and_rank_zero_saves(tmp_path):
    from insulin_core.bundles.registry import load_bundle

    data, models = tmp_path / "demo", tmp_path / "models"
    write_cohort(data, DemoConfig(patients=4, days=40))
    two = _train(data, models, {"one": 1, "two": 2})["two"]
    assert "2 processes" in two
    assert two.count("Saved ") == 1  # rank 1 neither prints nor saves
    assert sorted(p.name for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["one", "two"]

    one_b, two_b = load_bundle(models / "one"), load_bundle(models / "two")
    curve = lambda b: [h["val_loss"] for h in b.meta["history"]]  # noqa: E731
    assert len(curve(two_b)) == len(curve(one_b)) == 8
    # Measured: the validation losses of 1 and 2 processes differ by at most 0.6% over 8 epochs
    # while they fall by 40%; 3% catches a run that trains on half the data or on unsynchronised
    # weights, without failing on summation order.
    for a, b in zip(curve(one_b), curve(two_b)):
        assert abs(a - b) <= 0.03 * a, (curve(one_b), curve(two_b))
    assert curve(two_b)[-1] < 0.8 * curve(two_b)[0]  # it did learn
    # the saved bundle predicts, and as well as the one-process bundle on the test part
    mae = lambda b: b.meta["metrics"]["model"]["mae"]  # noqa: E731
    assert abs(mae(two_b) - mae(one_b)) <= 0.1, (mae(one_b), mae(two_b))
