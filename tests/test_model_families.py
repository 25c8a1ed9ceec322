"""The video classifiers transformers knows besides VideoMAE (TimeSformer, ViViT, V-JEPA 2):
their settings read from their own configs, pixels equal to Hugging Face's processors, rows
with each; checkpoints that would give garbage refused; every row's model revision."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_rows
from tiny_model import FAMILY_FRAMES, TINY_IMAGE_PX, make_tiny_family, make_tiny_model
from typer.testing import CliRunner

from vmae_cli import run
from vmae_cli.cli import EXIT_FATAL, EXIT_OK, EXIT_USAGE, app
from vmae_cli.inspection import inspect_video
from vmae_cli.model import ModelLoadError, UntrainedModelError, load_model, read_model_spec
from vmae_cli.output import OutputMismatchError
from vmae_cli.provenance import file_digest, model_revision

FAMILIES = ("timesformer", "vivit", "vjepa2")
#: Issue 15's bound: pixel_values against Hugging Face's processor, mean abs, normalised units.
MAX_PIXEL_MAD = 0.002


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {t: make_tiny_family(root / t, t) for t in FAMILIES}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory, test_videos, bad_files) -> Path:
    root = tmp_path_factory.mktemp("family-videos")
    for name in ("h264", "portrait", "rotated", "short_3", "vfr_mkv"):
        shutil.copy(test_videos[name], root / test_videos[name].name)
    shutil.copy(bad_files["random_bytes"], root / "broken.mp4")
    return root


def test_each_family_is_read_from_its_own_configs(family_dirs: dict[str, Path]) -> None:
    specs = {t: read_model_spec(str(d)) for t, d in family_dirs.items()}
    for t, spec in specs.items():
        assert spec.model_type == t
        assert spec.frames_per_clip == FAMILY_FRAMES[t]
        assert spec.preprocess.crop_hw == (TINY_IMAGE_PX, TINY_IMAGE_PX)
        assert spec.revision.startswith("sha256:") and len(spec.revision) == 7 + 16
    ts, vivit, vjepa = specs["timesformer"], specs["vivit"], specs["vjepa2"]
    assert (ts.input_name, ts.preprocess.processor) == ("pixel_values", "VideoMAEImageProcessor")
    assert ts.preprocess.mean == (0.45, 0.45, 0.45) and not ts.preprocess.offset
    assert vivit.preprocess.offset and vivit.preprocess.rescale_factor == pytest.approx(1 / 127.5)
    assert vivit.preprocess.shortest_edge == TINY_IMAGE_PX * 256 // 224
    assert vjepa.input_name == "pixel_values_videos"
    assert vjepa.preprocess.processor == "VJEPA2VideoProcessor"
    # V-JEPA 2's processor resizes to the crop x 256/224, whatever its config's size says.
    assert vjepa.preprocess.shortest_edge == int(TINY_IMAGE_PX * 256 / 224)


def test_vjepa2_resize_follows_its_crop_and_missing_keys_take_the_class_defaults(
    tmp_path: Path,
) -> None:
    from vmae_cli.preprocessing import IMAGENET_DEFAULT_MEAN, parse_preprocess_config

    c = parse_preprocess_config(
        {"crop_size": {"height": 384, "width": 384}, "size": {"shortest_edge": 999}},
        "vjepa2",
        video=True,
    )
    assert (c.shortest_edge, c.crop_hw, c.mean) == (438, (384, 384), IMAGENET_DEFAULT_MEAN)
    vivit = parse_preprocess_config({"image_processor_type": "VivitImageProcessor"}, "vivit")
    assert (vivit.shortest_edge, vivit.crop_hw, vivit.offset) == (256, (224, 224), True)
    # A TimeSformer whose image config names no class: transformers picks VideoMAE's.
    assert parse_preprocess_config({}, "timesformer").mean == (0.5, 0.5, 0.5)
    assert parse_preprocess_config({}, "timesformer", video=True).mean == IMAGENET_DEFAULT_MEAN


def _hf_reference(model_type: str, model_dir: Path, frames: list[np.ndarray]) -> torch.Tensor:
    """pixel_values (1, T, 3, H, W) from Hugging Face's own processor for the checkpoint, or
    for V-JEPA 2 (whose processor needs torchvision) its evaluation transform written out:
    short side to int(crop * 256 / 224) with PIL's bilinear resize, centre crop, /255,
    ImageNet mean/std."""
    if model_type == "timesformer":
        from tools.fidelity import hf_pixel_values

        return hf_pixel_values(model_dir, frames)  # the config names VideoMAEImageProcessor
    if model_type == "vivit":
        from transformers import VivitImageProcessor

        processor = VivitImageProcessor.from_pretrained(model_dir)
        return processor(list(frames), return_tensors="pt")["pixel_values"]
    from PIL import Image

    crop = json.loads((model_dir / "video_preprocessor_config.json").read_text())["crop_size"]
    short = int(crop * 256 / 224)
    out = []
    for rgb in frames:
        img = Image.fromarray(rgb)
        w, h = img.size
        size = (int(short * w / h), short) if w >= h else (short, int(short * h / w))
        img = img.resize(size, Image.BILINEAR)
        left, top = (img.size[0] - crop) // 2, (img.size[1] - crop) // 2
        out.append(np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32))
    x = np.stack(out) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2).unsqueeze(0)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_pixel_values_match_hugging_faces_processor(
    model_type: str, family_dirs: dict[str, Path], test_videos
) -> None:
    from tools.fidelity import upright_frames

    spec = read_model_spec(str(family_dirs[model_type]))
    for name in ("h264", "portrait", "rotated", "tiny"):
        path = str(test_videos[name])
        ours = inspect_video(path, spec.frames_per_clip, spec.preprocess)
        assert ours.failure is None, name
        _, frames = upright_frames(path, keep=set(ours.frame_indices))
        want = _hf_reference(
            model_type, family_dirs[model_type], [frames[i] for i in ours.frame_indices]
        )
        got = ours.pixel_values(spec.preprocess)
        assert got.shape == want.shape, name
        assert (got - want).abs().mean().item() <= MAX_PIXEL_MAD, name


@pytest.mark.slow
@pytest.mark.parametrize("model_type", FAMILIES)
def test_each_family_classifies_videos_on_each_backend(
    model_type: str, family_dirs: dict[str, Path], videos: Path, tmp_path: Path
) -> None:
    model = family_dirs[model_type]
    revision = read_model_spec(str(model)).revision
    for backend in ("torch", "auto"):
        out = tmp_path / f"{backend}.jsonl"
        report = run(
            videos,
            out,
            model=str(model),
            workers=1,
            backend=backend,
            embeddings_output=tmp_path / f"{backend}.parquet",
        )
        assert report.by_status == {"ok": 5, "not_video": 1}, backend
        assert report.model_revision == revision
        rows = read_rows(out)
        assert {r["model_revision"] for r in rows} == {revision}
        ok = [r for r in rows if r["status"] == "ok"]
        assert all(len(r["frame_indices"]) == FAMILY_FRAMES[model_type] for r in ok)
        assert report.embeddings == 5  # the head's input, for every family


@pytest.mark.parametrize("model_type", FAMILIES)
def test_inspect_works_for_each_family(
    model_type: str, family_dirs: dict[str, Path], test_videos, tmp_path: Path
) -> None:
    npz = tmp_path / "views.npz"
    args = ["inspect", str(test_videos["h264"]), "--model", str(family_dirs[model_type])]
    result = CliRunner().invoke(app, [*args, "--npz", str(npz)], catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.output
    with np.load(npz) as data:
        frames = FAMILY_FRAMES[model_type]
        assert data["pixel_values"].shape == (1, frames, 3, TINY_IMAGE_PX, TINY_IMAGE_PX)
        assert data["frame_indices"].shape == (frames,)


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    """A VideoMAEForPreTraining checkpoint and a classifier whose head weight was deleted."""
    from safetensors.torch import load_file, save_file
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    root = tmp_path_factory.mktemp("broken-models")
    pretraining = root / "pretraining"
    shutil.copytree(tiny_model_dir, pretraining)
    (pretraining / "model.safetensors").unlink()
    VideoMAEForPreTraining(VideoMAEConfig.from_pretrained(tiny_model_dir)).save_pretrained(
        pretraining
    )
    headless = root / "headless"
    shutil.copytree(tiny_model_dir, headless)
    weights = load_file(headless / "model.safetensors")
    del weights["classifier.weight"]
    save_file(weights, headless / "model.safetensors", metadata={"format": "pt"})
    return {"pretraining": pretraining, "headless": headless}


@pytest.mark.parametrize(
    ("which", "named"),
    [("pretraining", "VideoMAEForPreTraining checkpoint"), ("headless", "classifier.weight")],
)
# auto converts each broken checkpoint with OpenVINO: seconds each.
@pytest.mark.parametrize("backend", ["torch", pytest.param("auto", marks=pytest.mark.slow)])
def test_a_checkpoint_that_would_give_garbage_exits_1_in_one_line_with_no_row(
    which: str, named: str, backend: str, broken_checkpoints: dict, test_videos, tmp_path: Path
) -> None:
    out = tmp_path / "rows.csv"
    args = ["classify", str(test_videos["h264"]), "-m", str(broken_checkpoints[which])]
    args += ["--backend", backend, "-o", str(out), "--workers", "1"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == EXIT_FATAL, result.output
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("vmae: ") and "converting" not in line
    ]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert read_rows(out) == [] if out.exists() else True
    # Who knows why may run it anyway, warned.
    allowed = CliRunner().invoke(app, [*args, "--allow-untrained-head"], catch_exceptions=False)
    assert allowed.exit_code == EXIT_OK, allowed.output
    assert "warning: --allow-untrained-head" in allowed.stderr
    assert len(read_rows(out)) == 1


def test_the_load_report_is_checked_in_the_library_too(broken_checkpoints: dict) -> None:
    with pytest.raises(UntrainedModelError, match=r"missing .*classifier\.weight"):
        load_model(str(broken_checkpoints["headless"]), device="cpu", backend="torch")
    warned: list[str] = []
    lm = load_model(
        str(broken_checkpoints["headless"]),
        device="cpu",
        backend="torch",
        allow_untrained_head=True,
        on_warning=warned.append,
    )
    assert lm.id2label and len(warned) == 1


def test_a_model_type_vmae_cannot_feed_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "clip"  # an image model (X-CLIP, a video one, is zero-shot)
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="clip model: vmae feeds"):
        read_model_spec(str(other))


def test_the_revision_follows_the_weights_and_resume_refuses_another(
    tmp_path: Path, videos: Path
) -> None:
    model = make_tiny_model(tmp_path / "model")
    first = model_revision(str(model))
    assert first == model_revision(str(model))  # stable (and cached)
    out = tmp_path / "rows.csv"
    run(videos, out, model=str(model), workers=1)
    assert {r["model_revision"] for r in read_rows(out)} == {first}
    make_tiny_model(tmp_path / "model", seed=1)  # the same folder, retrained
    assert model_revision(str(model)) != first
    with pytest.raises(OutputMismatchError, match="two versions of the model"):
        run(videos, out, model=str(model), workers=1, resume=True)
    result = CliRunner().invoke(
        app, ["classify", str(videos), "-m", str(model), "-o", str(out), "--resume"]
    )
    assert result.exit_code == EXIT_USAGE


def test_weights_changed_in_place_with_their_old_mtime_get_a_new_revision(
    tmp_path: Path,
) -> None:
    """Issue 24, 11: file hashes were cached by path, size and mtime, so weights rewritten in
    place with the old mtime restored kept the old hash (the old conversion and
    ``model_revision``)."""
    model = make_tiny_model(tmp_path / "model")
    weights = model / "model.safetensors"
    first = model_revision(str(model))
    before = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a bit of the last tensor: same size, other weights
    with open(weights, "r+b") as f:
        f.write(data)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = weights.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert file_digest(weights) == hashlib.sha256(data).hexdigest()
    assert model_revision(str(model)) != first


def test_a_hub_revision_is_the_commit_of_the_cached_snapshot() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    path = f"/cache/hub/models--org--name/snapshots/{commit}/config.json"
    assert model_revision("org/name", path) == commit
    assert model_revision("org/name", "/elsewhere/config.json") == ""


def test_attention_biases_a_transformers_version_cannot_map_are_refused(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VideoMAE checkpoints store q_bias/v_bias; transformers renames them to query.bias and
    value.bias. Where that renaming is missing (huggingface/transformers PR #48675), the
    biases load as zeros: the load report shows them missing and unexpected, and vmae refuses.
    Simulated here by emptying the renaming of the installed transformers."""
    conversion = pytest.importorskip("transformers.conversion_mapping")
    if not hasattr(conversion, "get_checkpoint_conversion_mapping"):
        pytest.skip("this transformers has no checkpoint conversion mapping")
    conversion.get_checkpoint_conversion_mapping("videomae")
    cache = getattr(conversion, "_checkpoint_conversion_mapping_cache", None)
    if not isinstance(cache, dict) or "videomae" not in cache:
        pytest.skip("this transformers maps VideoMAE's biases differently")
    monkeypatch.setitem(cache, "videomae", [])
    with pytest.raises(UntrainedModelError) as info:
        load_model(str(tiny_model_dir), device="cpu", backend="torch")
    message = str(info.value)
    assert "missing" in message and "attention.attention.query.bias" in message
    assert "unused" in message and "attention.attention.q_bias" in message
