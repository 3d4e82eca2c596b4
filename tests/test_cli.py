"""Tests of core.cli.commands: every command in-process, plus ``python -m core`` in a real subprocess."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.commands import main
from core.demo import FAMILIES, make_demo

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = 48
K_MAX = 6
COMMANDS = ("demo", "prepare", "report", "export", "predict")
SUBPROCESS_TIMEOUT_S = 120


def settings_args(data: Path, cache: Path) -> list[str]:
    return [str(data), "--cluster-space", "pca", "--k-max", str(K_MAX), "--cache", str(cache), "--quiet"]


@pytest.fixture(autouse=True)
def no_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A command that forgot --cache would write here, never to the user's cache."""
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return make_demo(tmp_path / "d", n=N_IMAGES, seed=0)


@pytest.fixture
def args(demo: Path, tmp_path: Path) -> list[str]:
    return settings_args(demo, tmp_path / "cache")


@pytest.fixture(scope="module")
def prepared_with_map(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The settings arguments of a demo folder prepared with its UMAP map (run once per module)."""
    root = tmp_path_factory.mktemp("prepared")
    args = settings_args(make_demo(root / "d", n=N_IMAGES, seed=0), root / "cache")
    assert main(["prepare", *args]) == 0
    return args


# ---------------------------------------------------------------- demo and prepare


def test_demo_writes_images_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", str(tmp_path / "out"), "--n", "16", "--quiet"]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 16
    assert (tmp_path / "out" / "labels.csv").is_file()
    assert f"wrote 16 demo images of {len(FAMILIES)} shape families" in capsys.readouterr().out


def test_prepare_prints_the_time_of_each_stage(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", *args, "--no-map"]) == 0
    out = capsys.readouterr().out
    stages = ("Read the images", "Compute the `shape-rotation` features", "PCA to", f"k-means for k = 2..{K_MAX}")
    for stage in (*stages, "Typical shape of every cluster"):  # the typical shapes too: pages open at once
        assert re.search(rf"^{re.escape(stage)}.*\s\d+\.\d\d s\s+computed$", out, re.MULTILINE), stage
    assert "2-D map" not in out
    assert f"{N_IMAGES} images ready in" in out
    assert "everything was already in the cache" not in out


def test_second_prepare_finds_everything_in_the_cache(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", *args, "--no-map"]) == 0
    capsys.readouterr()
    assert main(["prepare", *args, "--no-map"]) == 0
    out = capsys.readouterr().out
    assert "everything was already in the cache" in out
    assert not re.search(r"\scomputed$", out, re.MULTILINE)


# ---------------------------------------------------------------- report


def test_report_json_has_scores_truth_agreement_and_recommended_k(
    args: list[str], capsys: pytest.CaptureFixture
) -> None:
    assert main(["report", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["k"] for row in data["per_k"]] == list(range(2, K_MAX + 1))
    for row in data["per_k"]:
        assert -1 <= row["ari"] <= 1 and 0 <= row["nmi"] <= 1
    assert 2 <= data["recommended_k"] <= K_MAX
    assert data["true_labels"] == sorted(FAMILIES)
    assert data["n_images"] == N_IMAGES


def test_report_json_without_labels_has_no_agreement(
    demo: Path, args: list[str], capsys: pytest.CaptureFixture
) -> None:
    (demo / "labels.csv").unlink()
    assert main(["report", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["true_labels"] is None
    assert all("ari" not in row and "nmi" not in row for row in data["per_k"])


def test_report_text_marks_the_recommended_k(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["report", *args]) == 0
    out = capsys.readouterr().out
    marked = re.findall(r"^\s*(\d+) .*<- recommended$", out, re.MULTILINE)
    assert len(marked) == 1
    assert f"recommended k = {marked[0]}:" in out


# ---------------------------------------------------------------- export


def test_export_csv_writes_a_header_and_one_row_per_image(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "out.csv"
    assert main(["export", *args, "--k", "3", "--csv", str(target)]) == 0
    with open(target, newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["path", "cluster", "distance", "silhouette"]
    assert len(rows) == N_IMAGES
    assert {int(r[1]) for r in rows} == {0, 1, 2}
    assert f"wrote the clusters of k=3 to {target}" in capsys.readouterr().out


def test_export_to_an_existing_file_fails_and_keeps_it(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"precious\x00bytes\n")
    assert main(["export", *args, "--csv", str(target)]) == 1
    assert re.fullmatch(r"error: .*out\.csv already exists.*nothing was overwritten\)\.\n", capsys.readouterr().err)
    assert target.read_bytes() == b"precious\x00bytes\n"


def test_export_to_an_existing_folder_fails_and_keeps_it(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "mine.txt").write_bytes(b"keep")
    assert main(["export", *args, "--folders", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert (target / "mine.txt").read_bytes() == b"keep"


def test_export_without_a_target_says_what_to_give(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["export", *args]) == 1
    assert "say what to export: --csv OUT.csv and/or --folders OUT_DIR" in capsys.readouterr().err


# ---------------------------------------------------------------- predict (needs the UMAP map)


@pytest.mark.slow
def test_predict_gives_a_cluster_for_a_good_image(
    prepared_with_map: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = make_demo(tmp_path / "new", n=1, seed=7) / "dots_0.png"
    assert main(["predict", *prepared_with_map, str(image), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"] == []
    (prediction,) = data["predictions"]
    assert prediction["k"] == data["k"]
    assert 0 <= prediction["cluster"] < data["k"]
    assert 0 <= prediction["confidence"] <= 1


@pytest.mark.slow
def test_predict_reports_a_junk_file_and_fails(
    prepared_with_map: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = make_demo(tmp_path / "new", n=1, seed=7) / "dots_0.png"
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    assert main(["predict", *prepared_with_map, str(good), str(junk)]) == 1
    out, err = capsys.readouterr()
    assert re.search(r"dots_0\.png: cluster \d+ of k=\d+", out)
    assert re.search(r"junk\.png: skipped: not a PNG", err)


# ---------------------------------------------------------------- help and the real entry point


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command_exits_zero(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m core {command}")


def run_module(*argv: str) -> subprocess.CompletedProcess:
    """``python -m core ARGV`` from the repository root; the autouse fixture set DOTMAP_CACHE."""
    return subprocess.run(
        [sys.executable, "-m", "core", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def test_python_m_core_help_lists_the_commands() -> None:
    result = run_module("--help")
    assert result.returncode == 0
    assert all(command in result.stdout for command in COMMANDS)


def test_python_m_core_failure_is_one_error_line(tmp_path: Path) -> None:
    result = run_module("report", str(tmp_path / "missing"), "--cache", str(tmp_path / "cache"), "--quiet")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"error: The folder .*missing does not exist\.", lines[0])


def test_an_internal_bug_shows_where_it_failed_not_a_user_error(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(self):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr("core.engine.pipeline.Pipeline.sweep", broken)
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "in broken" in err
    assert err.rstrip().endswith(
        "(a bug, not a problem with your data). Finished stages stay in the cache. "
        "Please report it with the lines above."
    )
    assert "error: operands" not in err


# ---------------------------------------------------------------- hostile names, small folders, odd requests


def test_names_with_control_characters_are_printed_escaped(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (demo / "evil\x1b[2J\nFAKE: all fine.png").write_text("not an image")
    with open(os.path.join(os.fsencode(demo), b"bad\xff\xfe.png"), "wb") as f:
        f.write((demo / "dots_00.png").read_bytes())
    assert main(["prepare", *settings_args(demo, tmp_path / "cache"), "--no-map"]) == 0
    err = capsys.readouterr().err
    assert "  evil\\x1b[2J\\x0aFAKE: all fine.png: not a PNG" in err
    assert "  bad\\xff\\xfe.png: its name is not valid UTF-8" in err
    assert "\x1b" not in err and "\nFAKE" not in err


def test_report_json_shows_skipped_names_escaped(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with open(os.path.join(os.fsencode(demo), b"bad\xff.png"), "wb") as f:
        f.write(b"x")
    assert main(["report", "--json", *settings_args(demo, tmp_path / "cache")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == [["bad\\xff.png", "its name is not valid UTF-8; rename the file to include it"]]


def test_predict_on_a_few_images_in_pca_space_needs_no_map(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_demo(tmp_path / "few", n=6, seed=0)
    new = make_demo(tmp_path / "new", n=1, seed=7) / "dots_0.png"
    args = [str(data), "--cluster-space", "pca", "--k-max", "3", "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(["predict", *args, str(new), "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    assert prediction["map_layout"] == "pca"
    assert 0 <= prediction["cluster"] < 3


def test_predict_on_a_named_pipe_says_what_it_is(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    assert main(["predict", *args, str(tmp_path / "pipe.png")]) == 1
    assert "pipe.png: skipped: a named pipe (FIFO), not an image file" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--csv", "--folders"])
def test_export_into_the_data_folder_is_refused(
    args: list[str], demo: Path, flag: str, capsys: pytest.CaptureFixture
) -> None:
    before = sorted(p.name for p in demo.iterdir())
    assert main(["export", *args, flag, str(demo / "by-cluster")]) == 1
    assert "inside the image folder" in capsys.readouterr().err
    assert sorted(p.name for p in demo.iterdir()) == before


def test_a_failed_export_leaves_nothing_and_the_retry_works(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export", *args, "--k", "50", "--folders", str(tmp_path / "new")]) == 1
    assert "k=50 is outside the prepared range" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert main(["export", *args, "--k", "3", "--folders", str(tmp_path / "new")]) == 0


def test_export_of_the_csv_and_folders_to_one_name_writes_nothing(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export", *args, "--csv", str(tmp_path / "x"), "--folders", str(tmp_path / "x")]) == 1
    assert "outside the export folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("kind", "said", "labels"),
    [("hard-shapes", "10 shape families (hard)", 10), ("digits", "10 handwritten digits", 10)],
)
def test_demo_of_each_kind_writes_its_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, said: str, labels: int
) -> None:
    assert main(["demo", str(tmp_path / "out"), "--n", "30", "--kind", kind, "--quiet"]) == 0
    assert f"wrote 30 demo images of {said}" in capsys.readouterr().out
    with open(tmp_path / "out" / "labels.csv", newline="") as f:
        assert len({row["label"] for row in csv.DictReader(f)}) == labels


def test_demo_workers_is_checked_and_passed_on(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    import core.demo

    assert main(["demo", str(tmp_path / "bad"), "--n", "8", "--workers", "0", "--quiet"]) == 1
    assert "--workers 0: give 1 or more processes" in capsys.readouterr().err
    monkeypatch.setattr(core.demo, "SUBFOLDER_FROM", 10)  # 12 images make a "large" set, drawn by 1 worker
    assert main(["demo", str(tmp_path / "one"), "--n", "12", "--workers", "1", "--quiet"]) == 0
    assert len(list((tmp_path / "one").glob("*/dots_*.png"))) == 12


def test_the_encoders_epochs_are_one_bar_with_the_loss_beside_it(capsys: pytest.CaptureFixture) -> None:
    from core.cli.progress import Progress

    progress = Progress(True)
    progress(1, 3, "encoder: epochs (loss 0.900)")
    bar = progress.bar
    progress(2, 3, "encoder: epochs (loss 0.450)")
    assert progress.bar is bar  # the same bar, moved on: not a new one for each loss
    progress(3, 3, "encoder: epochs (loss 0.300)")
    err = capsys.readouterr().err
    assert "encoder: epochs" in err and "loss 0.450" in err and "(loss" not in err
