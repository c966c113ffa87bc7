"""Training runs in the background, one worker process per run (jobs/machinery.py), kept on disk like an
experiment tracker.

Who owns what:
- A `RunManager` (one per server process: the app holds it in a `st.cache_resource` singleton)
  starts a worker per run and answers "what are this owner's runs?". It holds no state a restart
  would lose: everything is in the runs folder.
- The worker trains through `pipeline.run_experiment`, writes one line per epoch to
  `progress.jsonl`, and at the end saves the model through the registry (`save_bundle`,
  filelock-guarded, so several servers and the CLI can share the models folder) under the run's
  automatic name, then writes `status.json` "finished" with the test metrics. A failure of any
  kind becomes `status.json` "failed" with its message.

Stop: the page drops a `stop` file into the run's folder; the worker's per-epoch callback sees it
and returns True, so training ends as "stopped_by_user" with the best weights so far, which are
evaluated and saved as usual. Why a process, the forkserver, the alive lock: machinery.py.

Layout of `runs_dir/<run id>/`: `run.json` (owner, name, created, settings; written once),
`status.json` (state, error, bundle name, test metrics; atomically replaced), `progress.jsonl`,
`stop`, `worker.lock`. The default runs folder is `<models folder>/.runs`: it moves with
$INSULIN_DASH_MODELS_DIR, and the registry ignores names starting with a dot.

A run may be given the model's name (`RunSpec.bundle_name`, the Tune page's Save); when that name
is taken it is saved as `name-2`, as an automatic name would be.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd
from filelock import FileLock

from ..configs import TrainConfig
from ..errors import BundleError, check_name
from .machinery import (FINISHED, RUN_FILE, STATUS_FILE, STOP_FILE, JobManager, check_owner, worker_frame, write_json,
                   write_status)
from ..evaluation.metrics import all_rows, headline

if TYPE_CHECKING:
    from ..evaluation.pipeline import ExperimentConfig, ExperimentResult
    from ..models.train import EpochLog
# Speed: torch comes with the pipeline, the trainer and the registry. They are imported where a run
# is trained (in the worker, preloaded by the forkserver) or a bundle is renamed or deleted, so the
# app's pages, which list runs on every rerun, open without paying seconds for torch.

RUNS_SUBDIR = ".runs"
PROGRESS_FILE = "progress.jsonl"
ACTIVE = ("starting", "preparing", "training", "evaluating", "saving")
# Runs training at once per server: each takes a core (one thread), and the machine may have two.
# More are refused with a message rather than slowing every run and every page to a crawl.
MAX_ACTIVE_RUNS = 4


def runs_dir_of(models_dir: Path) -> Path:
    return Path(models_dir) / RUNS_SUBDIR


@dataclass(frozen=True)
class RunSpec:
    """What to train: the same objects the CLI and the page build (features are passed beside it)."""
    exp: ExperimentConfig
    sizes: dict
    train_cfg: TrainConfig
    baselines: tuple[str, ...]
    source_label: str
    fingerprint: str
    data_tag: str = "data"  # goes into the automatic name: demo, aim94, upload...
    bundle_name: str = ""  # the model's name when the user chose one ("" = the run's automatic name)
    meta_extra: dict = field(default_factory=dict)  # added to the bundle's metadata (e.g. the study it came from)
    data_format: str = "AIM94"  # the reader's name (Cohort.format): a bundle on another format sees new patients

    def to_dict(self) -> dict:
        return {"experiment": self.exp.to_dict(), "sizes": {k: list(v) if isinstance(v, tuple) else v
                                                            for k, v in self.sizes.items()},
                "train_config": self.train_cfg.to_dict(), "baselines": list(self.baselines),
                "data": self.source_label, **self.meta_extra}


@dataclass
class RunInfo:
    """One run as read from disk."""
    id: str
    owner: str
    name: str  # the bundle's name once saved (renamable), the planned one before
    created: str
    data: str
    epochs: int  # at most
    state: str  # one of ACTIVE, "finished", "failed"
    history: list[dict] = field(default_factory=list)
    error: str = ""
    bundle: str = ""  # saved model name ("" until saved)
    message: str = ""
    stop_reason: str = ""
    stop_requested: bool = False
    metrics: pd.DataFrame | None = None  # name, rows, metric columns (test part)
    seconds: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def all_rows(self) -> pd.DataFrame:
        """The test metrics of the model and each baseline on every row (metrics.all_rows)."""
        return all_rows(self.metrics)

    def headline(self, name: str = "model") -> dict:
        """The model's test metrics on every row ({} before a run has them)."""
        return {} if self.metrics is None else headline(self.metrics, name)

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == FINISHED else min(1.0, self.epochs_done / max(self.epochs, 1))

    def seconds_left(self) -> float | None:
        """At most this many seconds of training left (early stopping may end it sooner), from the
        mean epoch time so far; None before the first epoch."""
        if not self.active or not self.history:
            return None
        if self.state in ("evaluating", "saving") or self.stop_requested:
            return 0.0
        per_epoch = self.history[-1]["elapsed_s"] / len(self.history)
        return per_epoch * max(self.epochs - len(self.history), 0)


