"""Zero-shot labels from text with X-CLIP (issue 27): the checkpoint read from its configs,
scores equal to Hugging Face's ``XCLIPProcessor`` + ``XCLIPModel`` on the frames vmae
decoded, its embeddings ``XCLIPModel``'s ``video_embeds``, every option of a run with it, and
the refusals (labels that do not fit the model, int8)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_rows, read_vectors
from tiny_model import TINY_IMAGE_PX, XCLIP_FRAMES, make_tiny_xclip
from typer.testing import CliRunner

from vmae_cli import run
from vmae_cli.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, app
from vmae_cli.labelsource import TextLabel, parse_text_labels
from vmae_cli.model import (
    DtypeOptionError,
    ModelLoadError,
    ModelRef,
    load_model,
    read_model_spec,
)
from vmae_cli.preprocessing import IMAGENET_DEFAULT_MEAN
from vmae_cli.zeroshot import ZeroShotClassifier

#: The labels of most tests: a bare name, a phrase, one with its own prompt (the file form).
LABELS = (
    TextLabel.of("cooking"),
    TextLabel.of("skateboarding"),
    TextLabel("dog", "a dog playing in the snow"),
)
#: Issue 27's bound: vmae's scores against Hugging Face's, float32.
MAX_PROB_DIFF = 1e-4
#: Issue 15's bound: pixel_values against Hugging Face's processor, mean abs, normalised units.
MAX_PIXEL_MAD = 0.002
#: Videos of the runs: plain, portrait, rotated, short, variable frame rate; one not a video.
VIDEO_NAMES = ("h264", "portrait", "rotated", "short_3", "vfr_mkv")
#: And videos whose frames are the model's size (no resize, no crop): H.264 and VP9.
SQUARE_VIDEOS = (("square.mp4", "h264", 24), ("square.webm", "vp9", 40))
VIDEOS = len(VIDEO_NAMES) + len(SQUARE_VIDEOS)


@pytest.fixture(scope="module")
def xclip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_xclip(tmp_path_factory.mktemp("xclip"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, test_videos, bad_files) -> Path:
    from tools.videogen import VideoSpec

    root = tmp_path_factory.mktemp("zeroshot-videos")
    for name in VIDEO_NAMES:
        shutil.copy(test_videos[name], root / test_videos[name].name)
    for filename, codec, frames in SQUARE_VIDEOS:
        VideoSpec(filename, codec, TINY_IMAGE_PX, TINY_IMAGE_PX, frames).write(root)
    shutil.copy(bad_files["random_bytes"], root / "broken.mp4")
    return root


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    lines = [t.label if t.prompt == t.label else f"{t.label}\t{t.prompt}" for t in LABELS]
    path.write_text("# what to look for\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(videos: Path, out: Path, model: Path, **options) -> object:
    """One zero-shot run with :data:`LABELS` on CPU in float32, all labels' scores kept."""
    options = {"text_labels": LABELS, "top_k": len(LABELS), **options}
    return run(videos, out, model=str(model), device="cpu", dtype="float32", workers=1, **options)


