"""Where the stages' parallel work runs: here (``local``), or as tasks on a Dask cluster (``dask``).

A backend only maps a function over items, in order; the stages decide what is a task (a chunk of
files to decode, a block of rows to turn into features, one k to cluster). Both backends run the same
functions on the same inputs, so the cache holds the same results under the same keys whichever ran
them, and the dashboard opens them as usual.

The Dask workers must run this same code (the same Dotmap and libraries) and read the same paths:
the data folder and the cache folder on storage every worker mounts at the same place.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import DotmapError

BACKENDS = ("local", "dask")
BACKEND_HELP = {
    "local": "this machine: reading on every core, the rest in this process",
    "dask": "a Dask cluster (--scheduler ADDRESS), or a local one of --workers processes",
}
BACKEND_WORDS = {"local": "this machine", "dask": "a Dask cluster"}
CONNECT_TIMEOUT_S = 10.0
LOCAL_HOST = "127.0.0.1"
IN_FLIGHT_PER_WORKER = 4  # tasks handed out ahead: results wait in memory only this far ahead of their use
DISTRIBUTED_VERSION = "2026.8.0"


class Backend:
    """This process: ``map`` is Python's own."""

    name = "local"
    workers = 1

    def map(self, fn: Callable, items: Iterable, **shared: Any) -> Iterator:
        """``fn(item, **shared)`` for every item, yielded in the order of ``items``."""
        return (fn(item, **shared) for item in items)

    def describe(self) -> str:
        return "this machine"

    def close(self) -> None:
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskBackend(Backend):
    """Tasks on a ``dask.distributed`` cluster: the one at ``scheduler``, else a LocalCluster started here.

    A worker that dies mid-task is replaced (its nanny restarts it) and the scheduler runs the task
    again elsewhere; a task that kills three workers in a row is given up on, and the stage fails
    with the scheduler's reason.
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None, timeout: float = CONNECT_TIMEOUT_S):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise DotmapError(
                "The Dask backend needs dask.distributed, which is not installed here: "
                f"pip install 'distributed=={DISTRIBUTED_VERSION}' (every worker needs it too)."
            ) from None
        self.scheduler = scheduler
        self._cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise DotmapError(
                    f"Could not reach the Dask scheduler at {scheduler} ({exc}). Check the address "
                    "(tcp://HOST:8786 by default), that `dask scheduler` is running there, and that this "
                    "machine can reach that port; or give no scheduler to start a cluster on this machine."
                ) from None
        else:
            n = workers or os.cpu_count() or 1
            self._environ = dict(os.environ)
            self._cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host=LOCAL_HOST,  # this machine only: nothing listens on its other interfaces
                dashboard_address=f"{LOCAL_HOST}:0",
                silence_logs=logging.ERROR,
            )
            self.client = Client(self._cluster, set_as_default=False)
            self._restore_environ()
        self.workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def describe(self) -> str:
        where = self.scheduler or "a local cluster"
        return f"Dask ({where}, {self.workers} worker{'s' if self.workers != 1 else ''})"

    def map(self, fn: Callable, items: Iterable, **shared: Any) -> Iterator:
        # shared inputs (a cluster space, a set of components) go to every worker once, not per task
        scattered = {name: self.client.scatter(value, broadcast=True) for name, value in shared.items()}
        pending: deque = deque()
        ahead = IN_FLIGHT_PER_WORKER * self.workers
        try:
            for item in items:
                pending.append(self.client.submit(fn, item, pure=False, **scattered))
                if len(pending) >= ahead:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()

    def _result(self, future: Any) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            raise DotmapError(
                f"A task of this stage ended every Dask worker that ran it ({exc}): out of memory, or a "
                "crash. Give the workers more memory, or run with --backend local."
            ) from None

    def compute(self, *collections: Any) -> tuple:
        """Dask collections (arrays) computed on this backend's cluster."""
        return tuple(self.client.compute(list(collections), sync=True))

    def _restore_environ(self) -> None:
        """Undo what starting (or restarting) a worker wrote into this process's environment.

        Its nanny sets OMP_NUM_THREADS=1 and the like in ``os.environ`` for the worker it spawns and
        leaves them there: every process this one starts afterwards (a later job, a test's
        subprocess) would run one BLAS thread and compute other last bits than before.
        """
        for name in set(os.environ) - set(self._environ):
            del os.environ[name]
        os.environ.update(self._environ)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._restore_environ()


@dataclass(frozen=True)
class Where:
    """Where a run computes, as plain values a job's command line carries: a backend's name and its options."""

    backend: str = "local"
    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise DotmapError(f"backend={self.backend!r} should be one of {BACKENDS}.")
        if self.backend == "local" and (self.scheduler or self.workers):
            raise DotmapError("--scheduler and --workers go with --backend dask.")

    def open(self) -> Backend:
        """The backend; close it when done (``with where.open() as backend:``)."""
        return open_backend(self.backend, self.scheduler, self.workers)

    def arguments(self) -> list[str]:
        """The flags of ``python -m core prepare`` that say this."""
        out = [] if self.backend == "local" else ["--backend", self.backend]
        if self.scheduler:
            out += ["--scheduler", self.scheduler]
        if self.workers:
            out += ["--workers", str(self.workers)]
        return out


def open_backend(name: str = "local", scheduler: str | None = None, workers: int | None = None) -> Backend:
    """The backend called ``name`` (one of BACKENDS); close it when done."""
    if name not in BACKENDS:
        raise DotmapError(f"backend={name!r} should be one of {BACKENDS}.")
    if name == "local":
        if scheduler:
            raise DotmapError("--scheduler goes with --backend dask.")
        return Backend()
    return DaskBackend(scheduler, workers)
