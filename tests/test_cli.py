"""The CLI through typer.testing.CliRunner: stdout holds data only, messages go to stderr."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import read_rows
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, app
from vmae_cli.formats import neutralize_formula

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


# ---------------------------------------------------------------------------------------
# Issue 9: what a new user hit
# ---------------------------------------------------------------------------------------


#: A full stop after a space, where a default eaten as markup used to be ("Output format .").
STRAY_FULL_STOP = re.compile(r" \.(\s|$)")


def _help(*command: str, columns: int = 200) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0
    return result.stdout


def _options(command_name: str) -> list:
    import typer.main

    command = typer.main.get_command(app).commands[command_name]  # type: ignore[attr-defined]
    return [p for p in command.params if p.param_type_name == "option" and p.name != "help"]


@pytest.mark.parametrize("command_name", ["classify", "inspect"])
def test_help_shows_every_option_and_every_default(command_name: str) -> None:
    text = _help(command_name)
    options = _options(command_name)
    for option in options:
        assert option.opts[0] in text, option.opts[0]
    # Every option with a value (or an on/off pair) and a default, or a word on where its
    # default comes from, shows it: rich ate "[default: ...]" written into help text.
    with_default = [
        o
        for o in options
        if (not o.is_flag or o.secondary_opts)
        and (o.default is not None or isinstance(o.show_default, str))
    ]
    assert text.count("[default:") == len(with_default)
    assert not STRAY_FULL_STOP.search(text)


def test_help_groups_options_in_panels_at_80_columns() -> None:
    text = _help("classify", columns=80)
    for panel in ("Inputs and outputs", "Model", "Sampling", "Speed", "Cron and reliability"):
        assert f"\n{panel}:\n" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not STRAY_FULL_STOP.search(text)


GROUP: Any = typer.main.get_command(app)
#: `vmae` itself, then each of its commands: every help page there is.
HELP_PAGES = [(), *((name,) for name in GROUP.commands)]


def _params(*command: str) -> list:
    return [p for p in (GROUP.commands[command[0]] if command else GROUP).params if p.name]


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(c) or "vmae")
def test_help_in_a_pipe_is_plain_text_within_80_columns(command: tuple[str, ...]) -> None:
    """Item 17: no box drawing, no escapes, no '…', no Typer type such as `<bool>` for a flag
    or `<list[str]>` for INPUTS (a range such as 0.0<=x<=1.0 is not one)."""
    text = _help(*command, columns=80)
    assert not re.search("[\x1b\u2500-\u257f…]", text)
    assert not re.search(r"<\w[^<>]*>", text)
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("columns", [80, 50])
@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(c) or "vmae")
def test_help_keeps_every_word_whole(command: tuple[str, ...], columns: int) -> None:
    """Item 17: every flag, every word of every help text (`'vmae-cli[ray]'`, not `'vmae-cli'`)
    and the choices and defaults are whole in the page; lines break at spaces only."""
    from vmae_cli.model import DEFAULT_MODEL, DTYPE_CHOICES

    text = _help(*command, columns=columns)
    words = set(text.split())
    for param in _params(*command):
        if param.param_type_name == "option":
            for flag in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"(?<![\w-]){flag}(?![\w-])", text), flag
        assert set((param.help or "").split()) <= words, param.name
    if command == ("classify",):
        assert "pip install 'vmae-cli[ray]'" in " ".join(text.split())
        assert "vmae-cli[openvino]" in words
        assert f"[default: {DEFAULT_MODEL}]" in " ".join(text.split())
        assert DEFAULT_MODEL in text  # on one line
        assert f"--dtype {'|'.join(DTYPE_CHOICES)}" in text


def test_usage_lines_name_arguments_alike() -> None:
    """Item 17: Click's convention for every command (VIDEO required, [INPUTS]... optional),
    not Typer's `{video}`; the Arguments section names them the same way."""
    usage = {name: _help(name).splitlines()[0] for name in ("classify", "inspect", "summarize")}
    assert usage == {
        "classify": "Usage: vmae classify [OPTIONS] [INPUTS]...",
        "inspect": "Usage: vmae inspect [OPTIONS] VIDEO",
        "summarize": "Usage: vmae summarize [OPTIONS] RESULTS...",
    }
    assert re.search(r"^  VIDEO +The video to look at\.", _help("inspect"), re.M)
    assert re.search(r"^  INPUTS\.\.\. +Video files", _help("classify"), re.M)


