"""The Train page's side of background training (insulin_core/jobs/runs.py does the work).

- One `RunManager` per server process and models folder, in a `st.cache_resource` singleton: the
  workers belong to the server, not to a page script, so a page switch, a slider move or a refresh
  (all of which end or restart the script) never touch them.
- Whose runs: an owner token kept in the URL (`?owner=...`, st.query_params). A refresh starts a
  new Streamlit session, which forgets st.session_state, but loads the same URL, so the token, and
  with it the run list, survives; so does a bookmark or a closed and reopened tab with that URL.
  (A cookie would need a custom component; the session id changes on every refresh.) It is also
  kept in st.session_state, so a page switch that drops the query string keeps it too, and it is
  written back to the URL on the Train page. The token is random and unguessable: another user
  cannot list or stop these runs. The models the runs save are everyone's (Models page).
- The live panel is a fragment that reruns itself every REFRESH_S seconds while a run of this owner
  is active (no loop in the script); when a run finishes it reruns the whole page once, which
  shows the result and makes the run's model the active one, so the sidebar's label follows.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from insulin_core.jobs.machinery import OWNER_PATTERN, new_owner
from insulin_core.jobs.runs import RunInfo, RunManager
from ui import charts
from ui.cache import models_dir
from ui.session import set_active_model

OWNER_PARAM = "owner"
REFRESH_S = 1.0
STATE_TEXT = {"starting": "Starting the training process...", "preparing": "Preparing windows and scalers...",
              "training": "Training", "evaluating": "Scoring the model and the baselines on the test part...",
              "saving": "Saving the model...", "finished": "finished", "failed": "failed"}


@st.cache_resource(show_spinner=False)
def _manager(folder: str) -> RunManager:
    return RunManager(Path(folder)).warm_up()


def run_manager() -> RunManager:
    return _manager(str(models_dir().resolve()))


def _url_token() -> str | None:
    token = st.query_params.get(OWNER_PARAM)
    return token if isinstance(token, str) and OWNER_PATTERN.fullmatch(token) else None


def owner_token() -> str:
    """This browser's owner token (see the module docstring), from the URL, else this session, else new."""
    token = _url_token() or st.session_state.get("run_owner") or new_owner()
    st.session_state["run_owner"] = token
    if st.query_params.get(OWNER_PARAM) != token:
        st.query_params[OWNER_PARAM] = token
    return token


def data_tag(source) -> str:
    """The data part of a run's automatic name."""
    return {"demo": "demo", "upload": "upload"}.get(source.kind) or Path(source.path).name or "data"


def track_runs() -> None:
    """Called by app.py on every page, before the sidebar. A page switch drops the query string, so
    put the owner token back (only once this browser has one: a visitor who never opened Train gets
    no parameter); once this session has looked at its runs, a run that finished since becomes the
    active model here too, so the sidebar's label follows on whatever page the user is."""
    if _url_token() or st.session_state.get("run_owner"):
        owner = owner_token()
        if "runs_seen_init" in st.session_state:
            adopt_finished(run_manager().runs(owner))


def _seen() -> set[str]:
    """Runs this session already knew as finished (so only a newly finished one is adopted)."""
    return st.session_state.setdefault("runs_seen_done", set())


def started_here() -> set[str]:
    """The runs this session started (pages/train.py adds each)."""
    return st.session_state.setdefault("runs_started", set())


def adopt_finished(runs: list[RunInfo]) -> bool:
    """Make the newest run that finished since the last look the active model; True when one did.
    On a session's first look (a refresh, a new tab) only a run this session started is adopted:
    an old run finishing long ago must not replace the model a person is looking at."""
    seen, first_look = _seen(), "runs_seen_init" not in st.session_state
    st.session_state["runs_seen_init"] = True
    done = [r for r in runs if not r.active and r.id not in seen]
    seen.update(r.id for r in done)
    fresh = [r for r in done if r.state == "finished" and r.bundle and (not first_look or r.id in started_here())]
    if not fresh:
        return False
    set_active_model(f"saved:{fresh[0].bundle}")
    st.session_state["train_run_pick"] = fresh[0].id
    return True


def progress_text(run: RunInfo) -> str:
    if run.state != "training" or not run.history:
        text = STATE_TEXT.get(run.state, run.state)
    else:
        log = run.history[-1]
        text = (f"Epoch {log['epoch']}/{run.epochs}: train loss {log['train_loss']:.4f}, validation loss "
                f"{log['val_loss']:.4f}, validation MAE {log['val_mae']:.2f} U ({log['elapsed_s']:.1f} s)")
    left = run.seconds_left()
    if run.stop_requested and run.active:
        text += " · stopping after the current epoch"
    elif left is not None and run.state == "training":
        text += f" · {_duration(left)} left at most (early stopping may end it sooner)"
    return text


def _duration(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def live_run(run: RunInfo, manager: RunManager, owner: str) -> None:
    with st.container(border=True):
        st.markdown(f"**{run.name}** · started {started(run)} · on {run.data}")
        st.progress(run.fraction, text=progress_text(run))
        if run.history:
            st.altair_chart(charts.loss_curve(pd.DataFrame(run.history), run.epochs), width="stretch")
        if st.button("Stop", key=f"train_stop_{run.id}", icon=":material/stop_circle:",
                     disabled=run.stop_requested or run.state not in ("starting", "preparing", "training"),
                     help="Stops after the current epoch and keeps the best weights so far; "
                          "the run is then scored and saved as usual."):
            manager.stop(run.id, owner)
            # (no st.rerun(scope="fragment"): a click landing on a full page run would make it raise;
            # the panel's timer redraws it within a second, the button then disabled)
            st.caption("Stopping after the current epoch...")


def started(run: RunInfo) -> str:
    try:
        return datetime.fromisoformat(run.created).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return run.created


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    rows = []
    for r in runs:
        mae = r.headline().get("mae")
        rows.append({"run": r.name, "status": STATE_TEXT["training"] if r.state == "training" else r.state,
                     "started": started(r), "epochs": f"{r.epochs_done}/{r.epochs}",
                     "test MAE (U)": None if mae is None else float(mae),
                     "note": r.error or r.message})
    return pd.DataFrame(rows)


def live_jobs(read: Callable[[], list], show: Callable, rerun_page: Callable[[list], bool] = lambda jobs: False) -> list:
    """A live panel of background jobs (this page's runs, the Tune page's studies): `read()` lists
    the owner's jobs; a fragment reruns itself every REFRESH_S seconds while one is active and
    `show`s each active one; when the last one ends (or `rerun_page(jobs)` says so) it reruns the
    whole page once, so what is drawn from the finished jobs below is fresh. Returns the jobs read."""
    jobs_now = read()
    any_active = any(j.active for j in jobs_now)

    @st.fragment(run_every=REFRESH_S if any_active else None)
    def live() -> None:
        jobs = read()
        if rerun_page(jobs) or (any_active and not any(j.active for j in jobs)):
            st.rerun()  # the whole page
        for job in (j for j in jobs if j.active):
            show(job)

    live()  # when a job ends during this read, the fragment reruns the page, so jobs_now is never stale for long
    return jobs_now


def runs_panel(owner: str) -> list[RunInfo]:
    """The live part of the page: this owner's active runs; a newly finished one becomes the active
    model and reruns the page (the result, the run list, the sidebar's model label)."""
    manager = run_manager()
    return live_jobs(lambda: manager.runs(owner), lambda run: live_run(run, manager, owner), adopt_finished)
