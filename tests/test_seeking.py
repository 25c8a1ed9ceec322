"""Keyframe-aware seeking: it must return exactly the frames a full sequential decode shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmae_cli.decoding import (
    DECODER_OPENCV,
    DECODER_PYAV_KEYFRAMES,
    DECODER_PYAV_SEEK,
    decode_pyav_seek,
    decode_video,
    sample_indices,
)
from vmae_cli.protocol import SAMPLING_KEYFRAMES
from vmae_cli.seeking import (
    SKIP_NONREF_DECODERS,
    DecodeCounts,
    FrameIndex,
    NotSeekable,
    nearest_keyframes,
    plan_seeks,
    skips_nonref_exactly,
)

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


#: The clips of the ``multi_gop`` fixture.
MULTI_GOP_NAMES = [
    "h264_bframes.mp4",
    "h264_bframes.mkv",
    "hevc.mp4",
    "vp9.webm",
    "edit_list.mp4",
    "vfr.mp4",
    "mpeg4.mp4",
]


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


@pytest.mark.parametrize("name", MULTI_GOP_NAMES)
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


def test_short_videos_are_read_sequentially(test_videos) -> None:
    # 24 frames at 25 fps = 0.96 s, below the default minimum duration (2 s).
    path = str(test_videos["h264_bframes"])
    assert decode_pyav_seek(path, T, lambda f: f) is None
    _, failure, meta = decode_video(path, T, lambda f: None)
    assert (failure, meta.decoder) == (None, DECODER_OPENCV)


def test_videos_from_two_seconds_on_take_the_seeking_path(multi_gop) -> None:
    from tools.videogen import read_index

    # 150 frames at 25 fps = 6 s: seeking with skipped frames costs less than OpenCV's pass.
    path = multi_gop["h264_bframes.mp4"]
    decoded, failure, meta = decode_video(str(path), T, read_index)
    assert failure is None
    assert meta.decoder == DECODER_PYAV_SEEK
    _assert_exact(path, decoded)


def test_decode_video_seeks_in_a_long_video(tmp_path: Path) -> None:
    from tools.videogen import read_index, write_video

    path = write_video(
        tmp_path / "long.mp4", codec="h264", width=96, height=64, num_frames=300, gop=25
    )
    decoded, failure, meta = decode_video(str(path), T, read_index)
    assert failure is None
    assert meta.decoder == DECODER_PYAV_SEEK
    _assert_exact(path, decoded)


# --------------------------------------------------------------------------------------
# Skipping non-reference frames (skip_frame NONREF) on the way to each sampled frame
# --------------------------------------------------------------------------------------

#: libx265 settings of tools/videogen.py, which an x265-params option replaces.
_X265_QUIET = "log-level=error:pools=1:frame-threads=1"
#: Clips of the long_gops fixture whose decoder skips frames.
_SKIPPING = [
    "h264.mp4",
    "h264.mkv",
    "hevc.mp4",
    "hevc.mkv",
    "mpeg4.mp4",
    "mpeg4.mkv",
    "edit_list.mp4",
    "vfr.mkv",
]


@pytest.fixture(scope="module")
def long_gops(tmp_path_factory) -> dict[str, Path]:
    """150-frame clips with a keyframe every 50 frames and B-frames (a B-pyramid for H.264 and
    HEVC): many non-reference frames lie between a keyframe and the next sampled frame."""
    from tools.videogen import available_codecs, write_video

    root = tmp_path_factory.mktemp("long_gops")
    common = {"width": 128, "height": 96, "num_frames": 150, "gop": 50}
    specs = {
        "h264.mp4": {"codec": "h264", "bframes": 3},
        "h264.mkv": {"codec": "h264", "bframes": 3},
        "hevc.mp4": {"codec": "hevc", "bframes": 4},
        "hevc.mkv": {"codec": "hevc", "bframes": 4},
        "mpeg4.mp4": {"codec": "mpeg4", "bframes": 2},
        "mpeg4.mkv": {"codec": "mpeg4", "bframes": 2},
        "vp9.webm": {"codec": "vp9"},
        "edit_list.mp4": {"codec": "h264", "bframes": 3, "pts_offset": -3},
        "vfr.mkv": {"codec": "h264", "bframes": 3, "vfr": True},
        # Three temporal sub-layers, where HEVC's skipping is not trusted.
        "hevc_layers.mkv": {
            "codec": "hevc",
            "bframes": 4,
            "stream_options": {"x265-params": f"{_X265_QUIET}:temporal-layers=3"},
        },
    }
    if "av1" in available_codecs():
        specs["av1.mkv"] = {"codec": "av1"}
    return {name: write_video(root / name, **common, **kw) for name, kw in specs.items()}


def _full_rgb(path: Path) -> list:
    """Every frame a full sequential PyAV decode shows, as RGB arrays."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("name", [*_SKIPPING, "vp9.webm", "hevc_layers.mkv"])
