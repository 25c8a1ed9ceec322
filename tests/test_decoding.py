from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vmae_cli.decoding import (
    DECODER_OPENCV,
    DECODER_PYAV,
    DECODER_PYAV_SEEK,
    DecodedWindow,
    DecodeFailure,
    WindowsDone,
    decode_opencv,
    decode_pyav,
    decode_video,
    decode_windows,
    decoder_path,
    sample_indices,
    truncation_note,
)
from vmae_cli.filegate import check_and_read_head, sniff_video
from vmae_cli.results import (
    FAILURE_STATUSES,
    STATUS_DAMAGED,
    STATUS_EMPTY,
    STATUS_NO_FRAMES,
    STATUS_NOT_A_FILE,
    STATUS_NOT_FOUND,
    STATUS_NOT_VIDEO,
    STATUS_OK,
    STATUS_TOO_LARGE,
    VideoMeta,
)
from vmae_cli.segments import Segments, Span, WindowGeometry, WindowTracker, plan_windows

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


def test_the_file_check_rejects_what_no_decoder_should_see(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.mp4")
    (tmp_path / "empty.mp4").touch()
    os.symlink(tmp_path / "gone", tmp_path / "dangling.mp4")
    (tmp_path / "dir.mp4").mkdir()
    expected = {
        "x.mp4": (STATUS_NOT_A_FILE, "not a video file: a named pipe (FIFO)"),
        "empty.mp4": (STATUS_EMPTY, "empty file (0 bytes)"),
        "dangling.mp4": (STATUS_NOT_FOUND, "broken symbolic link"),
        "missing.mp4": (STATUS_NOT_FOUND, "file not found"),
        "dir.mp4": (STATUS_NOT_A_FILE, "not a video file: a directory"),
    }
    for name, (status, error) in expected.items():
        failure, head = check_and_read_head(str(tmp_path / name))
        assert (failure.status, failure.error, head) == (status, error, b""), name


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


def test_text_and_images_ffmpeg_reads_as_one_frame_are_not_videos(tmp_path: Path) -> None:
    """FFmpeg "decodes" a text file (its tty demuxer draws the text) and PPM, TGA and QOI
    images; given to vmae they were classified ``ok`` (found with issue 24, 10). Now every
    sampling mode and the window decoder give them a ``not_video`` row."""
    from tools.videogen import write_still_image
    from vmae_cli.decoding import decode_windows

    files = {"release.nfo": "".join(f"line {i}: the notes of a release\n" for i in range(40))}
    rng = np.random.default_rng(5)
    files["still.mp4"] = b"P6\n64 48\n255\n" + rng.integers(0, 256, 9216, np.uint8).tobytes()
    (tmp_path / "made").mkdir()
    for codec in ("targa", "qoi"):
        made = write_still_image(tmp_path / "made", codec)
        files[made.name] = made.read_bytes()
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        for sampling in ("exact", "keyframes"):
            decoded, failure, _ = decode_video(str(path), T, lambda f: f, sampling=sampling)
            assert decoded is None and failure.status == STATUS_NOT_VIDEO, (name, sampling)
            assert "not a video container" in failure.error, (name, failure.error)
        geometry = (WindowGeometry(4, 4, 4), "")
        *windows, done = decode_windows(str(path), lambda fps, g=geometry: g, lambda f: f)
        assert windows == [] and done.failure.status == STATUS_NOT_VIDEO, name


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


def test_truncation_note_of_a_header_that_gives_a_duration_only() -> None:
    meta = VideoMeta(frames_decoded=5, frames_expected=78, fps=30.0)
    assert truncation_note(meta) == "header says 2.6 s (78 frames at 30 fps), 5 decode (truncated?)"
    assert truncation_note(VideoMeta(frames_decoded=77, frames_expected=78, fps=30.0)) is None


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_a_cut_off_matroska_file_is_ok_with_a_truncation_note(tmp_path: Path, ext: str) -> None:
    """Matroska states a duration and no frame count: a file cut off early decodes a few
    frames, which must not pass for a whole short video."""
    from tools.videogen import read_index, write_video

    codec = "h264" if ext == "mkv" else "vp9"
    full = write_video(
        tmp_path / f"full.{ext}", codec=codec, width=160, height=120, num_frames=120, fps=30
    )
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 4])
    decoded, failure, meta = decode_video(str(cut), T, read_index)
    assert failure is None and meta.frames_reported is None
    assert 0 < meta.frames_decoded < 100 and meta.frames_expected == 120
    note = truncation_note(meta)
    assert (
        note
        == f"header says 4.0 s (120 frames at 30 fps), {meta.frames_decoded} decode (truncated?)"
    )
    _, failure, meta = decode_video(str(full), T, read_index)
    assert (failure, meta.frames_decoded, truncation_note(meta)) == (None, 120, None)


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


