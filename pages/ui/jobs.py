"""The dashboard's side of core's preparation jobs: start or join one, follow its progress, cancel it.

A page never prepares anything in its script thread: it asks core.engine.jobs for a job (one per data set
and settings, shared by every tab and page) and polls its status from a fragment that reruns every
POLL_S, so the page stays readable and the user can switch pages. When the stages a page needs are
in the cache, or the job ends, the fragment reruns the whole page, which then draws from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.engine import jobs
from core.engine.cache import default_cache_dir
from core.engine.job_status import JobStatus, Problem, StageProgress, State
from core.engine.pipeline import Settings
from core.representation.embedding import SETUP_WORDS
from pages.ui import render, state

POLL_S = 1.0
PCA_HINT = "If UMAP cannot run here, choose **Cluster space: PCA** under *More settings* on the Overview page."


def cache_root() -> Path:
    return default_cache_dir()


def job_of(data_dir: str | None, settings: Settings) -> str:
    return jobs.job_id(data_dir, settings)


def status_of(job: str) -> JobStatus:
    return jobs.read_status(cache_root(), job)


def should_start(status: JobStatus, fingerprint: str) -> bool:
    """Start a job unless one runs, or the last one for this very data failed, died or was cancelled
    (that is shown with a button to start again, not retried behind the user's back)."""
    if status.active:
        return False
    return not (status.state.stopped and status.fingerprint in ("", fingerprint))


def start(data_dir: str | None, settings: Settings) -> str:
    return jobs.start_job(data_dir, settings, cache_root(), state.current_where())


# ---- drawing a job --------------------------------------------------------------------------
def _stage_line(s: StageProgress, now: float) -> str:
    if s.state == State.DONE:
        return f":material/check_circle: {s.words}: {s.seconds:.1f} s"
    if s.state == State.CACHED:
        return f":material/check_circle: {s.words}: from the cache"
    if s.state == State.RUNNING:
        return f":material/progress_activity: **{s.words}**: running for {now - s.started:.0f} s"
    if s.state.stopped:
        return f":material/cancel: {s.words}: {s.state} after {s.seconds:.1f} s"
    return f":material/radio_button_unchecked: {s.words}"


def _running_bar(s: StageProgress, now: float) -> None:
    """A bar with counts where the stage can count, else the time it has been running and why."""
    if s.total > 1:
        what = "epochs" if "epochs" in s.detail else "done"
        loss = s.detail[s.detail.index("(loss") :] if "(loss" in s.detail else ""  # the encoder's training
        st.progress(min(s.done / s.total, 1.0), text=f"{s.words}: {s.done:,} of {s.total:,} {what} {loss}".rstrip())
    else:
        why = f" ({SETUP_WORDS})" if "UMAP" in s.detail or s.stage in ("space", "map") else ""
        st.progress(0.0, text=f"{s.words}: {now - s.started:.0f} s{why}")


def draw_status(status: JobStatus) -> None:
    now = time.time()
    for s in status.stages:
        st.markdown(_stage_line(s, now))
        if s.state == State.RUNNING:
            _running_bar(s, now)


def draw_stopped(status: JobStatus, data_dir: str | None, settings: Settings, key: str) -> None:
    """A job that failed, died or was cancelled: what happened in words, the end of its log, and a button."""
    if status.state == State.CANCELLED:
        st.info(f"Preparing was cancelled. {render.text(status.error or '')} The finished stages are kept.")
        label = "Resume preparing"
    else:
        where = f" (at: {status.stage(status.failed_stage).words})" if status.stage(status.failed_stage) else ""
        st.error(f"Preparing stopped{where}: {render.text(status.error)}")
        if status.problem == Problem.SETUP:
            st.info(PCA_HINT)
        elif status.problem == Problem.DATA:
            st.info("Change the folder or the settings on the **Overview** page.")
        if status.log_tail:
            with st.expander("The end of its log"):
                st.code("\n".join(status.log_tail), language=None)
        label = "Start again"
    if st.button(label, key=f"{key}_restart", icon=":material/replay:"):
        start(data_dir, settings)
        st.rerun()


def follow(
    job: str,
    ready: Callable[[], bool],
    title: str,
    key: str,
    rerun_when_ready: bool = True,
) -> None:
    """Poll the job from a fragment: progress per stage, and a Cancel button.

    When ``ready()`` turns true or the job ends, the whole page reruns (with ``rerun_when_ready``);
    else the fragment only redraws itself.
    """

    @st.fragment(run_every=POLL_S)
    def panel() -> None:
        status = status_of(job)
        if not status.active:
            if rerun_when_ready or status.state != State.DONE:
                st.rerun()
            return
        if rerun_when_ready and ready():
            st.rerun()
        with st.container(border=True):
            st.markdown(f"**{title}** · {status.elapsed:.0f} s so far")
            draw_status(status)
            if st.button("Cancel", key=f"{key}_cancel", icon=":material/stop_circle:"):
                jobs.cancel_job(cache_root(), job)
                st.rerun()

    panel()
