"""Tests of core.reading.names: names shown escaped, CSV cells made inert, zip entries made safe."""

import pytest

from core.reading.names import inert_cell, inert_path, is_valid_utf8, shown, zip_entry


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plain name é 日本.png", "plain name é 日本.png"),
        ("red\x1b[31m.png", "red\\x1b[31m.png"),
        ("two\nlines.png", "two\\x0alines.png"),
        ("tab\there.png", "tab\\x09here.png"),
        ("bad\udcff\udcfe.png", "bad\\xff\\xfe.png"),
        ("gnp.\u202eexe", "gnp.\\u202eexe"),
        ("line\u2028sep", "line\\u2028sep"),
        ("del\x7f", "del\\x7f"),
    ],
    ids=["printable", "ansi escape", "newline", "tab", "not utf-8", "bidi override", "line separator", "delete"],
)
def test_shown_escapes_what_could_forge_or_hide_text(name: str, expected: str) -> None:
    assert shown(name) == expected
    assert shown(name).isprintable()


def test_is_valid_utf8() -> None:
    assert is_valid_utf8("é.png")
    assert not is_valid_utf8("bad\udcff.png")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_formula_start_is_made_inert(start: str) -> None:
    assert inert_cell(f"{start}1+1") == f"'{start}1+1"
    assert inert_path(f"{start}1+1.png") == f"./{start}1+1.png"


@pytest.mark.parametrize("text", ["dots_01.png", "a/=b.png", "", "1+1.png"])
def test_other_cells_are_unchanged(text: str) -> None:
    assert inert_cell(text) == text
    assert inert_path(text) == text


@pytest.mark.parametrize(
    ("path", "entry"),
    [
        ("cluster_2/..\\..\\outside.png", "cluster_2/.._.._outside.png"),
        ("cluster_1/a/b.png", "cluster_1/a/b.png"),
        ("cluster_1/C:\\x.png", "cluster_1/C__x.png"),
        ("cluster_1/..", "cluster_1/_"),
        ("cluster_1/what?.png", "cluster_1/what_.png"),
        ("cluster_1/trailing. ", "cluster_1/trailing"),
        ("cluster_1/nl\n.png", "cluster_1/nl_.png"),
    ],
)
def test_zip_entries_have_no_backslash_or_parent_part(path: str, entry: str) -> None:
    assert zip_entry(path) == entry