def test_the_command_list_gives_each_command_its_whole_summary_line() -> None:
    """Item 17: `vmae --help` at 80 columns lists each command with the first paragraph of
    its help, on one line, neither cut ('...') nor broken where the docstring's line ends."""
    text = _help(columns=80)
    for name, command in GROUP.commands.items():
        summary = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
        assert summary.endswith(".") and not summary.endswith("..."), name
        assert re.search(rf"^  {name} +{re.escape(summary)}$", text, re.M), name


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    """`vmae ARGS` as its console script runs it (stderr not a terminal): (code, out, err)."""
    from vmae_cli.cli import main

    monkeypatch.setattr(sys, "argv", ["vmae", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_vmae_alone_shows_its_help_on_stderr(monkeypatch, capsys) -> None:
    """Item 17: no command is a usage error (exit 2) whose message is the help, whole; not an
    empty `vmae: error: ` line."""
    code, out, err = _main(monkeypatch, capsys)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("Usage: ") and "\nCommands:\n" in err and "vmae: error" not in err


def _choices() -> list[tuple[str, str, tuple[str, ...]]]:
    from vmae_cli.embeddings import EMBEDDING_DTYPES
    from vmae_cli.formats import FORMATS
    from vmae_cli.model import BACKEND_CHOICES, DTYPE_CHOICES
    from vmae_cli.protocol import PROTOCOLS, SAMPLING_CHOICES
    from vmae_cli.runner import ENGINES

    return [
        ("classify", "--format", tuple(FORMATS)),
        ("classify", "--dtype", DTYPE_CHOICES),
        ("classify", "--backend", BACKEND_CHOICES),
        ("classify", "--engine", tuple(ENGINES)),
        ("classify", "--embeddings-dtype", tuple(EMBEDDING_DTYPES)),
        ("classify", "--protocol", tuple(PROTOCOLS)),
        ("classify", "--sampling", tuple(SAMPLING_CHOICES)),
        ("inspect", "--protocol", tuple(PROTOCOLS)),
        ("inspect", "--sampling", tuple(SAMPLING_CHOICES)),
        ("summarize", "--format", ("table", "csv", "jsonl")),
    ]


@pytest.mark.parametrize(("command", "flag", "choices"), _choices())
def test_a_bad_choice_is_one_line_naming_the_option_and_the_choices(
    command: str, flag: str, choices: tuple[str, ...], monkeypatch, capsys
) -> None:
    """Item 21: `--format xml` says what vmae takes, in vmae's words, not pydantic's
    "Value error, 'xml' is not one of 'csv', 'jsonl', 'parquet'."."""
    code, out, err = _main(monkeypatch, capsys, command, "x", flag, "xml")
    assert (code, out) == (EXIT_USAGE, "")
    (line,) = err.splitlines()
    assert line.startswith(f"vmae: error: vmae {command}: Invalid value for '{flag}'")
    assert line.endswith(f": 'xml' is not one of {', '.join(choices)}")


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["--dtype", "fp16"], "float32"),
        (["--device", "gpu"], "cuda:N"),
        (["--crops", "2"], "1 or 3"),
        (["--format", "xml"], "jsonl"),
        (["--protocol", "paper"], "videomae"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_choices(
    args: list[str], choices: str, good_dir: Path
) -> None:
    result = runner.invoke(app, ["classify", str(good_dir), *args])
    assert result.exit_code == EXIT_USAGE
    assert choices in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_output_names_and_formats(good_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    clash = _run("classify", str(good_dir), "-o", str(tmp_path / "x.csv"), "--format", "jsonl")
    assert clash.exit_code == EXIT_USAGE
    assert "contradicts" in clash.stderr
    assert not (tmp_path / "x.csv").exists()
    json_name = _run("classify", str(good_dir), "-o", str(tmp_path / "out.json"))
    assert json_name.exit_code == EXIT_USAGE
    assert ".jsonl" in json_name.stderr
    # -o /dev/stdout is stdout: CSV by default, like no -o at all.
    cmd = [sys.executable, "-m", "vmae_cli.cli", "classify", str(good_dir)]
    cmd += ["-m", str(tiny_model_dir), "--workers", "1", "-o", "/dev/stdout"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("path,status,error,label,score")
    assert len(proc.stdout.splitlines()) == 3


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_closed_stdout_ends_every_format_the_same_way(
    fmt: str, good_dir: Path, tiny_model_dir: Path
) -> None:
    import subprocess
    import sys

    cmd = f"{sys.executable} -m vmae_cli.cli classify {good_dir} -m {tiny_model_dir} -f {fmt}"
    proc = subprocess.run(
        ["bash", "-c", f"{cmd} --workers 1 | true; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert "stopped (the output was closed) after" in proc.stderr
    assert "none found" not in proc.stderr


def test_stderr_lines_are_never_wrapped(good_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "a-rather-long-name-for-an-output-file-that-people-do-use.csv"
    _run("classify", str(good_dir), "-m", str(tiny_model_dir), "-o", str(out))
    args = ("classify", str(good_dir), "-m", str(tiny_model_dir), "-o", str(out), "--overwrite")
    result = _run(*args)
    lines = result.stderr.splitlines()
    assert len(lines) == 2  # the "replacing" warning and the summary, each on one line
    assert all(line.startswith("vmae:") for line in lines)
    assert "replacing the 2 rows" in lines[0] and len(lines[0]) > 80


def test_output_paths_are_checked_before_the_work(
    good_dir: Path, tiny_model_dir: Path, tmp_path: Path, test_videos
) -> None:
    missing = tmp_path / "missing" / "s.json"
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), "--summary", str(missing))
    assert result.exit_code == EXIT_FATAL
    assert "cannot write" in result.stderr
    assert result.stdout == ""  # refused before a single row
    for option in ("--sheet", "--npz"):
        result = _run(
            "inspect", str(test_videos["h264"]), "-m", str(tiny_model_dir), option, str(missing)
        )
        assert result.exit_code == EXIT_FATAL
        assert result.stdout == ""


def test_slow_or_pointless_settings_get_one_warning_line(
    good_dir: Path, tiny_model_dir: Path
) -> None:
    from vmae_cli.pipeline import default_workers

    cores = default_workers()
    with warnings.catch_warnings(record=True) as python_warnings:
        warnings.simplefilter("always")
        result = _run(
            "classify", str(good_dir), "-m", str(tiny_model_dir), "--device", "cpu", "--dtype",
            "float16", "--workers", str(cores + 1), "--top-k", "50", "--backend", "torch",
        )  # fmt: skip
    assert not [w for w in python_warnings if "DataLoader" in str(w.message)]
    assert result.exit_code == EXIT_OK, result.stderr
    said = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(said) == 3
    assert "float16" in said[0] and "slower" in said[0]
    assert f"{cores + 1} decoding workers on {cores} cores" in said[1]
    assert "10 labels" in said[2]
    assert "DataLoader" not in result.stderr
    header = result.stdout.splitlines()[0].split(",")
    assert "label_10" in header and "label_11" not in header


def test_inspect_says_the_status_on_stdout(bad_files, tiny_model_dir: Path) -> None:
    result = _run("inspect", str(bad_files["text"]), "-m", str(tiny_model_dir))
    assert result.exit_code == EXIT_SOME_FAILED
    assert "status: not_video" in result.stdout
    assert "error: " in result.stdout


def test_jsonl_mtime_is_exact_and_readable_as_seconds(good_dir: Path, tiny_model_dir: Path) -> None:
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), "-f", "jsonl")
    row = json.loads(result.stdout.splitlines()[0])
    assert isinstance(row["mtime_ns"], int)
    assert row["mtime"] == pytest.approx(row["mtime_ns"] / 1e9, abs=1e-6)


def test_progress_eta_counts_the_start_up() -> None:
    import time

    from rich.console import Console

    from vmae_cli.cli.progress import Progress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Progress(console, enabled=True) as progress:
        progress.set_status("loading the model")
        assert progress._bar.tasks[0].description == "loading the model"
        progress.set_total(20)
        progress._started = time.perf_counter() - 10.0  # 10 s of start-up before any video
        progress.advance()
        progress.advance()
        task = progress._bar.tasks[0]
        assert task.description == "classifying"
        # 2 videos in 10 s: 18 left take 90 s, not the 1 s a rate of the last seconds says.
        assert task.fields["eta"] in ("ETA 0:01:29", "ETA 0:01:30")


def test_progress_counts_videos_done_while_the_inputs_are_listed() -> None:
    """Issue 25: rows come while the walk goes on, before the total is known."""
    from rich.console import Console

    from vmae_cli.cli.progress import Progress

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with Progress(console, enabled=True) as progress:
        progress.advance()
        task = progress._bar.tasks[0]
        assert (task.completed, task.total, task.fields["eta"]) == (1, None, "still listing")
        progress.set_total(3)
        progress.advance()
        assert task.total == 3 and task.fields["eta"].startswith("ETA ")


# ---------------------------------------------------------------------------------------
# Issue 12: --sampling keyframes
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyframe_dir(tmp_path_factory, test_videos, bad_files) -> Path:
    """A 60-frame MP4 with a keyframe every 10 frames, an AVI (no keyframe sampling) and a
    text file named like a video."""
    from tools.videogen import write_video

    d = tmp_path_factory.mktemp("keyframes")
    write_video(d / "gops.mp4", codec="h264", width=128, height=96, num_frames=60, gop=10)
    shutil.copy(test_videos["mjpeg"], d / "b.avi")
    shutil.copy(bad_files["text"], d / "broken.mp4")
    return d


def _classify_jsonl(folder: Path, model: Path, out: Path, *extra: str):
    return _run(
        "classify", str(folder), "-m", str(model), "-o", str(out), "--workers", "0", "-q", *extra
    )


def test_sampling_keyframes_rows_name_the_decoder_and_the_protocol(
    keyframe_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from conftest import read_rows

    exact_out, keyed_out = tmp_path / "exact.jsonl", tmp_path / "keyed.jsonl"
    exact = _classify_jsonl(keyframe_dir, tiny_model_dir, exact_out)
    keyed = _classify_jsonl(keyframe_dir, tiny_model_dir, keyed_out, "--sampling", "keyframes")
    assert exact.exit_code == keyed.exit_code == EXIT_SOME_FAILED, keyed.stderr
    exact_rows = {Path(r["path"]).name: r for r in read_rows(exact_out)}
    rows = {Path(r["path"]).name: r for r in read_rows(keyed_out)}
    assert {r["protocol"] for r in rows.values()} == {"uniform+keyframes"}
    assert {r["protocol"] for r in exact_rows.values()} == {"uniform"}

    mp4 = rows["gops.mp4"]
    assert (mp4["status"], mp4["decoder"], mp4["notes"]) == ("ok", "pyav-keyframes", "")
    # 8 positions over 60 frames (3, 11, 18, ...) -> the nearest of keyframes 0, 10, ..., 50.
    assert mp4["frame_indices"] == [0, 10, 20, 30, 30, 40, 50, 50]
    assert exact_rows["gops.mp4"]["frame_indices"] == [3, 11, 18, 26, 33, 41, 48, 56]

    avi = rows["b.avi"]
    assert avi["status"] == "ok"
    assert avi["decoder"] == exact_rows["b.avi"]["decoder"]
    assert avi["frame_indices"] == exact_rows["b.avi"]["frame_indices"]
    assert avi["notes"].startswith("keyframe sampling not possible (container avi)")

    # A bad file gets the same row either way.
    for key in ("status", "error", "decoder"):
        assert rows["broken.mp4"][key] == exact_rows["broken.mp4"][key]


@pytest.mark.parametrize(("first", "then"), [("keyframes", "exact"), ("exact", "keyframes")])
def test_resume_refuses_to_mix_sampling_modes(
    first: str, then: str, keyframe_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    result = _classify_jsonl(keyframe_dir, tiny_model_dir, out, "--sampling", first)
    assert result.exit_code == EXIT_SOME_FAILED, result.stderr
    before = out.read_bytes()
    result = _classify_jsonl(keyframe_dir, tiny_model_dir, out, "--sampling", then, "--resume")
    assert result.exit_code == EXIT_USAGE
    assert "uniform+keyframes" in result.stderr and "mix" in result.stderr
    assert out.read_bytes() == before
    again = _classify_jsonl(keyframe_dir, tiny_model_dir, out, "--sampling", first, "--resume")
    assert again.exit_code == EXIT_OK, again.stderr  # the same mode resumes (nothing to do)


def test_inspect_honours_sampling(keyframe_dir: Path, tiny_model_dir: Path) -> None:
    video = str(keyframe_dir / "gops.mp4")
    result = _run("inspect", video, "-m", str(tiny_model_dir), "--sampling", "keyframes")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "decoder: pyav-keyframes" in result.stdout
    assert "protocol: uniform+keyframes" in result.stdout
    assert "frame indices: 0 10 20 30 30 40 50 50" in result.stdout


def test_sampling_is_part_of_the_protocol_and_of_run_options() -> None:
    from vmae_cli.protocol import PROTOCOLS, Protocol, ProtocolError
    from vmae_cli.runner import RunOptions

    assert Protocol(sampling="keyframes").name == "uniform+keyframes"
    videomae = RunOptions.of(protocol=PROTOCOLS["videomae"], sampling="keyframes")
    assert videomae.classify.protocol.name == "videomae+keyframes"
    assert Protocol(clips=2, sampling="keyframes").name == "clips=2,crops=1,stride=0+keyframes"
    assert RunOptions.of().classify.protocol.name == "uniform"
    with pytest.raises(ProtocolError, match="exact, keyframes"):
        Protocol(sampling="nearest")
    result = _run("classify", ".", "--sampling", "nearest")
    assert result.exit_code == EXIT_USAGE
    assert "keyframes" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--window", "3x"], "is not a length"),
        (["--hop", "0s"], "must be positive"),
        (["--window", "2.5f"], "whole"),
        (["--segments", "--protocol", "videomae"], "one clip per window"),
        (["--segments", "--clips", "2"], "one clip per window"),
        (["--segments", "--sampling", "keyframes"], "keyframes cannot sample windows"),
    ],
)
def test_segment_options_that_cannot_work_exit_2(
    args: list[str], message: str, good_dir: Path, tiny_model_dir: Path
) -> None:
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.output


def test_segments_out_implies_segments_and_names_the_windows(
    good_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / "v.jsonl", tmp_path / "w.csv"
    args = ["--window", "0.4s", "--hop", "0.2s", "-o", str(out), "--segments-out", str(windows)]
    result = _run("classify", str(good_dir), "-m", str(tiny_model_dir), *args)
    assert result.exit_code == EXIT_OK, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["protocol"] for r in rows} == {"segments(window=0.4s,hop=0.2s)"}
    with windows.open(encoding="utf-8-sig", newline="") as f:
        window_rows = list(csv.DictReader(f))
    assert sum(r["windows"] for r in rows) == len(window_rows) > len(rows)
    # 25 fps: 10-frame windows every 5 frames.
    first = window_rows[0]
    assert (first["start_frame"], first["end_frame"]) == ("0", "9")
    assert "windows" in result.output  # the summary line counts them


def test_labels_prints_the_models_labels_as_csv(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = _run("labels", "--model", str(tiny_model_dir))
    assert result.exit_code == EXIT_OK, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    config = json.loads((tiny_model_dir / "config.json").read_text())
    # As a spreadsheet should see them: "=SUM(A1)" escaped, as in classify's rows.
    assert [(int(r["index"]), r["label"]) for r in rows] == sorted(
        (int(k), neutralize_formula(v)) for k, v in config["id2label"].items()
    )
    missing = _run("labels", "--model", str(tmp_path / "nowhere"))
    assert missing.exit_code == EXIT_FATAL and "does not exist" in missing.output


def test_files_from_stdin_with_nul_separated_names(
    tmp_path: Path, test_videos, tiny_model_dir: Path
) -> None:
    odd = tmp_path / "new\nline.mp4"
    shutil.copy(test_videos["h264"], odd)
    listing = b"\0".join([os.fsencode(odd), os.fsencode(tmp_path / "gone.mp4"), b""])
    result = runner.invoke(
        app,
        ["classify", "--files-from", "-", "--null", "-m", str(tiny_model_dir), "-f", "jsonl"],
        input=listing,
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    rows = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows[str(odd)]["status"] == "ok"
    assert rows[str(tmp_path / "gone.mp4")]["status"] == "not_found"
    nothing = _run("classify", "-m", str(tiny_model_dir))
    assert nothing.exit_code == EXIT_USAGE and "--files-from" in nothing.output


@pytest.mark.slow
def test_find_print0_piped_into_files_from_null_classifies_a_name_with_a_newline(
    tmp_path: Path, test_videos, tiny_model_dir: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_videos["h264"], folder / "new\nline.mp4")
    shutil.copy(test_videos["vp9"], folder / "plain.webm")
    vmae = [sys.executable, "-m", "vmae_cli.cli"]
    cmd = f"find {shlex.quote(str(folder))} -type f -print0 | {shlex.join(vmae)} classify "
    cmd += f"--files-from - --null -m {shlex.quote(str(tiny_model_dir))} -f jsonl -q"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(
        [str(folder / "new\nline.mp4"), str(folder / "plain.webm")]
    )
    assert {r["status"] for r in rows} == {"ok"}


def test_curation_options_refuse_bad_values_with_exit_2(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    video_dir = tmp_path / "none"
    video_dir.mkdir()
    label_map = tmp_path / "groups.csv"
    label_map.write_text("label,group\ndancing,moving\nmoonwalk,moving\n")
    model = ("-m", str(tiny_model_dir))
    result = _run("classify", str(video_dir), *model, "--label-map", str(label_map))
    assert result.exit_code == EXIT_USAGE
    assert "'moonwalk'" in result.stderr and "vmae labels" in result.stderr
    result = _run("classify", str(video_dir), *model, "--label-map", str(tmp_path / "no.csv"))
    assert result.exit_code == EXIT_USAGE and "cannot read the label map" in result.stderr
    assert _run("classify", str(video_dir), *model, "--min-score", "1.5").exit_code == EXIT_USAGE
    result = _run("classify", str(video_dir), *model, "--embeddings", str(tmp_path / "e.npy"))
    assert result.exit_code == EXIT_USAGE and ".parquet" in result.stderr
    result = _run(
        "classify",
        str(video_dir),
        *model,
        "-o",
        str(tmp_path / "e.parquet"),
        "--embeddings",
        str(tmp_path / "e.parquet"),
    )
    assert result.exit_code == EXIT_USAGE


@pytest.mark.slow
def test_embeddings_match_hugging_face_on_the_same_pixel_values(
    tmp_path: Path, test_videos, bad_files, tiny_model_dir: Path
) -> None:
    """tools/embeddings_check.py: vmae's vectors against Hugging Face's pooled vector, one
    per ok video (and window), none for a failed file."""
    from tools.embeddings_check import main as embeddings_check

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("h264", "vp9", "rotated", "mpegts", "edit_list"):
        shutil.copy(test_videos[name], folder / test_videos[name].name)
    shutil.copy(bad_files["random_bytes"], folder / "broken.mp4")
    args = [str(folder), "--model", str(tiny_model_dir), "--out-dir", str(tmp_path / "out")]
    assert embeddings_check([*args, "--embeddings-dtype", "float32"]) == 0
    assert embeddings_check([*args, "--segments", "--window", "8f", "--hop", "6f"]) == 0


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_vmae_and_what_makes_its_rows(flag: str) -> None:
    """Issue 24, 19: the versions a bug report needs, on stdout, without importing torch."""
    from importlib.metadata import version

    import vmae_cli

    result = CliRunner().invoke(app, [flag], catch_exceptions=False)
    assert result.exit_code == EXIT_OK
    lines = result.stdout.splitlines()
    assert lines[0] == f"vmae-cli {vmae_cli.__version__}"
    assert f"torch {version('torch')}" in lines
    assert f"transformers {version('transformers')}" in lines
    assert {line.split()[0] for line in lines[1:]} >= {"openvino", "ray", "av"}


def test_every_csv_vmae_writes_escapes_formulas(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 24, 7: `vmae labels` and `summarize --format csv` follow classify's rule (and its
    --no-escape-formulas)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["id2label"]["0"] = "=cmd|' /C calc'!A0"
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (model / "config.json").write_text(json.dumps(config))
    shown = _run("labels", "--model", str(model))
    assert shown.exit_code == EXIT_OK, shown.output
    assert next(csv.DictReader(io.StringIO(shown.stdout)))["label"] == "'=cmd|' /C calc'!A0"
    # Started from that output, a label map names the model's own label.
    groups = tmp_path / "groups.csv"
    groups.write_text(
        "label,group\n"
        + "".join(f"{line.split(',', 1)[1]},g\n" for line in shown.stdout.splitlines()[1:])
    )
    from vmae_cli.scoring import read_label_map

    assert "=cmd|' /C calc'!A0" in read_label_map(groups).groups
    raw = _run("labels", "--model", str(model), "--no-escape-formulas")
    assert next(csv.DictReader(io.StringIO(raw.stdout)))["label"] == "=cmd|' /C calc'!A0"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"path": f"/v/{i}.mp4", "status": "ok", "label": "=SUM(1)", "score": 0.5})
            + "\n"
            for i in range(2)
        )
    )
    table = _run("summarize", str(rows), "--by", "label", "-f", "csv")
    assert table.exit_code == EXIT_OK, table.output
    assert next(csv.DictReader(io.StringIO(table.stdout)))["label"] == "'=SUM(1)"
    plain = _run("summarize", str(rows), "--by", "label", "-f", "csv", "--no-escape-formulas")
    assert next(csv.DictReader(io.StringIO(plain.stdout)))["label"] == "=SUM(1)"


def test_labels_that_no_file_can_hold_are_written_safely(
    tiny_model_dir: Path, tmp_path: Path, good_dir: Path
) -> None:
    """Issue 24, 9: a lone surrogate or a NUL in a label neither aborts a run nor reaches a
    file raw: the label is made safe once, where the model's labels are read."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["id2label"] = {str(i): f"label {i}" for i in range(len(config["id2label"]))}
    config["id2label"]["0"], config["id2label"]["1"] = "bad\udc80name", "nul\x00here"
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (model / "config.json").write_text(json.dumps(config))  # JSON escapes both
    shown = _run("labels", "--model", str(model))
    assert shown.exit_code == EXIT_OK, shown.output
    assert shown.stdout.splitlines()[1:3] == ["0,bad\\udc80name", "1,nul\\x00here"]
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"rows.{fmt}"
        args = ["classify", str(good_dir), "-m", str(model), "--top-k", "10", "-o", str(out)]
        result = _run(*args, "--workers", "1")
        assert result.exit_code == EXIT_OK, result.output
        data = out.read_bytes()
        assert b"\x00" not in data
        rows = read_rows(out)
        labels = {r[f"label_{i}"] for r in rows for i in range(1, 11)} if fmt == "csv" else set()
        labels |= {t["label"] for r in rows if fmt == "jsonl" for t in r["top_k"]}
        assert {"bad\\udc80name", "nul\\x00here"} <= labels
        again = _run(*args, "--workers", "1", "--resume")
        assert again.exit_code == EXIT_OK, again.output


def test_a_listed_name_holding_a_nul_gets_its_own_row(
    tmp_path: Path, test_videos, tiny_model_dir: Path
) -> None:
    """Issue 24, 16: one bad line of a --files-from list is one not_found row, not the end of
    the run; the row's path cell holds no raw NUL."""
    listing = tmp_path / "list.txt"
    listing.write_bytes(os.fsencode(test_videos["h264"]) + b"\nbad\x00name.mp4\n")
    out = tmp_path / "rows.csv"
    result = _run(
        "classify", "--files-from", str(listing), "-m", str(tiny_model_dir), "-o", str(out)
    )
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert b"\x00" not in out.read_bytes()
    rows = {r["path"]: r for r in read_rows(out)}
    bad = rows[f"{tmp_path}/bad\\x00name.mp4"]
    assert (bad["status"], bad["error"]) == (
        "not_found",
        "no file can be named so: the path holds a NUL byte",
    )
    assert rows[str(test_videos["h264"])]["status"] == "ok"


def test_a_fresh_run_never_empties_an_output_that_holds_rows(
    good_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 1: without --resume or --overwrite, a run onto an output (rows, window rows,
    vectors) that holds something exits 2 before touching anything."""
    rows, windows, vectors = tmp_path / "rows.csv", tmp_path / "w.jsonl", tmp_path / "e.parquet"
    base = ("classify", str(good_dir), "-m", str(tiny_model_dir), "--workers", "1")
    outputs = ("-o", str(rows), "--segments-out", str(windows), "--embeddings", str(vectors))
    assert _run(*base, *outputs).exit_code == EXIT_OK
    before = {p: p.read_bytes() for p in (rows, windows, vectors)}
    refused = _run(*base, *outputs)
    assert refused.exit_code == EXIT_USAGE
    assert refused.stderr == (
        f"vmae: {rows} holds 2 rows: add --resume to continue it, or --overwrite to replace it\n"
    )
    for single in (("--segments-out", str(windows)), ("--embeddings", str(vectors))):
        other = _run(*base, "-o", str(tmp_path / "new.csv"), *single)
        assert other.exit_code == EXIT_USAGE and "--overwrite to replace it" in other.stderr
        assert not (tmp_path / "new.csv").exists()
    assert {p: p.read_bytes() for p in before} == before  # untouched
    replaced = _run(*base, *outputs, "--overwrite")
    assert replaced.exit_code == EXIT_OK and "replacing the 2 rows" in replaced.stderr
    assert len(read_rows(rows)) == 2
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")  # nothing to lose: no flag needed
    assert _run(*base, "-o", str(empty)).exit_code == EXIT_OK


def test_a_file_of_the_users_is_never_taken_for_an_empty_output(
    good_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Found by re-running the README (issue 24): `vmae labels > labels.csv`, then a run
    with `-o labels.csv`, replaced the label list without a word, as it did any file vmae
    did not write. It is refused, with or without --resume; --overwrite replaces it."""
    base = ("classify", str(good_dir), "-m", str(tiny_model_dir), "--workers", "1")
    kept = {
        "labels.csv": b"index,label\r\n0,abseiling\r\n",
        "notes.jsonl": b"hello world",
        "mine.csv": "\ufeffmy,precious\n1,2\n".encode(),
    }
    for name, data in kept.items():
        path = tmp_path / name
        path.write_bytes(data)
        for resume in ((), ("--resume",)):
            refused = _run(*base, "-o", str(path), *resume)
            assert refused.exit_code == EXIT_USAGE, (name, resume, refused.stderr)
            assert refused.stderr == (
                f"vmae: {path} holds data that vmae did not write (not rows of a run): write "
                "to another file, or add --overwrite to replace it\n"
            )
            assert path.read_bytes() == data
    replaced = _run(*base, "-o", str(tmp_path / "labels.csv"), "--overwrite")
    assert replaced.exit_code == EXIT_OK
    assert len(read_rows(tmp_path / "labels.csv")) == 2


def test_inspect_of_a_folder_points_to_classify(tmp_path: Path) -> None:
    """Issue 24, 21: `vmae inspect DIR` is a usage error that says what to use."""
    result = _run("inspect", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "is a folder: vmae inspect looks at one video (vmae classify takes folders)" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["classify", "--top-k", "0", "x"], "Invalid value for '--top-k' / '-k'"),
        (["classify", "--bogus"], "No such option: --bogus"),
        (["inspect"], "Missing argument"),
    ],
)
def test_a_usage_error_is_one_line_when_stderr_is_not_a_terminal(
    args: list[str], said: str
) -> None:
    """Issue 24, 18: what a cron log gets: `vmae: error: ...` on one line, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "vmae_cli.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_USAGE and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmae: error: vmae ") and said in lines[0]


def test_counts_in_messages_agree_with_their_number() -> None:
    """Found by re-running the README (issue 24): "1 windows", "frames of 1 labels"."""
    from vmae_cli.cli.common import counted
    from vmae_cli.cli.progress import Progress

    assert [counted(n, "window") for n in (0, 1, 2)] == ["0 windows", "1 window", "2 windows"]
    progress = Progress(None, enabled=False)
    progress.add_windows(1)
    assert progress._description() == "classifying, 1 window"