# --------------------------------------------------------------------------------------
# --segments: decode_windows, every window's frames and times as a full decode gives them
# --------------------------------------------------------------------------------------


def _code(rgb: np.ndarray) -> int:
    """The index drawn into a frame (any rotation); -1 where damage left none readable."""
    from tools.videogen import find_code

    try:
        return find_code(rgb)[0]
    except ValueError:
        return -1


@dataclass(frozen=True)
class _FullDecode:
    """What one sequential PyAV pass over every packet gives (packets that fail to decode
    skipped, as the decoders do): each frame's code, time and timestamp, and how many
    packets failed."""

    codes: list[int]
    times: list[float | None]
    pts: list[int | None]
    failed: int


@functools.cache
def _full_decode(path: str) -> _FullDecode:
    import av

    codes, times, pts, failed = [], [], [], 0
    with av.open(path) as container:
        for packet in container.demux(container.streams.video[0]):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                failed += 1
                continue
            for frame in frames:
                codes.append(_code(frame.to_ndarray(format="rgb24")))
                times.append(frame.time)
                pts.append(frame.pts)
    return _FullDecode(codes, times, pts, failed)


def _windows(
    path: Path, segments: Segments, t: int, transform=_code
) -> tuple[list[DecodedWindow], WindowsDone, WindowGeometry, str]:
    """decode_windows' windows, its WindowsDone, and the geometry it asked for (once)."""
    asked = []

    def geometry_for(fps: float | None) -> tuple[WindowGeometry, str]:
        asked.append(segments.geometry(t, fps))
        return asked[-1]

    *windows, done = decode_windows(str(path), geometry_for, transform)
    assert isinstance(done, WindowsDone)
    assert all(isinstance(w, DecodedWindow) for w in windows)
    assert len(asked) <= 1
    geometry, note = asked[0] if asked else (None, "")
    return windows, done, geometry, note


def _same_time(got: float | None, expected: float | None) -> bool:
    if got is None or expected is None:
        return got is expected
    return abs(got - expected) <= 1e-6


def _assert_as_full_decode(
    path: Path, segments: Segments, t: int, notes: tuple[str, ...] = ()
) -> tuple[list[DecodedWindow], WindowsDone]:
    """The windows tile the frames a full decode shows, from the first to the last, with
    exactly its frames and their times; the notes are the geometry's, ``notes``, and one for
    a video shorter than a window."""
    full = _full_decode(str(path))
    n = len(full.codes)
    windows, done, geometry, note = _windows(path, segments, t)
    assert done.failure is None, done.failure
    assert done.meta.frames_decoded == n
    assert [d.window for d in windows] == plan_windows(n, geometry)
    assert windows[0].window.start_frame == 0
    assert windows[-1].window.end_frame == n - 1
    for d in windows:
        w = d.window
        assert d.frames == [full.codes[i] for i in w.frame_indices], w
        assert _same_time(d.start_s, full.times[w.start_frame]), (w, d.start_s)
        assert _same_time(d.end_s, full.times[w.end_frame]), (w, d.end_s)
    short = [x for x in done.notes if x.startswith("short video")]
    assert short == (
        [f"short video: {n} frames for a window of {geometry.span}, frames repeated"]
        if n < geometry.span
        else []
    )
    assert [x for x in done.notes if x not in short] == [*([note] if note else []), *notes]
    return windows, done


def _f(n: int) -> Span:
    return Span(n, "f")


