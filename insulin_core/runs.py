"""Training runs in the background, one worker process per run, kept on disk like an experiment tracker.

Who owns what:
- A `RunManager` (one per server process: the app holds it in a `st.cache_resource` singleton)
  starts a worker per run and answers "what are this owner's runs?". It holds no state a restart
  would lose: everything is in the runs folder.
- The worker trains, writes one line per epoch to `progress.jsonl`, and at the end saves the model
  through the registry (`save_bundle`, filelock-guarded, so several servers and the CLI can share
  the models folder) under the run's automatic name, then writes `status.json` "finished" with the
  test metrics. A failure of any kind becomes `status.json` "failed" with its message.

Why a process, not a thread: a process cannot take the server down (a crash, running out of
memory), holds no GIL the page scripts wait on (the training loop is Python between torch ops, so a
thread would slow every click on 2 cores), and can be killed. Started by a *forkserver* (one clean,
single-threaded process that has imported torch and the pipeline once): each run starts with a
fork of it, in well under a second, where `spawn` would import torch again per run (seconds) and
a plain `fork` of the threaded server is unsafe. The worker uses one torch thread (and one
OpenMP thread for scikit-learn): on 2 shared cores that is faster for this model (see
train.train_model) and leaves a core to the pages.

Stop: the page drops a `stop` file into the run's folder; the worker's per-epoch callback sees it
and returns True, so training ends as "stopped_by_user" with the best weights so far, which are
evaluated and saved as usual. Alive: the worker holds an flock on `worker.lock` for its whole life
(the kernel drops it when the process dies, even by kill -9), so any manager, also after a server
restart, can tell a run still training from one whose worker died without a result.

Layout of `runs_dir/<run id>/`: `run.json` (owner, name, created, settings; written once),
`status.json` (state, error, bundle name, test metrics; atomically replaced), `progress.jsonl`,
`stop`, `worker.lock`. The default runs folder is `<models folder>/.runs`: it moves with
$INSULIN_DASH_MODELS_DIR, and the registry ignores names starting with a dot.

The machinery that is not about training (`JobManager`: job folders, the forkserver, the status
file, the stop file, the alive lock, the owner check, `worker_frame` around a worker's body) also
runs the Tune page's Optuna studies in the background (insulin_core/studies.py, `<models>/.studies`).
A run may be given the model's name (`RunSpec.bundle_name`, the Tune page's Save); when that name
is taken it is saved as `name-2`, as an automatic name would be.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd
from filelock import FileLock, Timeout

from .configs import TrainConfig
from .errors import BundleError, check_name

if TYPE_CHECKING:
    from .pipeline import ExperimentConfig, ExperimentResult
    from .train import EpochLog
# Speed: torch comes with the pipeline, the trainer and the registry. They are imported where a run
# is trained (in the worker, preloaded by the forkserver) or a bundle is renamed or deleted, so the
# app's pages, which list runs on every rerun, open without paying seconds for torch.

RUNS_SUBDIR = ".runs"
RUN_FILE, STATUS_FILE, PROGRESS_FILE, STOP_FILE, ALIVE_LOCK = (
    "run.json", "status.json", "progress.jsonl", "stop", "worker.lock")
ACTIVE = ("starting", "preparing", "training", "evaluating", "saving")
FINISHED, FAILED = "finished", "failed"
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
START_GRACE_S = 60.0  # a run another process started may not hold its lock yet
# Runs training at once per server: each takes a core (one thread), and the machine may have two.
# More are refused with a message rather than slowing every run and every page to a crawl.
MAX_ACTIVE_RUNS = 4


def runs_dir_of(models_dir: Path) -> Path:
    return Path(models_dir) / RUNS_SUBDIR


def new_owner() -> str:
    """A random owner token: unguessable, so one user cannot list or stop another's runs by trying."""
    return secrets.token_urlsafe(12)


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        raise ValueError("invalid owner token")
    return owner


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
def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


