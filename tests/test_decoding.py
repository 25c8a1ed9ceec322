from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vmae_cli.decoding import (
    DECODER_OPENCV,
    DECODER_PYAV,
    DecodeFailure,
    decode_opencv,
    decode_pyav,
    decode_video,
    decoder_path,
    sample_indices,
    truncation_note,
)
from vmae_cli.filegate import check_file, sniff_video
from vmae_cli.results import (
    FAILURE_STATUSES,
    STATUS_DAMAGED,
    STATUS_EMPTY,
    STATUS_NO_FRAMES,
    STATUS_NOT_A_FILE,
    STATUS_NOT_FOUND,
    STATUS_NOT_VIDEO,
    STATUS_OK,
    VideoMeta,
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
    path = str(test_videos["av1"])
    try:
        decode_opencv(path, T, lambda f: f.shape)
    except DecodeFailure as exc:
        opencv_failed = exc.failure.status == "no_frames"
    else:
        opencv_failed = False
    if not opencv_failed:
        pytest.skip("this OpenCV build decodes AV1 itself: no fallback to check")
    decoded, failure, meta = decode_video(path, T, lambda f: f.shape)
    assert failure is None
    assert meta.frames_decoded > 0
    assert meta.decoder in (DECODER_OPENCV, DECODER_PYAV)
    assert meta.decoder == DECODER_PYAV  # the fallback really ran
    assert meta.frames_decoded == len(_truth(test_videos["av1"]))


def test_rotated_video_comes_out_upright(test_videos: dict[str, Path]) -> None:
    if "rotated" not in test_videos:
        pytest.skip("rotation metadata not writable here")
    decoded, failure, meta = decode_video(str(test_videos["rotated"]), T, lambda f: f.shape)
    assert failure is None
    assert meta.rotation == 90  # clockwise, as written (the legacy `rotate` tag's meaning)
    assert decoded.frames[0][:2] == (128, 96)  # stored 128x96 landscape, shown portrait
    assert (meta.width, meta.height) == (96, 128)


def test_every_decoder_reports_rotation_the_same_way(test_videos: dict[str, Path]) -> None:
    if "rotated" not in test_videos:
        pytest.skip("rotation metadata not writable here")
    from vmae_cli.decoding import decode_pyav_seek

    path = str(test_videos["rotated"])
    metas = {
        "opencv": decode_opencv(path, T, lambda f: None).meta,
        "pyav": decode_pyav(path, T, lambda f: None).meta,
        "pyav-seek": decode_pyav_seek(path, T, lambda f: None, min_duration_s=0).meta,
        "pyav-keyframes": decode_video(path, T, lambda f: None, sampling="keyframes")[2],
    }
    assert metas["pyav-keyframes"].decoder == "pyav-keyframes"
    assert {name: m.rotation for name, m in metas.items()} == dict.fromkeys(metas, 90)
    assert {(m.width, m.height) for m in metas.values()} == {(96, 128)}


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


# --------------------------------------------------------------------------------------
# Damaged files: "damaged" when the file starts like a video, "not_video" when it does not
# --------------------------------------------------------------------------------------


def _ts(packet_size: int = 188, first: int = 0) -> bytes:
    data = bytearray(first + 3 * packet_size)
    for i in range(3):
        data[first + i * packet_size] = 0x47
    return bytes(data)


def _ogg(first_packet: bytes) -> bytes:
    # A 27-byte page header with one segment, its lacing value, then the first packet.
    return b"OggS\x00\x02" + bytes(20) + b"\x01" + bytes([len(first_packet)]) + first_packet


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "MP4"),
        (b"\x00\x00\x00\x20ftypM4V \x00\x00\x02\x00", "MP4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "MOV"),
        (b"\x00\x00\x00\x1cftyp3gp4\x00\x00\x02\x00", "3GP"),
        (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", "MP4/MOV"),
        (b"\x00\x00\x10\x00moov\x00\x00\x00\x6cmvhd", "MP4/MOV"),
        (b"\x12\x34\x56\x78mdat", "MP4/MOV"),  # a big mdat first: old QuickTime
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\xf7\x81", "Matroska/WebM"),
        (b"RIFF\xd4\x82\x00\x00AVI LIST", "AVI"),
        (b"RIFF\xd4\x82\x00\x00AVIXLIST", "AVI"),
        (_ts(), "MPEG-TS"),
        (_ts(192, first=4), "MPEG-TS"),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", "MPEG program stream"),
        (b"\x00\x00\x01\xb3\x08\x00\x60\x23", "MPEG-1/2 video stream"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "FLV"),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa", "ASF/WMV"),
        (_ogg(b"\x80theora"), "Ogg"),
        (_ogg(b"OVP80\x01"), "Ogg"),
        (b"\x00\x00\x00\x01\x67\x42\xc0\x0a", "H.264 stream"),
        (b"\x00\x00\x00\x01\x09\xf0\x00\x00", "H.264 stream"),
        (b"\x00\x00\x00\x01\x40\x01\x0c\x01", "HEVC stream"),
        # Not like a video: text, random bytes, pictures, audio in video-capable containers.
        (b"Just some notes.\nNot a video.\n", None),
        (b"Get free movies here\n", None),  # "free" at offset 4, but text
        (b"\xb5\x8f\xa9\x35\x40\x39\xfe\xdf\xc1\x39\xe7\x6a", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00", None),
        (b"\x00\x00\x00\x1cftypM4B \x00\x00\x02\x00", None),
        (b"FLV\x01\x04\x00\x00\x00\x09", None),  # FLV flags: audio only
        (b"RIFF\xa4\x3e\x00\x00WAVEfmt ", None),
        (b"ID3\x04\x00\x00\x00\x00\x00\x0a", None),
        (_ogg(b"\x01vorbis"), None),
        (_ogg(b"OpusHead"), None),
        (b"\x47" + bytes(400), None),  # one sync byte is no transport stream
        (b"\x00\x00\x00\x01\x00\x00\x00\x00", None),  # a start code alone is too common
        (b"", None),
    ],
)
def test_sniff_video_names_what_the_first_bytes_look_like(head: bytes, expected: str | None):
    assert sniff_video(head) == expected


def test_damaged_is_a_failure_status() -> None:
    assert STATUS_DAMAGED == "damaged"
    assert STATUS_DAMAGED in FAILURE_STATUSES


def test_truncated_mp4_without_its_index_is_damaged(bad_files: dict[str, Path]) -> None:
    """moov at the end, file cut at 40%: no decoder opens it, but it starts like an MP4."""
    decoded, failure, _ = decode_video(str(bad_files["truncated_h264"]), T, lambda f: f)
    assert decoded is None
    assert failure.status == STATUS_DAMAGED
    assert failure.error == (
        "damaged MP4: no index (moov box) found; truncated or still being copied?"
    )


def _faststart_mp4(tmp_path: Path) -> bytes:
    """The bytes of a 48-frame H.264 MP4 with its index (moov) before the frames."""
    from tools.videogen import write_video

    path = write_video(
        tmp_path / "full.mp4",
        codec="h264",
        width=64,
        height=48,
        num_frames=48,
        container_options={"movflags": "+faststart"},
    )
    return path.read_bytes()


def test_mp4_cut_inside_its_index_is_damaged(tmp_path: Path) -> None:
    full = _faststart_mp4(tmp_path)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: full.index(b"moov") + 64])
    decoded, failure, _ = decode_video(str(cut), T, lambda f: f)
    assert decoded is None
    assert failure.status == STATUS_DAMAGED
    assert failure.error == (
        "damaged MP4: the index (moov box) is cut short; truncated or still being copied?"
    )


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("random_bytes", "not a video, or damaged at the start"),
        ("text", "not a video, or damaged at the start"),
        ("audio_only", "the file has no video stream"),  # an MP4 (ftyp M4A) with only audio
        ("audio_with_cover", "audio with a cover image"),
        ("jpeg_renamed", "not a video: a JPEG image"),
    ],
)
def test_what_does_not_look_like_a_video_stays_not_video(
    name: str, says: str, bad_files: dict[str, Path]
) -> None:
    if name not in bad_files:
        pytest.skip(f"{name}: this PyAV build cannot write it")
    decoded, failure, _ = decode_video(str(bad_files[name]), T, lambda f: f)
    assert decoded is None
    assert (failure.status, failure.error.startswith(says)) == (STATUS_NOT_VIDEO, True)