#: Window and hop, and the model's T: overlapping windows of every frame (8f-5f), that skip
#: frames (10f-3f), in seconds (0.4s-0.3s); adjacent windows of every 2nd or 3rd frame
#: (10f-10f-t4); gaps between windows (6f-9f-t3); a window longer than every test clip.
WINDOWINGS = {
    "8f-5f": (Segments(_f(8), _f(5)), 8),
    "10f-3f": (Segments(_f(10), _f(3)), 8),
    "0.4s-0.3s": (Segments(Span(0.4, "s"), Span(0.3, "s")), 8),
    "10f-10f-t4": (Segments(_f(10), _f(10)), 4),
    "6f-9f-t3": (Segments(_f(6), _f(9)), 3),
    "64f": (Segments(_f(64), _f(64)), 16),
}


def _quick_only(values: list[str], quick: tuple[str, ...]) -> list:
    """``values`` as parameters, all but those of ``quick`` marked slow: a matrix whose
    every cell is cheap but whose whole costs seconds keeps a few cells in the quick loop."""
    return [v if v in quick else pytest.param(v, marks=pytest.mark.slow) for v in values]


# Every clip with overlapping windows and with gaps between them in the quick loop; the
# other windowings (about 8 s more) in the full suite.
@pytest.mark.parametrize("windowing", _quick_only(list(WINDOWINGS), ("8f-5f", "6f-9f-t3")))
@pytest.mark.parametrize("name", [*FRAME_EXACT, "rotated"])
def test_decode_windows_gives_the_frames_of_a_full_decode(
    name: str, windowing: str, test_videos: dict[str, Path]
) -> None:
    if name not in test_videos:
        pytest.skip(f"{name}: this PyAV build cannot encode it")
    assert -1 not in _full_decode(str(test_videos[name])).codes  # every frame's index reads
    segments, t = WINDOWINGS[windowing]
    _assert_as_full_decode(test_videos[name], segments, t)


@pytest.mark.parametrize(
    ("name", "decoder"),
    [
        ("h264", DECODER_PYAV_SEEK),
        ("h264_bframes", DECODER_PYAV_SEEK),
        ("hevc", DECODER_PYAV_SEEK),
        ("vp9", DECODER_PYAV_SEEK),
        ("vfr_mkv", DECODER_PYAV_SEEK),
        ("edit_list", DECODER_PYAV_SEEK),
        ("mpegts", DECODER_PYAV),
        ("mpeg2_ps", DECODER_PYAV),
        ("mpeg4_bframes", DECODER_PYAV),
        ("avi_overreport", DECODER_PYAV),
        ("avi_underreport", DECODER_PYAV),
    ],
)
def test_decode_windows_indexes_what_it_can_and_reads_the_rest_in_order(
    name: str, decoder: str, test_videos: dict[str, Path]
) -> None:
    if name not in test_videos:
        pytest.skip(f"{name}: this PyAV build cannot encode it")
    _, done = _assert_as_full_decode(test_videos[name], *WINDOWINGS["8f-5f"])
    assert done.meta.decoder == decoder
    assert done.meta.fps == pytest.approx(25.0, rel=0.2)
    assert (done.meta.width, done.meta.height) == (128, 96)


def test_decode_windows_turns_frames_upright(test_videos: dict[str, Path]) -> None:
    if "rotated" not in test_videos:
        pytest.skip("rotation metadata not writable here")
    windows, done, _, _ = _windows(test_videos["rotated"], *WINDOWINGS["8f-5f"], lambda f: f.shape)
    assert done.meta.rotation == 90
    assert (done.meta.width, done.meta.height) == (96, 128)
    assert {shape for d in windows for shape in d.frames} == {(128, 96, 3)}


