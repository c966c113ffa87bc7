"""Training speed: the default model to early stop on the real data (chrono split), against a
reference computation timed in the same run.

    AIM94_DIR=../shared/data/aim94 .venv/bin/python bench/train_speed.py [--threads 2] [--seed 0]
        [--epochs N] [--schedule plateau|onecycle] [--profile]
    AIM94_DIR=../shared/data/aim94 .venv/bin/python -m torch.distributed.run --standalone \
        --nproc-per-node 2 bench/train_speed.py --threads 1          (data-parallel, 2 processes)

Prints the time to early stop, the epochs, the median time of one epoch (training pass plus
validation), the process CPU time, and `ratio`: the training time divided by the reference (a
fixed LSTM forward/backward workload on the same threads, timed just before), which moves much
less than the wall time when other jobs share the cores. `--profile` adds a torch.profiler table
of two epochs (where the time goes, by operator).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insulin_core.models import distributed  # noqa: E402
from insulin_core.configs import TrainConfig  # noqa: E402
from insulin_core.prep.dataset import load_cohort  # noqa: E402
from insulin_core.evaluation.pipeline import ExperimentConfig, model_config_for, prepare  # noqa: E402
from insulin_core.data.source import resolve_source  # noqa: E402
from insulin_core.models.train import train_model  # noqa: E402


def reference_seconds(repeats: int = 20) -> float:
    """A fixed workload shaped like one training batch of one member: LSTM(16 -> 64) forward and
    backward on (1024, 10, 16), `repeats` times (median of 3 timings)."""
    gen = torch.Generator().manual_seed(0)
    lstm = torch.nn.LSTM(16, 64, batch_first=True)
    x = torch.rand(1024, 10, 16, generator=gen)

    def once() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            out, _ = lstm(x)
            out.sum().backward()
        return time.perf_counter() - start

    once()  # warm-up
    return statistics.median(once() for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--schedule", default=TrainConfig().schedule)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if distributed.launched_by_torchrun():
        with distributed.process_group("cpu"):
            run(args)
    else:
        run(args)


def run(args) -> None:
    lead = distributed.rank() == 0
    if args.threads:
        torch.set_num_threads(args.threads)
    cohort = load_cohort(resolve_source(args.data_dir))
    prepared = prepare(cohort.features, ExperimentConfig())
    data, model_cfg = prepared.train_data(), model_config_for(prepared)
    cfg = TrainConfig(seed=args.seed, threads=args.threads, epochs=args.epochs, schedule=args.schedule)
    ref = reference_seconds()
    cpu = time.process_time()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_model(model_cfg, TrainConfig(seed=args.seed, threads=args.threads, epochs=2), data)
        if lead:
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    result = train_model(model_cfg, cfg, data)
    cpu = time.process_time() - cpu
    if not lead:
        return
    ends = [h.elapsed_s for h in result.history]
    epoch_s = statistics.median(b - a for a, b in zip([0.0, *ends], ends))
    best = result.history[result.best_epoch - 1] if result.best_epoch else None
    print(f"train rows {len(data.train)}, val rows {len(data.val)}; {distributed.world_size()} process(es), "
          f"torch threads {torch.get_num_threads()}; {cfg}")
    print(f"time to stop {result.seconds:.1f} s ({result.stop_reason}), epochs {len(result.history)}, "
          f"best epoch {result.best_epoch} (val loss {result.best_val_loss:.4f}, "
          f"val MAE {best.val_mae if best else float('nan'):.3f}), per epoch {epoch_s:.2f} s, "
          f"CPU {cpu:.1f} s (this process)")
    print(f"reference {ref:.3f} s; ratio (time to stop / reference) {result.seconds / ref:.1f}")


if __name__ == "__main__":
    main()
