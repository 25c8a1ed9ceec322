from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vmae_cli.decoding import (
    DECODER_OPENCV,
    DECODER_PYAV,
    check_file,
    decode_opencv,
    decode_pyav,
    decode_video,
    decoder_path,
    sample_indices,
)
from vmae_cli.results import (
    STATUS_EMPTY,
    STATUS_NOT_A_FILE,
    STATUS_NOT_FOUND,
    STATUS_OK,
)

T = 8


@pytest.mark.parametrize(
    ("n", "t", "expected"),
    [
        (16, 16, list(range(16))),
        (32, 16, list(range(1, 32, 2))),
        (100, 4, [12, 37, 62, 87]),
        (280, 16, [8, 26, 43, 61, 78, 96, 113, 131, 148, 166, 183, 201, 218, 236, 253, 271]),
        (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),
        (1, 4, [0, 0, 0, 0]),
    ],
)
def test_sample_indices_are_segment_centres(n: int, t: int, expected: list[int]) -> None:
    assert sample_indices(n, t) == expected
    assert sample_indices(n, t) == [int(np.floor((i + 0.5) * n / t)) for i in range(t)]


@pytest.mark.parametrize(("n", "t"), [(0, 4), (4, 0), (-1, 4)])
def test_sample_indices_reject_nonsense(n: int, t: int) -> None:
    with pytest.raises(ValueError):
        sample_indices(n, t)


def test_check_file_rejects_what_no_decoder_should_see(tmp_path: Path) -> None:
    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    os.symlink(tmp_path / "gone", tmp_path / "dangling.mp4")
    (tmp_path / "dir.mp4").mkdir()
    assert check_file(str(fifo)).status == STATUS_NOT_A_FILE
    assert "FIFO" in check_file(str(fifo)).error
    assert check_file(str(empty)).status == STATUS_EMPTY
    assert check_file(str(tmp_path / "dangling.mp4")).status == STATUS_NOT_FOUND
    assert check_file(str(tmp_path / "missing.mp4")).status == STATUS_NOT_FOUND
    assert check_file(str(tmp_path / "dir.mp4")).status == STATUS_NOT_A_FILE


def test_fifo_gets_a_row_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)
    decoded, failure, _ = decode_video(str(fifo), T, lambda f: f)
    assert decoded is None
    assert failure.status == STATUS_NOT_A_FILE


def test_decoder_path_defuses_protocols_and_non_utf8_names(tmp_path: Path) -> None:
    with decoder_path("pipe:0.mp4") as name:
        assert name == os.path.abspath("pipe:0.mp4")
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.mp4"
    with open(raw, "wb") as f:
        f.write(b"data")
    with decoder_path(os.fsdecode(raw)) as name:
        assert name.startswith("/proc/self/fd/")
        with open(name, "rb") as f:
            assert f.read() == b"data"


def _truth(path: Path) -> list[int]:
    """The frame indices a full sequential PyAV decode shows (drawn into each frame)."""
    from tools.videogen import pyav_indices

    return pyav_indices(path)


FRAME_EXACT = [
    "h264",
    "h264_bframes",
    "hevc",
    "vp9",
    "av1",
    "mpeg4_bframes",
    "mjpeg",
    "prores",
    "short_3",
    "single_frame",
    "mkv_no_duration",
    "portrait",
    "tiny",
    "vfr",
    "start_index",
    "edit_list",
    "edit_list_delay",
    "mpegts",
    "mpeg2_ps",
    "avi_overreport",
    "avi_underreport",
    "truncated_playable",
    "truncated_mkv",
    "vfr_mkv",
    "vp9_no_duration",
]


@pytest.mark.parametrize("name", FRAME_EXACT)
def test_decode_video_returns_the_frames_at_the_reported_indices(
    name: str, test_videos: dict[str, Path]
) -> None:
    from tools.videogen import read_index

    if name not in test_videos:
        pytest.skip(f"{name}: this PyAV build cannot encode it")
    path = test_videos[name]
    truth = _truth(path)
    decoded, failure, meta = decode_video(str(path), T, read_index)
    assert failure is None, failure
    assert meta.frames_decoded == len(truth)
    expected = sample_indices(len(truth), T)
    assert decoded.frame_indices == expected
    assert decoded.frames == [truth[i] for i in expected]


def test_opencv_and_pyav_agree(test_videos: dict[str, Path]) -> None:
    from tools.videogen import read_index

    path = str(test_videos["h264_bframes"])
    a = decode_opencv(path, T, read_index)
    b = decode_pyav(path, T, read_index)
    assert a.meta.decoder == DECODER_OPENCV
    assert b.meta.decoder == DECODER_PYAV
    assert (a.frame_indices, a.frames) == (b.frame_indices, b.frames)


def test_av1_falls_back_to_pyav_when_opencv_gets_no_frames(test_videos: dict[str, Path]) -> None:
    if "av1" not in test_videos:
        pytest.skip("no AV1 encoder in this PyAV build")
    decoded, failure, meta = decode_video(str(test_videos["av1"]), T, lambda f: f.shape)
    assert failure is None
    assert meta.frames_decoded > 0
    assert meta.decoder in (DECODER_OPENCV, DECODER_PYAV)


def test_rotated_video_comes_out_upright(test_videos: dict[str, Path]) -> None:
    if "rotated" not in test_videos:
        pytest.skip("rotation metadata not writable here")
    decoded, failure, meta = decode_video(str(test_videos["rotated"]), T, lambda f: f.shape)
    assert failure is None
    assert meta.rotation in (90, 270)
    assert decoded.frames[0][:2] == (128, 96)  # stored 128x96 landscape, shown portrait
    assert (meta.width, meta.height) == (96, 128)


def test_metadata_is_reported(test_videos: dict[str, Path]) -> None:
    decoded, failure, meta = decode_video(str(test_videos["h264"]), T, lambda f: None)
    assert failure is None
    assert meta.decoder == DECODER_OPENCV
    assert meta.frames_decoded == 24
    assert meta.fps == pytest.approx(25.0)
    assert meta.duration_s == pytest.approx(24 / 25)
    assert (meta.width, meta.height) == (128, 96)


def test_every_bad_file_becomes_a_failure(bad_files: dict[str, Path]) -> None:
    for name, path in bad_files.items():
        decoded, failure, _ = decode_video(str(path), T, lambda f: f)
        if decoded is not None:
            # A damaged but partly decodable video is classified on what decodes.
            assert name.startswith(("corrupt", "truncated")), name
            continue
        assert failure.status != STATUS_OK, name
        assert failure.error, name
