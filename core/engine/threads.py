"""How many threads the numeric libraries run Dotmap's stages on: one, unless ``DOTMAP_THREADS`` says more.

OpenBLAS (numpy's and scipy's: PCA, distances, the typical shapes' product) and OpenMP (scikit-learn's
k-means and silhouettes) each start a thread per core. On a 2-core machine one thread was faster with
one core busy, where a waiting thread spins on the core another process holds, and mostly on a quiet
machine too (``benchmarks/threads.py``, demo sets, pca cluster space, no map, every stage computed,
medians of 3 fresh runs):

=========  ======  ==================  ==========  =============================
images     load    a thread per core   one thread  OMP_WAIT_POLICY=PASSIVE
=========  ======  ==================  ==========  =============================
300        quiet   3.8 s               3.4 s       4.0 s
300        busy    4.9 s               3.7 s       3.8 s
4,000      quiet   13.3 s              9.0 s       10.4 s
4,000      busy    22.4 s              9.3 s       11.8 s
32,000     quiet   47.7 s              51.4 s      (one run each)
32,000     busy    77.2 s              57.4 s
=========  ======  ==================  ==========  =============================

One thread loses 7% at 32,000 on a quiet machine and wins everywhere else; a user's machine is rarely
quiet (the dashboard's server, a browser, another job), so one it is.

Set in one place: :func:`set_for_this_process` before numpy loads (``python -m core`` and the
background jobs it runs, so their pools start with one thread), and :func:`limited` around every stage
(a notebook or the dashboard may have loaded numpy first). UMAP's numba threads are numba's own.

The same function turns off numpy's request for transparent huge pages (``NUMPY_MADVISE_HUGEPAGE=0``)
for the processes it starts. Where the kernel grants them only on request (``madvise``, the usual
default) and must compact memory to find them, every large array paid for it as it was first
written: 160 MB of fresh memory cost 0.73-1.1 s with the request and 0.085 s without on this project's
machines (``transparent_hugepage/defrag`` set to ``madvise``, no huge page ever granted). Dense
32,000 images, default cold prepare, alternating runs, medians of 3: first clustering 27.5 -> 26.1 s,
whole prepare 46.2 -> 44.8 s. Where huge pages come easily, going without them costs a few
hundredths of a second per 100 MB. A value the user set is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import SettingError

THREADS_ENV = "DOTMAP_THREADS"
DEFAULT_THREADS = 1
MAX_THREADS = 1024
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
HUGE_PAGES_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"  # read by numpy as it loads


def numeric_threads() -> int:
    """The threads a stage's numeric libraries use: ``$DOTMAP_THREADS``, else DEFAULT_THREADS."""
    given = os.environ.get(THREADS_ENV, "").strip()
    if not given:
        return DEFAULT_THREADS
    try:
        threads = int(given)
    except ValueError:
        threads = 0
    if not 1 <= threads <= MAX_THREADS:
        raise SettingError(f"{THREADS_ENV}={given!r} should be a whole number of threads, 1..{MAX_THREADS}.")
    return threads


def set_for_this_process() -> None:
    """Give each thread pool of this process (and of the processes it starts) ``numeric_threads()``
    threads from its start, and numpy no huge pages; it works only before numpy loads. A value the user
    set is kept."""
    for variable in POOL_VARIABLES:
        os.environ.setdefault(variable, str(numeric_threads()))
    os.environ.setdefault(HUGE_PAGES_VARIABLE, "0")


@contextmanager
def limited() -> Iterator[None]:
    """Inside, every BLAS and OpenMP pool loaded runs ``numeric_threads()`` threads (they are looked up on
    each call, a millisecond: a library loaded since, numba's OpenMP for one, is limited too)."""
    import sklearn  # noqa: F401  (loads its OpenMP and scipy's OpenBLAS beside numpy's)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=numeric_threads()):
        yield
