"""What `vmae classify` hands the library: its options as one RunOptions (run stubbed), and the
library's Python-speaking errors and report turned into the CLI's lines with flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_OK, EXIT_USAGE, app
from vmae_cli.cli.errors import flag_table, flagged
from vmae_cli.model import ModelRef
from vmae_cli.runner import RunOptionsError, RunReport
from vmae_cli.segments import Segments, Span

runner = CliRunner()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`vmae classify` with `vmae_cli.runner.run` (where the command looks it up) replaced by
    a stub that records its arguments and returns an empty report (or the report, or raises
    the error, that a test appends first as ``{"report": r}`` or ``{"raise": exc}``)."""
    seen: list[dict[str, Any]] = []

    def fake_run(inputs: Any, output: Any, **kwargs: Any) -> RunReport:
        pending = seen.pop() if seen and set(seen[-1]) <= {"raise", "report"} else {}
        if "raise" in pending:
            raise pending["raise"]
        seen.append({"inputs": inputs, "output": output, **kwargs})
        return pending.get("report") or RunReport(output, "m", "uniform", found=0)

    monkeypatch.setattr("vmae_cli.runner.run", fake_run)
    return seen


def test_classify_hands_run_one_options_value(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    summary = tmp_path / "run.json"
    args = (
        "classify a.mp4 folder -o out.jsonl -m some/model --revision v1 --device cpu "
        "--dtype float32 --backend torch --allow-untrained-head -k 3 --workers 2 --batch-size 4 "
        "--timeout 30 --crops 3 --window 2s --hop 1s --segments-out win.jsonl "
        "--embeddings emb.parquet --embeddings-dtype float32 --min-score 0.2 --resume "
        "--files-from list.txt --null --include *.mp4 --exclude x* --no-escape-formulas -q "
        f"--summary {summary}"
    ).split()
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.output
    (call,) = calls
    assert (call["inputs"], call["output"]) == (["a.mp4", "folder"], "out.jsonl")
    o = call["options"]
    assert o.model == ModelRef("some/model", "v1", "cpu", "float32", "torch", True)
    c = o.classify
    assert (c.top_k, c.workers, c.batch_size, c.timeout_s, c.min_score) == (3, 2, 4, 30.0, 0.2)
    assert (c.protocol.crops, c.protocol.clips, c.protocol.sampling) == (3, 1, "exact")
    assert c.protocol.segments == Segments(Span(2, "s"), Span(1, "s"))
    assert (o.segments_output, o.embeddings_output, o.embeddings_dtype) == (
        "win.jsonl",
        "emb.parquet",
        "float32",
    )
    assert (o.resume, o.retry_failed, o.format, o.engine, o.escape_formulas) == (
        True,
        False,
        None,
        "local",
        False,
    )
    assert (o.files_from, o.null, o.include, o.exclude) == ("list.txt", True, ("*.mp4",), ("x*",))
    assert o.ray.actors is None
    assert summary.is_file()  # written from the report: the stub's empty one


def test_defaults_are_the_library_defaults(calls: list[dict[str, Any]]) -> None:
    from vmae_cli.runner import RunOptions

    result = runner.invoke(app, ["classify", "v.mp4"], catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.output
    (call,) = calls
    assert call["output"] == "-"
    o, default = call["options"], RunOptions()
    assert o.model == default.model == ModelRef()
    assert (o.classify.top_k, o.classify.timeout_s) == (1, default.classify.timeout_s)
    assert o.classify.protocol == default.classify.protocol
    assert (o.format, o.resume, o.engine) == (None, False, "local")


def test_a_library_error_is_one_line_with_flags(calls: list[dict[str, Any]]) -> None:
    error = RunOptionsError(
        "min_score must be within 0..1, not 1.5", options=("min_score",), value=1.5
    )
    calls.append({"raise": error})
    result = runner.invoke(app, ["classify", "v.mp4"], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "vmae: --min-score must be within 0..1, not 1.5\n"


def test_a_stopped_run_is_told_how_to_finish(calls: list[dict[str, Any]]) -> None:
    stopped = RunReport("out.csv", "m", "uniform", found=4, stopped_by="SIGINT")
    calls.append({"report": stopped})
    result = runner.invoke(app, ["classify", "v.mp4", "-o", "out.csv"], catch_exceptions=False)
    assert "stopped by SIGINT after 0 of 4 videos" in result.stderr
    assert result.stderr.rstrip().endswith("; rerun the same command with --resume to finish")
    to_stdout = RunReport("-", "m", "uniform", found=4, stopped_by="SIGINT")
    calls.append({"report": to_stdout})
    result = runner.invoke(app, ["classify", "v.mp4"], catch_exceptions=False)
    assert result.stderr.rstrip().endswith(
        "write to a file (-o FILE) to be able to finish later with --resume"
    )


def test_the_flag_table_comes_from_the_options() -> None:
    table = flag_table()
    assert table["min_score"] == "--min-score"
    assert table["segments_output"] == "--segments-out"
    assert table["embeddings_output"] == "--embeddings"
    assert table["files_from"] == "--files-from"
    assert table["model"] == table["name"] == "--model"
    assert table["run_summary"] == "--summary"  # vmae report's option


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("min_score must be within 0..1", ["min_score"], "--min-score must be within 0..1"),
        (
            "actors=2 applies only with engine='ray'",
            None,
            "--actors 2 applies only with --engine ray",
        ),
        ("allow_untrained_head=True runs it", None, "--allow-untrained-head runs it"),
        ("pass model=DIR", ["model"], "pass --model DIR"),
        # One-word keywords only with a value: "model" is also a word.
        ("cannot load model 'x'", ["model"], "cannot load model 'x'"),
        ("a path /data/min_score/x", None, "a path /data/min_score/x"),
        ("`hf download m --local-dir DIR`", ["model"], "`hf download m --local-dir DIR`"),
    ],
)
def test_keywords_become_flags(text: str, keywords: list[str] | None, expected: str) -> None:
    assert flagged(text, keywords) == expected
