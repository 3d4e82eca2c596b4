"""Tests of the house layout: core/ is pure Python without Streamlit, and each module says its role."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"
CORE_FILES = sorted(CORE.rglob("*.py"))
# an empty __init__.py only marks the package: it has no role of its own to state
CORE_MODULES = [p for p in CORE_FILES if p.read_text(encoding="utf-8").strip()]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_modules(tree: ast.Module) -> list[str]:
    """Every module an import statement names, anywhere in the file (functions included)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.append(node.module)
    return names


def test_core_has_modules() -> None:
    assert len(CORE_MODULES) >= 10


def test_imported_modules_sees_every_form_of_import() -> None:
    source = (
        "import streamlit as st\nfrom streamlit.runtime import x\nfrom . import y\ndef f():\n    import numpy.linalg\n"
    )
    assert imported_modules(ast.parse(source)) == ["streamlit", "streamlit.runtime", "numpy.linalg"]


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.relative_to(CORE).as_posix())
def test_core_never_imports_streamlit(path: Path) -> None:
    streamlit = [m for m in imported_modules(parse(path)) if m.split(".")[0] == "streamlit"]
    assert streamlit == []


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.relative_to(CORE).as_posix())
def test_core_module_opens_with_a_docstring(path: Path) -> None:
    docstring = ast.get_docstring(parse(path))
    assert docstring is not None, f"{path.name} does not open with a docstring"
    assert docstring.splitlines()[0].strip(), f"{path.name}: the docstring's first line is empty"


MAX_LINES = 400  # a module past this is doing two jobs
ROOMS = {"reading", "representation", "clustering", "engine", "curation", "outputs", "cli", "demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path) -> set[str]:
    """The core modules a module imports, anywhere but under ``if TYPE_CHECKING:`` (``from core.x import y``
    counts as core.x.y where that is a module)."""
    known = {module_name(p) for p in CORE_FILES}
    tree = parse(path)
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "core":
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "core")
    return found - {"core"}


def test_core_is_in_rooms_that_read_like_the_flow() -> None:
    rooms = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == ROOMS
    loose = {p.name for p in CORE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py", "api.py", "errors.py"}
    for room in ROOMS:
        assert ast.get_docstring(parse(CORE / room / "__init__.py")), f"core/{room} does not say what it holds"


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.relative_to(CORE).as_posix())
def test_no_core_module_is_over_the_size_of_one_job(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(CORE)} has {lines} lines"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (module -> the modules it imports) as a path that ends where it began, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module)) is not None:
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_core_has_no_import_cycle() -> None:
    graph = {module_name(p): core_imports(p) for p in CORE_FILES}
    # a package's __init__ that a module of its own imports through (core.cli) is not a cycle of theirs
    graph = {m: {d for d in deps if d in graph and d != m and not m.startswith(d + ".")} for m, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
