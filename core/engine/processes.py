"""Process lifetimes (whether a process still runs, workers that end when their parent dies), the
local way to put every core to per-block or per-k work, and a stage run beside the others."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import suppress
from functools import partial
from multiprocessing import current_process, get_context
from multiprocessing.context import BaseContext
from typing import Any

WATCH_EVERY_S = 0.5  # a worker notices within this that its parent is gone
SPREAD_FROM_IMAGES = 5_000  # below this a stage's blocks or ks run here: starting workers costs more


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def watch_parent(on_gone: Callable[[], None], owner: int | None = None) -> None:
    """Call ``on_gone`` (from a daemon thread) soon after this process's parent dies, even by SIGKILL.

    A process whose parent dies is re-parented, so its parent pid changes. ``owner``, when given, is
    watched too: a forkserver's worker has the forkserver as its parent, which outlives the process
    that asked for the worker as long as any of its workers runs.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent and (owner is None or process_alive(owner)):
            time.sleep(WATCH_EVERY_S)
        on_gone()

    start_fork_safe(watch, "watch-parent")


_FORK_SAFE: set[threading.Thread] = set()  # daemon threads beside which pool_context() still forks


def start_fork_safe(target: Callable[[], None], name: str) -> threading.Thread:
    """Start ``target`` on a daemon thread beside which :func:`pool_context` still forks.

    For a thread that holds no lock a forked worker needs (it sleeps, waits on an event of its own,
    reads /proc, writes files of its own): the workers do not have it, and a pool of this process
    then starts in milliseconds, not by re-importing scikit-learn in every worker from the fork
    server (the dashboard's job, with its status writer and parent watch: a dense 32k sweep 9.2 -> 7.2 s,
    first clustering 37.8 -> 34.6 s; docs/speed.md).
    """
    thread = threading.Thread(target=target, daemon=True, name=name)
    _FORK_SAFE.add(thread)
    thread.start()
    return thread


def exit_with_owner(owner: int) -> None:
    """Pool initializer: a worker ends when the process that started the pool (``owner``) dies; a
    killed owner cannot stop its pool, and its workers would wait or decode for minutes."""
    watch_parent(lambda: os._exit(1), owner)


def pool_context() -> BaseContext:
    """fork when this process runs one thread besides :func:`start_fork_safe`'s (no re-import of a
    user's script, none of scikit-learn); forkserver else.

    Forking a process that runs other threads (a web server) can deadlock the child.
    """
    main = threading.main_thread()
    if all(t is main or t in _FORK_SAFE for t in threading.enumerate()):
        return get_context("fork")
    return fork_server()


def fork_server() -> BaseContext:
    """The forkserver context: each process forked from a fresh server, so nothing of this one's state
    (its threads, numba's GNU OpenMP pool, which kills a forked child that uses it) comes along."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["core.reading.images", "core.engine.processes"])
    return context


def in_order(pool: Executor, fn: Callable, items: list, ahead: int) -> Iterator:
    """``pool.map`` that keeps at most ``ahead`` items in flight, yielding results in order.

    Results wait in memory only this far ahead of their use, and a Ctrl-C finds the owner waiting
    for a result, not in the middle of submitting thousands of tasks (``pool.map`` submits them all
    at once: 20,000 chunks for a million demo images).
    """
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def cores() -> int:
    """The cores this process may run on (its affinity where the system says, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


_SHARED: dict[str, Any] = {}  # a worker's copy of spread()'s shared inputs, sent once per worker


def _start_worker(owner: int, shared: dict[str, Any]) -> None:
    exit_with_owner(owner)
    _SHARED.clear()
    _SHARED.update(shared)


def _call(fn: Callable, item: Any) -> Any:
    from core.engine import threads

    with threads.limited():  # one BLAS and OpenMP thread a worker: the workers already fill the cores
        return fn(item, **_SHARED)


def spread(fn: Callable, items: Iterable, n_images: int, workers: int | None = None, **shared: Any) -> Iterator:
    """``fn(item, **shared)`` for every item, yielded in the order of ``items``, on a process per core.

    The local way to use every core for work that is independent per block of images or per k (each
    worker computes on one thread; ``benchmarks/stages.py`` measures it quiet and with a core busy).
    ``shared`` goes to each worker once, not with every item. Below ``SPREAD_FROM_IMAGES`` images, with
    one core or one item, or in a process :class:`Beside` another, everything runs here in order. A
    worker ends when this process dies.
    """
    from core.engine import threads

    items = list(items)
    workers = min(workers or cores(), len(items))
    if workers <= 1 or n_images < SPREAD_FROM_IMAGES or current_process().daemon:  # a daemon has no children
        yield from (fn(item, **shared) for item in items)
        return
    with threads.limited():  # scikit-learn and the pools loaded here once, not in every worker (1 s each)
        context = pool_context()
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(), shared)
    ) as pool:
        yield from in_order(pool, partial(_call, fn), items, ahead=2 * workers)


