"""Optuna studies in the background: one worker process per study, owned by the server, not by a
page script, so a page switch, a click elsewhere or a refresh leaves the study running.

The machinery is the background jobs' (insulin_core/jobs/machinery.py: JobManager, the forkserver, the
atomically written status.json, the stop file, the owner token, the alive lock); what differs is
what the worker does (tune.run_study) and what its status holds. The trials themselves are in the
Optuna storage, shared by study name as before, so anyone can read them (tune.trials_table); the
job folder says only how this worker is doing: state, trials it ran, the current trial and epoch,
seconds, the error of a failed one. Only the owner can stop it.

States: starting, running, then finished (the budget is reached or the time limit passed),
stopped (the user asked: the trial being trained is recorded as failed, see tune.StopStudy), or
failed (with its message). Layout of `<models folder>/.studies/<job id>/`: as a run's.

`best_run_spec` turns a study's best trial into a training run (RunSpec) with the model's name
chosen by the user: the Tune page's Save trains it as any background run (tune.best_setup is the
one recipe, shared with tune.train_best).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from ..errors import check_name
from .machinery import FINISHED, STOP_FILE, JobManager, check_owner, worker_frame, write_status
from .runs import RunSpec
from ..models.train import EpochLog
from .study_storage import storage_label
from .tune import TuneSettings, best_setup, check_joinable, run_study

STUDIES_SUBDIR = ".studies"
RUNNING, STOPPED = "running", "stopped"
ACTIVE_STUDY = ("starting", RUNNING)
# A study trains one model at a time on one core; two at once per server leave the pages a core.
MAX_ACTIVE_STUDIES = 2


@dataclass
class StudyInfo:
    """One background study as read from its job folder."""
    id: str
    owner: str
    study: str  # the Optuna study's name
    storage: str  # shown form (no password)
    created: str
    budget: int  # trials in all, over every worker
    epochs: int  # per trial, at most
    state: str
    ran: int = 0  # trials this worker finished (complete, pruned or failed)
    trial: int | None = None  # the trial being trained, and its last epoch
    epoch: int = 0
    seconds: float = 0.0
    error: str = ""
    stop_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STUDY


class _StudyProgress:
    """The worker's callbacks: the current trial and epoch into status.json; stop once asked."""

    def __init__(self, job_dir: Path):
        self.job_dir, self.ran, self.t0 = job_dir, 0, time.perf_counter()
        self.stopped_between_trials = False

    def write(self, **extra) -> None:
        write_status(self.job_dir, RUNNING, ran=self.ran, seconds=time.perf_counter() - self.t0, **extra)

    def _asked(self) -> bool:
        return (self.job_dir / STOP_FILE).exists()

    def epoch(self, trial: int, log: EpochLog) -> bool:
        self.write(trial=trial, epoch=log.epoch)
        return self._asked()  # True: tune's objective stops the trial after this epoch (StopStudy)

    def trial(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        self.ran += 1
        self.write()
        if self._asked():  # asked between two trials' epochs: no next trial
            self.stopped_between_trials = True
            study.stop()


def work(job_dir: str, features: pd.DataFrame, fingerprint: str, settings: TuneSettings, trials: int,
         storage: str, name: str, timeout: float | None) -> None:
    """The worker process's body: run the study, say how it ended in status.json."""
    job_dir = Path(job_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the status file and the storage say it all
    with worker_frame(job_dir):
        progress = _StudyProgress(job_dir)
        progress.write()
        run = run_study(features, fingerprint, settings, trials, storage, name, timeout,
                        on_epoch=progress.epoch, on_trial=progress.trial)
        stopped = run.stopped or progress.stopped_between_trials
        write_status(job_dir, STOPPED if stopped else FINISHED, ran=len(run.ran), seconds=run.seconds)


class StudyManager(JobManager):
    ACTIVE_STATES = ACTIVE_STUDY
    WHAT = "study"
    DEAD_ERROR = ("the study's process ended without a result{how}: the server was stopped or the process "
                  "was killed. Its finished trials are kept; run trials again to go on.")

    def __init__(self, models_dir: Path, jobs_dir: Path | None = None, max_active: int = MAX_ACTIVE_STUDIES):
        super().__init__(models_dir, Path(jobs_dir) if jobs_dir else Path(models_dir) / STUDIES_SUBDIR, max_active)

    def start(self, owner: str, features: pd.DataFrame, fingerprint: str, settings: TuneSettings, trials: int,
              storage: str, name: str, timeout: float | None = None) -> str:
        """Start a worker on the study `name` for `owner` (created or joined, as tune.run_study); its job id.
        Settings that do not fit an existing study are refused here, before any process starts."""
        check_owner(owner)
        if any(s.active for s in self.studies(owner)):
            raise ValueError("A study of yours is running already: stop it, or wait until it ends")
        check_joinable(name, storage, settings, fingerprint)
        self._check_room()
        record = {"owner": owner, "study": name, "storage": storage_label(storage), "budget": trials,
                  "epochs": settings.epochs, "settings": settings.to_dict()}
        return self._start("study", name, record, work, (features, fingerprint, settings, trials, storage, name, timeout))

    def studies(self, owner: str) -> list[StudyInfo]:
        """This owner's background studies, newest first."""
        return self._owned_by(owner)

    def _info(self, job_dir: Path, job: dict, status: dict) -> StudyInfo:
        return StudyInfo(id=job["id"], owner=job["owner"], study=job["study"], storage=job.get("storage", ""),
                         created=job["created"], budget=int(job["budget"]), epochs=int(job["epochs"]),
                         state=status["state"], ran=int(status.get("ran", 0)), trial=status.get("trial"),
                         epoch=int(status.get("epoch", 0)), seconds=float(status.get("seconds", 0.0)),
                         error=status.get("error", ""), stop_requested=(job_dir / STOP_FILE).exists())


def best_run_spec(study: optuna.Study, storage: str | None, source_label: str, fingerprint: str,
                  baselines: list[str], bundle_name: str, data_tag: str = "tuned") -> RunSpec:
    """The best trial's configuration as a background training run (insulin_core/jobs/runs.py) that
    saves its model under `bundle_name` (or `bundle_name-2`... when taken)."""
    setup = best_setup(study, storage)
    return RunSpec(setup.exp, setup.sizes, setup.train_cfg, tuple(baselines), source_label, fingerprint,
                   data_tag, bundle_name=check_name(bundle_name.strip()), meta_extra={"study": setup.study})
