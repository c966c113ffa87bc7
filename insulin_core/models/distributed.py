"""Data-parallel training on PyTorch's own engine (torch.distributed), launched by `torchrun`.

    torchrun --nproc-per-node 2 -m insulin_core train --distributed --name NAME ...
    python -m insulin_core train --nproc 2 --name NAME ...       (the same, torchrun started for you)

Every process loads the cohort and prepares the same arrays (the preparation is deterministic),
then each trains on its share of every batch: the batches are the ones a single process would
draw (one shuffle, same seed everywhere) split row-wise between the ranks, and
DistributedDataParallel averages the gradients, so the optimiser sees the single-process batch
size and the learning rate needs no change. Validation runs on rank 0's weights (identical on
every rank after each step) and rank 0's verdict is broadcast, so all ranks stop at the same
epoch. Only rank 0 prints, evaluates the baselines and saves the bundle.

Backend: gloo on CPU, nccl on GPUs (one GPU per process, chosen by LOCAL_RANK).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.distributed as dist


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


@contextmanager
def process_group(device: str = "auto"):
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...) for the
    duration of the block; gloo on CPU, nccl when CUDA is used."""
    if not launched_by_torchrun():
        raise ValueError("--distributed needs the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR): "
                         "start it as `torchrun --nproc-per-node N -m insulin_core train --distributed ...` "
                         "or use `train --nproc N`")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def broadcast_floats(values: list[float]) -> list[float]:
    """Rank 0's values on every rank (the validation verdict, the stop flag)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.broadcast(t, src=0)
    return t.tolist()


def all_sum(values: list[float]) -> list[float]:
    """The sums over every rank (the epoch's training loss and row count)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def _device() -> torch.device:
    # nccl only moves CUDA tensors; gloo takes CPU ones
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that runs `python -m insulin_core <argv> --distributed` in `nproc` processes."""
    # torch.distributed.run is what the `torchrun` script runs; this way it is this interpreter's
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "insulin_core", *argv, "--distributed"]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run the command under torchrun on this machine; its exit code."""
    return subprocess.call(torchrun_command(nproc, argv))