# ---- the worker (runs in its own process) --------------------------------------------------
class _Progress:
    """The per-epoch callback: one line per epoch on disk; True (stop, keep the best) once asked."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.started = False

    def __call__(self, log: EpochLog) -> bool:
        if not self.started:
            write_status(self.run_dir, "training")
            self.started = True
        with open(self.run_dir / PROGRESS_FILE, "a") as f:
            f.write(json.dumps(asdict(log)) + "\n")
        return (self.run_dir / STOP_FILE).exists()


def _save_unique(result: ExperimentResult, meta: dict, name: str, models_dir: Path) -> str:
    """Save under `name`, or `name-2`, `name-3`... when a model of that name exists already."""
    from ..bundles.registry import save_bundle

    for i in range(1, 100):
        candidate = name if i == 1 else f"{name}-{i}"
        try:
            save_bundle(result.training.model, meta, candidate, models_dir)
            return candidate
        except BundleError as exc:
            if "already exists" not in str(exc):
                raise
    raise BundleError(f"no free model name like {name!r}")


def work(run_dir: str, models_dir: str, features: pd.DataFrame, spec: RunSpec) -> None:
    """The worker process's body: train, evaluate, save, and say how it went in status.json."""
    from ..evaluation.pipeline import bundle_meta, run_experiment

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    with worker_frame(run_dir):
        write_status(run_dir, "preparing")
        result = run_experiment(features, spec.exp, spec.sizes, spec.train_cfg, _Progress(run_dir), list(spec.baselines),
                                on_trained=lambda t: write_status(run_dir, "evaluating", stop_reason=t.stop_reason))
        training = result.training
        write_status(run_dir, "saving", stop_reason=training.stop_reason)
        meta = {**bundle_meta(result, spec.exp, spec.train_cfg, spec.source_label, spec.fingerprint,
                                 spec.data_format),
                **spec.meta_extra}
        run = json.loads((run_dir / RUN_FILE).read_text())
        name = run.get("name", run["id"])  # a name the user chose, else the run's id
        bundle = _save_unique(result, meta, name, models_dir)
        write_status(run_dir, FINISHED, bundle=bundle, message=training.message, stop_reason=training.stop_reason,
                     best_epoch=training.best_epoch, metrics=result.evaluation.metrics.to_dict("records"),
                     seconds=result.seconds, sizes=meta["sizes"])


# ---- the manager (in the server process) -----------------------------------------------------
class RunManager(JobManager):
    ACTIVE_STATES = ACTIVE
    WHAT = "run"
    DEAD_ERROR = "the training process ended without a result{how}: the server was stopped or the process was killed. Start the run again."

    def __init__(self, models_dir: Path, runs_dir: Path | None = None, max_active: int = MAX_ACTIVE_RUNS):
        super().__init__(models_dir, Path(runs_dir) if runs_dir else runs_dir_of(Path(models_dir)), max_active)

    def start(self, owner: str, features: pd.DataFrame, spec: RunSpec) -> str:
        """Start a run for `owner`; its id (also its planned model name unless the spec names the model)."""
        check_owner(owner)
        wanted = check_name(spec.bundle_name.strip()) if spec.bundle_name.strip() else ""
        self._check_room()
        record = {"owner": owner, "data": spec.source_label, "epochs": spec.train_cfg.epochs,
                  "settings": spec.to_dict()}
        if wanted:
            record["name"] = wanted
        return self._start("run", spec.data_tag, record, work, (str(self.models_dir), features, spec))

    def runs(self, owner: str) -> list[RunInfo]:
        """This owner's runs, newest first."""
        return self._owned_by(owner)

    def _info(self, run_dir: Path, run: dict, status: dict) -> RunInfo:
        metrics = status.get("metrics")
        return RunInfo(
            id=run["id"], owner=run["owner"], name=status.get("bundle") or run.get("name", run["id"]), created=run["created"],
            data=run.get("data", ""), epochs=int(run.get("epochs", 1)), state=status["state"],
            history=_read_progress(run_dir), error=status.get("error", ""), bundle=status.get("bundle", ""),
            message=status.get("message", ""), stop_reason=status.get("stop_reason", ""),
            stop_requested=(run_dir / STOP_FILE).exists(),
            metrics=pd.DataFrame(metrics) if metrics else None, seconds=status.get("seconds", {}),
            sizes=status.get("sizes", {}), settings=run.get("settings", {}),
        )

    # -- tracker: rename and delete
    def rename(self, run_id: str, owner: str, new_name: str) -> str:
        """Give a finished run's model another name (load, save under the new name, delete the old:
        each step is one registry operation, so a crash between leaves both, never neither)."""
        from ..bundles.registry import delete_bundle, load_bundle, save_bundle

        run_dir = self._own(run_id, owner)
        info = self.get(run_id)
        if info.state != FINISHED or not info.bundle:
            raise ValueError("only a finished run's model can be renamed")
        new_name = check_name(new_name.strip())
        if new_name == info.bundle:
            return new_name
        with FileLock(self.runs_dir / ".tracker.lock", timeout=30):
            bundle = load_bundle(self.models_dir / info.bundle)
            save_bundle(bundle.model, bundle.meta, new_name, self.models_dir)
            status = json.loads((run_dir / STATUS_FILE).read_text())
            write_json(run_dir / STATUS_FILE, {**status, "bundle": new_name})
            delete_bundle(info.bundle, self.models_dir)
        return new_name

    def delete(self, run_id: str, owner: str) -> None:
        """Forget a finished or failed run and delete its model."""
        from ..bundles.registry import delete_bundle

        run_dir = self._own(run_id, owner)
        info = self.get(run_id)
        if info.active:
            raise ValueError("stop the run before deleting it")
        with FileLock(self.runs_dir / ".tracker.lock", timeout=30):
            if info.bundle and (self.models_dir / info.bundle).is_dir():
                delete_bundle(info.bundle, self.models_dir)
            shutil.rmtree(run_dir, ignore_errors=True)


def _read_progress(run_dir: Path) -> list[dict]:
    try:
        lines = (run_dir / PROGRESS_FILE).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # the line being written right now
            break
    return out
