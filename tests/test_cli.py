"""The CLI through typer.testing.CliRunner: stdout holds data only, messages go to stderr."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, app

runner = CliRunner()


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory, test_videos) -> Path:
    d = tmp_path_factory.mktemp("good")
    (d / "sub").mkdir()
    shutil.copy(test_videos["h264"], d / "a.mp4")
    shutil.copy(test_videos["mjpeg"], d / "sub" / "b.AVI")
    (d / "readme.txt").write_text("hello")
    return d


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory, test_videos, bad_files) -> Path:
    d = tmp_path_factory.mktemp("mixed")
    shutil.copy(test_videos["h264"], d / "a.mp4")
    shutil.copy(bad_files["text"], d / "broken.mp4")
    return d


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_every_option() -> None:
    result = _run("classify", "--help")
    assert result.exit_code == 0
    for option in (
        "--output",
        "--format",
        "--model",
        "--revision",
        "--top-k",
        "--device",
        "--dtype",
        "--batch-size",
        "--workers",
        "--timeout",
        "--quiet",
        "--escape-formulas",
        "--debug",
    ):
        assert option in result.stdout


def test_csv_on_stdout_and_summary_on_stderr(good_dir: Path, tiny_model_dir: Path) -> None:
    result = _run("classify", str(good_dir), "--model", str(tiny_model_dir), "--workers", "1")
    assert result.exit_code == EXIT_OK, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["path"] for r in rows] == [str(good_dir / "a.mp4"), str(good_dir / "sub" / "b.AVI")]
    assert {r["status"] for r in rows} == {"ok"}
    assert "2 videos" in result.stderr and "2 ok" in result.stderr
    assert "vmae:" not in result.stdout


def test_jsonl_stdout_parses_line_by_line(mixed_dir: Path, tiny_model_dir: Path) -> None:
    result = _run(
        "classify",
        str(mixed_dir),
        "-m",
        str(tiny_model_dir),
        "--format",
        "jsonl",
        "-k",
        "3",
        "--workers",
        "0",
    )
    assert result.exit_code == EXIT_SOME_FAILED
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["status"] for r in rows) == ["not_video", "ok"]
    ok = next(r for r in rows if r["status"] == "ok")
    assert len(ok["top_k"]) == 3
    assert len(ok["frame_indices"]) == 8


def test_output_file_format_from_extension(
    good_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "res.jsonl"
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), "-o", str(out), "-q")
    assert result.exit_code == EXIT_OK
    assert result.stdout == ""
    assert result.stderr == ""  # --quiet
    assert len([json.loads(x) for x in out.read_text().splitlines()]) == 2
    out_csv = tmp_path / "res.csv"
    result = _run(
        "classify", str(good_dir), "-m", str(tiny_model_dir), "-o", str(out_csv), "-k", "2"
    )
    import pandas as pd

    df = pd.read_csv(out_csv)  # the UTF-8 BOM for spreadsheets is understood by pandas
    assert list(df.columns[:9]) == [
        "path",
        "status",
        "error",
        "label",
        "score",
        "label_1",
        "score_1",
        "label_2",
        "score_2",
    ]
    assert len(df) == 2


def test_partial_failure_exit_code(mixed_dir: Path, tiny_model_dir: Path) -> None:
    result = _run("classify", str(mixed_dir), "-m", str(tiny_model_dir))
    assert result.exit_code == EXIT_SOME_FAILED == 3
    assert "1 not_video" in result.stderr


def test_model_not_loadable_is_one_line_exit_1(good_dir: Path, tmp_path: Path) -> None:
    result = _run("classify", str(good_dir), "--model", str(tmp_path / "missing-model"))
    assert result.exit_code == EXIT_FATAL
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_offline_hub_id_says_how_to_pass_a_local_copy(
    good_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _run("classify", str(good_dir), "--model", "nobody/uncached-model")
    assert result.exit_code == EXIT_FATAL
    assert "--model DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_not_writable_is_fatal(good_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "out.csv"
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), "-o", str(out))
    assert result.exit_code == EXIT_FATAL
    assert "cannot write" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["classify", "/definitely/not/here"],
        ["classify", ".", "-o", "out.xlsx"],
        ["classify", ".", "--top-k", "0"],
        ["classify", ".", "--format", "xml"],
        ["classify"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""


def test_empty_folder_is_not_an_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run("classify", str(tmp_path), "-m", str(tiny_model_dir))
    assert result.exit_code == EXIT_OK
    assert result.stdout.splitlines()[0].startswith("path,status,error,label,score")
    assert "none found" in result.stderr


def test_inspect_saves_what_the_model_sees(
    test_videos, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    from tools.videogen import pyav_indices

    npz, sheet = tmp_path / "x.npz", tmp_path / "x.png"
    video = test_videos["h264_bframes"]
    result = _run(
        "inspect", str(video), "-m", str(tiny_model_dir), "--npz", str(npz), "--sheet", str(sheet)
    )
    assert result.exit_code == EXIT_OK, result.stderr
    assert "decoder: opencv" in result.stdout
    n = len(pyav_indices(video))
    assert f"frames decoded: {n}" in result.stdout
    data = np.load(npz)
    assert data["pixel_values"].dtype == np.float32
    assert data["pixel_values"].shape == (1, 8, 3, 64, 64)
    assert data["frame_indices"].tolist() == [int((i + 0.5) * n / 8) for i in range(8)]
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_bad_file_says_why(bad_files, tiny_model_dir: Path) -> None:
    result = _run("inspect", str(bad_files["text"]), "-m", str(tiny_model_dir))
    assert result.exit_code == EXIT_SOME_FAILED
    assert "not_video" in result.stderr
