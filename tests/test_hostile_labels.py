"""Hostile labels.csv: labels only feed the agreement scores, so a bad file is named with its problem and
everything else goes on (``report`` and ``prepare`` warn and leave ARI/NMI out; the dashboard warns).

A file name given two different labels keeps its first label, and the warning names it with both lines.
The same label twice changes nothing and is not said.
"""

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from core.cli.commands import main
from core.demo import make_demo
from core.errors import DotmapError
from core.reading.labels import FIELD_LIMIT, read_labels
from tests.test_cli import settings_args
from tests.test_hostile import snapshot

PATHS = ["a.png", "b.png", "c.png"]
LEFT_OUT = "The agreement scores (ARI, NMI) are left out."
N_IMAGES = 40

HOSTILE = [
    pytest.param(
        bytes(range(256)) * 8, r"it is not UTF-8 text \(its byte 128 is not UTF-8: a binary file", id="binary"
    ),
    pytest.param(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "it is not UTF-8 text", id="a-png-named-labels.csv"),
    pytest.param(
        "filename,label\na.png,ring\n".encode("utf-16-le"),
        "it holds NUL characters .*UTF-16 without its BOM",
        id="utf16",
    ),
    pytest.param(b"filename,label\na.png,ring\0\n", "it holds NUL characters", id="nul-in-a-line"),
    pytest.param(
        b"a.png,ring\nb.png,disk\n",
        r"should start with the header 'filename,label' \(its first line is 'a\.png,ring'\)",
        id="no-header",
    ),
    pytest.param(b"", r"should start with the header 'filename,label' \(its first line is empty\)", id="empty"),
    pytest.param(
        b"filename,label\na.png,ring\nb.png," + b"x" * (FIELD_LIMIT + 1) + b"\n",
        r"line 3 holds a cell of more than 131,072 characters",
        id="field-over-128KB",
    ),
    pytest.param(
        b'filename,label\na.png,"' + b"x\n" * (FIELD_LIMIT // 2 + 1) + b'"\n',
        r"line \d[\d,]* holds a cell of more than 131,072 characters",
        id="quoted-field-over-128KB",
    ),
]


def write(folder: Path, raw: bytes) -> Path:
    path = folder / "labels.csv"
    path.write_bytes(raw)
    return path


# ---- the reader ------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "words"), HOSTILE)
def test_a_hostile_labels_file_is_refused_in_words_naming_it(tmp_path: Path, raw: bytes, words: str) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(DotmapError, match=words) as error:
        read_labels(path, PATHS)
    assert str(path) in str(error.value) and len(str(error.value)) < 400
    assert path.read_bytes() == raw and sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_utf16_with_its_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "filename,label\na.png,ring\nc.png,disk\n".encode("utf-16"))
    codes, names = read_labels(path, PATHS)
    assert names == ["disk", "ring"]
    np.testing.assert_array_equal(codes, [1, -1, 0])


def test_a_name_given_two_labels_keeps_the_first_and_is_named_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"filename,label\na.png,ring\nb.png,disk\nc.png,disk\na.png,disk\n")
    notes: list[str] = []
    codes, names = read_labels(path, PATHS, notes)
    np.testing.assert_array_equal(codes, [names.index("ring"), names.index("disk"), names.index("disk")])
    assert notes == [f"{path} gives a.png two labels ('ring' and 'disk', lines 2 and 5); the first is used."]


def test_many_names_given_two_labels_are_named_then_counted(tmp_path: Path) -> None:
    names = "abcde"
    rows = "".join(f"{n}.png,x\n" for n in names) + "".join(f"{n}.png,y\n" for n in names)
    path = write(tmp_path, ("filename,label\n" + rows).encode())
    notes: list[str] = []
    codes, labels = read_labels(path, [f"{n}.png" for n in names], notes)
    assert labels == ["x"] and (codes == 0).all()
    assert notes == [
        f"{path} gives 5 file names two labels: a.png (lines 2 and 7), b.png (lines 3 and 8), c.png (lines 4 and 9) "
        "and 2 more; the first of each is used."
    ]