def test_skipping_non_reference_frames_keeps_the_sampled_frames_exact(name: str, long_gops) -> None:
    import numpy as np

    path = long_gops[name]
    truth = _full_rgb(path)
    expected = sample_indices(len(truth), T)
    counts = {}
    for skip in (False, True):
        counts[skip] = DecodeCounts()
        decoded = decode_pyav_seek(
            str(path), T, lambda f: f, min_duration_s=0, skip_nonref=skip, counts=counts[skip]
        )
        assert decoded is not None, "these clips must take the seeking path"
        assert decoded.meta.frames_decoded == len(truth)
        assert decoded.frame_indices == expected
        for i, frame in zip(expected, decoded.frames, strict=True):
            assert np.array_equal(frame, truth[i]), (skip, i)
    full, skipping = counts[False], counts[True]
    # The same packets reach the decoder; with skipping, fewer frames come out of it.
    assert skipping.packets == full.packets
    if name in _SKIPPING:
        assert skipping.skippable > 0
        assert skipping.frames < full.frames
    else:
        assert (skipping.skippable, skipping.frames) == (0, full.frames)


def test_skipping_is_exact_or_declined_on_every_test_clip(test_videos) -> None:
    from tools.videogen import read_index

    for name, path in test_videos.items():
        if name == "rotated":
            continue  # its frames are turned, so their index pattern is not readable
        decoded = {
            skip: decode_pyav_seek(
                str(path), T, read_index, min_duration_s=0, max_fraction=1.0, skip_nonref=skip
            )
            for skip in (False, True)
        }
        assert (decoded[True] is None) == (decoded[False] is None), name
        if decoded[True] is not None:
            _assert_exact(path, decoded[True])
            assert decoded[True].frames == decoded[False].frames, name