def write_status(run_dir: Path, state: str, **extra) -> None:
    write_json(run_dir / STATUS_FILE, {"state": state, "updated": utc_now(), **extra})


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    from .registry import save_bundle

    for i in range(1, 100):
        candidate = name if i == 1 else f"{name}-{i}"
        try:
            save_bundle(result.training.model, meta, candidate, models_dir)
            return candidate
        except BundleError as exc:
            if "already exists" not in str(exc):
                raise
    raise BundleError(f"no free model name like {name!r}")


def _limit_threads() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def work(run_dir: str, models_dir: str, features: pd.DataFrame, spec: RunSpec) -> None:
    """The worker process's body: train, evaluate, save, and say how it went in status.json."""
    from .pipeline import ExperimentResult, bundle_meta, evaluate, model_config_for, prepare
    from .train import train_model

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    with worker_frame(run_dir):
        write_status(run_dir, "preparing")
        t0 = time.perf_counter()
        prepared = prepare(features, spec.exp)
        t1 = time.perf_counter()
        training = train_model(model_config_for(prepared, **spec.sizes), spec.train_cfg,
                               prepared.train_data(), _Progress(run_dir))
        t2 = time.perf_counter()
        write_status(run_dir, "evaluating", stop_reason=training.stop_reason)
        evaluation = evaluate(training.model, prepared, list(spec.baselines))
        t3 = time.perf_counter()
        result = ExperimentResult(prepared, training, evaluation,
                                  {"prepare": t1 - t0, "train": t2 - t1, "evaluate": t3 - t2})
        write_status(run_dir, "saving", stop_reason=training.stop_reason)
        meta = {**bundle_meta(result, spec.exp, spec.train_cfg, spec.source_label, spec.fingerprint),
                **spec.meta_extra}
        run = json.loads((run_dir / RUN_FILE).read_text())
        name = run.get("name", run["id"])  # a name the user chose, else the run's id
        bundle = _save_unique(result, meta, name, models_dir)
        write_status(run_dir, FINISHED, bundle=bundle, message=training.message, stop_reason=training.stop_reason,
                     best_epoch=training.best_epoch, metrics=evaluation.metrics.to_dict("records"),
                     seconds=result.seconds, sizes=meta["sizes"])


@contextmanager
def worker_frame(run_dir: Path):
    """Around a worker's body (a run's here, a study's in studies.py): holds the alive lock for the
    worker's life, one thread, and turns any failure into status "failed" with its message (the
    traceback goes to error.txt): the job says what went wrong, the server never sees it."""
    alive = FileLock(run_dir / ALIVE_LOCK)
    alive.acquire()
    try:
        _limit_threads()
        yield
    except BaseException as exc:  # anything at all
        (run_dir / "error.txt").write_text(traceback.format_exc())
        write_status(run_dir, FAILED, error=_plain_error(exc))
        if not isinstance(exc, Exception):
            raise
    finally:
        alive.release()