def _cli(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _vmae_lines(stderr: str) -> list[str]:
    """The lines vmae itself wrote to stderr (errors and warnings)."""
    return [line for line in stderr.splitlines() if line.startswith("vmae: ")]


# ---------------------------------------------------------------------------------------
# The checkpoint and the classifier
# ---------------------------------------------------------------------------------------


def test_an_xclip_checkpoint_is_read_from_its_configs(xclip_dir: Path, tmp_path: Path) -> None:
    spec = read_model_spec(str(xclip_dir))
    assert (spec.model_type, spec.zero_shot, spec.input_name) == ("xclip", True, "pixel_values")
    assert spec.frames_per_clip == XCLIP_FRAMES  # vision_config.num_frames
    # Its labels are the run's, and it has no classification head to refuse it for.
    assert spec.num_labels is None and spec.head_problem() is None
    # preprocessor_config.json as XCLIPProcessor reads it: VideoMAE's image processor, named
    # in the legacy layout of the Hub's X-CLIP checkpoints (a feature extractor, int sizes).
    pre = spec.preprocess
    assert pre.processor == "VideoMAEFeatureExtractor" and pre.mean == IMAGENET_DEFAULT_MEAN
    assert (pre.shortest_edge, pre.crop_hw) == (TINY_IMAGE_PX, (TINY_IMAGE_PX, TINY_IMAGE_PX))
    # The 32-frame zero-shot checkpoint's frames are read too, and a config saved before 2023
    # (vision_config_dict, which transformers lets win) is read as transformers reads it.
    assert read_model_spec(str(make_tiny_xclip(tmp_path / "x32", frames=32))).frames_per_clip == 32
    legacy = tmp_path / "legacy"
    shutil.copytree(xclip_dir, legacy)
    config = json.loads((legacy / "config.json").read_text())
    config["vision_config_dict"] = {"num_frames": 16}
    (legacy / "config.json").write_text(json.dumps(config))
    assert read_model_spec(str(legacy)).frames_per_clip == 16


def test_a_hostile_vision_config_is_refused_before_any_weight_is_read(
    xclip_dir: Path, tmp_path: Path
) -> None:
    hostile = tmp_path / "hostile"
    shutil.copytree(xclip_dir, hostile)
    config = json.loads((hostile / "config.json").read_text())
    config["vision_config"]["num_frames"] = 100_000_000
    (hostile / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="num_frames 100000000"):
        read_model_spec(str(hostile))


def _hf(model_dir: Path) -> tuple[object, object]:
    from transformers import XCLIPModel, XCLIPProcessor

    model = XCLIPModel.from_pretrained(model_dir).eval()
    return model, XCLIPProcessor.from_pretrained(model_dir)


def test_the_classifier_is_xclipmodels_forward_with_the_text_side_computed_once(
    xclip_dir: Path,
) -> None:
    model, processor = _hf(xclip_dir)
    prompts = [t.prompt for t in LABELS]
    text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    classifier = ZeroShotClassifier.build(model, processor.tokenizer, prompts).eval()
    torch.manual_seed(0)
    pixel_values = torch.randn(3, XCLIP_FRAMES, 3, TINY_IMAGE_PX, TINY_IMAGE_PX)
    captured: list[torch.Tensor] = []
    # What vmae's embeddings are: the first argument of model.classifier.
    hook = classifier.classifier.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    with torch.no_grad():
        want = model(pixel_values=pixel_values, **text)
        got = classifier(pixel_values=pixel_values)
    hook.remove()
    assert got.logits.shape == (3, len(LABELS))
    torch.testing.assert_close(got.logits, want.logits_per_video, rtol=0, atol=1e-5)
    torch.testing.assert_close(captured[0], want.video_embeds, rtol=0, atol=1e-6)
    # The text encoder is gone: only its output is kept.
    assert not any(name.startswith("text_model") for name, _ in classifier.named_parameters())


def test_load_model_labels_the_scores_with_the_text_labels(xclip_dir: Path) -> None:
    lm = load_model(ModelRef(str(xclip_dir), device="cpu", dtype="float32", text_labels=LABELS))
    assert lm.id2label == {0: "cooking", 1: "skateboarding", 2: "dog"}
    assert (lm.backend, lm.frames_per_clip, lm.multi_label) == ("torch", XCLIP_FRAMES, False)
    clips = torch.randint(0, 256, (2, XCLIP_FRAMES, 3, TINY_IMAGE_PX, TINY_IMAGE_PX))
    out = lm.infer(clips.to(torch.uint8), embeddings=True)
    assert out.probs.shape == (2, 3) and torch.allclose(out.probs.sum(-1), torch.ones(2))
    assert out.embeddings is not None and out.embeddings.shape == (2, 16)
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(2))  # L2-normalised


def test_a_checkpoint_without_a_tokenizer_fails_in_one_line(
    xclip_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(xclip_dir, bare)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (bare / name).unlink()
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelRef(str(bare), device="cpu", text_labels=LABELS))
    assert "\n" not in str(info.value)


def test_int8_is_refused_for_a_zero_shot_model(xclip_dir: Path) -> None:
    with pytest.raises(DtypeOptionError, match="zero-shot xclip") as info:
        load_model(ModelRef(str(xclip_dir), device="cpu", dtype="int8", text_labels=LABELS))
    assert info.value.options == ("dtype",)


# ---------------------------------------------------------------------------------------
# Runs: scores and embeddings against Hugging Face's, options
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zero_shot_run(
    xclip_dir: Path, videos: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[dict], dict]:
    """One run of the module's videos: its rows and its float32 vectors."""
    root = tmp_path_factory.mktemp("zeroshot-run")
    out, vectors = root / "rows.jsonl", root / "vectors.parquet"
    report = _run(videos, out, xclip_dir, embeddings_output=vectors, embeddings_dtype="float32")
    assert report.by_status == {"ok": VIDEOS, "not_video": 1}
    assert report.runtime == "torch float32"
    return read_rows(out), read_vectors(vectors)


