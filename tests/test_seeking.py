"""Keyframe-aware seeking: it must return exactly the frames a full sequential decode shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmae_cli.decoding import (
    DECODER_PYAV_SEEK,
    decode_pyav_seek,
    decode_video,
    sample_indices,
)
from vmae_cli.seeking import FrameIndex, plan_seeks

T = 16


def _forced(path: Path):
    """Seek whatever the length and whatever the saving, to test exactness on small files."""
    from tools.videogen import read_index

    return decode_pyav_seek(str(path), T, read_index, min_duration_s=0, max_fraction=1.0)


def _assert_exact(path: Path, decoded) -> None:
    from tools.videogen import pyav_indices

    truth = pyav_indices(path)
    expected = sample_indices(len(truth), T)
    assert decoded.meta.frames_decoded == len(truth)
    assert decoded.frame_indices == expected
    assert decoded.frames == [truth[i] for i in expected]


@pytest.fixture(scope="module")
def multi_gop(tmp_path_factory) -> dict[str, Path]:
    """150-frame clips with a keyframe every 10 frames, in the containers seeking serves."""
    from tools.videogen import write_video

    root = tmp_path_factory.mktemp("gops")
    common = {"width": 128, "height": 96, "num_frames": 150, "gop": 10}
    specs = {
        "h264_bframes.mp4": {"codec": "h264", "bframes": 2},
        "h264_bframes.mkv": {"codec": "h264", "bframes": 3},
        "hevc.mp4": {"codec": "hevc"},
        "vp9.webm": {"codec": "vp9"},
        "edit_list.mp4": {"codec": "h264", "bframes": 2, "pts_offset": -3},
        "vfr.mp4": {"codec": "h264", "vfr": True},
        "mpeg4.mp4": {"codec": "mpeg4", "bframes": 2},
    }
    return {name: write_video(root / name, **common, **kw) for name, kw in specs.items()}


@pytest.mark.parametrize(
    "name",
    [
        "h264_bframes.mp4",
        "h264_bframes.mkv",
        "hevc.mp4",
        "vp9.webm",
        "edit_list.mp4",
        "vfr.mp4",
        "mpeg4.mp4",
    ],
)
def test_seeking_is_frame_exact_across_many_keyframes(name: str, multi_gop) -> None:
    decoded = _forced(multi_gop[name])
    assert decoded is not None, "these containers must take the seeking path"
    assert decoded.meta.decoder == DECODER_PYAV_SEEK
    _assert_exact(multi_gop[name], decoded)


def test_seeking_is_exact_or_declined_on_every_test_clip(test_videos) -> None:
    for name, path in test_videos.items():
        if name == "rotated":
            continue  # its frames are turned, so their index pattern is not readable
        decoded = _forced(path)
        if decoded is not None:
            _assert_exact(path, decoded)


@pytest.mark.parametrize("name", ["mpegts", "mpeg2_ps", "mpeg4_bframes"])
def test_untrustworthy_containers_are_read_sequentially(name: str, test_videos) -> None:
    if name not in test_videos:
        pytest.skip(f"{name} not generated here")
    assert decode_pyav_seek(str(test_videos[name]), T, lambda f: f, min_duration_s=0) is None


def test_a_file_without_a_duration_is_read_sequentially(test_videos) -> None:
    assert decode_pyav_seek(str(test_videos["mkv_no_duration"]), T, lambda f: f) is None


def test_short_videos_are_read_sequentially(multi_gop) -> None:
    # 150 frames at 25 fps = 6 s, below the default minimum duration (10 s).
    assert decode_pyav_seek(str(multi_gop["h264_bframes.mp4"]), T, lambda f: f) is None


def test_decode_video_seeks_in_a_long_video(tmp_path: Path) -> None:
    from tools.videogen import read_index, write_video

    path = write_video(
        tmp_path / "long.mp4", codec="h264", width=96, height=64, num_frames=300, gop=25
    )
    decoded, failure, meta = decode_video(str(path), T, read_index)
    assert failure is None
    assert meta.decoder == DECODER_PYAV_SEEK
    _assert_exact(path, decoded)


def test_plan_continues_within_a_keyframe_interval_and_seeks_across() -> None:
    index = FrameIndex(shown=list(range(100)), keyframes=[0, 30, 60, 90])
    segments, cost = plan_seeks(index, [5, 12, 45, 50, 95])
    assert [(s.seek_to, s.targets) for s in segments] == [(0, [5, 12]), (30, [45, 50]), (90, [95])]
    # 0..12 (13 frames) + 30..50 (21) + 90..95 (6)
    assert cost == 13 + 21 + 6


def test_plan_keeps_decoding_when_the_next_keyframe_was_passed() -> None:
    index = FrameIndex(shown=list(range(100)), keyframes=[0, 10, 20])
    segments, cost = plan_seeks(index, [8, 15])
    # The keyframe before 15 is 10, which decoding up to 8 did not reach: seek to it.
    assert [(s.seek_to, s.targets) for s in segments] == [(0, [8]), (10, [15])]
    segments, _ = plan_seeks(index, [12, 15])
    assert [(s.seek_to, s.targets) for s in segments] == [(10, [12, 15])]