def _plain_error(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, BundleError, OSError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# ---- the manager (in the server process) -----------------------------------------------------
def _context():
    """The forkserver where the platform has one (see the module docstring), else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # Imported once in the forkserver, not per run: torch and the pipeline. Each child also runs the
    # parent's main script again (multiprocessing's rule; Python 3.11's forkserver cannot preload it),
    # which under `streamlit run` imports streamlit.web.cli: preload that too, or every run pays ~1 s.
    ctx.set_forkserver_preload(["insulin_core.runs", "insulin_core.pipeline", "insulin_core.train", "insulin_core.registry"]
                               + [m for m in ("streamlit.web.cli",) if m in sys.modules])
    return ctx


class JobManager:
    """What every kind of background job shares (training runs here, Optuna studies in
    insulin_core/studies.py): one folder per job holding `run.json` (owner, ...) and `status.json`,
    a worker process per job from the forkserver, a stop file, the alive lock. A subclass says how a
    job starts (`_spawn` with its worker function) and how its folder is read (`_read`)."""
    ACTIVE_STATES: tuple[str, ...] = ACTIVE
    WHAT = "run"  # in messages
    DEAD_ERROR = "the training process ended without a result{how}: the server was stopped or the process was killed. Start the run again."

    def __init__(self, models_dir: Path, runs_dir: Path, max_active: int):
        self.models_dir = Path(models_dir)
        self.runs_dir = Path(runs_dir)
        self.max_active = max_active
        self._procs: dict[str, mp.process.BaseProcess] = {}
        self._launching: set[str] = set()
        self._lock = threading.Lock()  # several page scripts (threads) start and list jobs at once

    def warm_up(self) -> JobManager:
        """Start the forkserver (it imports torch and the pipeline: seconds) in the background, so
        the first click does not wait for it. Returns the manager."""
        ctx = _context()
        if ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            threading.Thread(target=forkserver.ensure_running, name="runs forkserver", daemon=True).start()
        return self

    # -- starting and stopping
    def _check_room(self) -> None:
        with self._lock:
            mine = list(self._procs)
        busy = sum(1 for job_id in mine if (info := self._read(self.runs_dir / job_id)) is not None and info.active)
        if busy >= self.max_active:
            raise ValueError(f"{busy} {self.WHAT}s are working on this server already (at most {self.max_active}); "
                             f"wait for one to finish or stop one")

    def _start(self, prefix: str, tag: str, record: dict, target, args: tuple) -> str:
        """Claim a job folder, write its `run.json` (`record` plus id and created time) and status
        "starting", and start `target(job_dir, *args)` in a worker; the job's id. (Check the owner
        and the room first.)"""
        job_dir = self._new_run_dir(prefix, tag)
        write_json(job_dir / RUN_FILE, {"id": job_dir.name, "created": utc_now(), **record})
        write_status(job_dir, "starting")
        self._spawn(job_dir, target, (str(job_dir), *args))
        return job_dir.name

    def _spawn(self, run_dir: Path, target, args: tuple) -> None:
        """Start `target(*args)` in a worker process for the job in `run_dir` (already written)."""
        proc = _context().Process(target=target, args=args, name=f"{self.WHAT} {run_dir.name}", daemon=True)
        with self._lock:
            self._procs[run_dir.name] = proc
            self._launching.add(run_dir.name)
        # Launched from a thread: the page returns at once, even while the forkserver still starts.
        threading.Thread(target=self._launch, args=(run_dir, proc), name=f"launch {run_dir.name}", daemon=True).start()

    def _launch(self, run_dir: Path, proc) -> None:
        try:
            proc.start()
        except Exception as exc:  # e.g. no process can be started: the job says so
            write_status(run_dir, FAILED, error=f"the {self.WHAT}'s process could not start: {exc}")
        finally:
            with self._lock:
                self._launching.discard(run_dir.name)

    def stop(self, run_id: str, owner: str) -> None:
        """Ask the job to stop after its current epoch."""
        run_dir = self._own(run_id, owner)
        (run_dir / STOP_FILE).touch()

    def kill(self, run_id: str) -> None:
        """End a worker of this manager at once (no result): for shutdown and tests."""
        with self._lock:
            proc = self._procs.get(run_id)
        if proc is not None and proc.pid is not None and proc.is_alive():
            proc.kill()
            proc.join(10)

    def shutdown(self) -> None:
        with self._lock:
            ids = list(self._procs)
        for run_id in ids:
            self.kill(run_id)

    # -- reading
    def _owned_by(self, owner: str) -> list:
        """This owner's jobs, newest first."""
        check_owner(owner)
        found = []
        for run_dir in sorted(self.runs_dir.iterdir(), reverse=True) if self.runs_dir.is_dir() else []:
            info = self._read(run_dir)
            if info is not None and info.owner == owner:
                found.append(info)
        return sorted(found, key=lambda r: r.created, reverse=True)

    def get(self, run_id: str):
        info = self._read(self.runs_dir / run_id) if _safe_id(run_id) else None
        if info is None:
            raise KeyError(f"no {self.WHAT} {run_id!r}")
        return info

    def wait(self, run_id: str, timeout_s: float = 120.0, poll_s: float = 0.1):
        """The job once it has ended (TimeoutError after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while (info := self.get(run_id)).active:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.WHAT} {run_id} still {info.state} after {timeout_s:.0f} s")
            time.sleep(poll_s)
        return info

    def _read(self, run_dir: Path):
        """The job in `run_dir` (a dead worker's status marked failed), or None when it is not one."""
        try:
            run = json.loads((run_dir / RUN_FILE).read_text())
            status = json.loads((run_dir / STATUS_FILE).read_text())
        except (OSError, ValueError):  # being created or deleted right now, or not a job
            return None
        if status["state"] in self.ACTIVE_STATES and not self._alive(run_dir, run):
            status = self._mark_dead(run_dir)
        return self._info(run_dir, run, status)

    def _info(self, run_dir: Path, run: dict, status: dict):
        """The subclass's record of a job from its two files."""
        raise NotImplementedError

    def _alive(self, run_dir: Path, run: dict) -> bool:
        with self._lock:
            proc = self._procs.get(run_dir.name)
            if run_dir.name in self._launching:
                return True
        if proc is not None:
            return proc.is_alive()
        # Started by another process (or before a restart): alive while someone holds its lock.
        lock = FileLock(run_dir / ALIVE_LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        except OSError:
            return False
        lock.release()
        age = (datetime.now(timezone.utc) - datetime.fromisoformat(run["created"])).total_seconds()
        return age < START_GRACE_S and json.loads((run_dir / STATUS_FILE).read_text())["state"] == "starting"

    def _mark_dead(self, run_dir: Path) -> dict:
        """The worker is gone: its last word, or "failed" when it died without one."""
        status = json.loads((run_dir / STATUS_FILE).read_text())  # it may have finished meanwhile
        if status["state"] in self.ACTIVE_STATES:
            with self._lock:
                proc = self._procs.get(run_dir.name)
            how = f" (exit code {proc.exitcode})" if proc is not None and proc.exitcode else ""
            status = {"state": FAILED, "updated": utc_now(), "error": self.DEAD_ERROR.format(how=how)}
            write_json(run_dir / STATUS_FILE, status)
        return status

    def _own(self, run_id: str, owner: str) -> Path:
        info = self.get(run_id) if _safe_id(run_id) else None
        if info is None or info.owner != owner:
            raise ValueError(f"no {self.WHAT} {run_id!r} of yours (deleted meanwhile?)")
        return self.runs_dir / run_id

    def _new_run_dir(self, prefix: str, tag: str) -> Path:
        """`<prefix>-<date>-<time>-<tag>`, made unique (and claimed) by an exclusive mkdir."""
        tag = re.sub(r"[^A-Za-z0-9]+", "-", tag).strip("-").lower()[:20] or "data"
        base = f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}-{tag}"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for i in range(1, 1000):
            name = base if i == 1 else f"{base}-{i}"
            if (self.models_dir / name).exists():
                continue
            try:
                (self.runs_dir / name).mkdir()
                return self.runs_dir / check_name(name)
            except FileExistsError:
                continue
        raise RuntimeError(f"no free {self.WHAT} name")


class RunManager(JobManager):
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
        from .registry import delete_bundle, load_bundle, save_bundle

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
        from .registry import delete_bundle

        run_dir = self._own(run_id, owner)
        info = self.get(run_id)
        if info.active:
            raise ValueError("stop the run before deleting it")
        with FileLock(self.runs_dir / ".tracker.lock", timeout=30):
            if info.bundle and (self.models_dir / info.bundle).is_dir():
                delete_bundle(info.bundle, self.models_dir)
            shutil.rmtree(run_dir, ignore_errors=True)


def _safe_id(run_id: str) -> bool:
    try:
        check_name(run_id)
        return True
    except BundleError:
        return False


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


