"""The command line's curation: ``curate`` starts or shows one, ``export --curation`` and ``predict --curation``."""

import csv
import json
from pathlib import Path

import pytest

from core.cli.commands import main
from core.curation import file as curation_file
from core.demo import make_demo
from tests.test_cli import settings_args

K = 4


@pytest.fixture
def args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("DOTMAP_CACHE", str(tmp_path / "default-cache"))
    return settings_args(make_demo(tmp_path / "d", n=48, seed=0), tmp_path / "cache")


def started(args: list[str], capsys: pytest.CaptureFixture) -> Path:
    assert main(["curate", *args, "--from-k", str(K)]) == 0
    out = capsys.readouterr().out
    assert f"{K} groups of 48 images" in out
    (path,) = curation_file.curations_dir().glob("*.json")
    return path


def test_curate_starts_from_a_k_and_shows_it_again(args, capsys) -> None:
    path = started(args, capsys)
    assert json.loads(path.read_text())["started_from_k"] == K
    assert main(["curate", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"curation {path}: {K} groups") and "cluster 3" in out


def test_curate_never_overwrites_a_curation(args, capsys) -> None:
    path = started(args, capsys)
    before = path.read_text()
    assert main(["curate", *args, "--from-k", "3"]) == 1
    assert "already exists (nothing was overwritten)" in capsys.readouterr().err
    assert path.read_text() == before


def test_a_folder_without_a_curation_is_told_how_to_start_one(args, capsys) -> None:
    assert main(["export", *args, "--curation", "--csv", "x.csv"]) == 1
    assert "has no curation with these settings yet" in capsys.readouterr().err


def test_export_by_group_name(args, capsys, tmp_path: Path) -> None:
    path = started(args, capsys)
    doc = json.loads(path.read_text())
    doc["groups"][0]["name"] = "=rings"  # a name a spreadsheet would run
    doc["outliers"] = [doc["groups"][1]["images"].pop()]
    path.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert main(["export", *args, "--curation", "--csv", str(tmp_path / "g.csv"), "--folders", str(out)]) == 0
    rows = list(csv.reader((tmp_path / "g.csv").open()))
    assert rows[0] == ["path", "group"] and len(rows) == 49
    assert {r[1] for r in rows[1:]} == {"'=rings", "cluster 1", "cluster 2", "cluster 3", "outlier"}
    assert sorted(p.name for p in out.iterdir()) == ["=rings", "cluster 1", "cluster 2", "cluster 3", "outlier"]
    assert "copied the images into group folders" in capsys.readouterr().out


def test_export_with_both_k_and_curation_is_refused(args, capsys, tmp_path: Path) -> None:
    started(args, capsys)
    assert main(["export", *args, "--curation", "--k", "3", "--csv", str(tmp_path / "g.csv")]) == 1
    assert "give --k or --curation, not both" in capsys.readouterr().err
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.parametrize("method", ["neighbours", "logistic"])
def test_predict_into_the_named_groups(args, capsys, method: str) -> None:
    path = started(args, capsys)
    doc = json.loads(path.read_text())
    doc["groups"][2]["name"] = "rings"
    path.write_text(json.dumps(doc))
    member = Path(args[0]) / doc["groups"][2]["images"][0]
    assert main(["predict", *args, str(member), "--curation", str(path), "--method", method, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["curation"] is True and report["method"] == method
    (prediction,) = report["predictions"]
    assert prediction["group"] == "rings" and prediction["cluster"] == 2
    assert 0.0 <= prediction["confidence"] <= 1.0 and prediction["neighbour_paths"][0] == member.name


def test_predict_with_a_broken_curation_says_why(args, capsys, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "dotmap-curation", "version": 1, "groups": [')
    image = next(Path(args[0]).glob("*.png"))
    assert main(["predict", *args, str(image), "--curation", str(broken)]) == 1
    assert "is not a usable curation: it is not valid JSON" in capsys.readouterr().err
