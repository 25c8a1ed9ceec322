"""vmae_cli.run: one run as a library call (inputs, resume, output file, counts, report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import read_rows

import vmae_cli
from vmae_cli import Classifier, ClassifyOptions, RunHooks, StopRequest, run
from vmae_cli.discovery import InputNotFoundError, as_inputs
from vmae_cli.runner import RunOptions, RunReport
from vmae_cli.writers import OutputMismatchError


@pytest.fixture()
def videos(tmp_path: Path, test_videos, bad_files) -> Path:
    root = tmp_path / "Holiday 2024"
    (root / "sub").mkdir(parents=True)
    for name in ("h264", "vp9", "mjpeg"):
        shutil.copy(test_videos[name], root / test_videos[name].name)
    shutil.copy(bad_files["random_bytes"], root / "sub" / "broken.mp4")
    return root


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_run_then_resume_skips_every_video_and_doubles_none(
    ext: str, videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"labels{ext}"
    first = run([str(videos)], output=str(out), model=str(tiny_model_dir), workers=1)
    assert (first.videos, first.ok, first.failed, first.skipped) == (4, 3, 1, 0)
    assert first.by_status == {"ok": 3, "not_video": 1}
    assert first.stopped_by is None and first.found == 4
    again = vmae_cli.run([str(videos)], output=str(out), model=str(tiny_model_dir), resume=True)
    assert again.skipped == 4 and again.videos == 0
    paths = [r["path"] for r in read_rows(out)]
    assert len(paths) == len(set(paths)) == 4
    facts = again.to_json(exit_code=0)
    assert (facts["skipped"], facts["videos"], facts["exit_code"]) == (4, 0, 0)


def test_resume_with_nothing_left_does_not_load_the_weights(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "labels.csv"
    run(videos, out, model=str(tiny_model_dir), workers=1)

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded with nothing to classify")

    monkeypatch.setattr("vmae_cli.pipeline.load_model", no_loading)
    report = run(videos, out, model=str(tiny_model_dir), workers=1, resume=True)
    assert report.skipped == 4


def test_rows_reach_a_callback_without_an_output(videos: Path, tiny_model_dir: Path) -> None:
    seen = []
    report = run(videos, None, model=str(tiny_model_dir), hooks=RunHooks(on_row=seen.append))
    assert sorted(p.status for p in seen) == ["not_video", "ok", "ok", "ok"]
    assert report.videos == 4


@pytest.mark.parametrize("change", [{"protocol": "videomae"}, {"model": "other"}])
def test_resume_refuses_rows_of_another_model_or_protocol(
    change: dict, videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from vmae_cli.protocol import PROTOCOLS

    out = tmp_path / "labels.jsonl"
    run(videos, out, model=str(tiny_model_dir), workers=1)
    before = out.read_bytes()
    model = str(tiny_model_dir)
    if "model" in change:
        other = tmp_path / "other"
        shutil.copytree(tiny_model_dir, other)
        model = str(other)
    protocol = PROTOCOLS[change.get("protocol", "uniform")]
    with pytest.raises(OutputMismatchError, match="mix"):
        run(videos, out, model=model, protocol=protocol, resume=True)
    assert out.read_bytes() == before


def test_a_stop_before_the_work_is_reported_as_a_stop(videos: Path, tiny_model_dir: Path) -> None:
    stop = StopRequest()
    hooks = RunHooks(on_total=lambda n: stop.request("SIGINT"))
    report = run(videos, "-", model=str(tiny_model_dir), hooks=hooks, stop=stop)
    assert report.stopped_by == "SIGINT"
    line = report.summary_line()
    assert line.startswith("vmae: stopped by SIGINT after 0 of 4 videos")
    assert "none found" not in line
    assert "--resume" in line


def test_summary_line_of_a_stopped_run_names_what_and_how_far() -> None:
    report = RunReport("out.csv", "m", "uniform", found=20, by_status={"ok": 10})
    report.elapsed_s, report.stopped_by = 5.0, "SIGTERM"
    line = report.summary_line()
    assert "stopped by SIGTERM after 10 of 20 videos" in line
    assert "rerun the same command with --resume" in line
    assert "\n" not in line
    report.stopped_by = "SIGPIPE"
    assert "stopped (the output was closed)" in report.summary_line()
    done = RunReport("out.csv", "m", "uniform", found=2, by_status={"ok": 2}, elapsed_s=1.0)
    assert done.summary_line() == "vmae: 2 videos in 1.0 s (2.00 videos/s): 2 ok"


def test_a_string_is_one_input_not_its_characters(videos: Path, loaded_tiny) -> None:
    clf = Classifier(loaded_tiny)
    preds = list(clf.classify(str(videos), ClassifyOptions(workers=0)))
    assert len(preds) == 4
    assert all(p.path.startswith(str(videos)) for p in preds)
    assert len(list(clf.classify(videos, ClassifyOptions(workers=0)))) == 4  # a Path
    assert as_inputs("a/b") == ["a/b"]
    assert as_inputs([Path("x"), "y"]) == ["x", "y"]
    for bad in (42, [1, 2], b"videos"):
        with pytest.raises(TypeError):
            as_inputs(bad)


def test_missing_inputs_raise_before_any_work(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, loaded_tiny
) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(InputNotFoundError, match="nope"):
        Classifier(loaded_tiny).classify([missing, str(videos)])  # raised by the call itself
    with pytest.raises(InputNotFoundError):
        vmae_cli.classify_paths([missing], model=str(tiny_model_dir))
    with pytest.raises(InputNotFoundError):
        run([missing], tmp_path / "out.csv", model=str(tiny_model_dir))
    assert not (tmp_path / "out.csv").exists()
    # A file list without a walk gives the missing file its row instead.
    rows = list(Classifier(loaded_tiny).classify_files([missing], ClassifyOptions(workers=0)))
    assert [r.status for r in rows] == ["not_found"]


def test_top_k_is_clamped_to_the_number_of_labels(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    warnings: list[str] = []
    out = tmp_path / "labels.csv"
    run(
        videos, out, model=str(tiny_model_dir), top_k=50, hooks=RunHooks(on_warning=warnings.append)
    )
    header = read_rows(out)[0].keys()
    assert "label_10" in header and "label_11" not in header
    assert any("10 labels" in w for w in warnings)


def test_options_from_keywords_and_unknown_ones() -> None:
    opts = RunOptions.of(model="m", top_k=3, workers=2, resume=True)
    assert (opts.model, opts.resume, opts.classify.top_k, opts.classify.workers) == (
        "m",
        True,
        3,
        2,
    )
    assert opts.classify.timeout_s == 600.0  # a run never waits for ever on one file
    with pytest.raises(TypeError, match="colour"):
        RunOptions.of(colour="red")


def test_a_fresh_run_says_how_many_rows_it_replaces(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    run(videos, out, model=str(tiny_model_dir))
    warnings: list[str] = []
    report = run(videos, out, model=str(tiny_model_dir), hooks=RunHooks(on_warning=warnings.append))
    assert report.replaced == 4
    assert any("replacing the 4 rows" in w and "--resume" in w for w in warnings)