@pytest.fixture
def sequential_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each sequential PyAV pass decode_windows makes over a file (its name)."""
    from vmae_cli import decoding

    passes: list[str] = []
    real_pass = decoding._pyav_frames

    def counted(name: str, *args, **kwargs):
        passes.append(name)
        return real_pass(name, *args, **kwargs)

    monkeypatch.setattr(decoding, "_pyav_frames", counted)
    return passes


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> dict[str, Path]:
    """150 frames (6 s) with a keyframe every 10: seeks across many keyframes, and a
    sequential pass long enough for the tail margin (the AVI's header count is right)."""
    from tools.videogen import write_video

    root = tmp_path_factory.mktemp("long-windows")
    common = {"width": 96, "height": 64, "num_frames": 150, "gop": 10}
    specs = {
        "h264_bframes.mp4": {"codec": "h264", "bframes": 2},
        "h264_bframes.mkv": {"codec": "h264", "bframes": 3},
        "mpeg4_bframes.mp4": {"codec": "mpeg4", "bframes": 2},
        "vp9.webm": {"codec": "vp9"},
        "edit_list.mp4": {"codec": "h264", "bframes": 2, "pts_offset": -3},
        "h264.ts": {"codec": "h264", "bframes": 2},
        "mpeg4.avi": {"codec": "mpeg4", "bframes": 2},
    }
    return {name: write_video(root / name, **common, **kw) for name, kw in specs.items()}


LONG_WINDOWINGS = {
    **WINDOWINGS,
    "64f-t16": (Segments(_f(64), _f(64)), 16),  # 0-63, 64-127, 86-149
    "2s-1.5s-t16": (Segments(Span(2, "s"), Span(1.5, "s")), 16),
    "3f-40f-t2": (Segments(_f(3), _f(40)), 2),  # long stretches seeked over
}


# Each long clip with one windowing in the quick loop (overlapping windows, seeks); the
# other eight (about 20 s more) in the full suite.
@pytest.mark.parametrize("windowing", _quick_only(list(LONG_WINDOWINGS), ("10f-3f",)))
@pytest.mark.parametrize(
    "name",
    [
        "h264_bframes.mp4",
        "h264_bframes.mkv",
        "mpeg4_bframes.mp4",
        "vp9.webm",
        "edit_list.mp4",
        "h264.ts",
        "mpeg4.avi",
    ],
)
def test_decode_windows_is_exact_across_many_keyframes(
    name: str, windowing: str, long_clips, sequential_passes: list[str]
) -> None:
    _, done = _assert_as_full_decode(long_clips[name], *LONG_WINDOWINGS[windowing])
    indexed = name.endswith((".mp4", ".mkv", ".webm"))
    assert done.meta.decoder == (DECODER_PYAV_SEEK if indexed else DECODER_PYAV)
    # Read in order, the frames near the end are kept: the last window needs no second pass.
    assert len(sequential_passes) == (0 if indexed else 1)


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "h264.ts", "mpeg4.avi"])
def test_windows_come_as_soon_as_their_frames_are_decoded(name: str, long_clips) -> None:
    made = []

    def transform(rgb: np.ndarray) -> int:
        made.append(_code(rgb))
        return made[-1]

    segments, t = WINDOWINGS["8f-5f"]
    items = decode_windows(str(long_clips[name]), lambda fps: segments.geometry(t, fps), transform)
    first = next(items)
    assert isinstance(first, DecodedWindow)
    assert first.frames == list(range(8))
    assert len(made) < 20, "the first window waits for no more than a few frames"
    rest = list(items)
    assert isinstance(rest[-1], WindowsDone)
    assert len(rest) == len(plan_windows(150, WindowGeometry(8, 5, 8)))
    assert len(made) >= 150


def test_a_header_far_over_the_frames_still_gets_the_last_window_right(
    tmp_path: Path, test_videos: dict[str, Path], sequential_passes: list[str]
) -> None:
    """An AVI header saying 200 frames for 24: the sequential pass keeps only the frames of
    regular windows, so the last window (placed by the real count) needs a second pass."""
    from tools.videogen import patch_avi_frame_counts, write_video

    path = write_video(tmp_path / "over.avi", codec="mpeg4", width=96, height=64, num_frames=24)
    patch_avi_frame_counts(path, total_frames=200)
    segments, t = WINDOWINGS["10f-10f-t4"]  # the last window, 14-23, takes 14 16 19 21
    geometry = segments.geometry(t, 25.0)[0]
    last = plan_windows(24, geometry)[-1]
    assert not all(WindowTracker(geometry).wanted(i) for i in last.frame_indices)
    _, done = _assert_as_full_decode(path, segments, t)
    assert (done.meta.frames_reported, done.meta.frames_decoded) == (200, 24)
    assert len(sequential_passes) == 2
    # The test clip whose header says 48 for 24, on every windowing.
    for segments, t in WINDOWINGS.values():
        _, done = _assert_as_full_decode(test_videos["avi_overreport"], segments, t)
        assert (done.meta.frames_reported, done.meta.frames_decoded) == (48, 24)


