"""Background jobs: one worker process per job, one folder per job, kept on disk so a server
restart loses nothing. Training runs (runs.py) and Optuna studies (studies.py) are the two kinds;
each says what its worker does and how its folder is read.

Why a process, not a thread: a process cannot take the server down (a crash, running out of
memory), holds no GIL the page scripts wait on (the training loop is Python between torch ops, so a
thread would slow every click on 2 cores), and can be killed. Started by a *forkserver* (one clean,
single-threaded process that has imported torch and the pipeline once): each job starts with a
fork of it, in well under a second, where `spawn` would import torch again per job (seconds) and
a plain `fork` of the threaded server is unsafe. The worker uses one torch thread (and one
OpenMP thread for scikit-learn): on 2 shared cores that is faster for this model (see
train.train_model) and leaves a core to the pages.

Stop: the page drops a `stop` file into the job's folder; the worker sees it between epochs.
Alive: the worker holds an flock on `worker.lock` for its whole life (the kernel drops it when the
process dies, even by kill -9), so any manager, also after a server restart, can tell a job still
working from one whose worker died without a result. A job's folder holds `run.json` (owner and
what was asked; written once) and `status.json` (state and results; atomically replaced). Only the
owner (an unguessable token) can list or stop their jobs.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import re
import secrets
import os
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import BundleError, check_name

RUN_FILE, STATUS_FILE, STOP_FILE, ALIVE_LOCK = "run.json", "status.json", "stop", "worker.lock"
STARTING, FINISHED, FAILED = "starting", "finished", "failed"
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
START_GRACE_S = 60.0  # a job another process started may not hold its lock yet
# Imported once in the forkserver, not per job: both kinds train models (torch and the pipeline),
# studies add Optuna. torch._inductor too: training's torch.use_deterministic_algorithms imports it
# (with sympy: 1.6 s a job otherwise); importing it starts no thread, so the fork stays safe.
PRELOAD = ["insulin_core.jobs.runs", "insulin_core.jobs.studies", "insulin_core.evaluation.pipeline",
           "insulin_core.models.train", "insulin_core.bundles.registry", "torch._inductor"]


def new_owner() -> str:
    """A random owner token: unguessable, so one user cannot list or stop another's runs by trying."""
    return secrets.token_urlsafe(12)


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        raise ValueError("invalid owner token")
    return owner


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


def _limit_threads() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)


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
    ctx.set_forkserver_preload(PRELOAD + [m for m in ("streamlit.web.cli",) if m in sys.modules])
    return ctx


class JobManager:
    """What every kind of background job shares (training runs in runs.py, Optuna studies in
    studies.py): one folder per job holding `run.json` (owner, ...) and `status.json`, a worker
    process per job from the forkserver, a stop file, the alive lock. A subclass says how a job
    starts (`_start` with its worker function), how its folder is read (`_info`), its active
    states, what it is called in messages and what a dead worker's job says."""
    ACTIVE_STATES: tuple[str, ...] = (STARTING,)
    WHAT = "job"  # in messages
    DEAD_ERROR = "the {what}'s process ended without a result{how}: the server was stopped or the process was killed."

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
        write_status(job_dir, STARTING)
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
        return age < START_GRACE_S and json.loads((run_dir / STATUS_FILE).read_text())["state"] == STARTING

    def _mark_dead(self, run_dir: Path) -> dict:
        """The worker is gone: its last word, or "failed" when it died without one."""
        status = json.loads((run_dir / STATUS_FILE).read_text())  # it may have finished meanwhile
        if status["state"] in self.ACTIVE_STATES:
            with self._lock:
                proc = self._procs.get(run_dir.name)
            how = f" (exit code {proc.exitcode})" if proc is not None and proc.exitcode else ""
            status = {"state": FAILED, "updated": utc_now(), "error": self.DEAD_ERROR.format(what=self.WHAT, how=how)}
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


def _safe_id(run_id: str) -> bool:
    try:
        check_name(run_id)
        return True
    except BundleError:
        return False