def test_scores_and_embeddings_equal_hugging_faces_on_the_same_frames(
    xclip_dir: Path, zero_shot_run: tuple[list[dict], dict]
) -> None:
    """Every row against ``XCLIPModel`` on the frames the row names, ``XCLIPProcessor``
    making its input. Where the frames are the model's size the whole chain is compared
    (decoding, frame choice, normalisation, the model, the softmax, the row) within 1e-4.
    Where they are resized, vmae's resize differs from PIL's by one grey level on a few dozen
    of the 98,304 values (mean 1e-5), and this tiny random model (4 patches a frame) turns
    that into up to 1e-3 of probability: there the pixels are held to issue 15's bound, as
    for the other families, and the scores to 1e-4 on the pixels vmae fed the model."""
    from tools.fidelity import upright_frames
    from vmae_cli.inspection import inspect_video

    spec = read_model_spec(str(xclip_dir))
    rows, vectors = zero_shot_run
    model, processor = _hf(xclip_dir)
    prompts = [t.prompt for t in LABELS]
    checked = whole = 0
    for row in rows:
        if row["status"] != "ok":
            continue
        indices = row["frame_indices"]
        assert len(indices) == XCLIP_FRAMES
        _, frames = upright_frames(row["path"], keep=set(indices))
        clip = [frames[i] for i in indices]
        inputs = processor(text=prompts, videos=clip, return_tensors="pt", padding=True)
        ours = inspect_video(row["path"], spec.frames_per_clip, spec.preprocess)
        assert ours.frame_indices == indices
        pixels = ours.pixel_values(spec.preprocess)
        assert (pixels - inputs["pixel_values"]).abs().mean().item() <= MAX_PIXEL_MAD
        with torch.no_grad():
            on_ours = model(**{**inputs, "pixel_values": pixels})
            on_theirs = model(**inputs)
        scores = {s["label"]: s["score"] for s in row["top_k"]}
        assert set(scores) == {t.label for t in LABELS}
        references = [on_ours]
        if clip[0].shape[:2] == (TINY_IMAGE_PX, TINY_IMAGE_PX):
            references.append(on_theirs)
            whole += 1
        for want in references:
            probs = want.logits_per_video.softmax(-1)[0]
            for i, t in enumerate(LABELS):
                assert abs(scores[t.label] - probs[i].item()) <= MAX_PROB_DIFF, (row["path"], t)
            assert row["label"] == LABELS[int(probs.argmax())].label
            vector = vectors[(row["path"], None)]
            np.testing.assert_allclose(vector, want.video_embeds[0].numpy(), rtol=0, atol=1e-4)
        checked += 1
    assert (checked, whole) == (VIDEOS, len(SQUARE_VIDEOS))


def test_a_labels_file_gives_the_same_rows_as_the_labels_in_python(
    xclip_dir: Path, videos: Path, labels_file: Path, tmp_path: Path, zero_shot_run
) -> None:
    out = tmp_path / "rows.jsonl"
    args = ["classify", str(videos), "-m", str(xclip_dir), "--labels-file", str(labels_file)]
    args += ["--device", "cpu", "--dtype", "float32", "--top-k", "3", "-o", str(out)]
    result = _cli(*args, "--workers", "1")
    assert result.exit_code == EXIT_SOME_FAILED, result.output  # broken.mp4
    assert [line for line in _vmae_lines(result.stderr) if "warning" in line] == []
    want = {r["path"]: r for r in zero_shot_run[0]}
    for row in read_rows(out):
        assert row["top_k"] == want[row["path"]]["top_k"], row["path"]