def test_decoding_stops_at_the_sampled_frame_and_drains_the_decoder(long_gops) -> None:
    import av

    from vmae_cli.seeking import index_packets

    path = long_gops["h264.mp4"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = index_packets(container, stream)
    with av.open(str(path)) as container:
        in_decode_order = [p.pts for p in container.demux(video=0) if p.size]
    target = 75  # frame 75, 25 frames after the keyframe at frame 50
    target_pts, keyframe_pts = index.shown[target], index.shown[50]
    assert keyframe_pts in index.keyframes
    counts = DecodeCounts()
    decoded = decode_pyav_seek(
        str(path), lambda n: [target], lambda f: f, skip_nonref=False, counts=counts
    )
    assert decoded.frame_indices == [target]
    # Packets from the keyframe's to the sampled frame's, none after; every frame decoded
    # came out (the reordering delay is drained, not decoded through).
    sent = in_decode_order.index(target_pts) - in_decode_order.index(keyframe_pts) + 1
    assert counts.packets == sent
    assert counts.frames == counts.packets


@pytest.mark.parametrize(
    ("name", "skips"),
    [
        ("h264.mp4", True),
        ("h264.mkv", True),
        ("hevc.mp4", True),
        ("hevc.mkv", True),
        ("mpeg4.mp4", True),
        ("mpeg4.mkv", True),
        ("vp9.webm", False),  # the decoder ignores skip_frame
        ("hevc_layers.mkv", False),  # higher sub-layers may refer to "non-reference" ones
        ("av1.mkv", False),  # libdav1d reads skip_frame only when it opens
    ],
)
def test_non_reference_frames_are_skipped_only_where_that_is_exact(
    name: str, skips: bool, long_gops
) -> None:
    import av

    if name not in long_gops:
        pytest.skip(f"{name}: this PyAV build cannot encode it")
    with av.open(str(long_gops[name])) as container:
        cc = container.streams.video[0].codec_context
        decoder, extradata = cc.name, cc.extradata
    assert skips_nonref_exactly(decoder, extradata) is skips
    if name == "hevc_layers.mkv":
        assert decoder in SKIP_NONREF_DECODERS  # refused for its sub-layers, not its decoder


def test_hevc_skipping_needs_parameter_sets_that_say_one_sub_layer() -> None:
    # A minimal hvcC record: header, one array holding one SPS.
    def hvcc(sps_byte: int) -> bytes:
        sps = bytes([0x42, 0x01, sps_byte, 0x01])  # NAL type 33, then the SPS's first byte
        header = bytes([1]) + bytes(20) + bytes([0x0F])
        return header + bytes([1, 0x80 | 33, 0, 1, 0, len(sps)]) + sps

    assert skips_nonref_exactly("hevc", hvcc(0x01))  # sps_max_sub_layers_minus1 = 0
    assert not skips_nonref_exactly("hevc", hvcc(0x05))  # 3 sub-layers
    assert not skips_nonref_exactly("hevc", hvcc(0x01)[:-2])  # cut short
    assert not skips_nonref_exactly("hevc", hvcc(0x01)[:24])  # cut in an array header
    assert not skips_nonref_exactly("hevc", hvcc(0x01)[:22] + bytes([0]))  # no SPS
    assert not skips_nonref_exactly("hevc", b"\x00\x00\x00\x01\x40\x01")  # Annex B
    assert not skips_nonref_exactly("hevc", None)
    assert skips_nonref_exactly("h264", None)
    assert not skips_nonref_exactly("libdav1d", None)


def test_a_damaged_packet_sends_the_file_to_the_sequential_pass(tmp_path: Path) -> None:
    """An MP4 with its index first, cut inside a packet: the index lists 100 frames and the
    demuxer hands out the cut packet (flagged corrupt), whose frame does not decode."""
    import av

    from tools.videogen import packet_positions, read_index, write_video

    path = write_video(
        tmp_path / "cut.mp4",
        codec="h264",
        width=96,
        height=64,
        num_frames=100,  # 4 s: long enough to seek
        container_options={"movflags": "+faststart"},
    )
    with open(path, "r+b") as f:
        f.truncate(packet_positions(path)[50] + 4)
    truth = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                truth += [read_index(f.to_ndarray(format="rgb24")) for f in packet.decode()]
            except av.error.FFmpegError:
                continue
    assert len(truth) == 50
    assert decode_pyav_seek(str(path), T, read_index) is None
    decoded, failure, meta = decode_video(str(path), T, read_index)
    assert failure is None
    assert meta.decoder != DECODER_PYAV_SEEK
    assert meta.frames_decoded == len(truth)
    assert decoded.frames == [truth[i] for i in sample_indices(len(truth), T)]


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


# --------------------------------------------------------------------------------------
# --sampling keyframes: the keyframe nearest each sampled frame
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyframes", "positions", "expected"),
    [
        # Between two keyframes: the nearer; halfway (15, 45) goes to the earlier one.
        ([0, 30, 60, 90], [14, 15, 16, 44, 45, 46], [0, 0, 30, 30, 30, 60]),
        # On a keyframe: itself. After the last one: the last.
        ([0, 30, 60, 90], [0, 30, 90, 99], [0, 30, 90, 90]),
        # Before the first keyframe: the first.
        ([10, 50], [0, 9, 10], [10, 10, 10]),
        # One keyframe serves every position; order and repeats follow the positions.
        ([0], [99, 0, 50, 50], [0, 0, 0, 0]),
        # Unsorted keyframes are fine (the index sorts them anyway).
        ([60, 0], [20, 40], [0, 60]),
    ],
)
def test_nearest_keyframes_by_frame_index(
    keyframes: list[int], positions: list[int], expected: list[int]
) -> None:
    index = FrameIndex(shown=list(range(100)), keyframes=keyframes)
    assert nearest_keyframes(index, positions) == expected


@pytest.mark.parametrize(
    ("keyframes", "positions", "expected"),
    [
        # Timestamps in a 1/12800 time base, 512 per frame: keyframe pts 1536 is frame 3.
        ([0, 1536, 5120], [1, 2, 6, 7, 9], [0, 3, 3, 10, 10]),
        # A keyframe an edit list drops (negative pts, not shown) cannot be taken.
        ([-1536, 1536, 5120], [0, 1, 7], [3, 3, 10]),
    ],
)
def test_nearest_keyframes_maps_timestamps_to_shown_frames(
    keyframes: list[int], positions: list[int], expected: list[int]
) -> None:
    index = FrameIndex(shown=[512 * i for i in range(12)], keyframes=keyframes)
    assert nearest_keyframes(index, positions) == expected


