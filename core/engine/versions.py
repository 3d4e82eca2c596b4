"""What a cached stage's result depends on beyond its settings: the code that makes it and the libraries it calls.

A stage's key includes :func:`code_version` of its compute function, derived, never listed by hand:

- the fingerprint of the function's own source, and of the functions of its own module it calls;
- the fingerprint of every core module it names, and of every core module those import, followed
  to the end (``core.representation.features`` brings ``core.reading.images``);
- the installed version of every third-party library those modules import (``import umap`` inside a
  function counts), and of the libraries those depend on (umap-learn brings pynndescent and numba).

A fingerprint is a hash of the syntax tree without docstrings, so editing a comment or a docstring
keeps the cache, while a changed constant (``RADIAL_BINS``), a changed function or an upgraded
scipy computes exactly the stages whose code reaches it.

Deriving all that parses every core module and lists every installed library's files: 0.3 s of a
0.75 s warm ``prepare``. So what it found is remembered in the cache folder (:func:`remember_in`),
for as long as no core source file, no folder on ``sys.path`` (a library installed, removed or
upgraded changes its folder) and no Python changed; the libraries' versions are always read anew.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path
from types import FunctionType, ModuleType

from core.engine import atomic

# modules that decide where a stage runs, not what it computes: the same stage here, on a process per
# core or on a Dask cluster has one key (its tasks are functions of the stage's own modules, which count)
WHERE_NOT_WHAT = {"core.engine.backends", "core.engine.processes"}


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


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@cache
def _module_imports(name: str) -> tuple[frozenset[str], frozenset[str]]:
    core, others = _imports(_module_source(name))
    return frozenset(core), frozenset(others)


@cache
def _module_fingerprint(name: str) -> str:
    return code_fingerprint(_module_source(name))


def _imports(source: str) -> tuple[set[str], set[str]]:
    """The core modules and the top-level third-party packages that a module's source imports, anywhere in it."""
    core, others = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "core" or node.module.startswith("core."):
                for alias in node.names:  # ``from core.reading import images`` names a module
                    sub = f"{node.module}.{alias.name}"
                    core.add(sub if _is_module(sub) else node.module)
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                (core if alias.name.split(".")[0] == "core" else others).add(alias.name)
    return core, {name.split(".")[0] for name in others}


@cache
def core_modules_reached(modules: tuple[str, ...]) -> tuple[str, ...]:
    """These core modules and every core module they import, followed to the end (less WHERE_NOT_WHAT)."""
    seen: set[str] = set()
    todo = [m for m in modules if m not in WHERE_NOT_WHAT]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_module_imports(name)[0] - seen - WHERE_NOT_WHAT)
    return tuple(sorted(seen))


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _installed(distribution: str) -> bool:
    try:
        version(distribution)
        return True
    except PackageNotFoundError:
        return False


@cache
def _requirements(distribution: str) -> tuple[str, ...]:
    """The installed distributions that this one needs (extras left out)."""
    out = []
    for line in requires(distribution) or []:
        if "extra ==" in line or "extra==" in line:
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match and _installed(_distribution(match.group())):
            out.append(_distribution(match.group()))
    return tuple(out)


@cache
def _owners() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: once


def libraries_of(packages: set[str]) -> tuple[str, ...]:
    """The distributions that provide these top-level import names, with every distribution they need."""
    owners = _owners()
    found = {_distribution(d) for p in packages if p not in sys.stdlib_module_names for d in owners.get(p, [])}
    todo = list(found)
    while todo:
        for needed in _requirements(todo.pop()):
            if needed not in found:
                found.add(needed)
                todo.append(needed)
    return tuple(sorted(found))


def _names_used(fn: FunctionType) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


@cache
def code_reached(fn: Callable) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """What a compute function's result depends on: (its own module's functions it calls, by qualified name,
    and its module's constants it names, as ``NAME=value``; the core modules it reaches; the third-party
    distributions they import and need)."""
    home = fn.__module__
    functions, modules, packages = [], set(), set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if f.__qualname__ in functions:
            continue
        functions.append(f.__qualname__)
        for name in _names_used(f):
            if name not in f.__globals__:
                continue
            obj = f.__globals__[name]
            if isinstance(obj, int | float | str | bytes | tuple | frozenset) and f.__module__ == home:
                functions.append(f"{name}={obj!r}")  # a constant of the table's module: its value counts
                continue
            where = obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", None)
            if not isinstance(where, str) or where == "builtins":
                continue
            if where == home:
                if isinstance(obj, FunctionType):
                    todo.append(obj)  # the stage table's own helpers count as the function, not its module
            elif where == "core" or where.startswith("core."):
                modules.add(where)
            else:
                packages.add(where.split(".")[0])
    reached = core_modules_reached(tuple(sorted(modules)))
    for module in reached:
        packages |= _module_imports(module)[1]
    return tuple(sorted(functions)), reached, libraries_of(packages)


