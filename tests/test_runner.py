"""vmae_cli.run: one run as a library call (inputs, resume, output file, counts, report)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import read_rows, read_vectors

import vmae_cli
from vmae_cli import Classifier, ClassifyOptions, RunHooks, StopRequest, run
from vmae_cli.discovery import InputNotFoundError, as_inputs
from vmae_cli.model import ModelRef
from vmae_cli.output import OutputMismatchError
from vmae_cli.protocol import Protocol
from vmae_cli.runner import RunOptions, RunReport
from vmae_cli.segments import Segments, Span

#: Model loads that fail in one process in the leak test.
FAILED_LOADS = 3


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
    facts = again.to_dict(exit_code=0)
    assert (facts["skipped"], facts["videos"], facts["exit_code"]) == (4, 0, 0)
    assert json.loads(again.to_json(exit_code=0)) == facts


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
        config = json.loads((other / "config.json").read_text())
        config["id2label"]["0"] = "another label"  # other files: another model
        (other / "config.json").write_text(json.dumps(config))
        model = str(other)
    protocol = PROTOCOLS[change.get("protocol", "uniform")]
    with pytest.raises(OutputMismatchError, match="mix"):
        run(videos, out, model=model, protocol=protocol, resume=True)
    assert out.read_bytes() == before


def test_resume_takes_the_same_model_folder_however_it_is_named(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by re-running the README (issue 24): a cron job's relative --model, run from
    another folder, was refused as "another model" though its files (its sha256 revision)
    are the same."""
    model = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "labels.csv"
    monkeypatch.chdir(tmp_path)
    run(videos, out, model="models/tiny", workers=1)
    monkeypatch.chdir(videos)
    again = run(videos, out, model="../models/tiny", workers=1, resume=True)
    assert (again.skipped, again.videos) == (4, 0)


def test_a_stop_before_the_work_is_reported_as_a_stop(videos: Path, tiny_model_dir: Path) -> None:
    """Stopped while the inputs are listed: no video was given to the classifier yet (the
    walk streams since issue 25, so its end no longer comes before the work)."""
    stop = StopRequest()
    hooks = RunHooks(
        on_status=lambda s: stop.request("SIGINT") if s == "listing the videos" else None
    )
    report = run(videos, "-", model=str(tiny_model_dir), hooks=hooks, stop=stop)
    assert report.stopped_by == "SIGINT" and report.found is None
    line = report.summary_line()
    assert line.startswith("vmae: stopped by SIGINT after 0 videos (while listing the inputs)")
    assert "none found" not in line
    assert "--" not in line  # how to finish is the caller's to say
    assert not report.resumable  # its rows went to stdout


