"""vmae_cli.identity: one path cell per video, whoever lists it and from wherever.

Pure functions first; then whole runs: one video listed five ways from three working folders,
resume / summarize / report from another folder, and the names that used to collide.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import read_rows
from typer.testing import CliRunner

from vmae_cli import run
from vmae_cli.cli import app
from vmae_cli.identity import cell_path, is_legacy_cell, key_of_cell, path_cell, video_path

# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------

NAMES = [
    b"plain.mp4",
    b"caf\xe9.mp4",  # not UTF-8
    b"caf\\xe9.mp4",  # the four characters \xe9, literally
    b"back\\slash.mp4",
    b"back\\\\two.mp4",
    "日本語.mp4".encode(),
    b"=x.mp4",
    b"'=x.mp4",
    b"new\nline.mp4",
    b"nul\x00name.mp4",  # no file has it, a hand-made list may
]


@pytest.mark.parametrize("name", NAMES)
def test_a_cell_is_utf8_text_that_names_its_file_again(name: bytes) -> None:
    path = os.fsdecode(b"/videos/" + name)
    cell = path_cell(path)
    cell.encode("utf-8")  # writable as UTF-8
    assert cell_path(cell) == path
    assert not is_legacy_cell(cell)
    assert key_of_cell(cell) == cell


def test_no_two_names_share_a_cell() -> None:
    cells = [path_cell(os.fsdecode(b"/videos/" + name)) for name in NAMES]
    assert len(set(cells)) == len(NAMES)


def test_a_cell_is_absolute_and_normalised_without_resolving_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.mp4").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "real")
    assert path_cell("a.mp4") == path_cell("./a.mp4") == path_cell("../real//a.mp4")
    assert path_cell("a.mp4") == f"{tmp_path}/real/a.mp4"
    assert path_cell("../link/a.mp4") == f"{tmp_path}/link/a.mp4"  # the user's own name
    assert video_path("../link/./a.mp4") == f"{tmp_path}/link/a.mp4"


def test_older_cells_are_resolved_against_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_legacy_cell("clips/a.mp4") and is_legacy_cell("/v/../v/a.mp4")
    assert key_of_cell("clips/a.mp4") == f"{tmp_path}/clips/a.mp4"
    assert key_of_cell("/v/../w/a.mp4") == "/w/a.mp4"
    # An older vmae wrote non-UTF-8 bytes as \xNN and a backslash as itself.
    assert cell_path(key_of_cell("caf\\xe9.mp4")) == os.fsdecode(
        f"{tmp_path}/caf".encode() + b"\xe9.mp4"
    )
    assert cell_path("/a\\b.mp4") == "/a\\b.mp4"


# ---------------------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path, test_videos: dict[str, Path]) -> Path:
    """tmp/videos/a.mp4, tmp/videos/sub/b.mp4, and folders to run from."""
    (tmp_path / "videos" / "sub").mkdir(parents=True)
    shutil.copy(test_videos["h264"], tmp_path / "videos" / "a.mp4")
    shutil.copy(test_videos["h264"], tmp_path / "videos" / "sub" / "b.mp4")
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    return tmp_path


def _classify(model: Path, *args: str, stdin: str | None = None):
    result = CliRunner().invoke(
        app,
        ["classify", *args, "-m", str(model), "--workers", "1", "-q"],
        input=stdin,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_one_video_listed_five_ways_from_three_folders_has_one_cell(
    tree: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = f"{tree}/videos/a.mp4"
    cells: list[str] = []
    for cwd in (tree, tree / "videos", tree / "elsewhere" / "deeper"):
        monkeypatch.chdir(cwd)
        folder = os.path.relpath(tree / "videos")
        out = cwd / "rows.csv"
        # Walked, a relative argument with ./ and .., an absolute one, and stdin (relative):
        # one row, as the same video.
        listed = os.path.join(".", folder, "sub", "..", "a.mp4")
        stdin = os.path.join(folder, "a.mp4") + "\n"
        _classify(
            tiny_model_dir, folder, listed, want, "--files-from", "-", "-o", str(out), stdin=stdin
        )
        rows = read_rows(out)
        assert sorted(r["path"] for r in rows) == [want, f"{tree}/videos/sub/b.mp4"]
        cells += [r["path"] for r in rows if r["path"].endswith("a.mp4")]
        # A list file, whose relative lines are taken from the list's folder.
        (tree / "list.txt").write_text("videos/a.mp4\n")
        listed = ("--files-from", str(tree / "list.txt"), "-o", str(out), "--overwrite")
        _classify(tiny_model_dir, *listed)
        cells += [r["path"] for r in read_rows(out)]
    assert cells == [want] * 6


@pytest.mark.slow
def test_resume_summarize_and_report_work_from_another_folder(
    tree: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmae_cli.report import ReportOptions, build_report
    from vmae_cli.summary import Grouping, read_results, table_for

    out = tree / "rows.jsonl"
    monkeypatch.chdir(tree)
    first = run(["videos"], out, model=str(tiny_model_dir), workers=1)
    assert first.ok == 2
    monkeypatch.chdir(tree / "elsewhere" / "deeper")
    again = run(["../../videos"], out, model=str(tiny_model_dir), workers=1, resume=True)
    assert (again.skipped, again.videos) == (2, 0)
    assert len(read_rows(out)) == 2
    stats = build_report([out], tree / "report.html", options=ReportOptions(workers=1))
    assert stats.strips == 2  # every video's frames, found from another folder
    assert "the file is gone" not in (tree / "report.html").read_text()
    # Videos from an absolute tree and a ../ tree: two folders, each named right.
    (tree / "x").mkdir()
    shutil.copy(tree / "videos" / "a.mp4", tree / "x" / "c.mp4")
    monkeypatch.chdir(tree / "elsewhere")
    both = tree / "both.csv"
    run([str(tree / "x"), "../videos/sub"], both, model=str(tiny_model_dir), workers=1)
    monkeypatch.chdir(tree / "videos")
    folders = table_for(read_results([both]), Grouping("folder", 1))
    assert folders[["folder", "videos"]].values.tolist() == [["videos", 1], ["x", 1]]


@pytest.mark.slow
def test_names_that_collided_get_a_row_each_after_resume(
    tmp_path: Path, test_videos: dict[str, Path], tiny_model_dir: Path
) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    names = [b"caf\xe9.mp4", b"caf\\xe9.mp4", b"=x.mp4", b"'=x.mp4"]
    for name in names:
        shutil.copy(test_videos["h264"], os.fsencode(folder) + b"/" + name)
    for ext in (".csv", ".jsonl", ".parquet"):
        out = tmp_path / f"rows{ext}"
        assert run([folder], out, model=str(tiny_model_dir), workers=1).ok == 4
        again = run([folder], out, model=str(tiny_model_dir), workers=1, resume=True)
        assert (again.skipped, again.videos) == (4, 0)
        rows = read_rows(out)
        assert len(rows) == len({r["path"] for r in rows}) == 4
        opened = sorted(os.fsencode(cell_path(r["path"])) for r in rows)
        assert opened == sorted(os.fsencode(folder) + b"/" + n for n in names)
    # Issue 24, 20: the report finds a file whose name is not UTF-8 (its cell names it).
    from vmae_cli.report import ReportOptions, build_report

    page = tmp_path / "report.html"
    made = build_report([tmp_path / "rows.csv"], page, options=ReportOptions(workers=1))
    assert made.strips == 4 and "the file is gone" not in page.read_text()