def test_nearest_keyframes_refuses_what_it_cannot_plan() -> None:
    with pytest.raises(NotSeekable):
        nearest_keyframes(FrameIndex(shown=[0, 1, 2], keyframes=[-1]), [0])
    with pytest.raises(ValueError, match="outside"):
        nearest_keyframes(FrameIndex(shown=[0, 1, 2], keyframes=[0]), [3])


def _full_decode(path: Path) -> tuple[list, list[int]]:
    """Every shown frame (RGB) of a full PyAV decode, and the indices of its keyframes."""
    import av

    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    frames = [f.to_ndarray(format="rgb24") for f in decoded]
    return frames, [i for i, f in enumerate(decoded) if f.key_frame]


@pytest.mark.parametrize("name", MULTI_GOP_NAMES)
def test_keyframe_sampling_returns_full_decode_keyframes_nearest_each_position(
    name: str, multi_gop
) -> None:
    import numpy as np

    path = multi_gop[name]
    decoded, failure, meta = decode_video(str(path), T, lambda f: f, sampling=SAMPLING_KEYFRAMES)
    assert failure is None
    assert meta.decoder == DECODER_PYAV_KEYFRAMES
    assert decoded.notes == []
    truth, keyframes = _full_decode(path)
    assert meta.frames_decoded == len(truth)
    positions = sample_indices(len(truth), T)
    assert len(decoded.frame_indices) == len(positions)
    for position, got in zip(positions, decoded.frame_indices, strict=True):
        distances = {k: abs(k - position) for k in keyframes}
        best = min(distances.values())
        # The nearest keyframe, the earlier one on a tie.
        assert got == min(k for k, d in distances.items() if d == best), (position, got)
    for got, frame in zip(decoded.frame_indices, decoded.frames, strict=True):
        assert np.array_equal(frame, truth[got]), got
    # Not the exact frames: the positions (4, 14, 23, ...) fall between keyframes.
    assert decoded.frame_indices != positions


def test_keyframe_sampling_turns_frames_upright(test_videos) -> None:
    import numpy as np

    path = str(test_videos["rotated"])
    exact, _, exact_meta = decode_video(path, lambda n: [0], lambda f: f)
    keyed, _, meta = decode_video(path, lambda n: [0], lambda f: f, sampling=SAMPLING_KEYFRAMES)
    assert meta.decoder == DECODER_PYAV_KEYFRAMES
    assert keyed.frame_indices == [0]
    assert np.array_equal(keyed.frames[0], exact.frames[0])
    assert (meta.width, meta.height) == (exact_meta.width, exact_meta.height)
    assert meta.rotation == exact_meta.rotation == 90


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("mpeg4_bframes", "container avi"),
        ("mjpeg", "container avi"),
        ("mpegts", "container mpegts"),
        ("mpeg2_ps", "container mpeg"),
    ],
)
def test_keyframe_sampling_falls_back_to_exact_with_a_note(
    name: str, why: str, test_videos
) -> None:
    if name not in test_videos:
        pytest.skip(f"{name} not generated here")
    from tools.videogen import read_index

    path = str(test_videos[name])
    exact, _, exact_meta = decode_video(path, T, read_index)
    decoded, failure, meta = decode_video(path, T, read_index, sampling=SAMPLING_KEYFRAMES)
    assert failure is None
    assert meta == exact_meta  # the same decoder, counts and all
    assert decoded.frame_indices == exact.frame_indices == sample_indices(meta.frames_decoded, T)
    assert decoded.frames == exact.frames
    assert decoded.notes == [f"keyframe sampling not possible ({why}): frames sampled exactly"]
    assert exact.notes == []


def test_keyframe_sampling_gives_bad_files_the_same_failures(bad_files) -> None:
    for name, path in bad_files.items():
        exact = decode_video(str(path), T, lambda f: f)
        keyed = decode_video(str(path), T, lambda f: f, sampling=SAMPLING_KEYFRAMES)
        if exact[1] is None:
            assert keyed[1] is None, name  # partly decodable: classified either way
        else:
            assert keyed[1] == exact[1], name
            assert keyed[2] == exact[2], name


def test_unknown_sampling_is_a_programming_error(multi_gop) -> None:
    with pytest.raises(ValueError, match="sampling"):
        decode_video(str(multi_gop["vp9.webm"]), T, lambda f: f, sampling="nearest")