def test_a_stop_when_the_walk_ends_is_finished_by_a_resume(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Stopped as the walk ends (``on_total``): the videos already given to the classifier
    may get their rows, the others none; a resume does exactly those."""
    out = tmp_path / "labels.csv"
    stop = StopRequest()
    hooks = RunHooks(on_total=lambda n: stop.request("SIGINT"))
    report = run(videos, out, model=str(tiny_model_dir), hooks=hooks, stop=stop, workers=1)
    assert report.stopped_by == "SIGINT" and report.found == 4 and report.resumable
    assert report.summary_line().startswith(f"vmae: stopped by SIGINT after {report.videos} of 4")
    again = run(videos, out, model=str(tiny_model_dir), resume=True, workers=1)
    assert (again.skipped, again.videos) == (report.videos, 4 - report.videos)
    paths = [r["path"] for r in read_rows(out)]
    assert len(paths) == len(set(paths)) == 4


def test_summary_line_of_a_stopped_run_names_what_and_how_far() -> None:
    report = RunReport("out.csv", "m", "uniform", found=20, by_status={"ok": 10})
    report.elapsed_s, report.stopped_by = 5.0, "SIGTERM"
    line = report.summary_line()
    assert "stopped by SIGTERM after 10 of 20 videos" in line
    assert report.resumable and "--resume" not in line
    assert "\n" not in line
    report.stopped_by = "SIGPIPE"
    assert "stopped (the output was closed)" in report.summary_line()
    done = RunReport("out.csv", "m", "uniform", found=2, by_status={"ok": 2}, elapsed_s=1.0)
    assert done.summary_line() == "vmae: 2 videos in 1.0 s (2.00 videos/s): 2 ok"
    assert not done.resumable


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
    opts = RunOptions.of(model="m", device="cpu", top_k=3, workers=2, resume=True)
    assert (opts.model, opts.resume, opts.classify.top_k, opts.classify.workers) == (
        ModelRef("m", device="cpu"),
        True,
        3,
        2,
    )
    flat = opts.flat()
    assert (flat["model"], flat["device"], flat["backend"]) == ("m", "cpu", "auto")
    assert RunOptions.of(**flat) == opts
    assert RunOptions(model="m").model == ModelRef("m")  # a name is made a ref
    ref = ModelRef("m", dtype="float32")
    assert RunOptions.of(model=ref, device="cpu").model == ModelRef("m", None, "cpu", "float32")
    assert opts.classify.timeout_s == 600.0  # a run never waits for ever on one file
    with pytest.raises(TypeError, match="colour"):
        RunOptions.of(colour="red")


@pytest.mark.slow
def test_a_fresh_run_says_how_many_rows_it_replaces(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    run(videos, out, model=str(tiny_model_dir))
    warnings: list[str] = []
    hooks = RunHooks(on_warning=warnings.append)
    report = run(videos, out, model=str(tiny_model_dir), overwrite=True, hooks=hooks)
    assert report.replaced == 4
    assert any("replacing the 4 rows" in w and "resume=True keeps them" in w for w in warnings)


# ---------------------------------------------------------------------------------------
# --segments: a second output of window rows, kept consistent with the video rows
# ---------------------------------------------------------------------------------------

WINDOWS_8_5 = Segments(Span(8, "f"), Span(5, "f"))


def _segmented(videos: Path, out: Path, windows: Path | str, model: Path, **options):
    return run(
        videos,
        out,
        model=str(model),
        workers=1,
        protocol=Protocol(segments=WINDOWS_8_5),
        segments_output=str(windows),
        **options,
    )


def _check_windows(out: Path, windows: Path) -> dict[str, list[dict]]:
    """Every video row's windows are in the window rows exactly once, in order."""
    rows = read_rows(out)
    found: dict[str, list[dict]] = {}
    for w in read_rows(windows):
        found.setdefault(w["path"], []).append(w)
    assert set(found) <= {r["path"] for r in rows}  # no orphans
    for r in rows:
        mine = found.get(r["path"], [])
        assert int(r["windows"]) == len(mine), r["path"]
        assert [int(w["window"]) for w in mine] == list(range(len(mine))), r["path"]
    return found


def test_the_readmes_time_per_label_recipe_counts_each_second_once(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, 22: the README's pandas recipe, run as written on overlapping windows
    (8 frames, hop 5, and a last window ending on the last frame), sums to each clip's
    duration; it summed overlaps twice (3.72 s for a 3.0 s clip)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    recipe = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "per label" in b)
    _segmented(videos, tmp_path / "videos.csv", tmp_path / "windows.csv", tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(recipe, scope)
    per_video = scope["seconds"].groupby(level=0).sum().to_dict()
    rows = read_rows(tmp_path / "videos.csv")
    durations = {r["path"]: float(r["duration_s"]) for r in rows if r["status"] == "ok"}
    assert len(per_video) == 3
    assert per_video == pytest.approx({p: durations[p] for p in per_video})


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_segments_write_one_row_per_video_and_its_windows(
    ext: str, videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / f"videos{ext}", tmp_path / f"windows{ext}"
    report = _segmented(videos, out, windows, tiny_model_dir, top_k=2)
    assert report.by_status == {"ok": 3, "not_video": 1}
    assert report.protocol == "segments(window=8f,hop=5f)"
    found = _check_windows(out, windows)
    assert report.windows == sum(map(len, found.values())) == 15  # 24-frame clips: 5 each
    rows = {r["path"]: r for r in read_rows(out)}
    for path, mine in found.items():
        assert rows[path]["protocol"] == "segments(window=8f,hop=5f)"
        assert rows[path]["timeline"].startswith("0.0-")
        starts = [int(w["start_frame"]) for w in mine]
        assert starts == [0, 5, 10, 15, 16]  # the last window ends on the last frame
        assert int(mine[-1]["end_frame"]) == 23
    broken = next(r for r in rows.values() if r["status"] != "ok")
    assert int(broken["windows"]) == 0


@pytest.mark.slow
def test_a_video_row_is_the_mean_of_its_windows(videos: Path, tiny_model_dir: Path) -> None:
    clf = Classifier(str(tiny_model_dir), device="cpu", dtype="float32", backend="torch")
    opts = ClassifyOptions(top_k=10, workers=0, protocol=Protocol(segments=WINDOWS_8_5, crops=3))
    for p in clf.classify(videos, opts):
        if not p.ok:
            assert p.windows == []
            continue
        assert p.protocol == "segments(window=8f,hop=5f)+crops=3"
        assert len(p.windows) == 5 and all(w.ok for w in p.windows)
        for ls in p.top_k:
            per_window = [next(x.score for x in w.top_k if x.label == ls.label) for w in p.windows]
            assert ls.score == pytest.approx(sum(per_window) / 5, abs=1e-5)


def test_resume_keeps_windows_only_with_their_video_row(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / "videos.csv", tmp_path / "windows.jsonl"
    _segmented(videos, out, windows, tiny_model_dir)
    rows = read_rows(out)
    ok = [r["path"] for r in rows if r["status"] == "ok"]
    # A kill between a video's window rows and its row: the last row is missing; a kill in
    # the middle of a window row: a torn line; and window rows of another video lost.
    lines = out.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if ok[0].encode() in line)
    out.write_bytes(b"".join(lines[:cut] + lines[cut + 1 :]))
    kept = [w for w in windows.read_text().splitlines() if ok[1] not in w]
    windows.write_text("\n".join(kept) + '\n{"path": "torn')
    report = _segmented(videos, out, windows, tiny_model_dir, resume=True)
    assert report.skipped == 2 and report.by_status == {"ok": 2}
    _check_windows(out, windows)
    again = _segmented(videos, out, windows, tiny_model_dir, resume=True)
    assert again.skipped == 4 and again.videos == 0


def test_window_rows_and_video_rows_share_stdout_only_as_jsonl(
    videos: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(OutputMismatchError, match="cannot share stdout"):
        _segmented(videos, "-", "-", tiny_model_dir)
    capsys.readouterr()
    _segmented(videos, "-", "-", tiny_model_dir, format="jsonl")
    import json

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = ["window" if "window" in x else "video" for x in lines]
    assert kinds.count("video") == 4 and kinds.count("window") == 15
    # Each video's windows come just before its row.
    for i, line in enumerate(lines):
        if "window" in line:
            nxt = next(x for x in lines[i:] if "window" not in x)
            assert nxt["path"] == line["path"]


def test_window_rows_need_segments_and_another_file(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(OutputMismatchError, match="needs segments"):
        run(videos, tmp_path / "a.csv", model=str(tiny_model_dir), segments_output="w.csv")
    with pytest.raises(OutputMismatchError, match="another file"):
        _segmented(videos, tmp_path / "a.csv", tmp_path / "a.csv", tiny_model_dir)


def test_segments_true_takes_the_models_clip_as_the_window(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / "v.jsonl", tmp_path / "w.jsonl"
    report = run(videos, out, model=str(tiny_model_dir), segments=True, segments_output=windows)
    # T = 8 frames every 4th: 32 frames, longer than the 24-frame clips: one window each,
    # its last frame repeated, as the row says.
    assert report.protocol == "segments(window=32f,hop=32f)"
    for row in read_rows(out):
        if row["status"] == "ok":
            assert row["windows"] == 1
            assert "short video: 24 frames for a window of 32, frames repeated" in row["notes"]
    first = read_rows(windows)[0]
    assert first["frame_indices"] == [0, 4, 8, 12, 16, 20, 23, 23]


@pytest.mark.slow
def test_a_segmented_video_that_stops_making_windows_times_out(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from vmae_cli import views

    real = views.decode_windows

    def stalls(path, *args, **kwargs):
        for i, item in enumerate(real(path, *args, **kwargs)):
            if i == 2 and "mjpeg" in path:
                time.sleep(60)  # forked workers inherit this patch
            yield item

    monkeypatch.setattr(views, "decode_windows", stalls)
    out, windows = tmp_path / "v.csv", tmp_path / "w.csv"
    report = _segmented(videos, out, windows, tiny_model_dir, timeout_s=2)
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    stuck = rows.pop("mjpeg.avi")
    assert (stuck["status"], stuck["error"], stuck["windows"]) == (
        "timeout",
        "no window decoded in 2 s",
        "0",
    )
    assert report.by_status == {"ok": 2, "timeout": 1, "not_video": 1}
    _check_windows(out, windows)


# ---------------------------------------------------------------------------------------
# Curation: embeddings, label groups, thresholds
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embeddings_come_for_ok_videos_and_a_resume_adds_those_missing(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, emb = tmp_path / "labels.csv", tmp_path / "emb.parquet"
    run(videos, out, model=str(tiny_model_dir), workers=1)
    # Rows without vectors: the ok videos are redone (the failed one is not), once.
    report = run(
        videos, out, model=str(tiny_model_dir), workers=1, resume=True, embeddings_output=emb
    )
    assert (report.videos, report.skipped, report.embeddings) == (3, 1, 3)
    rows = read_rows(out)
    assert len(rows) == 4
    ok = sorted(r["path"] for r in rows if r["status"] == "ok")
    assert sorted(read_vectors(emb)) == [(p, None) for p in ok]
    assert not (tmp_path / "emb.parquet.partial").exists()
    # Everything there: nothing redone, the vectors unchanged.
    before = emb.read_bytes()
    again = run(
        videos, out, model=str(tiny_model_dir), workers=1, resume=True, embeddings_output=emb
    )
    assert (again.videos, again.skipped, again.embeddings) == (0, 4, 3)
    assert emb.read_bytes() == before
    # A fresh run (asked to overwrite) replaces the file.
    fresh = run(
        videos, out, model=str(tiny_model_dir), workers=1, embeddings_output=emb, overwrite=True
    )
    assert fresh.embeddings == 3 and len(read_vectors(emb)) == 3


def test_embeddings_are_a_parquet_file_of_their_own(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from vmae_cli.runner import RunOptionsError

    with pytest.raises(OutputMismatchError, match=r"name it .*emb\.parquet"):
        run(
            videos,
            tmp_path / "a.csv",
            model=str(tiny_model_dir),
            embeddings_output=tmp_path / "emb.npy",
        )
    same = tmp_path / "x.parquet"
    with pytest.raises(RunOptionsError, match="embeddings dtype"):
        run(
            videos, None, model=str(tiny_model_dir), embeddings_output=same, embeddings_dtype="int8"
        )
    assert not same.exists()


def test_group_scores_sum_their_members_and_min_score_empties_labels(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tiny_model import TINY_LABELS

    label_map = tmp_path / "groups.csv"
    label_map.write_text(
        "label,group\ndancing,moving\nrunning,moving\nswimming,moving\ntyping,desk\n"
    )
    out = tmp_path / "rows.jsonl"
    report = run(
        videos,
        out,
        model=str(tiny_model_dir),
        workers=1,
        top_k=len(TINY_LABELS),
        label_map=str(label_map),
        min_score=0.99,
        segments=Segments(Span(8, "f"), Span(8, "f")),
        segments_output=tmp_path / "windows.jsonl",
    )
    assert report.ok == 3
    members = {"moving": {"dancing", "running", "swimming"}, "desk": {"typing"}}
    members["other"] = set(TINY_LABELS) - members["moving"] - members["desk"]
    rows = [r for r in read_rows(out) if r["status"] == "ok"]
    windows = read_rows(tmp_path / "windows.jsonl")
    assert windows and rows
    for r in [*rows, *windows]:
        scores = {ls["label"]: ls["score"] for ls in r["top_k"]}
        assert len(scores) == len(TINY_LABELS)
        sums = {g: sum(scores[label] for label in labels) for g, labels in members.items()}
        assert r["group"] == max(sums, key=sums.get)
        assert r["group_score"] == pytest.approx(sums[r["group"]], abs=1e-5)
        # A random-weight model is never 99 % sure: no label, but the scores stay.
        assert (r["label"], r["low_confidence"]) == ("", True)
        assert r["score"] == r["top_k"][0]["score"]
    failed = next(r for r in read_rows(out) if r["status"] != "ok")
    assert (failed["group"], failed["group_score"], failed["low_confidence"]) == ("", None, None)


def test_a_label_map_naming_an_unknown_label_and_a_bad_threshold_stop_before_work(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from vmae_cli.runner import RunOptionsError
    from vmae_cli.scoring import LabelMapError

    label_map = tmp_path / "groups.csv"
    label_map.write_text("label,group\ndancing,moving\nbreakdancing,moving\n")
    out = tmp_path / "rows.csv"
    with pytest.raises(LabelMapError, match="'breakdancing'"):
        run(videos, out, model=str(tiny_model_dir), label_map=str(label_map))
    assert not out.exists() or out.read_bytes() == b""
    with pytest.raises(RunOptionsError, match="within 0..1"):
        run(videos, out, model=str(tiny_model_dir), min_score=1.5)


@pytest.mark.slow
def test_a_multi_label_model_lists_its_labels_over_the_threshold(
    videos: Path, tmp_path: Path
) -> None:
    from tiny_model import make_tiny_model

    model = make_tiny_model(tmp_path / "multi", multi_label=True)
    out = tmp_path / "rows.csv"
    report = run(videos, out, model=str(model), workers=1, top_k=10, min_score=0.45)
    assert report.ok == 3
    for r in read_rows(out):
        if r["status"] != "ok":
            assert r["labels"] == r["low_confidence"] == ""
            continue
        # A cell of its own is formula-escaped ('=SUM(A1)); inside the list it is not first.
        scores = {r[f"label_{i}"].removeprefix("'"): float(r[f"score_{i}"]) for i in range(1, 11)}
        assert sum(scores.values()) > 1.5  # sigmoids, not a softmax
        above = [label for label, s in scores.items() if s >= 0.45]
        assert r["labels"].removeprefix("'") == "; ".join(above)
        assert r["low_confidence"] == str(not above)
        assert r["label"].removeprefix("'") == (above[0] if above else "")


@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_a_resume_over_part_of_the_videos_keeps_the_others_rows(
    ext: str, videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A cron job that resumes onto one output from a folder whose videos come and go keeps
    the rows, window rows and vectors of the videos it no longer sees: only the videos it
    redoes lose their old rows (issue 23's sinks dropped every video not walked again)."""
    out, windows, vectors = tmp_path / f"rows{ext}", tmp_path / f"w{ext}", tmp_path / "e.parquet"
    _segmented(videos, out, windows, tiny_model_dir, embeddings_output=vectors)
    before_rows, before_windows = read_rows(out), read_rows(windows)
    before_vectors = read_vectors(vectors)
    assert len(before_rows) == 4 and before_vectors
    one = videos / "sub" / "broken.mp4"
    again = _segmented(
        [one],
        out,
        windows,
        tiny_model_dir,
        embeddings_output=vectors,
        resume=True,
        retry_failed=True,
    )
    assert again.videos == 1  # the failed video redone, the others not walked
    after = {r["path"]: r for r in read_rows(out)}
    assert sorted(after) == sorted(r["path"] for r in before_rows)
    assert len(read_rows(windows)) == len(before_windows)
    assert read_vectors(vectors).keys() == before_vectors.keys()


def test_a_run_that_cannot_start_leaves_no_output_behind(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 2: a model that cannot be loaded (or a device that is not there) creates no
    output, window rows, embeddings or journal file, and leaves an existing one as it was."""
    from vmae_cli.model import DeviceError, ModelLoadError

    out = tmp_path / "out"
    out.mkdir()
    outputs = {
        "segments": True,
        "segments_output": out / "windows.parquet",
        "embeddings_output": out / "emb.parquet",
    }
    with pytest.raises(ModelLoadError):
        run(videos, out / "rows.csv", model=str(tmp_path / "no-such-model"), **outputs)
    assert list(out.iterdir()) == []
    if not __import__("torch").cuda.is_available():
        with pytest.raises(DeviceError):
            run(videos, out / "rows.jsonl", model=str(tiny_model_dir), device="cuda", **outputs)
        assert list(out.iterdir()) == []
    (out / "rows.csv").write_text("kept\n")
    with pytest.raises(ModelLoadError):
        run(videos, out / "rows.csv", model=str(tmp_path / "no-such-model"), overwrite=True)
    assert [p.name for p in out.iterdir()] == ["rows.csv"]
    assert (out / "rows.csv").read_text() == "kept\n"


def test_scores_that_are_not_numbers_make_error_rows(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 3: an image_std of 0 makes NaN probabilities: never an ok row."""
    import json

    from vmae_cli.pipeline import NON_FINITE_ERROR

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "preprocessor_config.json").read_text())
    config["image_std"] = [0.0, 0.0, 0.0]
    (model / "preprocessor_config.json").write_text(json.dumps(config))
    for segments in (False, True):
        out = tmp_path / f"rows-{segments}.jsonl"
        report = run(videos, out, model=str(model), workers=1, segments=segments)
        assert report.by_status == {"error": 3, "not_video": 1}
        rows = [r for r in read_rows(out) if r["status"] == "error"]
        assert all(r["error"] == NON_FINITE_ERROR and r["score"] is None for r in rows)
        assert all(r["top_k"] == [] and r["label"] == "" for r in rows)


def test_a_folder_that_cannot_be_read_is_counted_not_hidden(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, 4: a subfolder the walk cannot list (root ignores permissions, so the
    refusal is made here) makes the run incomplete: counted, warned, exit code 3."""
    import os as real_os

    from vmae_cli import discovery
    from vmae_cli.cli.classify import _exit_code

    scandir = real_os.scandir

    def refuse(path):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", refuse)
    warned: list[str] = []
    report = run(
        videos,
        tmp_path / "rows.csv",
        model=str(tiny_model_dir),
        workers=1,
        hooks=RunHooks(on_warning=warned.append),
    )
    assert (report.by_status, report.unreadable_folders) == ({"ok": 3}, 1)
    assert report.to_dict()["unreadable_folders"] == 1
    assert "1 folder could not be read" in report.summary_line()
    assert any("cannot read" in w and "Permission denied" in w for w in warned)
    assert _exit_code(report) == 3


def test_symlinked_folders_are_counted_in_the_summary(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 21: a symlinked folder in a walked tree is not followed (a loop would not
    end, a folder linked twice would give two rows a video), and the summary says so; it is
    no failure (exit 0)."""
    from vmae_cli.cli.classify import _exit_code

    (videos / "sub" / "broken.mp4").unlink()
    (videos / "again").symlink_to(videos / "sub")
    (videos / "sub" / "up").symlink_to(videos)
    report = run(videos, tmp_path / "rows.csv", model=str(tiny_model_dir), workers=1)
    assert report.by_status == {"ok": 3}
    assert report.linked_folders == 2
    assert report.to_dict()["linked_folders"] == 2
    assert "2 symlinked folders not followed" in report.summary_line()
    assert _exit_code(report) == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_failed_model_loads_leak_no_pipe_or_thread(
    videos: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 14: a model whose weights fail to load after the decoding workers started
    left the task queue's pipe and feeder thread behind, per run, for as long as the caller
    kept the error (a notebook's last exception)."""
    bad = tmp_path / "bad-weights"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.safetensors").write_bytes(b"not safetensors")

    def fail() -> vmae_cli.VmaeError:
        with pytest.raises(vmae_cli.VmaeError, match="cannot load model") as caught:
            run(videos, None, model=str(bad), device="cpu", backend="torch", workers=1)
        return caught.value

    kept = [fail()]  # the first one also sets up what a process keeps (multiprocessing's heap)
    before = (_open_fds(), threading.active_count())
    kept += [fail() for _ in range(FAILED_LOADS)]
    # At most as many: a run's start drops the filesystems earlier tests' runs left
    # (remote.reset), which close their connections when they are collected, any time.
    after = (_open_fds(), threading.active_count())
    assert after[0] <= before[0] and after[1] <= before[1], (before, after)
    assert len(kept) == FAILED_LOADS + 1


# ---------------------------------------------------------------------------------------
# The walk streams (issue 25): rows while the walk goes on, redone videos after it
# ---------------------------------------------------------------------------------------


def _instrument_walk(monkeypatch: pytest.MonkeyPatch, events: list, pace_s: float = 0) -> None:
    """Record ``("walked", path)`` each time the walk yields a path, ``pace_s`` after the
    previous one (a slow file system)."""
    from vmae_cli import runner

    real = runner.iter_video_paths

    def walk(*args, **kwargs):
        for path in real(*args, **kwargs):
            time.sleep(pace_s)
            events.append(("walked", path))
            yield path

    monkeypatch.setattr(runner, "iter_video_paths", walk)


def _last(events: list, kind: str) -> int:
    return max(i for i, (k, _) in enumerate(events) if k == kind)


def _first(events: list, kind: str) -> int:
    return min(i for i, (k, _) in enumerate(events) if k == kind)


@pytest.fixture()
def eight_videos(tmp_path: Path, test_videos) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(8):
        os.link(test_videos["h264"], folder / f"v{i}.mp4")
    return folder


def _run_recorded(folder: Path, out: Path, model: Path, events: list) -> RunReport:
    hooks = RunHooks(
        on_row=lambda p: events.append(("row", p.path)),
        on_total=lambda n: events.append(("total", n)),
    )
    return run(folder, out, model=str(model), workers=1, hooks=hooks)


def test_the_first_row_is_written_before_the_walk_ends(
    eight_videos: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a walk slower than the run's walk-ahead (a path every 60 ms, as on a slow network
    mount), the first row is written while the walk goes on: the engine takes the paths as
    the walk finds them (issue 25), not once it has found them all."""
    from vmae_cli import runner

    assert runner.WALK_AHEAD_S < 0.06
    events: list = []
    _instrument_walk(monkeypatch, events, pace_s=0.06)
    out = tmp_path / "labels.csv"
    report = _run_recorded(eight_videos, out, tiny_model_dir, events)
    assert _first(events, "row") < _last(events, "walked")
    # The bar's total once the walk is done, before the last rows.
    assert events[_last(events, "walked") + 1 :].count(("total", 8)) == 1
    assert (report.found, report.videos, report.ok) == (8, 8, 8)
    paths = [r["path"] for r in read_rows(out)]
    assert sorted(paths) == sorted(str(eight_videos / f"v{i}.mp4") for i in range(8))


def test_a_quick_walk_ends_before_the_first_row(
    eight_videos: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk goes on for a while each time the engine takes a path: a walk quicker than
    that ends at once, so the progress bar has its total (and an ETA) from the first row,
    not from the last one."""
    events: list = []
    _instrument_walk(monkeypatch, events)
    _run_recorded(eight_videos, tmp_path / "labels.csv", tiny_model_dir, events)
    assert _last(events, "walked") < events.index(("total", 8)) < _first(events, "row")


def test_a_resume_gives_the_first_new_video_while_the_walk_goes_on(
    tmp_path: Path, test_videos, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walked videos are looked up in the output's rows a block at a time; on a slow
    walk a block is looked up before it is full, so the first new video after the done ones
    is classified while the walk goes on, not once a block of them is walked."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        os.link(test_videos["h264"], folder / f"v{i:02d}.mp4")
        if i == 3:
            run(folder, tmp_path / "labels.csv", model=str(tiny_model_dir), workers=1)
    events: list = []
    _instrument_walk(monkeypatch, events, pace_s=0.06)
    hooks = RunHooks(on_row=lambda p: events.append(("row", p.path)))
    report = run(
        folder,
        tmp_path / "labels.csv",
        model=str(tiny_model_dir),
        workers=1,
        resume=True,
        hooks=hooks,
    )
    assert (report.skipped, report.videos) == (4, 8)
    assert _first(events, "row") < _last(events, "walked")


def _a_resume_with_new_changed_and_failed_videos(videos: Path) -> tuple[Path, Path]:
    """After a first run: one video changed (its stamp), one new; the failed one stays."""
    changed = videos / "vp9.webm"
    now = time.time_ns()
    os.utime(changed, ns=(now, now + 5_000_000_000))
    new = videos / "sub" / "new.mp4"
    shutil.copy(videos / "h264.mp4", new)
    return changed, new


def test_a_resume_streams_new_videos_and_redoes_changed_ones_after_the_walk(
    videos: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmae_cli.sinks import Outputs

    out, windows, vectors = tmp_path / "v.csv", tmp_path / "w.jsonl", tmp_path / "e.parquet"
    _segmented(videos, out, windows, tiny_model_dir, embeddings_output=vectors)
    changed, new = _a_resume_with_new_changed_and_failed_videos(videos)
    broken = videos / "sub" / "broken.mp4"
    events: list = []
    _instrument_walk(monkeypatch, events)
    real_drop = Outputs.drop

    def drop(self, redone):
        events.append(("drop", sorted(redone)))
        real_drop(self, redone)

    monkeypatch.setattr(Outputs, "drop", drop)
    hooks = RunHooks(on_row=lambda p: events.append(("row", p.path)))
    again = _segmented(
        videos,
        out,
        windows,
        tiny_model_dir,
        embeddings_output=vectors,
        resume=True,
        retry_failed=True,
        hooks=hooks,
    )
    assert (again.found, again.skipped, again.videos) == (5, 2, 3)
    drops = [(i, e[1]) for i, e in enumerate(events) if e[0] == "drop"]
    # Once before the walk (what no video needs), once for the redone videos: after the walk
    # ended and the new video's row, before the first redone row.
    assert [d for _, d in drops] == [[], sorted([str(broken), str(changed)])]
    rows = [e[1] for e in events if e[0] == "row"]
    assert rows[0] == str(new) and sorted(rows[1:]) == sorted([str(broken), str(changed)])
    assert _last(events, "walked") < drops[1][0] < events.index(("row", rows[1]))
    # Each video once, with its windows and vectors once; the changed one's row is new.
    found = {r["path"]: r for r in read_rows(out)}
    assert len(found) == len(read_rows(out)) == 5
    assert found[str(changed)]["mtime_ns"] == str(changed.stat().st_mtime_ns)
    per_video = _check_windows(out, windows)
    vectors_held = read_vectors(vectors)
    ok = [p for p, r in found.items() if r["status"] == "ok"]
    assert set(vectors_held) == {(p, w) for p in ok for w in [None, *range(len(per_video[p]))]}


class _Killed(Exception):
    """Stands for a kill -9: the run ends where it is, its files as they are."""


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param("walk", marks=pytest.mark.slow),
        pytest.param("row1", marks=pytest.mark.slow),
        "drop",
        pytest.param("row2", marks=pytest.mark.slow),
        pytest.param("row3", marks=pytest.mark.slow),
    ],
)
def test_a_resume_ended_at_any_moment_then_resumed_gives_each_video_once(
    moment: str,
    videos: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resume that redoes videos, ended at each moment that matters (the walk's end, the
    new video's row written, the redone videos' old rows dropped, each redone row written),
    then resumed: every video once, its windows and vectors once, the changed one redone."""
    from vmae_cli.sinks import Outputs

    out, windows, vectors = tmp_path / "v.csv", tmp_path / "w.jsonl", tmp_path / "e.parquet"
    options = {"embeddings_output": vectors, "resume": True, "retry_failed": True}
    _segmented(videos, out, windows, tiny_model_dir, embeddings_output=vectors)
    changed, _ = _a_resume_with_new_changed_and_failed_videos(videos)
    with monkeypatch.context() as patch:
        if moment == "walk":
            from vmae_cli import runner

            real = runner.iter_video_paths

            def walk(*args, **kwargs):
                yield from real(*args, **kwargs)
                raise _Killed

            patch.setattr(runner, "iter_video_paths", walk)
        real_drop = Outputs.drop

        def drop(self, redone):
            real_drop(self, redone)
            if redone and moment == "drop":
                raise _Killed

        patch.setattr(Outputs, "drop", drop)
        written = []

        def row(p):
            written.append(p.path)
            if moment == f"row{len(written)}":
                raise _Killed

        with pytest.raises(_Killed):
            _segmented(videos, out, windows, tiny_model_dir, hooks=RunHooks(on_row=row), **options)
    _segmented(videos, out, windows, tiny_model_dir, **options)
    rows = read_rows(out)
    found = {r["path"]: r for r in rows}
    assert len(found) == len(rows) == 5
    assert found[str(changed)]["mtime_ns"] == str(changed.stat().st_mtime_ns)
    per_video = _check_windows(out, windows)
    ok = [p for p, r in found.items() if r["status"] == "ok"]
    assert len(ok) == 4
    assert set(read_vectors(vectors)) == {
        (p, w) for p in ok for w in [None, *range(len(per_video[p]))]
    }