@cache
def _library_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "absent"


@cache
def code_version(fn: Callable) -> str:
    """A hash of the code and library versions behind a compute function's result."""
    code, libraries = _remembered_parts(fn)
    parts = code + [f"library {lib} {_library_version(lib)}" for lib in libraries]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _code_parts(fn: Callable) -> tuple[list[str], list[str]]:
    """What code_version hashes, less the libraries' versions: the code's fingerprints, and the libraries."""
    functions, modules, libraries = code_reached(fn)
    home = sys.modules[fn.__module__]
    parts = [
        f"constant {q}" if "=" in q else f"function {q} {code_fingerprint(inspect.getsource(_qualified(home, q)))}"
        for q in functions
    ]
    parts += [f"module {m} {_module_fingerprint(m)}" for m in modules]
    return parts, list(libraries)


MEMO_FILE = ".code-versions.json"  # hidden: a cache's listing shows its entries only
CORE_ROOT = Path(__file__).resolve().parents[1]
_memo_folder: Path | None = None


def remember_in(folder: Path | None) -> None:
    """Remember what code_version derives in ``folder`` (a cache folder), or nowhere (None)."""
    global _memo_folder
    _memo_folder = folder


def code_state(core_root: Path = CORE_ROOT, paths: tuple[str, ...] | None = None) -> str:
    """A digest of what code_version reads from the disk: the size and time of every core source file and
    folder, the time of every folder on ``sys.path``, and Python's version."""
    digest = hashlib.sha256(sys.version.encode())
    for folder, subfolders, files in os.walk(core_root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        digest.update(f"folder {folder} {os.stat(folder).st_mtime_ns}\n".encode())
        for name in sorted(f for f in files if f.endswith(".py")):
            found = os.stat(os.path.join(folder, name))
            digest.update(f"file {name} {found.st_size} {found.st_mtime_ns}\n".encode())
    for entry in sys.path if paths is None else paths:
        try:
            changed = os.stat(entry or ".").st_mtime_ns
        except OSError:
            changed = -1  # not there now: once it is, the state differs
        digest.update(f"path {entry} {changed}\n".encode())
    return digest.hexdigest()


MEMO_STATES = 4  # environments sharing one cache folder (a venv, a PYTHONPATH) each keep theirs


@cache
def _memo(folder: Path) -> tuple[str, dict]:
    """The state of the code now, and what the memo in ``folder`` remembers: {state: {function: parts}}."""
    state = code_state()
    try:
        with open(folder / MEMO_FILE, encoding="utf-8") as f:
            saved = json.load(f)
        states = {s: parts for s, parts in saved["states"].items() if isinstance(parts, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none yet, or not ours: derived anew
        states = {}
    states.setdefault(state, {})
    return state, states


def _are_parts(found: object) -> bool:
    return (
        isinstance(found, list)
        and len(found) == 2
        and all(isinstance(part, list) and all(isinstance(x, str) for x in part) for part in found)
    )


def _remembered_parts(fn: Callable) -> tuple[list[str], list[str]]:
    if _memo_folder is None:
        return _code_parts(fn)
    state, states = _memo(_memo_folder)
    name = f"{fn.__module__}:{fn.__qualname__}"
    found = states[state].get(name)
    if _are_parts(found):
        return list(found[0]), list(found[1])
    code, libraries = _code_parts(fn)
    states[state][name] = [code, libraries]
    states[state] = states.pop(state)  # the newest last: the oldest states go first
    while len(states) > MEMO_STATES:
        del states[next(iter(states))]
    # a cache folder that cannot be written says so when a stage writes; the memo only saves time
    with contextlib.suppress(OSError):
        atomic.write_text(_memo_folder / MEMO_FILE, json.dumps({"states": states}))
    return code, libraries


def _qualified(module: ModuleType, qualname: str) -> Callable:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
