"""Preparation as a background job: its own process, one per data set and settings, its progress on disk.

A web page must never do minutes of work in its script thread (a page script is ``__main__``, so a
process pool started from it re-runs the page in every worker). :func:`start_job` runs
``python -m core prepare ... --job FOLDER`` in a new process group; the job writes ``status.json``
(atomically, a few times a second) and ``log.txt`` into its folder under ``CACHE/.jobs/``. Any
number of readers (pages in several tabs, another server) poll :func:`read_status`; a second
:func:`start_job` for the same data and settings joins the running job. :func:`cancel_job` ends
the job and every process it started. A job whose process died (killed, out of memory) is told
as ``died`` at the next read; its finished stages stay in the cache and the next job resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from filelock import FileLock

from core import demo
from core.engine import atomic
from core.engine.backends import Where
from core.engine.cache import Cache, make_key
from core.engine.job_status import JobStatus, Problem, StageProgress, State, problem_of, status_from_json
from core.engine.pipeline import Pipeline, Settings, Step
from core.engine.processes import process_alive, start_fork_safe, watch_parent
from core.engine.settings import setting_flags
from core.errors import DotmapError

JOBS_FOLDER = ".jobs"
STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
WRITE_EVERY_S = 0.25  # progress is written at most this often (a stage change always)
CANCEL_GRACE_S = 5.0  # after this, a job that has not ended on SIGTERM is killed
LOG_TAIL_LINES = 25
OWNER_ENV = "DOTMAP_JOB_OWNER"  # the pid of the process that started the job
CORE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the core package

_children: dict[int, subprocess.Popen] = {}  # jobs this process started, by pid: polled, so never zombies
_start_lock = threading.Lock()


class JobCancelled(BaseException):
    """Raised in a job's main thread by SIGTERM: unwinds it so nothing half-written stays."""


def job_id(data_dir: str | os.PathLike | None, settings: Settings) -> str:
    """One job per data folder (None: the built-in demo) and settings."""
    folder = "builtin-demo" if data_dir is None else str(Path(data_dir).expanduser().resolve())
    return make_key("job", data=folder, settings=asdict(settings))


def job_folder(cache_root: str | os.PathLike, job: str) -> Path:
    return Path(cache_root).expanduser() / JOBS_FOLDER / job


def read_status(cache_root: str | os.PathLike, job: str) -> JobStatus:
    """The job's status; ``running`` whose process is gone becomes ``died``; ``none`` if it never ran."""
    folder = job_folder(cache_root, job)
    try:
        raw = json.loads((folder / STATUS_FILE).read_text())
        status = status_from_json(raw)
    except FileNotFoundError:
        return JobStatus(job)
    except (OSError, ValueError, TypeError) as exc:
        return JobStatus(job, state=State.DIED, error=f"its status file cannot be read ({exc})")
    if status.active and (status.pid is None or not _alive(status.pid)):
        status.state = State.DIED
        status.error = _death_words(status.pid)
        status.ended = status.updated
    if status.state in (State.FAILED, State.DIED):
        status.log_tail = log_tail(folder)
    return status


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None  # polling reaps it: a job of ours never lingers as a zombie
    return process_alive(pid)


def active_jobs(cache_root: str | os.PathLike) -> list[JobStatus]:
    """Every job of this cache folder that is starting or running now."""
    folder = Path(cache_root).expanduser() / JOBS_FOLDER
    found = [read_status(cache_root, p.name) for p in folder.glob("*") if (p / STATUS_FILE).is_file()]
    return [status for status in found if status.active]