def test_segments_classify_each_window_against_the_text_labels(
    xclip_dir: Path, videos: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / "rows.csv", tmp_path / "windows.csv"
    vectors = tmp_path / "vectors.parquet"
    report = _run(
        videos,
        out,
        xclip_dir,
        segments=True,
        segments_output=windows,
        embeddings_output=vectors,
        embeddings_dtype="float32",
    )
    assert report.by_status == {"ok": VIDEOS, "not_video": 1}
    window_rows = read_rows(windows)
    assert window_rows and {r["label"] for r in window_rows} <= {t.label for t in LABELS}
    assert report.windows == len(window_rows)
    keys = read_vectors(vectors)
    assert {w for _, w in keys} > {None}  # each window's vector, and each video's


def test_label_map_and_min_score_work_on_the_text_labels(
    xclip_dir: Path, videos: Path, tmp_path: Path
) -> None:
    groups = tmp_path / "groups.csv"
    groups.write_text("label,group\ncooking,home\ndog,home\nskateboarding,sport\n")
    out = tmp_path / "rows.csv"
    base = ["classify", str(videos), "-m", str(xclip_dir), "--labels", "cooking,skateboarding,dog"]
    base += ["--device", "cpu", "--workers", "1", "-o", str(out)]
    result = _cli(*base, "--label-map", str(groups), "--min-score", "0.99")
    assert result.exit_code == EXIT_SOME_FAILED, result.output  # broken.mp4
    ok = [r for r in read_rows(out) if r["status"] == "ok"]
    assert ok and {r["group"] for r in ok} <= {"home", "sport"}
    # No tiny random model is 99 % sure: every label left empty, flagged.
    assert all(r["label"] == "" and r["low_confidence"] in ("true", "True") for r in ok), ok
    # A label map naming a label the run does not have is a usage error naming it.
    groups.write_text("label,group\nbaking,home\n")
    refused = _cli(*base, "--label-map", str(groups), "--overwrite")
    assert refused.exit_code == EXIT_USAGE
    assert len(_vmae_lines(refused.stderr)) == 1 and "'baking'" in refused.stderr


def test_backend_openvino_runs_it_on_torch_saying_so_in_one_line_and_auto_silently(
    xclip_dir: Path, test_videos, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    video = str(test_videos["h264"])
    base = ["classify", video, "-m", str(xclip_dir), "--labels", "cooking,skateboarding"]
    base += ["--device", "cpu", "--workers", "1"]
    openvino = _cli(*base, "--backend", "openvino", "-o", str(tmp_path / "ov.csv"))
    assert openvino.exit_code == EXIT_OK, openvino.output
    lines = [line for line in _vmae_lines(openvino.stderr) if "warning" in line]
    assert len(lines) == 1 and "running it on torch" in lines[0], openvino.stderr
    assert "--backend openvino" in lines[0]  # the CLI names its flag
    auto = _cli(*base, "--backend", "auto", "-o", str(tmp_path / "auto.csv"))
    assert auto.exit_code == EXIT_OK, auto.output
    assert "warning" not in auto.stderr
    scores = [read_rows(tmp_path / f)[0]["score"] for f in ("ov.csv", "auto.csv")]
    assert scores[0] == scores[1]


def test_int8_with_a_zero_shot_model_is_a_usage_error(xclip_dir: Path, test_videos) -> None:
    args = ["classify", str(test_videos["h264"]), "-m", str(xclip_dir)]
    result = _cli(*args, "--labels", "a,b", "--dtype", "int8", "--device", "cpu")
    assert result.exit_code == EXIT_USAGE, result.output
    lines = _vmae_lines(result.stderr)
    assert len(lines) == 1 and "--dtype int8" in lines[0], result.stderr


def test_inspect_shows_what_an_xclip_model_sees_without_labels(
    xclip_dir: Path, test_videos, tmp_path: Path
) -> None:
    npz = tmp_path / "views.npz"
    args = ["inspect", str(test_videos["h264"]), "--model", str(xclip_dir), "--npz", str(npz)]
    result = _cli(*args)
    assert result.exit_code == EXIT_OK, result.output
    with np.load(npz) as data:
        shape = (1, XCLIP_FRAMES, 3, TINY_IMAGE_PX, TINY_IMAGE_PX)
        assert data["pixel_values"].shape == shape


# ---------------------------------------------------------------------------------------
# Labels that do not fit the model; resume
# ---------------------------------------------------------------------------------------


def test_text_labels_with_a_classifier_are_a_usage_error(
    tiny_model_dir: Path, test_videos, tmp_path: Path
) -> None:
    out = tmp_path / "rows.csv"
    args = ["classify", str(test_videos["h264"]), "-m", str(tiny_model_dir), "-o", str(out)]
    result = _cli(*args, "--labels", "cooking,skateboarding")
    assert result.exit_code == EXIT_USAGE, result.output
    assert len(_vmae_lines(result.stderr)) == 1, result.stderr
    assert not out.exists() or read_rows(out) == []


def test_a_zero_shot_model_without_labels_is_a_usage_error(
    xclip_dir: Path, test_videos, tmp_path: Path
) -> None:
    out = tmp_path / "rows.csv"
    result = _cli("classify", str(test_videos["h264"]), "-m", str(xclip_dir), "-o", str(out))
    assert result.exit_code == EXIT_USAGE, result.output
    lines = _vmae_lines(result.stderr)
    assert len(lines) == 1 and "--labels" in lines[0], result.stderr
    assert not out.exists() or read_rows(out) == []


def test_vmae_labels_says_a_zero_shot_model_has_none_of_its_own(xclip_dir: Path) -> None:
    result = _cli("labels", "--model", str(xclip_dir))
    assert result.exit_code == EXIT_USAGE and result.stdout == ""
    lines = _vmae_lines(result.stderr)
    assert len(lines) == 1 and "zero-shot" in lines[0] and "--labels" in lines[0]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_refuses_other_labels(
    suffix: str, xclip_dir: Path, videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"rows{suffix}"
    _run(videos, out, xclip_dir)
    rows = read_rows(out)
    assert {r["labels_from"] for r in rows} == {rows[0]["labels_from"]}
    assert rows[0]["labels_from"].startswith("text:sha256:")
    written = out.read_bytes()
    # The same labels: nothing to do.
    again = _run(videos, out, xclip_dir, resume=True)
    assert (again.skipped, again.videos) == (VIDEOS + 1, 0)
    # Another prompt for one label is other labels: refused, the file untouched.
    other = (*LABELS[:2], TextLabel("dog", "a dog"))
    args = ["classify", str(videos), "-m", str(xclip_dir), "-o", str(out), "--resume"]
    labels = tmp_path / "other.txt"
    labels.write_text("\n".join(f"{t.label}\t{t.prompt}" for t in other) + "\n")
    result = _cli(*args, "--labels-file", str(labels), "--workers", "1")
    assert result.exit_code == EXIT_USAGE, result.output
    assert len(_vmae_lines(result.stderr)) == 1, result.stderr
    assert out.read_bytes() == written


def test_parse_text_labels_gives_each_label_its_own_prompt() -> None:
    assert parse_text_labels("cooking, a dog playing") == (
        TextLabel("cooking", "cooking"),
        TextLabel("a dog playing", "a dog playing"),
    )


def test_the_tiny_videomae_is_still_a_classifier(tiny_model_dir: Path) -> None:
    # The zero-shot switch is the model type, not the folder: VideoMAE keeps its own labels.
    spec = read_model_spec(str(tiny_model_dir))
    assert not spec.zero_shot and spec.num_labels == 10


# ---------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------


@pytest.fixture
def local_ray() -> Iterator[None]:
    """A local Ray of two CPUs whose workers import the vmae_cli under test."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "another test left Ray running in this process"
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH", "")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024 * 1024,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_local_rows(
    local_ray: None, xclip_dir: Path, videos: Path, tmp_path: Path, zero_shot_run
) -> None:
    out = tmp_path / "ray.jsonl"
    report = _run(videos, out, xclip_dir, engine="ray", videos_per_task=2)
    assert report.engine == "ray"
    want = {r["path"]: r for r in zero_shot_run[0]}
    rows = read_rows(out)
    assert {r["path"] for r in rows} == set(want)
    for row in rows:
        assert row["status"] == want[row["path"]]["status"]
        assert row["label"] == want[row["path"]]["label"]
        if row["score"] is not None:
            assert row["score"] == pytest.approx(want[row["path"]]["score"], abs=1e-4)


def test_a_head_fitted_on_its_video_embeddings_labels_without_text(
    xclip_dir: Path, videos: Path, tmp_path: Path
) -> None:
    """The curator's loop on a zero-shot model: its video embeddings, a head fitted on them,
    then runs with the head and no text labels (the head's labels stand for the prompts, and
    the head scores)."""
    from vmae_cli.fitting import fit_head
    from vmae_cli.heads import read_head

    first, vectors = tmp_path / "first.jsonl", tmp_path / "vectors.parquet"
    _run(videos, first, xclip_dir, embeddings_output=vectors, embeddings_dtype="float32")
    ok = sorted(r["path"] for r in read_rows(first) if r["status"] == "ok")
    examples = tmp_path / "examples.csv"
    names = ["square" if "square" in Path(p).name else "other" for p in ok]
    examples.write_text(
        "path,label\n" + "".join(f"{p},{n}\n" for p, n in zip(ok, names, strict=True))
    )
    fit_head(vectors, examples, tmp_path / "head")
    head = read_head(tmp_path / "head")
    out = tmp_path / "head.jsonl"
    report = run(
        videos,
        out,
        model=str(xclip_dir),
        head=str(tmp_path / "head"),
        device="cpu",
        dtype="float32",
        workers=1,
        top_k=2,
    )
    assert report.by_status == {"ok": VIDEOS, "not_video": 1}
    rows = {r["path"]: r for r in read_rows(out) if r["status"] == "ok"}
    stored = read_vectors(vectors)
    for path, row in rows.items():
        want = head.probabilities(np.asarray(stored[(path, None)], np.float32)[None])[0]
        assert row["labels_from"].startswith("head:sha256:")
        assert row["label"] == head.labels[int(want.argmax())]
        for entry in row["top_k"]:
            assert abs(entry["score"] - want[head.labels.index(entry["label"])]) < 1e-4
