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
        "import streamlit as st\n"
        "from streamlit.runtime import x\n"
        "from . import y\n"
        "def f():\n"
        "    import numpy.linalg\n"
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