class Beside:
    """``fn(*args, on_progress=...)`` run in a process beside this one, for a stage that need not wait
    for the ones this process runs meanwhile (the UMAP cluster space beside the reading, the 2-D map
    beside the thumbnails and the groups).

    ``warm_up()``, when given, runs as soon as the process starts: the process then waits for
    :meth:`go` before its work (umap-learn imported, and compiled on a fresh machine, while this
    process reads the images the work needs).

    Its progress comes back through a queue and is handed on by :meth:`wait`; the process ends when
    this one dies (daemonic, and it watches its owner), or at :meth:`close`. It comes from the fork
    server, never a fork of this process: after the cluster space's UMAP a forked child's UMAP was
    killed by numba ("fork() called from a process already using GNU OpenMP").
    """

    def __init__(self, fn: Callable, *args: Any, warm_up: Callable[[], Any] | None = None) -> None:
        context = fork_server()
        self._messages = context.Queue()  # a feeder thread sends: the worker never blocks on a full pipe
        self._go = context.Event()
        if warm_up is None:
            self._go.set()
        self._process = context.Process(
            target=_run_beside,
            args=(os.getpid(), self._messages, self._go, warm_up, fn, args),
            daemon=True,
            name="dotmap-beside",
        )
        self.started = time.perf_counter()
        self._process.start()

    @property
    def going(self) -> bool:
        """Whether its work was let begin."""
        return self._go.is_set()

    def go(self) -> None:
        """Let the work begin (its inputs are ready); the time it takes counts from now."""
        if not self._go.is_set():
            self.started = time.perf_counter()
            self._go.set()

    def close(self) -> None:
        """End the process if it still runs (its work is no longer wanted)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()

    def wait(self, on_progress: Callable[[int, int, str], None] | None = None) -> str | None:
        """Hand on its progress until it ends; None when its work succeeded, else what went wrong, in words."""
        import queue

        self.go()
        kind, payload, ended = "", None, False
        while kind in ("", "progress"):
            try:
                kind, payload = self._messages.get(timeout=0 if ended else WATCH_EVERY_S)
            except queue.Empty:
                if ended:  # it ended and said nothing more
                    break
                ended = not self._process.is_alive()  # one more look: its last words may still be on the way
                continue
            if kind == "progress" and on_progress is not None:
                on_progress(*payload)
        self._process.join()
        if kind == "failed":
            return payload
        if kind != "done":
            return f"its process ended with exit code {self._process.exitcode} before it was done"
        return None


def _run_beside(owner: int, messages: Any, go: Any, warm_up: Callable | None, fn: Callable, args: tuple) -> None:
    exit_with_owner(owner)
    try:
        if warm_up is not None:
            with suppress(Exception):  # the work itself meets the same problem and says it in words
                warm_up()
        go.wait()
        fn(*args, on_progress=lambda done, total, stage: messages.put(("progress", (done, total, stage))))
    except BaseException as exc:  # told to the owner, which decides; a KeyboardInterrupt included
        messages.put(("failed", f"{type(exc).__name__}: {exc}"))
    else:
        messages.put(("done", None))
    messages.close()
    messages.join_thread()