def log_tail(folder: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(folder / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    # a progress bar redraws with carriage returns: keep what a person would see last on each line
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return [line for line in shown if line.strip()][-lines:]


def _death_words(pid: int | None) -> str:
    child = _children.get(pid) if pid is not None else None
    code = child.returncode if child is not None else None
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"it was killed by {name}"
        if -code == signal.SIGKILL:
            how += " (out of memory, or killed by hand)"
    elif code is not None:
        how = f"it exited with code {code} before saying why"
    else:
        how = "its process is gone (killed, out of memory, or the machine restarted)"
    return f"The preparation process stopped without finishing: {how}. Finished stages are kept in the cache."


# ---- starting, joining and cancelling (the dashboard's side) ------------------------------
def start_job(
    data_dir: str | os.PathLike | None, settings: Settings, cache_root: str | os.PathLike, where: Where | None = None
) -> str:
    """Start preparing ``data_dir`` (None: the built-in demo) with ``settings``, or join the running job.

    Returns the job id. The job runs ``python -m core prepare`` in a process group of its own, on
    ``where`` (this machine by default, or a Dask cluster).
    """
    root = Path(cache_root).expanduser().resolve()
    try:
        return _start_job(data_dir, settings, root, where or Where())
    except OSError as exc:
        if not str(exc.filename or "").startswith(str(root)):
            raise
        raise DotmapError(
            f"Cannot start preparing: the cache folder {root} cannot be written ({exc.strerror or exc}). "
            f"What it holds is still shown; to prepare the rest, make it writable or start the dashboard "
            f"with another cache folder in the DOTMAP_CACHE variable."
        ) from None


def _start_job(data_dir: str | os.PathLike | None, settings: Settings, root: Path, where: Where) -> str:
    job = job_id(data_dir, settings)
    folder = job_folder(root, job)
    folder.mkdir(parents=True, exist_ok=True)
    with _start_lock, FileLock(str(folder.parent / f"{job}.start.lock")):
        if read_status(root, job).active:
            return job
        command = [sys.executable, "-m", "core", "prepare"]
        if data_dir is not None:
            command.append(str(Path(data_dir).expanduser().resolve()))
        command += setting_flags(settings) + where.arguments() + ["--cache", str(root), "--job", str(folder)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(CORE_ROOT), os.environ.get("PYTHONPATH")])))
        env["PYTHONUNBUFFERED"] = "1"
        env[OWNER_ENV] = str(os.getpid())  # the job ends when this process does, however early that is
        with open(folder / LOG_FILE, "wb") as log:
            child = subprocess.Popen(
                command,
                cwd=CORE_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: cancel ends the job and all it started
            )
        _children[child.pid] = child
        named = None if data_dir is None else str(data_dir)
        _write_json(folder / STATUS_FILE, asdict(JobStatus(job, State.STARTING, child.pid, named, started=time.time())))
    return job


