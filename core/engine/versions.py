"""What a cached stage's result depends on beyond its settings: the code that makes it and the libraries it calls.

Every stage's cache key includes :func:`stage_version`, so a changed constant (``RADIAL_BINS``), a
changed function or an upgraded scikit-learn or umap-learn computes the stage again instead of
reusing a result the code would no longer make. The code's part is a fingerprint of its syntax
tree without docstrings, so editing a comment or a docstring keeps the cache; nothing has to be
remembered by hand. A stage missing from ``STAGE_CODE`` is an error (and a test lists the plan's).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import textwrap
from functools import cache
from importlib.metadata import PackageNotFoundError, version

# stage -> (the Pipeline method that computes it, the core modules it calls, the libraries it calls).
# The core modules those import are followed too (core.representation.features brings core.reading.images).
STAGE_CODE: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "images": ("images", ("core.reading.images",), ("pillow", "numpy")),
    "features": ("features", ("core.representation.features",), ("numpy",)),
    "reduction": ("reduction", ("core.representation.reduction",), ("scikit-learn", "numpy", "scipy")),
    "neighbours": ("neighbours", ("core.representation.reduction",), ("scikit-learn", "numpy")),
    "space": ("space", ("core.representation.embedding",), ("umap-learn", "pynndescent", "numba", "numpy")),
    "fit": ("fit", ("core.clustering.algorithms", "core.clustering.scoring"), ("scikit-learn", "numpy")),
    "sweep": ("sweep", ("core.clustering.algorithms", "core.clustering.scoring"), ("scikit-learn", "numpy")),
    "typical": ("cluster_means", ("core.representation.typical",), ("numpy",)),
    "auto": ("auto_groups", ("core.clustering.algorithms",), ("scikit-learn", "numpy")),
    "map": ("map", ("core.representation.embedding",), ("umap-learn", "pynndescent", "numba", "numpy")),
}


# modules that decide where a stage runs, not what it computes: the same stage on this machine or
# on a Dask cluster has one key (its tasks are functions of the stage's own modules, which count)
WHERE_NOT_WHAT = {"core.engine.backends"}


def code_fingerprint(source: str) -> str:
    """A hash of Python source that ignores comments, docstrings, blank lines and layout."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def _module_source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise RuntimeError(f"the source of {name} is needed to key the cache, and it is not there")
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


def _core_imports(source: str) -> set[str]:
    """The core modules a module's source imports (``from core.x import``, ``from core import x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "core":
                found.update(f"core.{alias.name}" for alias in node.names)
            elif node.module.startswith("core."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("core."))
    return found


@cache
def _modules_with_imports(modules: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_core_imports(_module_source(name)) - seen - WHERE_NOT_WHAT)
    return tuple(sorted(seen))


@cache
def _library_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "absent"


@cache
def stage_version(stage: str) -> str:
    """A hash of the code and library versions behind one stage's result."""
    if stage not in STAGE_CODE:
        raise KeyError(f"stage {stage!r} has no entry in core.engine.versions.STAGE_CODE")
    from core.engine.pipeline import Pipeline

    method, modules, libraries = STAGE_CODE[stage]
    parts = [f"method {method} {code_fingerprint(inspect.getsource(getattr(Pipeline, method)))}"]
    parts += [f"module {m} {code_fingerprint(_module_source(m))}" for m in _modules_with_imports(modules)]
    parts += [f"library {lib} {_library_version(lib)}" for lib in libraries]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