def test_the_same_label_twice_is_not_said(tmp_path: Path) -> None:
    path = write(tmp_path, b"filename,label\na.png,ring\na.png,ring\n")
    notes: list[str] = []
    codes, names = read_labels(path, PATHS, notes)
    assert names == ["ring"] and notes == []
    np.testing.assert_array_equal(codes, [0, -1, -1])


# ---- the command line: report and prepare warn and go on -------------------------------------
@pytest.fixture
def labelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "default-cache"))
    folder = make_demo(tmp_path / "d", n=N_IMAGES, seed=1)
    return folder, settings_args(folder, tmp_path / "cache")


CLI_HOSTILE = [HOSTILE[0], HOSTILE[2], HOSTILE[4], HOSTILE[6]]  # binary, UTF-16 without BOM, no header, 128 KB


@pytest.mark.parametrize(("raw", "words"), CLI_HOSTILE)
def test_report_and_prepare_warn_about_labels_and_go_on_without_the_scores(labelled, capsys, raw, words) -> None:
    folder, args = labelled
    labels = write(folder, raw)
    before = snapshot(folder)
    assert main(["prepare", *args, "--no-map"]) == 0
    prepared = capsys.readouterr()
    assert f"{N_IMAGES} images ready" in prepared.out
    (warning,) = [line for line in prepared.err.splitlines() if line.startswith("warning:")]
    assert str(labels) in warning and "will be left out" in warning
    assert main(["report", *args]) == 0
    out, err = capsys.readouterr()
    assert "recommended k =" in out and "NMI" not in out and "Traceback" not in err  # no ARI, NMI columns
    (warning,) = err.splitlines()
    assert warning.startswith("warning: ") and str(labels) in warning and warning.endswith(LEFT_OUT)
    assert re.search(words, warning), warning
    assert main(["report", *args, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["true_labels"] is None and err.endswith(LEFT_OUT + "\n")
    assert snapshot(folder) == before  # the folder, labels.csv included, as it was


def test_report_names_a_file_given_two_labels_and_keeps_the_scores(labelled, capsys) -> None:
    folder, args = labelled
    rows = (folder / "labels.csv").read_text().splitlines()
    name = rows[1].split(",")[0]
    (folder / "labels.csv").write_text("\n".join([*rows, f"{name},another-label"]) + "\n")
    assert main(["report", *args]) == 0
    out, err = capsys.readouterr()
    assert "NMI" in out  # the ARI, NMI columns
    assert f"gives {name} two labels" in err and f"lines 2 and {len(rows) + 1}); the first is used." in err


# ---- the dashboard ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("raw", "words"), [HOSTILE[0], HOSTILE[6]])
def test_choose_k_warns_about_a_hostile_labels_file_and_goes_on(tmp_path, monkeypatch, raw, words) -> None:
    from tests.apptest import assert_clean, texts
    from tests.test_pages import SMALL_PCA, open_with, prepared_without_map

    folder = make_demo(tmp_path / "labelled", n=60, seed=4)
    write(folder, raw)
    prepared_without_map(folder, SMALL_PCA)
    before = snapshot(folder)
    at = open_with(folder, SMALL_PCA, "pages/2_Choose_k.py", monkeypatch)
    assert_clean(at)
    warning = html.unescape(texts(at, "warning"))  # the page shows it inert: each sign as its entity
    assert "The labels are not used" in warning and "labels.csv" in warning
    assert re.search(words, warning), warning
    assert "ARI" not in at.dataframe[0].value.columns
    assert snapshot(folder) == before


@pytest.mark.slow
def test_choose_k_names_a_file_given_two_labels_and_keeps_the_scores(tmp_path, monkeypatch) -> None:
    from tests.apptest import assert_clean, texts
    from tests.test_pages import SMALL_PCA, open_with, prepared_without_map

    folder = make_demo(tmp_path / "labelled", n=60, seed=4)
    rows = (folder / "labels.csv").read_text().splitlines()
    name = rows[1].split(",")[0]
    (folder / "labels.csv").write_text("\n".join([*rows, f"{name},another-label"]) + "\n")
    prepared_without_map(folder, SMALL_PCA)
    at = open_with(folder, SMALL_PCA, "pages/2_Choose_k.py", monkeypatch)
    assert_clean(at)
    assert f"gives {name} two labels" in html.unescape(texts(at, "warning"))
    assert "ARI" in at.dataframe[0].value.columns
