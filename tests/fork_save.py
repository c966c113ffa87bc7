"""Run as a script by tests/test_registry_concurrency.py, in a fresh interpreter (the test's own
process may have any torch state): load a bundle with torch's thread pool running, then fork two
writers that save one new name at the same moment, ROUNDS times. Prints one line per round,
"saved refused" when one wins and the other is told; exits 3 when a writer hangs.

    python tests/fork_save.py FOLDER ROUNDS
"""
from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from insulin_core.models.model import DoseNet, ModelConfig  # noqa: E402
from insulin_core.bundles.registry import BundleError, load_bundle, save_bundle  # noqa: E402
from tests.test_registry import tiny_meta  # noqa: E402

HANG_S = 30  # a save takes milliseconds; a writer still running after this is hung


def big_model() -> DoseNet:
    """Weights big enough (a 512 x 128 LSTM matrix) that torch's element-wise kernels on them go
    through its intra-op thread pool, as on any trained default model."""
    torch.manual_seed(0)
    meta = tiny_meta()
    cfg = ModelConfig(n_seq_features=len(meta["features"]["seq"]), n_now_features=len(meta["features"]["now"]),
                      n_patients=3, window=4, lstm_hidden=128, gru_hidden=8, dense=(8,), patient_embedding=2)
    return DoseNet(cfg).eval()


def write(bundle, folder: Path, name: str, barrier, results) -> None:
    barrier.wait()
    try:
        save_bundle(bundle.model, bundle.meta, name, folder, overwrite=False)
        results.put("saved")
    except BundleError as exc:
        results.put("refused" if "already exists" in str(exc) else f"error: {exc}")


def main(folder: Path, rounds: int) -> int:
    torch.set_num_threads(2)
    save_bundle(big_model(), tiny_meta(), "source", folder)
    bundle = load_bundle(folder / "source")  # torch's pool is running in this process from here
    ctx = multiprocessing.get_context("fork")  # Linux's default start method, as a user's script gets
    for r in range(rounds):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        writers = [ctx.Process(target=write, args=(bundle, folder, f"race{r}", barrier, results)) for _ in range(2)]
        for w in writers:
            w.start()
        for w in writers:
            w.join(HANG_S)
        if any(w.is_alive() for w in writers):
            for w in writers:
                w.kill()
            print(f"round {r}: a writer hung for {HANG_S} s", flush=True)
            return 3
        print(" ".join(sorted(results.get(timeout=5) for _ in writers)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), int(sys.argv[2])))
