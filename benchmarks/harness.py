"""What the benchmarks share: demo sets made once, peak memory, and functions run in a fresh process.

The benchmarks are scripts (``python3 benchmarks/NAME.py``), so Python puts this folder first on
``sys.path`` and they import each other by their plain names (``from harness import DATA``). A
fresh process runs this file as its script, for the same reason: it finds every benchmark by name.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"  # demo sets and caches, git-ignored
RESULTS = ROOT / "benchmarks" / "results"
STDERR_TAIL = 3000  # characters of a failed child's stderr quoted in its error


def make_demo_once(folder: Path, n: int, seed: int, *, say: bool = True, **options: Any) -> Path:
    """Make a demo set in ``folder`` unless one is already there, and return ``folder``.

    Parameters
    ----------
    folder : Path
        Where the set goes. A folder without ``labels.csv`` (written last) is unfinished: it is
        deleted and made again.
    n, seed : int
        Passed to ``core.demo.make_demo``, with ``options`` (``kind``, ``families``, ``workers``).
    say : bool
        Print a line before making it (off where the output is a table).
    """
    if not (folder / "labels.csv").exists():
        from core.demo import make_demo

        shutil.rmtree(folder, ignore_errors=True)
        if say:
            print(f"making {n:,} demo images in {folder}", flush=True)
        make_demo(folder, n=n, seed=seed, **options)
    return folder


def demo_folder(n: int, seed: int, *, make: bool = True) -> Path:
    """The demo set ``benchmarks/data/demo-{n}-seed{seed}`` the benchmarks share, made on first use
    unless ``make`` is False."""
    folder = DATA / f"demo-{n}-seed{seed}"
    return make_demo_once(folder, n, seed) if make else folder


def stage_seconds(records: Any) -> dict[str, float]:
    """Seconds per stage of a pipeline's ``records``, a stage run more than once summed; each k's fit
    is left out, as it is inside the sweep's record."""
    seconds: dict[str, float] = {}
    for record in records:
        if not record.stage.startswith("fit-k"):
            seconds[record.stage] = seconds.get(record.stage, 0.0) + record.seconds
    return seconds


def peak_mb(children: bool = False) -> float:
    """Peak resident memory (ru_maxrss) in MB of this process, or with ``children`` of the largest
    of its child processes that have ended."""
    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def busy_core(busy: bool = True) -> Iterator[None]:
    """While inside, another process keeps one core busy (a machine that is not quiet); nothing if not ``busy``."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


TREE_SAMPLE_S = 0.2


def tree_pss_mb(pid: int) -> float:
    """The proportional set size in MB of a process and every process under it, now (Linux: /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):  # it ended meanwhile
            continue
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo.extend(c for c, parent in parents.items() if parent == p and c not in tree)
    kb = 0
    for p in tree:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return kb / 1024


class ChildFailed(RuntimeError):
    """A function run by `run_fresh` did not return: ``stderr`` is what its process wrote there."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def run_fresh(
    module: str,
    function: str,
    *args: Any,
    env: dict[str, str] | None = None,
    memory_limit: int | None = None,
    root: Path | None = None,
    peak_tree: list[float] | None = None,
) -> Any:
    """``function(*args)`` of ``benchmarks/{module}.py`` in a fresh Python process: its return value.

    Parameters
    ----------
    module, function : str
        A benchmark's file name without ``.py``, and a function of it that returns a JSON value.
    *args
        JSON values (str, int, float, bool, None, lists, dicts): paths go as ``str``.
    env : dict, optional
        The process's environment (default: this one's).
    memory_limit : int, optional
        Bytes of address space: past it the child gets a MemoryError rather than the kernel's OOM killer.
    root : Path, optional
        Another checkout (an older commit, for a before-and-after in one run): its benchmark and its
        ``core`` run instead of this one's.
    peak_tree : list, optional
        Gets the peak memory in MB of the process and every process under it taken together (their
        proportional set sizes, so pages they share count once), sampled every ``TREE_SAMPLE_S``.

    Raises
    ------
    ChildFailed
        When the process ends with an error; its ``stderr`` says why.
    """

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    here = ROOT if root is None else root
    # this checkout's core, wherever an editable install of Dotmap points (a clean clone's CI re-points it)
    env = {**(env if env is not None else os.environ), "PYTHONPATH": str(here)}
    process = subprocess.Popen(
        [sys.executable, str(here / "benchmarks" / "harness.py"), module, function, json.dumps(args)],
        cwd=here,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit if memory_limit is not None else None,
    )
    peak = 0.0
    while True:
        try:  # a timeout loses no output: the next call goes on reading
            stdout, stderr = process.communicate(timeout=TREE_SAMPLE_S)
            break
        except subprocess.TimeoutExpired:
            if peak_tree is not None:
                peak = max(peak, tree_pss_mb(process.pid))
    if peak_tree is not None:
        peak_tree.append(peak)
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if done.returncode != 0:
        raise ChildFailed(
            f"{module}.{function}{args} failed (exit {done.returncode}):\n{done.stderr[-STDERR_TAIL:]}", done.stderr
        )
    return json.loads(done.stdout.strip().splitlines()[-1])  # the function may print before it returns


def _child(module: str, function: str, args: str) -> None:
    """Inside the fresh process of `run_fresh`: call the function and print its value as the last line."""
    result = getattr(importlib.import_module(module), function)(*json.loads(args))
    print(json.dumps(result))


if __name__ == "__main__":
    from core.engine import threads  # loads no numpy

    os.environ.setdefault(threads.HUGE_PAGES_VARIABLE, "0")  # numpy as ``python -m core`` loads it
    _child(*sys.argv[1:])
