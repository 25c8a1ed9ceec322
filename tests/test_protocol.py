"""The test protocols: temporal sampling, spatial crops, and the averaged prediction, each
checked against an independent computation written the way the VideoMAE test code works."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tools.fidelity import model_probs, paper_clips, protocol_pixel_values, upright_frames
from vmae_cli.cli import app
from vmae_cli.preprocessing import cover_size, spatial_crops
from vmae_cli.protocol import (
    PROTOCOLS,
    SAMPLING_KEYFRAMES,
    Protocol,
    ProtocolError,
    strided_clips,
    uniform_indices,
)
from vmae_cli.segments import Segments, Span


@pytest.mark.parametrize("n", [1, 2, 5, 16, 31, 63, 64, 65, 100, 250, 301, 1000])
@pytest.mark.parametrize(("clip_len", "stride", "clips"), [(16, 4, 5), (8, 4, 5), (16, 2, 3)])
def test_strided_clips_follow_the_paper(n: int, clip_len: int, stride: int, clips: int) -> None:
    got = strided_clips(n, clip_len, stride, clips)
    assert got == paper_clips(n, clip_len, stride, clips)
    assert all(len(c) == clip_len for c in got)
    assert all(0 <= i < n for c in got for i in c)


def test_strided_clips_span_the_whole_video() -> None:
    clips = strided_clips(300, 16, 4, 5)
    assert clips[0][0] == 0
    assert clips[-1][-1] == 296  # the last frame at stride 4
    assert all(b - a == 4 for c in clips for a, b in zip(c, c[1:], strict=False))


def test_short_video_repeats_the_last_frame() -> None:
    assert strided_clips(10, 8, 4, 2) == [[0, 4, 8, 8, 8, 8, 8, 8]] * 2


def test_single_strided_clip_is_the_middle_one() -> None:
    # 25 frames at stride 4, 17 to spare: the clip starts at the 9th (frame 32).
    assert strided_clips(100, 8, 4, 1) == [list(range(32, 64, 4))]


@pytest.mark.parametrize("n", [1, 3, 16, 17, 100, 281])
@pytest.mark.parametrize("clips", [1, 2, 5])
def test_uniform_clips_are_offset_segment_positions(n: int, clips: int) -> None:
    from fractions import Fraction

    got = Protocol(clips=clips).clip_indices(n, 8)
    assert len(got) == clips
    for c, clip in enumerate(got):
        position = Fraction(2 * c + 1, 2 * clips)  # where in its segment each frame sits
        assert clip == [int((i + position) * n / 8) for i in range(8)]
    if clips == 1:
        assert got[0] == uniform_indices(n, 8)


def test_named_protocols() -> None:
    assert Protocol().name == "uniform"
    assert Protocol().views == 1
    assert PROTOCOLS["videomae"] == Protocol(clips=5, crops=3, frame_stride=4)
    assert PROTOCOLS["videomae"].name == "videomae"
    assert PROTOCOLS["videomae"].views == 15
    assert Protocol(clips=2, crops=1, frame_stride=4).name == "clips=2,crops=1,stride=4"


@pytest.mark.parametrize("kwargs", [{"clips": 0}, {"crops": 2}, {"frame_stride": -1}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ProtocolError):
        Protocol(**kwargs)


# ---------------------------------------------------------------------------------------
# --segments: one clip of T frames per window, exactly sampled
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clips": 2},
        {"clips": 5, "crops": 3, "frame_stride": 4},  # --protocol videomae
        {"sampling": SAMPLING_KEYFRAMES},
        {"clips": 3, "sampling": SAMPLING_KEYFRAMES},
    ],
)
def test_segments_refuse_several_clips_and_keyframe_sampling(kwargs: dict) -> None:
    with pytest.raises(ProtocolError):
        Protocol(segments=Segments(), **kwargs)
    with pytest.raises(ProtocolError):
        replace(Protocol(**kwargs), segments=Segments(Span.parse("2s")))


def test_segments_take_crops_and_a_frame_stride() -> None:
    for crops in (1, 3):
        for stride in (0, 2, 4):
            proto = Protocol(crops=crops, frame_stride=stride, segments=Segments())
            assert proto.views == crops  # one clip per window


def test_segments_protocol_name() -> None:
    proto = Protocol(segments=Segments())
    assert proto.for_model(16).name == "segments(window=64f,hop=64f)"
    assert proto.for_model(16).segments == Segments(Span(64, "f"), Span(64, "f"))
    three = Protocol(crops=3, segments=Segments())
    assert three.for_model(16).name == "segments(window=64f,hop=64f)+crops=3"
    assert Protocol(frame_stride=2, segments=Segments()).for_model(16).name == (
        "segments(window=32f,hop=32f)"
    )
    assert Protocol(segments=Segments()).for_model(8).name == "segments(window=32f,hop=32f)"
    given = Protocol(segments=Segments(Span.parse("2s"), Span.parse("0.5s")))
    assert given.for_model(16).name == "segments(window=2s,hop=0.5s)"
    assert Protocol(segments=Segments(hop=Span.parse("16f"))).for_model(16).name == (
        "segments(window=64f,hop=16f)"
    )
    # Unresolved settings still get a name, never a named protocol's.
    assert proto.name == "segments(window=clip,hop=window)"
    assert proto.name not in PROTOCOLS


def test_for_model_leaves_a_protocol_without_segments_alone() -> None:
    for proto in (Protocol(), PROTOCOLS["videomae"], Protocol(sampling=SAMPLING_KEYFRAMES)):
        assert proto.for_model(16) == proto
    resolved = Protocol(segments=Segments()).for_model(16)
    assert resolved.for_model(16) == resolved
    assert resolved.for_model(8) == resolved  # resolved once: the window stays 64f


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((240, 320), (224, 298)), ((1080, 1920), (224, 398)), ((1920, 1080), (398, 224))],
)
def test_cover_size_makes_the_short_side_the_crop(hw, expected) -> None:
    assert cover_size(*hw, (224, 224)) == expected
    # The same truncation as Hugging Face and the VideoMAE code: int(S * long / short).
    h, w = hw
    long_side = int(224 * max(h, w) / min(h, w))
    assert max(expected) == long_side


def test_three_crops_are_start_centre_end_along_the_long_side() -> None:
    landscape = torch.arange(2 * 3 * 4 * 10).reshape(2, 3, 4, 10)
    crops = spatial_crops(landscape, (4, 4), 3)
    for crop, left in zip(crops, [0, 3, 6], strict=True):
        assert torch.equal(crop, landscape[..., :, left : left + 4])
    portrait = landscape.transpose(-1, -2).contiguous()
    crops = spatial_crops(portrait, (4, 4), 3)
    for crop, top in zip(crops, [0, 3, 6], strict=True):
        assert torch.equal(crop, portrait[..., top : top + 4, :])
    (centre,) = spatial_crops(landscape, (4, 4), 1)
    assert torch.equal(centre, landscape[..., 3:7])


# ---------------------------------------------------------------------------------------
# The averaged prediction, end to end through the CLI, against an independent computation
# ---------------------------------------------------------------------------------------


def _reference_probs(path: Path, model_dir: Path, proto: Protocol) -> np.ndarray:
    """Decode everything with PyAV, sample and crop as the paper does, resize with PIL."""
    from transformers import AutoModelForVideoClassification

    model = AutoModelForVideoClassification.from_pretrained(model_dir).eval()
    n, frames = upright_frames(path)
    pv = protocol_pixel_values(
        model_dir, frames, n, model.config.num_frames, proto.clips, proto.crops
    )
    return model_probs(model, pv).numpy()


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> dict[str, Path]:
    from tools.videogen import write_video

    root = tmp_path_factory.mktemp("protocol")
    return {
        "landscape": write_video(
            root / "landscape.mp4", codec="h264", width=160, height=96, num_frames=90, bframes=2
        ),
        "portrait": write_video(
            root / "portrait.mkv", codec="h264", width=96, height=144, num_frames=45
        ),
    }


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_videomae_protocol_matches_an_independent_implementation(
    kind: str, long_videos, tiny_model_dir: Path
) -> None:
    path = long_videos[kind]
    result = CliRunner().invoke(
        app,
        [
            "classify",
            str(path),
            "--model",
            str(tiny_model_dir),
            "--protocol",
            "videomae",
            "--dtype",
            "float32",
            "--device",
            "cpu",
            "--top-k",
            "10",
            "--format",
            "jsonl",
            "--workers",
            "0",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["status"] == "ok"
    assert row["protocol"] == "videomae"
    n = row["frames_decoded"]
    assert row["frame_indices"] == [i for c in paper_clips(n, 8, 4, 5) for i in c]
    ref = _reference_probs(path, tiny_model_dir, PROTOCOLS["videomae"])
    from transformers import AutoConfig

    id2label = AutoConfig.from_pretrained(tiny_model_dir).id2label
    ours = {d["label"]: d["score"] for d in row["top_k"]}
    assert len(ours) == 10
    for i, label in id2label.items():
        assert ours[label] == pytest.approx(float(ref[i]), abs=2e-3)


def test_inspect_saves_every_view(long_videos, tiny_model_dir: Path, tmp_path: Path) -> None:
    npz, sheet = tmp_path / "v.npz", tmp_path / "v.png"
    result = CliRunner().invoke(
        app,
        [
            "inspect",
            str(long_videos["landscape"]),
            "--model",
            str(tiny_model_dir),
            "--protocol",
            "videomae",
            "--clips",
            "2",
            "--npz",
            str(npz),
            "--sheet",
            str(sheet),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert "protocol: clips=2,crops=3,stride=4" in result.stdout
    assert "clip 2:" in result.stdout
    data = np.load(npz)
    assert data["pixel_values"].shape == (6, 8, 3, 64, 64)
    assert data["frame_indices"].shape == (2, 8)
    assert data["frame_indices"].tolist() == paper_clips(90, 8, 4, 2)
    # The sheet draws exactly these views (the npz's pixel_values, un-normalised back to
    # their uint8 frames), a row per clip and crop, the crops named along the width.
    import cv2

    from vmae_cli.inspection import contact_sheet, sheet_layout, sheet_title
    from vmae_cli.preprocessing import parse_preprocess_config

    config = parse_preprocess_config(
        json.loads((tiny_model_dir / "preprocessor_config.json").read_text())
    )
    mean, std = (np.array(v, dtype=np.float32).reshape(3, 1, 1) for v in (config.mean, config.std))
    frames = np.rint((data["pixel_values"] * std + mean) / config.rescale_factor)
    assert frames.min() >= 0 and frames.max() <= 255
    indices = data["frame_indices"].reshape(-1).tolist()
    layout = sheet_layout(frames.shape, indices, crop_axis="width")
    assert layout.row_labels == tuple(
        f"clip {c}/2 · crop {side}" for c in (1, 2) for side in ("left", "centre", "right")
    )
    # Titled with the video and the model as the command was given them.
    title = sheet_title(str(long_videos["landscape"]), str(tiny_model_dir))
    expected = contact_sheet(
        torch.from_numpy(frames.astype(np.uint8)), indices, crop_axis="width", title=title
    )
    layout = sheet_layout(frames.shape, indices, crop_axis="width", title=title)
    assert expected.shape == (layout.height, layout.width, 3)
    written = cv2.imread(str(sheet))
    assert written is not None
    assert np.array_equal(cv2.cvtColor(written, cv2.COLOR_BGR2RGB), expected)


def test_cli_refuses_bad_protocol_settings(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["classify", str(tmp_path), "--model", str(tiny_model_dir), "--crops", "2"]
    )
    assert result.exit_code == 2
    # The flag, as the user typed it (it said "crops must be 1 or 3": issue 24's README run).
    assert result.stderr == "vmae: --crops 2: a clip gives 1 or 3 crops\n"