def test_no_frames_says_what_the_header_promised(tmp_path: Path) -> None:
    """moov first, cut before any frame: it opens as a video, so no_frames, not damaged."""
    full = _faststart_mp4(tmp_path)
    header_only = tmp_path / "header_only.mp4"
    header_only.write_bytes(full[: full.index(b"mdat") + 4])
    decoded, failure, _ = decode_video(str(header_only), T, lambda f: f)
    assert decoded is None
    assert failure.status == STATUS_NO_FRAMES
    assert failure.error == "no frame could be decoded (the header says 48 frames)"


# --------------------------------------------------------------------------------------
# The truncation note: the header promises clearly more frames than decode
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "decoded", "note"),
    [
        (300, 144, "header says 300 frames, 144 decode (truncated?)"),
        (48, 24, "header says 48 frames, 24 decode (truncated?)"),  # an AVI header lying 2x
        (50, 40, "header says 50 frames, 40 decode (truncated?)"),  # 10 frames and 20%
        (50, 41, None),  # 9 frames short: under the frame margin
        (1000, 801, None),  # 199 frames short, but under 20%
        (25, 24, None),  # Matroska's duration x fps: one frame too many
        (24, 21, None),  # an MP4 edit list hiding 3 frames
        (28, 24, None),  # a VFR Matroska's estimate
        (12, 24, None),  # a header under-reporting: nothing is missing
        (None, 24, None),  # no count in the header
    ],
)
def test_truncation_note(reported: int | None, decoded: int, note: str | None) -> None:
    assert truncation_note(VideoMeta(frames_reported=reported, frames_decoded=decoded)) == note


def test_faststart_mp4_cut_in_half_is_ok_with_a_truncation_note(tmp_path: Path) -> None:
    """The index (moov first) promises 300 frames; about half of them decode."""
    from tools.videogen import read_index, write_video

    full = write_video(
        tmp_path / "full.mp4",
        codec="h264",
        width=64,
        height=48,
        num_frames=300,
        container_options={"movflags": "+faststart"},
    ).read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(full[: len(full) // 2])
    decoded, failure, meta = decode_video(str(half), T, read_index)
    assert failure is None
    assert meta.frames_reported == 300
    assert 100 < meta.frames_decoded < 200
    assert decoded.frames == sample_indices(meta.frames_decoded, T)  # the frames it claims
    expected = f"header says 300 frames, {meta.frames_decoded} decode (truncated?)"
    assert truncation_note(meta) == expected
    # The whole file gets no note.
    _, failure, meta = decode_video(str(tmp_path / "full.mp4"), T, read_index)
    assert (failure, meta.frames_decoded, truncation_note(meta)) == (None, 300, None)
