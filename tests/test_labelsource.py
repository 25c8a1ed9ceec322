"""Where a run's labels come from: text labels parsed and read, their identity and a head's,
the ``labels_from`` column, and resume refusing another source of labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_rows
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_USAGE, app
from vmae_cli.formats import LABELS_FROM
from vmae_cli.labelsource import (
    HEAD_PREFIX,
    TEXT_PREFIX,
    LabelsOptionError,
    TextLabel,
    check_sources,
    given_labels,
    head_id,
    labels_from,
    parse_text_labels,
    read_labels_file,
    text_labels_id,
)
from vmae_cli.model import ModelRef, ModelSpec, check_label_source
from vmae_cli.output import OutputMismatchError
from vmae_cli.preprocessing import parse_preprocess_config
from vmae_cli.runner import RunReport, _refuse_other_model
from vmae_cli.sinks import Layout

runner = CliRunner()


def test_labels_given_as_one_string_are_split_on_commas_and_stripped() -> None:
    labels = parse_text_labels(" cooking, skateboarding ,,a dog playing ")
    assert labels == (
        TextLabel("cooking", "cooking"),
        TextLabel("skateboarding", "skateboarding"),
        TextLabel("a dog playing", "a dog playing"),
    )


@pytest.mark.parametrize("text", ["", "cooking", " , cooking ,"])
def test_fewer_than_two_labels_are_refused(text: str) -> None:
    with pytest.raises(LabelsOptionError, match="at least 2 labels"):
        parse_text_labels(text)


def test_a_repeated_label_is_refused() -> None:
    with pytest.raises(LabelsOptionError, match="'goal' twice"):
        parse_text_labels("goal,corner,goal")


def test_a_labels_file_has_a_label_a_line_an_optional_prompt_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes(
        "\ufeff# my labels\n\ngoal\ta football goal being scored\n  empty corridor  \nçà\n".encode()
    )
    assert read_labels_file(f) == (
        TextLabel("goal", "a football goal being scored"),
        TextLabel("empty corridor", "empty corridor"),
        TextLabel("çà", "çà"),
    )


def test_an_unreadable_labels_file_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(LabelsOptionError, match="cannot read the labels file"):
        read_labels_file(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"goal\n\xff\xfe\x00corner\n")
    with pytest.raises(LabelsOptionError, match="not UTF-8"):
        read_labels_file(binary)


def test_the_text_labels_identity_changes_with_a_label_a_prompt_or_the_order() -> None:
    base = parse_text_labels("goal,corner")
    ids = {
        text_labels_id(base),
        text_labels_id(parse_text_labels("goal,penalty")),
        text_labels_id(parse_text_labels("corner,goal")),
        text_labels_id((TextLabel("goal", "a goal"), TextLabel("corner", "corner"))),
    }
    assert len(ids) == 4
    assert text_labels_id(base) == text_labels_id(parse_text_labels("goal, corner"))
    assert all(i.startswith(TEXT_PREFIX) and len(i) == len(TEXT_PREFIX) + 16 for i in ids)


def test_a_heads_identity_is_a_hash_of_its_files(tmp_path: Path) -> None:
    head = tmp_path / "head"
    head.mkdir()
    (head / "head.json").write_text('{"labels": ["a", "b"]}')
    (head / "head.safetensors").write_bytes(b"weights")
    first = head_id(head)
    assert first.startswith(HEAD_PREFIX)
    assert head_id(head) == first
    (head / "head.safetensors").write_bytes(b"other weights")
    assert head_id(head) != first
    with pytest.raises(LabelsOptionError, match="cannot read the head folder"):
        head_id(tmp_path / "no-head")


def test_labels_from_names_the_source_of_the_labels(tmp_path: Path) -> None:
    text = parse_text_labels("goal,corner")
    assert labels_from(ModelRef("m")) == ""
    assert labels_from(ModelRef("m", text_labels=text)) == text_labels_id(text)
    assert given_labels(ModelRef("m", text_labels=text)) == ["goal", "corner"]
    assert given_labels(ModelRef("m")) is None
    with pytest.raises(LabelsOptionError, match="use one of them"):
        check_sources(ModelRef("m", text_labels=text, head=str(tmp_path)))


def _spec(model_type: str) -> ModelSpec:
    return ModelSpec("m", 8, parse_preprocess_config({}, "videomae"), True, model_type=model_type)


def test_text_labels_go_with_a_zero_shot_model_only() -> None:
    text = parse_text_labels("goal,corner")
    check_label_source(_spec("xclip"), ModelRef("m", text_labels=text))
    with pytest.raises(LabelsOptionError, match="for a zero-shot model"):
        check_label_source(_spec("videomae"), ModelRef("m", text_labels=text))
    with pytest.raises(LabelsOptionError, match="give it text_labels"):
        check_label_source(_spec("xclip"), ModelRef("m"))
    check_label_source(_spec("videomae"), ModelRef("m"))
    assert _spec("xclip").head_problem() is None


def test_a_labels_from_column_follows_model_revision_only_when_labels_are_given() -> None:
    plain = Layout(top_k=1, added=(), segmented=False, model="m", protocol="uniform")
    assert LABELS_FROM not in plain.video_rows.tail
    given = Layout(
        top_k=1, added=(), segmented=True, model="m", protocol="uniform", labels_from="text:x"
    )
    for names in (given.video_rows.tail, given.video_rows.keys):
        assert names[names.index("model_revision") + 1] == LABELS_FROM
    assert LABELS_FROM not in given.window_rows.keys


def test_resume_refuses_rows_of_another_source_of_labels() -> None:
    report = RunReport("out.csv", "m", "uniform")
    report.labels_from = "text:sha256:1"
    _refuse_other_model({("m", "uniform", "", "text:sha256:1")}, report, "out.csv")
    for other in ("", "text:sha256:2", "head:sha256:3"):
        with pytest.raises(OutputMismatchError, match="two sets of labels"):
            _refuse_other_model({("m", "uniform", "", other)}, report, "out.csv")
    report.labels_from = ""
    with pytest.raises(OutputMismatchError, match="the model's own head"):
        _refuse_other_model({("m", "uniform", "", "text:sha256:1")}, report, "out.csv")


def test_labels_given_both_ways_or_too_few_are_usage_errors(
    tiny_model_dir: Path, test_videos: dict[str, Path], tmp_path: Path
) -> None:
    """(Text labels with a classifier: tests/test_zeroshot.py.)"""
    out = tmp_path / "out.csv"
    base = ["classify", str(test_videos["h264"]), "--model", str(tiny_model_dir), "-o", str(out)]
    labels = tmp_path / "labels.txt"
    labels.write_text("goal\ncorner\n")
    result = runner.invoke(app, [*base, "--labels", "a,b", "--labels-file", str(labels)])
    assert result.exit_code == EXIT_USAGE and "not both" in result.output
    result = runner.invoke(app, [*base, "--labels", "goal"])
    assert result.exit_code == EXIT_USAGE and "at least 2 labels" in result.output


def test_rows_of_the_checkpoints_own_labels_have_no_labels_from_column(
    tiny_model_dir: Path, test_videos: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    args = ["classify", str(test_videos["h264"]), "--model", str(tiny_model_dir), "-o", str(out)]
    result = runner.invoke(app, [*args, "--backend", "torch"])
    assert result.exit_code == 0, result.output
    (row,) = read_rows(out)
    assert LABELS_FROM not in row
