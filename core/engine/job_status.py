"""What a background job is doing or how it ended: its state, each stage's progress, and what went wrong."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from core.errors import DotmapError, UmapUnavailableError


class State(StrEnum):
    """The state of a job or of one of its stages (written to its status file as the plain word)."""

    NONE = "none"  # never ran
    WAITING = "waiting"  # a stage not begun yet
    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    CACHED = "cached"  # a stage found in the cache
    FAILED = "failed"
    CANCELLED = "cancelled"
    DIED = "died"  # its process is gone without saying how it ended

    @property
    def active(self) -> bool:
        """Still going: starting or running."""
        return self in (State.STARTING, State.RUNNING)

    @property
    def stopped(self) -> bool:
        """Ended without finishing: failed, cancelled or died."""
        return self in (State.FAILED, State.CANCELLED, State.DIED)

    @property
    def finished(self) -> bool:
        """Its result is in the cache: done now, or found there."""
        return self in (State.DONE, State.CACHED)


class Problem(StrEnum):
    """What a failed job asks of the person at the keyboard."""

    NONE = ""
    SETUP = "setup"  # this machine cannot run a step (UMAP): the message says what to install, or use PCA
    DATA = "data"  # the folder or the settings: change them
    INTERNAL = "internal"  # a bug of ours: the log says where


def problem_of(exc: BaseException) -> Problem:
    """The kind of problem an exception that ended a job is."""
    if isinstance(exc, UmapUnavailableError):
        return Problem.SETUP
    return Problem.DATA if isinstance(exc, DotmapError) else Problem.INTERNAL


@dataclass
class StageProgress:
    """One stage of a job: waiting, running, done or cached (or how the job ended); ``total`` 0: uncountable."""

    stage: str
    words: str
    state: State = State.WAITING
    done: int = 0
    total: int = 0
    detail: str = ""
    started: float = 0.0  # wall-clock time it began
    seconds: float = 0.0  # how long it took, once done


@dataclass
class JobStatus:
    """What a job is doing or how it ended, as read from its folder."""

    job_id: str
    state: State = State.NONE
    pid: int | None = None
    data_dir: str | None = None
    fingerprint: str = ""
    stages: list[StageProgress] = field(default_factory=list)
    error: str = ""
    problem: Problem = Problem.NONE
    failed_stage: str = ""
    started: float = 0.0
    updated: float = 0.0
    ended: float = 0.0
    log_tail: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state.active

    def stage(self, name: str) -> StageProgress | None:
        return next((s for s in self.stages if s.stage == name), None)

    def finished(self, stage: str) -> bool:
        """Whether the job has this stage in the cache (computed now or found there)."""
        progress = self.stage(stage)
        return progress is not None and progress.state.finished

    @property
    def elapsed(self) -> float:
        return (self.ended or time.time()) - self.started if self.started else 0.0


# ---- where a job lives --------------------------------------------------------------------


def status_from_json(raw: dict[str, Any]) -> JobStatus:
    """A JobStatus from its status file's JSON; a field this version does not know (an older file's) is left out.

    Raises ValueError or TypeError for a file that is not a status.
    """
    known, stage_known = {f.name for f in fields(JobStatus)}, {f.name for f in fields(StageProgress)}
    stages = [
        StageProgress(**{**{k: v for k, v in s.items() if k in stage_known}, "state": State(s.get("state", "waiting"))})
        for s in raw.get("stages", [])
    ]
    kept = {k: v for k, v in raw.items() if k in known}
    kept.update(stages=stages, state=State(raw.get("state", "none")), problem=Problem(raw.get("problem", "")))
    return JobStatus(**kept)
