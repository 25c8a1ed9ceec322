"""Generate synthetic videos for the test-suite and for ``sample_videos/``.

No real footage may be committed to this repository, so every video the project needs is
made here, deterministically, from a frame pattern that encodes the frame index:

* the background is a smooth colour gradient that moves every frame (so encoders see
  motion and the clip looks like video rather than a still image);
* a horizontal band of 12 large black/white blocks sits inside the *central square* of the
  frame (side = the short side of the frame).  Block 0 is always white, block 11 always
  black (reference levels) and blocks 1..10 carry the frame index in binary, MSB first.

Because the code lives inside the central square, it survives the usual classifier
pre-processing "resize the short side to N, centre-crop N x N": the crop *is* the central
square.  :func:`read_index` therefore always looks for the code relative to the central
square of whatever frame it is given.  The code is read from the channel mean (luma-like),
so RGB, BGR and greyscale frames all work.

Minimum size: the blocks are ``short_side / 12`` pixels wide.  Uncompressed patterns read
back down to a short side of 24 px; encode/decode round trips with every codec here (at the
default quality settings, also after resizing to 224 + centre crop) were verified at 48x32,
i.e. a short side of 32 px (HEVC at 64x48, see :func:`write_video`).  Treat 32 px as the
minimum short side; the presets use >= 64 px (96x64 is the smallest), a safety margin.

Command line::

    python tools/videogen.py samples DIR   # small demo clips (sample_videos/)
    python tools/videogen.py tests DIR     # fast, tiny clips for automated tests
    python tools/videogen.py bad DIR       # broken / non-video files
    python tools/videogen.py awkward DIR   # unusual but valid formats, sizes, containers
    python tools/videogen.py bomb DIR      # a 400 KB H.264 file of 16384x8192 frames
    python tools/videogen.py check DIR     # decode everything under DIR with OpenCV + PyAV
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AWKWARD_SPECS",
    "CODECS",
    "CODE_BITS",
    "MAX_INDEX",
    "SAMPLE_SPECS",
    "TEST_SPECS",
    "VideoSpec",
    "available_codecs",
    "cv2_indices",
    "find_code",
    "frame_pattern",
    "make_awkward_videos",
    "make_bad_files",
    "make_memory_bomb",
    "make_sample_videos",
    "make_test_videos",
    "mp4_edit_lists",
    "packet_positions",
    "patch_avi_frame_counts",
    "pyav_indices",
    "read_index",
    "truncate_before_packet",
    "vfr_timestamps_ms",
    "write_corrupt_middle",
    "write_video",
]

# --------------------------------------------------------------------------------------
# Frame pattern
# --------------------------------------------------------------------------------------

CODE_BITS = 10
"""Number of index bits in the block code; indices wrap modulo ``2 ** CODE_BITS``."""
MAX_INDEX = (1 << CODE_BITS) - 1
_CELLS = CODE_BITS + 2  # white reference + bits + black reference
# Vertical extent of the code band, as fractions of the central square's side.  The band
# is deliberately tall (24 % of the short side) so that blur, chroma subsampling and
# resampling only ever touch its edges, never the inner part that is sampled.
_BAND_TOP = 0.38
_BAND_BOTTOM = 0.62
# Only the inner half of every block (in both directions) is sampled when reading, so a
# crop/resize that is off by a pixel or two, or ringing at block edges, cannot flip a bit.
_SAMPLE_MARGIN = 0.25
# Reference contrast (white block minus black block, 0..255) below which we refuse to
# read: the frame is then not one of ours or is too damaged to trust.
_MIN_CONTRAST = 60.0


def _triangle(phase: np.ndarray) -> np.ndarray:
    """Integer triangle wave over a 512-step period, values 0..255."""
    phase = phase % 512
    return np.where(phase < 256, phase, 511 - phase)


def _central_square(width: int, height: int) -> tuple[int, int, int]:
    """Return ``(x0, y0, side)`` of the centred square whose side is the short side."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def frame_pattern(index: int, width: int, height: int) -> np.ndarray:
    """Return the synthetic RGB frame for ``index`` as an ``(height, width, 3)`` uint8 array.

    The background is a moving gradient; the index (modulo ``2 ** CODE_BITS``) is drawn as
    black/white blocks in the middle band of the central square.  Only integer arithmetic
    is used so the pixels are bit-identical on every platform and numpy version.
    """
    if width < 1 or height < 1:
        raise ValueError(f"invalid frame size {width}x{height}")
    if index < 0:
        raise ValueError(f"frame index must be >= 0, got {index}")
    xs = np.arange(width, dtype=np.int64)[None, :]
    ys = np.arange(height, dtype=np.int64)[:, None]
    t = int(index)
    # Three ramps moving in different directions/speeds; the levels stay within 40..215
    # so the background can never be mistaken for a pure black or white code block.
    red = _triangle(xs * 512 // width + 7 * t)
    green = _triangle(ys * 512 // height + 5 * t)
    blue = _triangle((xs * 256 // width + ys * 256 // height) - 3 * t)
    shape = (height, width)
    frame = np.empty((height, width, 3), dtype=np.uint8)
    for channel, ramp in enumerate((red, green, blue)):
        frame[:, :, channel] = np.broadcast_to(40 + ramp * 175 // 255, shape)

    x0, y0, side = _central_square(width, height)
    top = y0 + round(side * _BAND_TOP)
    bottom = max(top + 1, y0 + round(side * _BAND_BOTTOM))
    code = int(index) & MAX_INDEX
    levels = [255] + [255 if (code >> bit) & 1 else 0 for bit in range(CODE_BITS - 1, -1, -1)]
    levels.append(0)
    for cell, level in enumerate(levels):
        left = x0 + cell * side // _CELLS
        right = x0 + (cell + 1) * side // _CELLS
        frame[top:bottom, left:right, :] = level
    return frame


def _cell_levels(frame: np.ndarray) -> np.ndarray:
    """Median channel-mean level of the sampled inner part of each code block."""
    if frame.ndim == 3:
        gray = frame.astype(np.float32).mean(axis=2)
    elif frame.ndim == 2:
        gray = frame.astype(np.float32)
    else:
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {frame.shape}")
    height, width = gray.shape
    x0, y0, side = _central_square(width, height)
    band_h = side * (_BAND_BOTTOM - _BAND_TOP)
    top = round(y0 + side * _BAND_TOP + band_h * _SAMPLE_MARGIN)
    bottom = max(top + 1, round(y0 + side * _BAND_BOTTOM - band_h * _SAMPLE_MARGIN))
    cell_w = side / _CELLS
    levels = np.empty(_CELLS, dtype=np.float32)
    for cell in range(_CELLS):
        left = round(x0 + (cell + _SAMPLE_MARGIN) * cell_w)
        right = max(left + 1, round(x0 + (cell + 1 - _SAMPLE_MARGIN) * cell_w))
        levels[cell] = float(np.median(gray[top:bottom, left:right]))
    return levels


def _decode_levels(levels: np.ndarray) -> tuple[int, float]:
    """Turn block levels into ``(index, confidence)``; confidence is 0..1."""
    white, black = float(levels[0]), float(levels[-1])
    contrast = white - black
    if contrast <= 0:
        return -1, 0.0
    threshold = (white + black) / 2
    bits = levels[1:-1] > threshold
    index = 0
    for bit in bits:
        index = (index << 1) | int(bit)
    # How far the least certain bit is from the threshold, relative to half the contrast,
    # scaled by the contrast itself so a washed-out frame scores low.
    margin = float(np.min(np.abs(levels[1:-1] - threshold))) / (contrast / 2)
    return index, max(0.0, min(1.0, margin)) * min(1.0, contrast / 255.0)


def read_index(frame: np.ndarray) -> int:
    """Decode the frame index from a decoded frame produced from :func:`frame_pattern`.

    ``frame`` may be RGB, BGR or greyscale and of any size, e.g. the original frame, a
    resized one, or one resized so its short side is 224 and centre-cropped to 224x224.
    Raises :class:`ValueError` when no code can be found (reference blocks missing).
    """
    levels = _cell_levels(np.asarray(frame))
    if levels[0] - levels[-1] < _MIN_CONTRAST:
        raise ValueError(
            f"no frame code found (white/black reference levels {levels[0]:.0f}/{levels[-1]:.0f})"
        )
    return _decode_levels(levels)[0]


def find_code(frame: np.ndarray) -> tuple[int, int]:
    """Decode the frame index from a frame that may have been rotated by a multiple of 90°.

    Returns ``(index, rotation)`` where ``rotation`` (0, 90, 180 or 270) is the clockwise
    rotation that was applied to the original pattern to give ``frame``; e.g. a decoder
    that honours ``write_video(..., rotation=90)`` yields frames with ``rotation == 90``.
    Raises :class:`ValueError` if no orientation yields a code.
    """
    frame = np.asarray(frame)
    best: tuple[float, int, int] | None = None
    for quarter_turns in range(4):
        # np.rot90 turns counter-clockwise, undoing a clockwise rotation of 90*k degrees.
        levels = _cell_levels(np.rot90(frame, quarter_turns))
        if levels[0] - levels[-1] < _MIN_CONTRAST:
            continue
        index, confidence = _decode_levels(levels)
        if best is None or confidence > best[0]:
            best = (confidence, index, 90 * quarter_turns)
    if best is None:
        raise ValueError("no frame code found in any orientation")
    return best[1], best[2]


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CodecInfo:
    encoders: tuple[str, ...]  # candidate FFmpeg encoder names, first available wins
    pix_fmt: str
    options: Mapping[str, str] = field(default_factory=dict)
    supports_bframes: bool = False


CODECS: dict[str, _CodecInfo] = {
    # Speed matters more than quality: clips are tiny and must encode in milliseconds.
    "h264": _CodecInfo(
        ("libx264", "h264"),
        "yuv420p",
        # One thread keeps x264 output byte-identical regardless of the machine's cores.
        {"preset": "ultrafast", "crf": "20", "threads": "1"},
        supports_bframes=True,
    ),
    "hevc": _CodecInfo(
        ("libx265", "hevc"),
        "yuv420p",
        {
            "preset": "ultrafast",
            "crf": "24",
            "x265-params": "log-level=error:pools=1:frame-threads=1",
        },
        supports_bframes=True,
    ),
    "vp9": _CodecInfo(
        ("libvpx-vp9",),
        "yuv420p",
        # Constant-quality mode needs b=0; realtime/cpu-used=8 is the fastest libvpx mode.
        {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0", "threads": "1"},
    ),
    "av1": _CodecInfo(
        ("libsvtav1", "libaom-av1", "librav1e"),
        "yuv420p",
        # Presets >= 11 are "not for visual use" in SVT-AV1 4.x and really do blend blocks
        # across frames (codes became unreadable); 10 is the fastest clean one. lp=1 = 1 thread.
        {"preset": "10", "crf": "35", "svtav1-params": "lp=1"},
    ),
    "mpeg4": _CodecInfo(
        ("mpeg4",),
        "yuv420p",
        {"qscale": "3", "threads": "1"},
        supports_bframes=True,
    ),
    "mpeg1": _CodecInfo(("mpeg1video",), "yuv420p", {"qscale": "3"}, supports_bframes=True),
    "mpeg2": _CodecInfo(("mpeg2video",), "yuv420p", {"qscale": "3"}, supports_bframes=True),
    "vp8": _CodecInfo(
        ("libvpx",),
        "yuv420p",
        {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "1M", "threads": "1"},
    ),
    "mjpeg": _CodecInfo(
        ("mjpeg",),
        # MJPEG is full-range; yuvj420p is the only 4:2:0 format the encoder accepts
        # without extra colour-range negotiation.
        "yuvj420p",
        {"qscale": "6", "threads": "1"},
    ),
    "prores": _CodecInfo(
        ("prores_ks", "prores"),
        "yuv422p10le",
        {"profile": "0", "threads": "1"},  # profile 0 = ProRes 422 Proxy, the smallest
    ),
}


def _encoder_exists(name: str) -> bool:
    import av

    try:
        av.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def _resolve_encoder(codec: str) -> tuple[str, _CodecInfo]:
    """Map a friendly codec name (or a raw FFmpeg encoder name) to an available encoder."""
    info = CODECS.get(codec)
    if info is None:
        if _encoder_exists(codec):
            return codec, _CodecInfo((codec,), "yuv420p")
        raise ValueError(f"unknown codec {codec!r}; friendly names: {sorted(CODECS)}")
    for name in info.encoders:
        if _encoder_exists(name):
            return name, info
    raise RuntimeError(f"no encoder for {codec!r} in this PyAV build (tried {info.encoders})")


def available_codecs() -> dict[str, str]:
    """Friendly codec names usable with :func:`write_video`, mapped to the FFmpeg encoder."""
    found = {}
    for friendly in CODECS:
        try:
            found[friendly] = _resolve_encoder(friendly)[0]
        except RuntimeError:
            pass
    return found


def vfr_timestamps_ms(num_frames: int, fps: float = 25) -> list[int]:
    """Deterministic, irregular presentation timestamps (milliseconds) used for ``vfr=True``.

    Frame durations cycle through 0.5x, 1x, 1.5x, 1x and 2x the nominal frame period, so
    the average rate is close to ``fps`` but consecutive intervals differ.
    """
    period = 1000.0 / fps
    factors = (0.5, 1.0, 1.5, 1.0, 2.0)
    stamps, now = [], 0.0
    for i in range(num_frames):
        stamps.append(round(now))
        now += period * factors[i % len(factors)]
    return stamps


def write_video(
    path: str | os.PathLike[str],
    *,
    codec: str,
    width: int,
    height: int,
    num_frames: int,
    fps: float = 25,
    pix_fmt: str | None = None,
    container_options: Mapping[str, str] | None = None,
    stream_options: Mapping[str, str] | None = None,
    bframes: int | None = None,
    gop: int | None = None,
    rotation: int | None = None,
    vfr: bool = False,
    start_index: int = 0,
    pts_offset: int = 0,
    pattern: Callable[[int, int, int], np.ndarray] = frame_pattern,
) -> Path:
    """Encode ``num_frames`` frames of :func:`frame_pattern` (or of ``pattern``) into
    ``path`` with PyAV.

    Frame ``i`` shows ``pattern(start_index + i, width, height)``, an ``(height, width, 3)``
    uint8 RGB array.  The container is chosen from the file extension (case-insensitive).
    Another ``pattern`` draws other pictures (``benchmarks/int8_trained.py``: moving
    textured objects a model learns to classify) through the same encoders and containers.

    * ``codec``: ``"h264"``, ``"hevc"``, ``"vp9"``, ``"av1"``, ``"mpeg4"``, ``"mjpeg"``,
      ``"prores"`` (see :func:`available_codecs`) or a raw FFmpeg encoder name.
    * ``pix_fmt``: overrides the codec's default pixel format.
    * ``container_options`` / ``stream_options``: extra muxer / encoder AVOptions, merged
      over the defaults (``fflags=+bitexact`` for the muxer, fast presets for encoders).
    * ``bframes``: maximum consecutive B-frames (h264, hevc, mpeg4).
    * ``gop``: keyframe interval in frames.
    * ``rotation``: clockwise display rotation in degrees (the meaning of the legacy
      ``rotate`` tag, e.g. 90 for a phone held upright), stored as a display matrix.  Only
      MP4/MOV carry it; other containers raise :class:`ValueError`.  On reading, OpenCV
      reports the same value as ``CAP_PROP_ORIENTATION_META`` and rotates frames by
      default; PyAV's ``VideoFrame.rotation`` reports it counter-clockwise (``-rotation``,
      normalised to -180..180) and does not rotate.
    * ``vfr``: use a 1/1000 time base and the irregular stamps of :func:`vfr_timestamps_ms`.
    * ``pts_offset``: shift every presentation timestamp by this many frame periods.  In
      MP4/MOV a negative offset makes the muxer write an edit list whose media time skips
      the first ``-pts_offset`` frames: they are stored and decoded but never shown (what
      FFmpeg, and so OpenCV and PyAV, return starts at ``start_index - pts_offset``).  A
      positive offset writes an empty edit: presentation starts late, every frame is shown.
    """
    import av

    path = Path(path)
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    encoder, info = _resolve_encoder(codec)
    suffix = path.suffix.lower()
    if rotation is not None and rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    if rotation is not None and rotation % 360 and suffix not in {".mp4", ".mov", ".m4v"}:
        # FFmpeg writes the display matrix only in the MP4/MOV track header.
        raise ValueError(f"rotation metadata is only supported for MP4/MOV, not {suffix!r}")
    if vfr and suffix == ".avi":
        raise ValueError("AVI cannot store variable frame timestamps")
    if bframes and not info.supports_bframes:
        raise ValueError(f"B-frames are not supported for codec {codec!r}")
    if encoder == "libx265" and width < 64:
        # The libx265 bundled with the PyAV 18.1 wheel corrupts the heap (glibc aborts the
        # whole process: "free(): invalid next size") at widths 40 and 48; refuse narrow
        # frames instead of crashing the test run.
        raise ValueError(f"hevc needs a width >= 64 with libx265, got {width}")
    if encoder == "libsvtav1":
        # SVT-AV1 prints a banner to stderr for every encoder instance; keep test logs
        # readable.  Only a default: a caller's explicit SVT_LOG wins.
        os.environ.setdefault("SVT_LOG", "1")

    muxer_options = {"fflags": "+bitexact"}  # no random mkv UIDs, no creation time
    muxer_options.update(container_options or {})
    codec_options = {"flags": "+bitexact"}  # no library version strings in the stream
    codec_options.update(info.options)
    codec_options.update(stream_options or {})

    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    if vfr:
        time_base = Fraction(1, 1000)
        stamps = vfr_timestamps_ms(num_frames, fps)
        shift = round(pts_offset * 1000 / fps)
    else:
        time_base = 1 / rate
        stamps = list(range(num_frames))
        shift = pts_offset

    with av.open(str(path), "w", container_options=dict(muxer_options)) as container:
        stream = container.add_stream(encoder, rate=rate)
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt or info.pix_fmt
        ctx = stream.codec_context
        ctx.time_base = time_base
        stream.time_base = time_base
        if gop is not None:
            ctx.gop_size = gop
        if bframes is not None:
            ctx.max_b_frames = bframes
        qscale = codec_options.pop("qscale", None)
        if qscale is not None:
            # Fixed quantiser for the native FFmpeg encoders (mpeg4, mjpeg): what the
            # ffmpeg CLI calls -q:v.  It is a context field, not an AVOption.
            ctx.qscale = True
            ctx.global_quality = int(qscale)
        ctx.options = dict(codec_options)
        if rotation is not None and rotation % 360:
            # PyAV takes a counter-clockwise angle (as FFmpeg's display matrix reports it).
            stream.set_display_rotation(-(rotation % 360))
        for i, pts in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(
                pattern(start_index + i, width, height), format="rgb24"
            )
            frame.pts = pts + shift
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# --------------------------------------------------------------------------------------
# Container surgery: headers that lie, files cut short
# --------------------------------------------------------------------------------------


def _riff_chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(fourcc, data_offset, data_size)`` of the RIFF chunks in ``data[start:end]``.

    A ``LIST`` chunk is yielded as ``b"LIST"`` + its list type (8 bytes), with ``data_offset``
    pointing after the list type, so callers can recurse into it.
    """
    import struct

    pos = start
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if fourcc in (b"LIST", b"RIFF"):
            yield fourcc + data[body : body + 4], body + 4, size - 4
        else:
            yield fourcc, body, size
        pos = body + size + (size & 1)  # chunks are padded to an even size


def patch_avi_frame_counts(path: str | os.PathLike[str], total_frames: int) -> Path:
    """Overwrite the frame counts an AVI header claims, leaving the frames themselves alone.

    Sets the main header's ``dwTotalFrames`` (``avih``) and the video stream header's
    ``dwLength`` (``strh`` of type ``vids``) to ``total_frames``; FFmpeg reports the latter as
    the stream's frame count (``CAP_PROP_FRAME_COUNT`` in OpenCV).
    """
    import struct

    path = Path(path)
    data = bytearray(path.read_bytes())
    if data[:4] != b"RIFF" or data[8:12] != b"AVI ":
        raise ValueError(f"{path} is not an AVI file")
    patched = []

    def walk(start: int, end: int) -> None:
        for fourcc, offset, size in _riff_chunks(data, start, end):
            if fourcc in (b"LISThdrl", b"LISTstrl"):
                walk(offset, offset + size)
            elif fourcc == b"avih" and size >= 20:
                struct.pack_into("<I", data, offset + 16, total_frames)  # dwTotalFrames
                patched.append("avih")
            elif fourcc == b"strh" and size >= 36 and data[offset : offset + 4] == b"vids":
                struct.pack_into("<I", data, offset + 32, total_frames)  # dwLength
                patched.append("strh")

    walk(12, len(data))
    if sorted(patched) != ["avih", "strh"]:
        raise ValueError(f"{path}: expected one avih and one video strh, patched {patched}")
    path.write_bytes(bytes(data))
    return path


def packet_positions(path: str | os.PathLike[str]) -> list[int]:
    """Byte offsets of the first video stream's packets in file order, as FFmpeg reports them."""
    import av

    with av.open(str(path)) as container:
        return sorted(
            packet.pos
            for packet in container.demux(video=0)
            if packet.size and packet.pos is not None and packet.pos >= 0
        )


def truncate_before_packet(path: str | os.PathLike[str], packet: int) -> Path:
    """Cut ``path`` just before its ``packet``-th video packet (in file order).

    Cutting on a packet boundary leaves every earlier packet whole, so for a clip without
    B-frames the first ``packet`` frames still decode exactly, while the header (an MP4
    ``moov`` written first, a Matroska duration) still describes the whole clip: like an
    interrupted download.
    """
    path = Path(path)
    positions = packet_positions(path)
    if not 0 < packet < len(positions):
        raise ValueError(f"{path} has {len(positions)} packets, cannot cut before #{packet}")
    with open(path, "r+b") as f:
        f.truncate(positions[packet])
    return path


def write_corrupt_middle(
    path: str | os.PathLike[str],
    *,
    codec: str = "h264",
    width: int = 96,
    height: int = 64,
    num_frames: int = 100,
    gop: int = 25,
    damaged: Iterable[int] = (40, 41, 42),
) -> Path:
    """Write a clip without B-frames (packets in frame order), then damage its video packets
    numbered ``damaged`` (in file order), leaving the rest of the file as it was: a few bad
    sectors in the middle of a video whose container is intact at both ends.

    Where the container keeps a packet's bytes in one piece (MP4, MOV, Matroska, AVI), its
    first 4 bytes become ``7F FF FF FF``: an H.264/HEVC length prefix far past the packet's
    end ("Invalid NAL unit size") or a lost MPEG-4 VOP start code ("header damaged"), so
    decoding those packets fails. In MPEG-TS the start code of the packet's PES header is
    overwritten instead: the demuxer loses the packet without any error. Either way the
    frames that follow, up to the next keyframe, may be lost or decode wrongly too.
    """
    import av

    path = write_video(
        path,
        codec=codec,
        width=width,
        height=height,
        num_frames=num_frames,
        gop=gop,
        bframes=0 if codec in CODECS and CODECS[codec].supports_bframes else None,
    )
    with av.open(str(path)) as container:
        transport = "mpegts" in (container.format.name or "").split(",")
        packets = sorted(
            (packet.pos, bytes(packet)) for packet in container.demux(video=0) if packet.size
        )
    data = bytearray(path.read_bytes())
    for k in sorted(set(damaged)):
        pos, payload = packets[k]
        if transport:
            at = data.find(b"\x00\x00\x01\xe0", pos, pos + 188)  # the PES header's start code
        else:
            at = data.find(payload[:16], pos, pos + 64 + 16)  # the packet, after any header
        if at < 0:
            raise ValueError(f"{path}: video packet #{k} is not where the demuxer says")
        data[at : at + 4] = b"\x7f\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def _mp4_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_offset, payload_end)`` of the ISO-BMFF boxes in a byte range."""
    import struct

    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(end, pos + size)
        pos += size


def mp4_edit_lists(path: str | os.PathLike[str]) -> list[list[tuple[int, int]]]:
    """The edit list of every track of an MP4/MOV file, like ``ffprobe -v trace`` shows it.

    Returns one list per track (empty when the track has no ``elst``) of
    ``(segment_duration, media_time)`` pairs; ``media_time == -1`` is an empty edit (a delay),
    a positive ``media_time`` skips that much of the track's media (frames decoded, not shown).
    """
    import struct

    data = Path(path).read_bytes()
    tracks: list[list[tuple[int, int]]] = []
    for kind, start, end in _mp4_boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for trak, t_start, t_end in _mp4_boxes(data, start, end):
            if trak != b"trak":
                continue
            edits: list[tuple[int, int]] = []
            for edts, e_start, e_end in _mp4_boxes(data, t_start, t_end):
                if edts != b"edts":
                    continue
                for elst, l_start, _ in _mp4_boxes(data, e_start, e_end):
                    if elst != b"elst":
                        continue
                    version = data[l_start]
                    (count,) = struct.unpack_from(">I", data, l_start + 4)
                    pos = l_start + 8
                    fmt, step = (">Qq", 16) if version == 1 else (">Ii", 8)
                    for _ in range(count):
                        edits.append(struct.unpack_from(fmt, data, pos))
                        pos += step + 4  # + media_rate (16.16)
            tracks.append(edits)
    return tracks


# --------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSpec:
    """One generated video: file name relative to the output folder + write_video kwargs."""

    filename: str
    codec: str
    width: int
    height: int
    num_frames: int
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Called with the written file to damage or patch it (lying headers, truncation).
    postprocess: Callable[[Path], Any] | None = None

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write this video under ``out_dir`` and return its path."""
        path = write_video(
            Path(out_dir) / self.filename,
            codec=self.codec,
            width=self.width,
            height=self.height,
            num_frames=self.num_frames,
            **dict(self.options),
        )
        if self.postprocess is not None:
            self.postprocess(path)
        return path


SAMPLE_SPECS: tuple[VideoSpec, ...] = (
    # User-facing demo clips: small but watchable, mixed extensions, one nested folder.
    VideoSpec("gradient_h264.mp4", "h264", 320, 240, 75, {"stream_options": {"crf": "28"}}),
    VideoSpec("gradient_hevc.MP4", "hevc", 320, 240, 75, {"stream_options": {"crf": "30"}}),
    VideoSpec("gradient_vp9.webm", "vp9", 320, 240, 75, {"stream_options": {"crf": "40"}}),
    VideoSpec(
        "more/gradient_mpeg4.avi",
        "mpeg4",
        256,
        192,
        50,
        {"bframes": 2, "stream_options": {"qscale": "8"}},
    ),
    VideoSpec(
        "more/gradient_mjpeg.avi",
        "mjpeg",
        256,
        192,
        30,
        {"fps": 15, "stream_options": {"qscale": "16"}},
    ),
)

TEST_SPECS: dict[str, VideoSpec] = {
    spec_name: spec
    for spec_name, spec in (
        ("h264", VideoSpec("h264.mp4", "h264", 128, 96, 24)),
        (
            "h264_bframes",
            VideoSpec("h264_bframes.mp4", "h264", 128, 96, 24, {"bframes": 2, "gop": 12}),
        ),
        ("hevc", VideoSpec("hevc.mp4", "hevc", 128, 96, 24)),
        ("vp9", VideoSpec("vp9.webm", "vp9", 128, 96, 24)),
        ("av1", VideoSpec("av1.mp4", "av1", 128, 96, 24)),
        (
            "mpeg4_bframes",
            VideoSpec("mpeg4_bframes.avi", "mpeg4", 128, 96, 24, {"bframes": 2, "gop": 12}),
        ),
        ("mjpeg", VideoSpec("mjpeg.avi", "mjpeg", 128, 96, 24)),
        ("prores", VideoSpec("prores.mov", "prores", 128, 96, 12)),
        ("short_3", VideoSpec("short_3.mp4", "h264", 128, 96, 3)),
        ("single_frame", VideoSpec("single_frame.mp4", "h264", 128, 96, 1)),
        (
            # Matroska "live" mode writes neither a segment duration nor cues, like a
            # stream recorded to a pipe: demuxers cannot know the length up front.
            "mkv_no_duration",
            VideoSpec("no_duration.mkv", "h264", 128, 96, 24, {"container_options": {"live": "1"}}),
        ),
        ("portrait", VideoSpec("portrait.mp4", "h264", 96, 128, 24)),
        ("tiny", VideoSpec("tiny_96x64.mp4", "h264", 96, 64, 24)),
        ("vfr", VideoSpec("vfr.mp4", "h264", 128, 96, 24, {"vfr": True})),
        ("rotated", VideoSpec("rotated_90.mp4", "h264", 128, 96, 24, {"rotation": 90})),
        ("start_index", VideoSpec("start_100.mp4", "h264", 128, 96, 12, {"start_index": 100})),
        # --- Frame exactness against lying or unusual containers -------------------------
        (
            # 24 frames stored, an edit list starts presentation at frame 3: FFmpeg decodes
            # frames 0-2 (needed as references) and drops them; 21 are shown, the stream
            # header still says 24.
            "edit_list",
            VideoSpec(
                "edit_list.mp4", "h264", 128, 96, 24, {"bframes": 2, "gop": 12, "pts_offset": -3}
            ),
        ),
        (
            # An empty edit: presentation starts 5 frame periods late, all 24 frames shown.
            "edit_list_delay",
            VideoSpec("edit_list_delay.mp4", "h264", 128, 96, 24, {"pts_offset": 5}),
        ),
        (
            "mpegts",
            VideoSpec("mpegts.ts", "h264", 128, 96, 24, {"bframes": 2, "gop": 12}),
        ),
        (
            "mpeg2_ps",
            VideoSpec("mpeg2_ps.mpg", "mpeg2", 128, 96, 24, {"bframes": 2, "gop": 12}),
        ),
        (
            # Header claims 48 frames (avih dwTotalFrames, strh dwLength); 24 are stored.
            "avi_overreport",
            VideoSpec(
                "avi_overreport.avi",
                "mpeg4",
                128,
                96,
                24,
                {"bframes": 2, "gop": 12},
                postprocess=partial(patch_avi_frame_counts, total_frames=48),
            ),
        ),
        (
            # Header claims 12 frames; 24 are stored.
            "avi_underreport",
            VideoSpec(
                "avi_underreport.avi",
                "mjpeg",
                128,
                96,
                24,
                postprocess=partial(patch_avi_frame_counts, total_frames=12),
            ),
        ),
        (
            # Faststart MP4 cut before its 17th packet: the moov describes 24 frames, 16
            # decode (an interrupted download).
            "truncated_playable",
            VideoSpec(
                "truncated_playable.mp4",
                "h264",
                128,
                96,
                24,
                {"container_options": {"movflags": "+faststart"}},
                postprocess=partial(truncate_before_packet, packet=16),
            ),
        ),
        (
            # Matroska cut mid-way: its header duration says 24 frames, 14 decode.
            "truncated_mkv",
            VideoSpec(
                "truncated.mkv",
                "h264",
                128,
                96,
                24,
                postprocess=partial(truncate_before_packet, packet=14),
            ),
        ),
        ("vfr_mkv", VideoSpec("vfr.mkv", "h264", 128, 96, 24, {"vfr": True})),
        (
            "vp9_no_duration",
            VideoSpec("vp9_live.webm", "vp9", 128, 96, 24, {"container_options": {"live": "1"}}),
        ),
    )
}


#: Textures :func:`moving_square` draws on its square.
SQUARE_TEXTURES = ("plain", "stripes", "checks")


def moving_square(
    colour: tuple[float, float, float],
    motion: tuple[float, float],
    texture: str,
    rng: np.random.Generator,
    *,
    size_px: int,
    frames: int,
) -> Callable[[int, int, int], np.ndarray]:
    """A :func:`write_video` pattern for videos whose class shows: a square of ``colour``
    (RGB) and ``texture`` (:data:`SQUARE_TEXTURES`) moving ``motion`` px a frame over a noisy
    grey background, in a ``size_px`` square frame, for ``frames`` frames; its start, side,
    shade, stripe period and background drawn from ``rng`` (`vmae fit-head`'s tests and
    ``benchmarks/fit_head_accuracy.py``)."""
    scale = size_px / 64
    side = int(rng.integers(14, 22) * scale)
    # Anywhere the whole path stays inside the frame, 2 px from its edges.
    x0, y0 = (rng.uniform(2, size_px - side - 2 - abs(step) * (frames - 1)) for step in motion)
    x0, y0 = (
        start + abs(step) * (frames - 1) if step < 0 else start
        for start, step in zip((x0, y0), motion, strict=True)
    )
    grey = rng.uniform(70, 170)
    shade = rng.uniform(0.75, 1.0)
    period = max(2, int(rng.integers(4, 7) * scale))
    noise = np.random.default_rng(int(rng.integers(2**31)))

    def pattern(index: int, width: int, height: int) -> np.ndarray:
        frame = np.full((height, width, 3), grey, np.float32)
        frame += noise.normal(0, 6, frame.shape)
        x = int(x0 + motion[0] * index)
        y = int(y0 + motion[1] * index)
        patch = np.ones((side, side, 1), np.float32)
        ys, xs = np.mgrid[0:side, 0:side]
        if texture == "stripes":
            patch[..., 0] = 0.4 + 0.6 * ((xs // period) % 2)
        elif texture == "checks":
            patch[..., 0] = 0.4 + 0.6 * (((xs // period) + (ys // period)) % 2)
        region = frame[y : y + side, x : x + side]
        region[:] = patch[: region.shape[0], : region.shape[1]] * np.array(colour) * shade
        return np.clip(frame, 0, 255).astype(np.uint8)

    return pattern


def make_sample_videos(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the demo clips of :data:`SAMPLE_SPECS` (a few hundred KB in total)."""
    return [spec.write(out_dir) for spec in SAMPLE_SPECS if _spec_supported(spec)]


def make_test_videos(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the small test clips of :data:`TEST_SPECS`; returns ``{name: path}``.

    Clips whose encoder is missing from the PyAV build are skipped (absent from the result).
    """
    return {name: spec.write(out_dir) for name, spec in TEST_SPECS.items() if _spec_supported(spec)}


def _spec_supported(spec: VideoSpec) -> bool:
    """True if this PyAV build has the spec's encoder and it accepts the spec's pixel format."""
    import av

    try:
        encoder, _ = _resolve_encoder(spec.codec)
    except (RuntimeError, ValueError):
        return False
    pix_fmt = spec.options.get("pix_fmt")
    if pix_fmt is None:
        return True
    formats = av.Codec(encoder, "w").video_formats or ()
    return any(f.name == pix_fmt for f in formats)


def _awkward(filename: str, codec: str, width: int, height: int, frames: int, **options: Any):
    return VideoSpec(filename, codec, width, height, frames, options)


AWKWARD_SPECS: dict[str, VideoSpec] = {
    # Files FFmpeg decodes, in formats, sizes and containers a classifier sees less often; a
    # batch tool must classify every one of them (status ok).  Kept apart from TEST_SPECS
    # because the 4K clip alone takes about a second to encode.
    # Pixel formats.  H.264 4:0:0 decodes as yuv420p in FFmpeg; HEVC reports "gray".
    "gray": _awkward("gray_hevc.mp4", "hevc", 128, 96, 12, pix_fmt="gray"),
    "gray_h264": _awkward("gray_h264.mp4", "h264", 128, 96, 12, pix_fmt="gray"),
    "h264_10bit": _awkward("h264_high10.mp4", "h264", 128, 96, 12, pix_fmt="yuv420p10le"),
    "hevc_10bit": _awkward("hevc_main10.mkv", "hevc", 128, 96, 12, pix_fmt="yuv420p10le"),
    "yuv422p": _awkward("h264_yuv422p.mp4", "h264", 128, 96, 12, pix_fmt="yuv422p"),
    "yuv444p": _awkward("h264_yuv444p.mp4", "h264", 128, 96, 12, pix_fmt="yuv444p"),
    # Alpha: VP9 stores it as a second stream in Matroska BlockAdditions (FFmpeg's native
    # VP9 decoder ignores it); QuickTime RLE and PNG in MOV carry it in the pixels.
    "vp9_alpha": _awkward("vp9_alpha.webm", "vp9", 128, 96, 12, pix_fmt="yuva420p"),
    "qtrle_alpha": _awkward("qtrle_argb.mov", "qtrle", 64, 48, 4, pix_fmt="argb"),
    "png_alpha": _awkward("png_rgba.mov", "png", 128, 96, 6, pix_fmt="rgba"),
    # Sizes.  libx264 refuses odd sizes in 4:2:0, so the odd H.264 clip is 4:4:4.
    "odd_h264": _awkward("odd_97x65_h264.mp4", "h264", 97, 65, 12, pix_fmt="yuv444p"),
    "odd_vp9": _awkward("odd_97x65_vp9.webm", "vp9", 97, 65, 12),
    "odd_mjpeg": _awkward("odd_97x65_mjpeg.avi", "mjpeg", 97, 65, 12),
    "pixels_2x2": _awkward("pixels_2x2.mp4", "h264", 2, 2, 5),
    "uhd_4k": _awkward("uhd_3840x2160.mp4", "h264", 3840, 2160, 3),
    # Lengths.
    "one_frame_vp9": _awkward("one_frame.webm", "vp9", 128, 96, 1),
    "three_frames_mpeg4": _awkward("three_frames.avi", "mpeg4", 128, 96, 3),
    # Older codecs and less common containers / extensions.
    "mpeg1": _awkward("mpeg1.mpg", "mpeg1", 128, 96, 12, bframes=2),
    "mpeg2_es": _awkward("mpeg2_elementary.m2v", "mpeg2", 128, 96, 12, bframes=2),
    "h264_annexb": _awkward("raw_annexb.h264", "h264", 128, 96, 12),
    "flv": _awkward("sorenson.flv", "flv", 128, 96, 12),
    "h263_3gp": _awkward("h263.3gp", "h263", 128, 96, 12),
    "m4v": _awkward("h264.m4v", "h264", 128, 96, 12),
    "mov": _awkward("h264.mov", "h264", 128, 96, 12),
    # No Theora encoder in the PyAV wheel: VP8 is the other video codec Ogg carries.
    "ogv": _awkward("vp8.ogv", "vp8", 128, 96, 12),
    "wmv": _awkward("wmv2.wmv", "wmv2", 128, 96, 12),
    "ffv1": _awkward("ffv1.mkv", "ffv1", 128, 96, 6),
}


def make_awkward_videos(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the clips of :data:`AWKWARD_SPECS` (about 1.5 s); returns ``{name: path}``.

    Clips whose encoder or pixel format is missing from the PyAV build are skipped.
    """
    return {
        name: spec.write(out_dir) for name, spec in AWKWARD_SPECS.items() if _spec_supported(spec)
    }


def make_memory_bomb(
    path: str | os.PathLike[str], *, width: int = 16384, height: int = 8192, num_frames: int = 2
) -> Path:
    """Write a small H.264 MP4 whose frames are enormous (16384x8192 by default).

    The frames are flat grey, so the file is about 400 KB, but decoding one frame needs
    over 200 MB (yuv420p) and its RGB conversion 400 MB more: a decoder that trusts the
    header allocates gigabytes.  libx264 accepts the size (no level fits, it encodes
    anyway); at the default size encoding takes about 1.5 s per frame and needs up to
    1.5 GB of memory.
    """
    import av

    path = Path(path)
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder, info = _resolve_encoder("h264")
    options = {"flags": "+bitexact", **info.options, "crf": "51", "tune": "zerolatency"}
    if encoder == "libx264":
        options["x264-params"] = "rc-lookahead=0:sync-lookahead=0"
    # One flat grey yuv420p frame, built directly: no RGB frame of this size is ever made.
    planes = np.empty((height * 3 // 2, width), dtype=np.uint8)
    planes[:height] = 96
    planes[height:] = 128
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        stream.codec_context.options = options
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# --------------------------------------------------------------------------------------
# Broken inputs
# --------------------------------------------------------------------------------------

_LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1048576\n"
)


def _write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An AAC audio track in an MP4 container, with no video stream at all."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        stream.codec_context.options = {"flags": "+bitexact"}
        chunk = 1024
        for start in range(0, len(tone), chunk):
            part = tone[start : start + chunk]
            frame = av.AudioFrame.from_ndarray(part[None, :], format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _write_audio_with_cover(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An MP3 track with a cover image (an ``attached_pic`` video stream), named like a video.

    FFmpeg lists the cover as a video stream, and OpenCV reads it as a 1-frame video.
    """
    import av

    t = np.arange(int(seconds * rate)) / rate
    tone = (3000 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    with av.open(str(path), "w", format="mp3") as container:
        audio = container.add_stream("mp3", rate=rate)
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(_jpeg_bytes(frame_pattern(0, 64, 48)))
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        container.mux(packet)
        chunk = 1152  # samples per MP3 frame
        for start in range(0, len(tone) - chunk + 1, chunk):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + chunk], format="s16", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


#: Image formats FFmpeg decodes as a one-frame "video" (codec -> (pixel format, extension)):
#: files a classifier must refuse though every decoder opens them.
STILL_IMAGES: dict[str, tuple[str, str]] = {
    "targa": ("bgr24", "tga"),
    "qoi": ("rgb24", "qoi"),
    "pcx": ("rgb24", "pcx"),
}


def write_still_image(out_dir: str | os.PathLike[str], codec: str, *, seed: int = 0) -> Path:
    """Write a 64x48 image of random pixels in ``codec`` (one of :data:`STILL_IMAGES`) to
    ``out_dir/image.EXT``, named by its format (FFmpeg picks these demuxers by name)."""
    import av
    import numpy as np

    pix_fmt, ext = STILL_IMAGES[codec]
    path = Path(out_dir) / f"image.{ext}"
    image = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def make_bad_files(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write files a video tool must reject gracefully; returns ``{name: path}``.

    Covers empty/random/text files, truncated and corrupted videos, an image, an
    audio-only file, a Git LFS pointer and a macOS AppleDouble ``._`` file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240601)
    files: dict[str, Path] = {}

    files["empty"] = _write_bytes(out / "empty.mp4", b"")
    files["random_bytes"] = _write_bytes(
        out / "random_bytes.mp4", rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()
    )
    files["text"] = _write_bytes(
        out / "notes.mp4", b"This is a plain text file, not a video.\nIt only has an .mp4 name.\n"
    )

    # Truncated: moov atom is at the end, so cutting the file loses the index entirely: it
    # still starts like an MP4, so it is ``damaged``, not ``not_video``.
    scratch = out / ".scratch"
    full = write_video(scratch / "full.mp4", codec="h264", width=128, height=96, num_frames=48)
    data = full.read_bytes()
    files["truncated_h264"] = _write_bytes(out / "truncated_h264.mp4", data[: len(data) * 4 // 10])
    # Truncated with the moov first ("faststart"): the header opens fine but the data
    # stops early, which is what an interrupted download usually looks like (``ok`` with
    # the frames that decode, or ``no_frames`` when none does).
    fast = write_video(
        scratch / "fast.mp4",
        codec="h264",
        width=128,
        height=96,
        num_frames=48,
        container_options={"movflags": "+faststart"},
    )
    data = fast.read_bytes()
    files["truncated_faststart"] = _write_bytes(
        out / "truncated_faststart.mp4", data[: len(data) * 4 // 10]
    )

    # Corrupted in the middle: container structure intact at both ends, garbage inside.
    mkv = write_video(scratch / "corrupt.mkv", codec="h264", width=128, height=96, num_frames=48)
    data = bytearray(mkv.read_bytes())
    span = min(4096, len(data) // 4)
    middle = len(data) // 2 - span // 2
    data[middle : middle + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    files["corrupted_middle"] = _write_bytes(out / "corrupted_middle.mkv", bytes(data))
    for leftover in sorted(scratch.iterdir()):
        leftover.unlink()
    scratch.rmdir()

    files["jpeg_renamed"] = _write_bytes(out / "photo.mp4", _jpeg_bytes(frame_pattern(0, 128, 96)))
    files["audio_only"] = _write_audio_only(out / "audio_only.mp4")
    import av

    try:
        files["audio_with_cover"] = _write_audio_with_cover(out / "song_with_cover.mp4")
    except (av.error.FFmpegError, OSError, AttributeError, ValueError):
        pass  # no MP3 encoder or no disposition support in this PyAV build
    files["lfs_pointer"] = _write_bytes(out / "lfs_pointer.mp4", _LFS_POINTER.encode())
    # AppleDouble resource-fork file as macOS leaves on FAT/exFAT/SMB shares: magic
    # 00 05 16 07, version 2, "Mac OS X" filler, then arbitrary entry data.
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x02"
    apple += rng.integers(0, 256, 4096 - len(apple), dtype=np.uint8).tobytes()
    files["appledouble"] = _write_bytes(out / "._clip.mp4", apple)
    return files


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


# --------------------------------------------------------------------------------------
# Decoding helpers (for tests and the ``check`` command)
# --------------------------------------------------------------------------------------


def pyav_indices(path: str | os.PathLike[str]) -> list[int]:
    """Decode every frame of the first video stream with PyAV; return the read indices."""
    import av

    with av.open(str(path)) as container:
        return [read_index(frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def _cv2_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame
    finally:
        cap.release()


def cv2_indices(path: str | os.PathLike[str]) -> list[int]:
    """Decode every frame with OpenCV (sequential ``read()``); return the read indices.

    OpenCV applies display-matrix rotation by default, so rotated clips are read with
    :func:`find_code`.  Returns an empty list if OpenCV cannot decode the stream.
    """
    return [find_code(frame)[0] for frame in _cv2_frames(path)]


def _is_run(indices: list[int]) -> bool:
    """True if ``indices`` are consecutive integers (the clip may start at any index)."""
    return bool(indices) and indices == list(range(indices[0], indices[0] + len(indices)))


def _check_file(path: Path) -> dict[str, Any]:
    """Decode one file with OpenCV and with PyAV; report counts and index checks."""
    import av
    import cv2

    row: dict[str, Any] = {"bytes": path.stat().st_size}
    cap = cv2.VideoCapture(str(path))
    row["cv2_opened"] = cap.isOpened()
    row["cv2_frame_count_prop"] = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else None
    cap.release()
    try:
        found = [find_code(frame) for frame in _cv2_frames(path)]
        row["cv2_decoded"] = len(found)
        row["cv2_indices_in_order"] = _is_run([index for index, _ in found])
        row["cv2_rotations_seen"] = sorted({rotation for _, rotation in found})
    except ValueError as exc:  # a frame without a readable code
        row["cv2_error"] = str(exc)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                row["pyav_error"] = "no video stream"
                return row
            stream = container.streams.video[0]
            row["pyav_codec"] = stream.codec_context.name
            row["pyav_frames_prop"] = stream.frames
            row["pyav_duration_us"] = container.duration
            indices, rotations = [], set()
            for frame in container.decode(stream):
                indices.append(read_index(frame.to_ndarray(format="rgb24")))
                rotations.add(frame.rotation)
            row["pyav_decoded"] = len(indices)
            row["pyav_indices_in_order"] = _is_run(indices)
            row["pyav_frame_rotation"] = sorted(rotations)
    except (av.FFmpegError, ValueError) as exc:  # report, keep going with the next file
        row["pyav_error"] = f"{type(exc).__name__}: {exc}"
    return row


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["samples", "tests", "bad", "awkward", "bomb", "check"])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.what == "samples":
        written = make_sample_videos(args.out_dir)
    elif args.what == "tests":
        written = list(make_test_videos(args.out_dir).values())
    elif args.what == "bad":
        written = list(make_bad_files(args.out_dir).values())
    elif args.what == "awkward":
        written = list(make_awkward_videos(args.out_dir).values())
    elif args.what == "bomb":
        written = [make_memory_bomb(args.out_dir / "bomb_16384x8192.mp4")]
    else:
        # One JSON object per line on stdout (data); FFmpeg's own warnings go to stderr.
        for path in sorted(p for p in args.out_dir.rglob("*") if p.is_file()):
            row = {"file": path.relative_to(args.out_dir).as_posix(), **_check_file(path)}
            print(json.dumps(row))
        return 0
    for path in written:
        print(f"{path}  ({path.stat().st_size} bytes)")
    print(f"{len(written)} files in {time.perf_counter() - start:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