def test_frames_a_transform_turns_into_none_are_still_frames(test_videos: dict[str, Path]) -> None:
    for name in ("h264", "mpegts"):
        windows, done, _, _ = _windows(test_videos[name], *WINDOWINGS["8f-5f"], lambda f: None)
        assert done.failure is None
        assert [d.frames for d in windows] == [[None] * 8] * len(windows)


# Files no window comes from ---------------------------------------------------------------


def test_bad_files_end_with_the_failure_decode_video_gives_them(bad_files: dict[str, Path]) -> None:
    segments, t = WINDOWINGS["8f-5f"]
    for name, path in bad_files.items():
        decoded, failure, _ = decode_video(str(path), T, lambda f: 0)
        windows, done, _, _ = _windows(path, segments, t, lambda f: 0)
        if failure is not None:
            assert windows == [], name
            assert done.failure == failure, name
            continue
        # Damaged but partly decodable: windows over what decodes, as decode_video.
        assert done.failure is None, name
        assert windows, name
        assert windows[-1].window.end_frame == done.meta.frames_decoded - 1, name


def test_a_video_without_a_decodable_frame_ends_with_no_frames(tmp_path: Path) -> None:
    """Its index first, cut before any frame: it opens, and not one frame decodes."""
    header_only = tmp_path / "header_only.mp4"
    full = _faststart_mp4(tmp_path)
    header_only.write_bytes(full[: full.index(b"mdat") + 4])
    _, failure, _ = decode_video(str(header_only), T, lambda f: 0)
    windows, done, _, _ = _windows(header_only, *WINDOWINGS["8f-5f"])
    assert windows == []
    assert done.failure.status == failure.status == STATUS_NO_FRAMES
    assert done.meta.frames_decoded == 0


def test_a_video_without_a_decodable_frame_says_what_its_header_promised(tmp_path: Path) -> None:
    header_only = tmp_path / "header_only.mp4"
    full = _faststart_mp4(tmp_path)
    header_only.write_bytes(full[: full.index(b"mdat") + 4])
    _, failure, meta = decode_video(str(header_only), T, lambda f: 0)
    _, done, _, _ = _windows(header_only, *WINDOWINGS["8f-5f"])
    assert done.failure == failure  # "no frame could be decoded (the header says 48 frames)"
    assert (done.meta.frames_reported, done.meta.width, done.meta.height) == (48, 64, 48)


def test_what_is_not_a_file_ends_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    (tmp_path / "dir.mp4").mkdir()
    cases = {
        "fifo.mp4": STATUS_NOT_A_FILE,
        "dir.mp4": STATUS_NOT_A_FILE,
        "gone.mp4": STATUS_NOT_FOUND,
    }
    for name, status in cases.items():
        windows, done, geometry, _ = _windows(tmp_path / name, *WINDOWINGS["8f-5f"])
        assert (windows, geometry, done.failure.status) == ([], None, status)