def cancel_job(cache_root: str | os.PathLike, job: str) -> JobStatus:
    """End a running job and every process it started; its finished stages stay in the cache."""
    status = read_status(cache_root, job)
    if not status.active or status.pid is None:
        return status
    _signal_group(status.pid, signal.SIGTERM)
    deadline = time.monotonic() + CANCEL_GRACE_S
    while _alive(status.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(status.pid):
        _signal_group(status.pid, signal.SIGKILL)
        while _alive(status.pid) and time.monotonic() < deadline + CANCEL_GRACE_S:
            time.sleep(0.05)
    after = read_status(cache_root, job)
    if after.state != State.CANCELLED:  # it could not say so itself (killed, or it never got that far)
        after.state, after.ended, after.error, after.log_tail = State.CANCELLED, time.time(), "Cancelled.", []
        running = [s.stage for s in after.stages if s.state == State.RUNNING]
        after.failed_stage = after.failed_stage or (running[0] if running else "")  # what was cut off
        _write_json(job_folder(cache_root, job) / STATUS_FILE, asdict(after))
    Cache(Path(cache_root)).remove_orphaned_staging()
    return read_status(cache_root, job)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the job leads its own group (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_for_job(cache_root: str | os.PathLike, job: str, timeout: float, poll: float = 0.2) -> JobStatus:
    """Block until the job is no longer active (for tests and scripts; pages poll instead)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(cache_root, job)
        if not status.active or time.monotonic() > deadline:
            return status
        time.sleep(poll)


# ---- the job itself (runs in the job's process) -------------------------------------------
class _Reporter:
    """Keeps the job's status and writes it to disk: at once on a stage change, else at most every
    WRITE_EVERY_S from a flusher thread, so the last progress of a stage is never held back."""

    def __init__(self, folder: Path, status: JobStatus) -> None:
        self.path = folder / STATUS_FILE
        self.status = status
        self.current: StageProgress | None = None
        self.lock = threading.Lock()
        self.dirty = threading.Event()
        start_fork_safe(self._flush, "status-writer")  # a pool forks beside it: it locks only its own lock

    def _flush(self) -> None:
        while True:
            self.dirty.wait()
            time.sleep(WRITE_EVERY_S)
            self.write(force=True)

    def write(self, force: bool = False) -> None:
        if not force:
            self.dirty.set()
            return
        with self.lock:
            self.dirty.clear()
            self.status.updated = time.time()
            _write_json(self.path, asdict(self.status))

    def plan(self, steps: list[tuple[str, str, bool]]) -> None:
        known = {s.stage for s in self.status.stages}
        for stage, words, cached in steps:
            if stage not in known:
                self.status.stages.append(StageProgress(stage, words, State.CACHED if cached else State.WAITING))
        self.write(force=True)

    def begin(self, stage: str) -> None:
        """``stage`` is now the one whose progress comes; one already running (made beside the others
        since it began) keeps its start."""
        self.current = self.status.stage(stage)
        if self.current.state != State.RUNNING:
            self.current.state, self.current.done, self.current.total = State.RUNNING, 0, 0
            self.current.started = time.time()
        self.write(force=True)

    def end(self) -> None:
        if self.current is not None:
            self.current.state = State.DONE
            self.current.seconds = round(time.time() - self.current.started, 2)
            self.write(force=True)
            self.current = None

    def progress(self, done: int, total: int, what: str) -> None:
        current = self.current
        if current is None:
            return
        current.done, current.total = done, total if total > 1 else 0
        current.detail = what
        self.write()

    def finish(self, state: State, error: str = "", problem: Problem = Problem.NONE) -> None:
        self.status.state, self.status.error, self.status.problem = state, error, problem
        if self.current is not None and state != State.DONE:
            self.status.failed_stage = self.current.stage
            self.current.state = state
            self.current.seconds = round(time.time() - self.current.started, 2)
        self.status.ended = time.time()
        self.write(force=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise JobCancelled("cancelled")


def run_job(
    data_dir: str | None,
    settings: Settings,
    cache_root: str | os.PathLike,
    folder: str | os.PathLike,
    on_done: Callable[[Pipeline], None] | None = None,
    where: Where | None = None,
    image_shape: tuple[int, int] | None = None,
) -> int:
    """Prepare every stage, writing progress into ``folder``; the body of ``python -m core prepare --job``.

    Returns the process exit code: 0 done, 1 failed (in words in the status), 130 cancelled.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(cache_root).expanduser()
    status = JobStatus(folder.name, State.RUNNING, os.getpid(), data_dir, started=time.time())
    reporter = _Reporter(folder, status)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # the server that started the job is gone (even by SIGKILL): end as if cancelled, no orphan computes on
    owner = os.environ.get(OWNER_ENV, "")
    watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM), int(owner) if owner.isdigit() else None)
    stack = ExitStack()  # closes the backend (a local Dask cluster) however the job ends
    try:
        if data_dir is None and not demo.builtin_demo_ready(root):
            reporter.plan([("demo", f"Make the built-in demo set ({demo.BUILTIN_N:,} images)", False)])
            reporter.begin("demo")
            data_dir = str(demo.builtin_demo_dir(root, on_progress=reporter.progress))
            reporter.end()
        elif data_dir is None:
            data_dir = str(demo.builtin_demo_path(root))
        pipeline = Pipeline(data_dir, settings, root, on_progress=reporter.progress, image_shape=image_shape)
        status.fingerprint = pipeline.inventory.fingerprint
        reporter.plan([(s.stage, s.words, pipeline.is_cached(s.stage)) for s in pipeline.plan()])
        if pipeline.missing():  # a cluster is reached (or started) only when there is work for it
            pipeline.backend = stack.enter_context((where or Where()).open())
            print(f"preparing on {pipeline.backend.describe()}", flush=True)

        def on_step(step: Step, starting: bool) -> None:
            if starting:
                reporter.begin(step.stage)
            else:
                reporter.end()

        pipeline.prepare(on_step=on_step)
        if on_done is not None:
            on_done(pipeline)
        reporter.finish(State.DONE)
        return 0
    except JobCancelled:
        reporter.finish(State.CANCELLED, "Cancelled. Finished stages are kept; the next start resumes from them.")
        return 130
    except DotmapError as exc:
        reporter.finish(State.FAILED, str(exc), problem_of(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: its place goes to the log, its words to the page
        traceback.print_exc()
        words = f"Internal error ({type(exc).__name__}: {exc}); the log below shows where."
        reporter.finish(State.FAILED, words, Problem.INTERNAL)
        return 1
    finally:
        stack.close()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(data))