@pytest.mark.parametrize("name", ["h264", "mpegts"])
def test_frames_too_large_end_as_decode_video_says(
    name: str, test_videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmae_cli import decoding

    monkeypatch.setattr(decoding, "MAX_FRAME_PIXELS", 100 * 100)  # the clips are 128x96
    _, failure, _ = decode_video(str(test_videos[name]), T, lambda f: 0)
    assert failure.status == STATUS_TOO_LARGE
    windows, done, _, _ = _windows(test_videos[name], *WINDOWINGS["8f-5f"])
    assert windows == []
    assert done.failure == failure


# A corrupt stretch in the middle ----------------------------------------------------------


def _shown(path: Path) -> tuple[list[int], Fraction]:
    """The timestamps of every frame the container lists, in presentation order, and their
    time base."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(p.pts for p in container.demux(stream) if p.size), stream.time_base


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_a_corrupt_stretch_fails_only_its_windows_in_the_indexed_path(
    ext: str, tmp_path: Path
) -> None:
    """Packets 40-42 of 100 do not decode (nor, with them, the frames up to the keyframe at
    50): the windows that need those frames have none, every other window is exact."""
    from tools.videogen import write_corrupt_middle

    path = write_corrupt_middle(tmp_path / f"corrupt.{ext}")
    full = _full_decode(str(path))
    assert full.failed == 3
    shown, time_base = _shown(path)
    assert len(shown) == 100
    code_at = dict(zip(full.pts, full.codes, strict=True))
    lost = [i for i, pts in enumerate(shown) if pts not in code_at]
    assert lost and lost[0] == 40 and lost[-1] < 50
    for segments, t in (WINDOWINGS["8f-5f"], WINDOWINGS["10f-10f-t4"]):
        windows, done, geometry, _ = _windows(path, segments, t)
        assert done.failure is None
        assert done.meta.decoder == DECODER_PYAV_SEEK
        assert [d.window for d in windows] == plan_windows(100, geometry)
        for d in windows:
            w = d.window
            if any(i in lost for i in w.frame_indices):
                assert d.frames is None, w
            else:
                assert d.frames == [code_at[shown[i]] for i in w.frame_indices], w
            if w.end_frame < 40 or w.start_frame >= 50:
                assert d.frames == list(w.frame_indices), w  # before and after: untouched
            assert _same_time(d.start_s, float(shown[w.start_frame] * time_base))
            assert _same_time(d.end_s, float(shown[w.end_frame] * time_base))
        missing = sorted({i for d in windows for i in d.window.frame_indices if i in lost})
        t0, t1 = (float(shown[i] * time_base) for i in (missing[0], missing[-1]))
        assert [x for x in done.notes if "did not decode" in x] == [
            f"{len(missing)} frames in {missing[0]}-{missing[-1]} ({t0:.1f}-{t1:.1f} s) "
            "did not decode: their windows are not classified"
        ]


def _not_indexed(*_args):
    """Stands for decoding._indexed_windows on a file it does not index."""
    return None
    yield


@pytest.mark.parametrize(
    ("filename", "codec", "decoded"),
    [
        ("corrupt.avi", "mpeg4", 97),  # AVI: read in order anyway
        ("corrupt.mp4", "h264", 90),  # the same damage as above, read in order
    ],
)
def test_a_corrupt_stretch_in_the_sequential_path_is_left_out_and_named(
    filename: str, codec: str, decoded: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packets 40-42 of 100 fail to decode: the windows are those of the frames that
    decode, exactly as a full decode gives them, and a note says where packets failed."""
    from tools.videogen import write_corrupt_middle
    from vmae_cli import decoding

    path = write_corrupt_middle(tmp_path / filename, codec=codec)
    if filename.endswith(".mp4"):
        monkeypatch.setattr(decoding, "_indexed_windows", _not_indexed)
    full = _full_decode(str(path))
    assert (full.failed, len(full.codes)) == (3, decoded)
    lost = 100 - decoded
    note = (
        "3 packets did not decode between 1.6 and 1.7 s: their frames are left out of the windows"
    )
    # H.264 loses the frames up to the next keyframe; MPEG-4 part 2 only the damaged ones.
    notes = (note, GAP_NOTE) if lost > 3 else (note,)
    for segments, t in (WINDOWINGS["8f-5f"], WINDOWINGS["10f-10f-t4"]):
        windows, done = _assert_as_full_decode(path, segments, t, notes)
        assert done.meta.decoder == DECODER_PYAV
        for d in windows:
            w = d.window
            if w.end_frame < 40:
                assert d.frames == list(w.frame_indices), w  # before: untouched
            if w.start_frame >= 50 - lost:
                assert d.frames == [i + lost for i in w.frame_indices], w  # from the keyframe


def _silently_damaged_ts(tmp_path: Path) -> tuple[Path, int]:
    from tools.videogen import write_corrupt_middle

    path = write_corrupt_middle(tmp_path / "corrupt.ts")
    full = _full_decode(str(path))
    lost = 100 - len(full.codes)
    # The demuxer drops the damaged packets and the decoder the frames up to the keyframe
    # at 50, with no error anywhere.
    assert (full.failed, lost) == (0, 10)
    assert full.codes == [*range(40), *range(50, 100)]
    return path, lost


#: The note of the corrupt clips that lose frames 40-49 (25 fps: 1.56 s is frame 39).
GAP_NOTE = "no frame shown between 1.56 and 2.00 s, 11 frame intervals: frames missing or damaged?"


def test_a_stretch_mpegts_loses_silently_leaves_the_other_windows_exact(tmp_path: Path) -> None:
    path, lost = _silently_damaged_ts(tmp_path)
    for segments, t in (WINDOWINGS["8f-5f"], WINDOWINGS["10f-10f-t4"]):
        windows, done = _assert_as_full_decode(path, segments, t, (GAP_NOTE,))
        assert done.meta.decoder == DECODER_PYAV
        for d in windows:
            w = d.window
            if w.end_frame < 40:
                assert d.frames == list(w.frame_indices), w
            if w.start_frame >= 40:
                assert d.frames == [i + lost for i in w.frame_indices], w


def test_a_stretch_mpegts_loses_silently_is_named_in_the_notes(tmp_path: Path) -> None:
    path, _ = _silently_damaged_ts(tmp_path)
    _, done, _, _ = _windows(path, *WINDOWINGS["8f-5f"])
    assert done.failure is None
    assert done.notes == [GAP_NOTE]


def test_frames_an_edit_list_hides_are_not_taken_for_truncation(tmp_path: Path) -> None:
    """A stream-copy cut keeps the frames before its cut point, hidden by an edit list: the
    header counts them, so they are not "missing"; a file cut short (at a packet boundary, so
    that the packet index reads cleanly) still gets its note."""
    from tools.videogen import truncate_before_packet, write_video

    cut = write_video(
        tmp_path / "cut.mp4",
        codec="h264",
        width=128,
        height=96,
        num_frames=120,
        gop=12,
        pts_offset=-40,
    )
    _, failure, meta = decode_video(str(cut), 16, lambda f: None)
    assert failure is None and (meta.frames_reported, meta.frames_decoded) == (120, 80)
    assert meta.frames_hidden == 40 and truncation_note(meta) is None
    whole = write_video(
        tmp_path / "short.mp4",
        codec="h264",
        width=128,
        height=96,
        num_frames=150,
        gop=12,
        container_options={"movflags": "+faststart"},
    )
    short = truncate_before_packet(whole, 90)
    _, failure, meta = decode_video(str(short), 16, lambda f: None)
    assert failure is None and meta.frames_hidden == 0
    assert truncation_note(meta) == "header says 150 frames, 90 decode (truncated?)"


def test_a_raw_stream_without_timestamps_is_timed_by_its_frame_rate(tmp_path: Path) -> None:
    from tools.videogen import write_video
    from vmae_cli.decoding import decode_windows

    raw = write_video(tmp_path / "raw.h264", codec="h264", width=128, height=96, num_frames=30)
    geometry = WindowGeometry(10, 10, 4)
    *windows, done = decode_windows(str(raw), lambda fps: (geometry, ""), lambda f: None)
    assert done.failure is None and done.meta.decoder == DECODER_PYAV
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 0.36), (0.4, 0.76), (0.8, 1.16)]
    assert done.notes == ["30 frames without timestamps: their times are frame / fps"]


def test_keyframe_sampling_says_when_it_saw_mostly_one_frame(tmp_path: Path) -> None:
    """Issue 24, 5: a 10 s video with one keyframe gives the same frame for every sample:
    its row says so."""
    from tools.videogen import write_video

    one_gop = write_video(
        tmp_path / "one_gop.mp4", codec="h264", width=64, height=48, num_frames=250, gop=1000
    )
    decoded, failure, meta = decode_video(str(one_gop), T, lambda f: None, sampling="keyframes")
    assert failure is None and meta.decoder == "pyav-keyframes"
    assert decoded.frame_indices == [0] * T
    assert decoded.notes == [
        f"{T} of the {T} sampled frames are the same keyframe (frame 0): the video has few "
        "keyframes, so keyframe sampling sees little of it; exact sampling sees all of it"
    ]
    many = write_video(
        tmp_path / "many.mp4", codec="h264", width=64, height=48, num_frames=250, gop=10
    )
    decoded, _, _ = decode_video(str(many), T, lambda f: None, sampling="keyframes")
    assert decoded.notes == []
