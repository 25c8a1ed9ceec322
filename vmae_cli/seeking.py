"""Keyframe-aware seeking for long videos: the packet index and the seek planner.

A demux-only pass (no decoding) over a video stream gives the presentation timestamps of the
frames a full decode shows and of the keyframes a decoder can start from
(:func:`index_packets`). From those, :func:`plan_seeks` groups the sampled frames into
segments, each decoded from the last keyframe at or before its first frame, and counts the
frames the plan decodes, so the caller can tell whether seeking saves anything. For
``--sampling keyframes``, :func:`nearest_keyframes` maps the sampled frames to the nearest
keyframes instead, which decode alone.

Nothing here decodes a frame; :func:`vmae_cli.decoding.decode_pyav_seek` carries out a plan,
:func:`vmae_cli.decoding.decode_keyframes` decodes the nearest keyframes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

#: Videos shorter than this are read with one sequential OpenCV pass. Measured with
#: benchmarks/decode_cost.py (CPU time, one thread, 16 frames sampled, resized and cropped;
#: least of 5 interleaved runs; 2026-12-01), seeking with PyAV and skipping non-reference
#: frames against OpenCV's pass over every frame: 6 s clips cut from the benchmark mix
#: 0.68 vs 1.02 s (1080p H.264), 0.85 vs 1.32 s (1080p HEVC), 0.16 vs 0.22 s (540x960
#: H.264), 0.28 vs 0.29 s (540p VP9: nothing to skip); the mix's 3-7 s videos 0.76-0.94 of
#: OpenCV's cost (H.264, HEVC) and 0.91-1.02 (VP9); 2 s clips 0.71-1.12, about even (the
#: same pass measured twice differs by up to 11 % on such clips); 1 s clips 0.99-1.47: half
#: the frames are sampled, little is left to skip, and the demux pass and seeks come on top.
SEEK_MIN_DURATION_S = 2.0
#: Seek only when the plan decodes at most this fraction of the video's frames. Measured on
#: 10-115 s clips from 540p to 1080p, decoding the plan's frames with PyAV never cost more
#: CPU than OpenCV's grab() pass over all frames (0.78 vs 0.86 s up to 13.3 vs 45.6 s), so
#: only a plan that decodes more frames than the video has is refused.
SEEK_MAX_FRACTION = 1.0
#: Containers whose packets carry presentation timestamps and keyframe flags that can be
#: trusted to index frames (FFmpeg demuxer names). MPEG-TS/PS and AVI are read sequentially:
#: seeking returns wrong frames on them (and AVI packets carry no pts).
SEEKABLE_FORMATS = ("mov", "mp4", "matroska", "webm")
#: Codecs where one packet is one frame in those containers.
SEEKABLE_CODECS = ("h264", "hevc", "vp9", "av1", "mpeg4", "vp8", "mjpeg", "prores")
#: FFmpeg decoders (decoder names, not codec names: the behaviour is the implementation's)
#: that may skip non-reference frames (``skip_frame = "NONREF"``) between a keyframe and a
#: sampled frame, the setting changed packet by packet. Measured with PyAV 18.1 (FFmpeg
#: 8.1), frame threading off, on 150-frame clips with B-frames (b-pyramid for H.264 and
#: HEVC), every frame compared with a full decode: exact for these three, which skipped
#: 29-40 % (H.264), 42-51 % (HEVC) and 57 % (MPEG-4 part 2) of the frames. On the benchmark
#: mix (benchmarks/RESULTS.md) the sampled frames cost 32 % (H.264) and 30 % (HEVC) less
#: CPU time, 27 % less over the whole mix. Left out:
#: ``vp9``, ``vp8`` and ``mjpeg`` skipped nothing (VP9's decoder ignores the setting, and a
#: VP9 frame that refreshes no reference can still update the probabilities later frames
#: use); ``libdav1d`` (AV1) reads it only when the decoder opens, so a change between
#: packets is ignored and sampled non-reference frames never came out.
SKIP_NONREF_DECODERS = ("h264", "hevc", "mpeg4")
#: The NAL unit type of an HEVC sequence parameter set.
_HEVC_NAL_SPS = 33
#: Offset of ``numOfArrays`` in an HEVC decoder configuration record (``hvcC``).
_HVCC_ARRAYS_OFFSET = 22


class NotSeekable(Exception):
    """This file is read sequentially instead (not an error)."""


#: Packets after a stretch's last target that a reordering decoder (B-frames) reads before
#: it shows that frame: what a remote read fetches with the stretch.
DECODER_DELAY_PACKETS = 4


@dataclass
class FrameIndex:
    """What a demux pass (no decoding) tells about a video stream.

    ``shown`` holds the presentation timestamps of the frames a full decode shows, in order
    (packets an edit list discards are left out); ``keyframes`` the timestamps of packets a
    decoder can start from, sorted.
    """

    shown: list[int]
    keyframes: list[int]
    #: Each packet's bytes in the file, ``pts -> (position, size)``, when asked for
    #: (a remote file fetches a segment's bytes in one request: :meth:`byte_range`).
    spans: dict[int, tuple[int, int]] | None = None

    def byte_range(self, first: int, last: int) -> tuple[int, int] | None:
        """The bytes that hold every packet shown from ``first`` to ``last`` (timestamps):
        in decode order they hold every packet a decoder needs between them, the references
        of B-frames included. ``None`` without :attr:`spans`."""
        if not self.spans:
            return None
        inside = [span for pts, span in self.spans.items() if first <= pts <= last]
        if not inside:
            return None
        low, high = min(p for p, _ in inside), max(p + n for p, n in inside)
        # A decoder that reorders (B-frames) shows the last target only after a few more
        # packets: they are in the range too.
        after = sorted(span for span in self.spans.values() if span[0] >= high)
        for position, size in after[:DECODER_DELAY_PACKETS]:
            high = max(high, position + size)
        return low, high


def index_packets(
    container: Any, stream: Any, keyframe_dts: set[int] | None = None, spans: bool = False
) -> FrameIndex:
    """Demux every packet of ``stream`` (no decoding) into a :class:`FrameIndex`.

    ``keyframe_dts``: the decode times of the keyframes, when the container's own index says
    them (an MP4's sync samples) and the packets' bytes are not read (their flags then come
    from a parser that saw no real data). Raises :class:`NotSeekable` when the timestamps
    cannot identify frames, or a packet is damaged (its frame may not decode, so counting it
    could shift every frame index). ``spans``: record each packet's position and size.
    """
    shown: list[int] = []
    keyframes: list[int] = []
    where: dict[int, tuple[int, int]] | None = {} if spans else None
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the flush packet at the end
        if packet.pts is None:
            raise NotSeekable("a packet without a timestamp")
        if packet.is_corrupt:
            # A file cut inside a packet (an MP4 whose index comes first): a full decode
            # gets no frame out of it, and the index would count one more frame.
            raise NotSeekable("a damaged packet")
        if packet.is_keyframe if keyframe_dts is None else packet.dts in keyframe_dts:
            keyframes.append(packet.pts)
        if where is not None and packet.pos is not None and packet.pos >= 0:
            where[packet.pts] = (packet.pos, packet.size)
        if not packet.is_discard:
            shown.append(packet.pts)
    shown.sort()
    if not shown or not keyframes:
        raise NotSeekable("no frames or no keyframes")
    if len(set(shown)) != len(shown):
        raise NotSeekable("duplicate timestamps")
    keyframes.sort()
    return FrameIndex(shown, keyframes, where)


@dataclass
class SeekSegment:
    """One stretch of a seek plan: seek to a keyframe, then decode on through ``targets``."""

    seek_to: int  # pts of the keyframe to seek to
    targets: list[int]  # presentation timestamps to keep from there on, ascending


@dataclass
class DecodeCounts:
    """What carrying out a plan cost, for measurements: packets sent to the decoder, how many
    of them were sent with non-reference frames skippable, and frames that came out.

    With one frame per packet, ``packets - frames`` is the frames the decoder skipped (plus
    any it decodes but never shows, such as those an edit list hides).
    """

    packets: int = 0
    skippable: int = 0
    frames: int = 0


def plan_seeks(index: FrameIndex, targets: list[int]) -> tuple[list[SeekSegment], int]:
    """Group target timestamps into decode segments; also return the frames the plan decodes.

    Each target is decoded starting from the last keyframe at or before it. When that
    keyframe was already passed, decoding simply continues; otherwise the decoder seeks.
    """
    segments: list[SeekSegment] = []
    cost = 0
    cursor: int | None = None  # pts of the last frame decoded so far
    for t in sorted(set(targets)):
        k = bisect.bisect_right(index.keyframes, t) - 1
        if k < 0:
            raise NotSeekable("a frame before the first keyframe")
        start = index.keyframes[k]
        if cursor is not None and start <= cursor:
            segments[-1].targets.append(t)
            cost += _count_between(index.shown, cursor, t)
        else:
            segments.append(SeekSegment(start, [t]))
            cost += _count_between(index.shown, start, t) + 1
        cursor = t
    return segments, cost


def _count_between(sorted_pts: list[int], low: int, high: int) -> int:
    """How many timestamps lie in ``(low, high]``."""
    return bisect.bisect_right(sorted_pts, high) - bisect.bisect_right(sorted_pts, low)


def skips_nonref_exactly(decoder: str, extradata: bytes | None) -> bool:
    """Whether ``decoder`` may skip a stream's non-reference frames without changing any other
    frame (see :data:`SKIP_NONREF_DECODERS`); ``extradata`` is the stream's codec private data.

    HEVC needs more than the decoder's name. FFmpeg skips every "sub-layer non-reference"
    picture, and the standard lets pictures of a higher temporal sub-layer still refer to
    those (x265's temporal layers happen not to); a skipped one would silently turn into a
    grey stand-in frame. Only a stream whose sequence parameter sets declare a single
    sub-layer is taken: there no picture refers to them.
    """
    if decoder not in SKIP_NONREF_DECODERS:
        return False
    if decoder == "hevc":
        return _hevc_single_sublayer(extradata or b"")
    return True


def _hevc_single_sublayer(hvcc: bytes) -> bool:
    """True when an ``hvcC`` record (MP4, Matroska) holds sequence parameter sets and each
    says ``sps_max_sub_layers_minus1 == 0``; false when unsure (Annex B, malformed)."""
    if len(hvcc) <= _HVCC_ARRAYS_OFFSET or hvcc[0] != 1:
        return False
    pos = _HVCC_ARRAYS_OFFSET + 1
    sps_seen = 0
    for _ in range(hvcc[_HVCC_ARRAYS_OFFSET]):
        if pos + 3 > len(hvcc):
            return False
        count = int.from_bytes(hvcc[pos + 1 : pos + 3], "big")
        pos += 3  # array_completeness and NAL_unit_type, then numNalus
        for _ in range(count):
            length = int.from_bytes(hvcc[pos : pos + 2], "big")
            nal = hvcc[pos + 2 : pos + 2 + length]
            pos += 2 + length
            if len(nal) != length or length < 3:
                return False
            if (nal[0] >> 1) & 0x3F != _HEVC_NAL_SPS:
                continue
            # The byte after the 2-byte NAL header: sps_video_parameter_set_id (4 bits),
            # sps_max_sub_layers_minus1 (3 bits), sps_temporal_id_nesting_flag (1 bit).
            if (nal[2] >> 1) & 0x7:
                return False
            sps_seen += 1
    return sps_seen > 0


def nearest_keyframes(index: FrameIndex, positions: list[int]) -> list[int]:
    """For each frame index in ``positions``, the frame index of the nearest keyframe.

    Frame indices count the shown frames in presentation order (``index.shown``); a keyframe
    that is not shown (an edit list drops it) cannot be taken. "Nearest" is by frame index,
    and a position halfway between two keyframes takes the earlier one. The result has one
    entry per position, in the same order (repeats allowed). Raises :class:`NotSeekable`
    when no keyframe is shown, and :class:`ValueError` for a position outside the video.
    """
    shown = index.shown
    candidates: set[int] = set()
    for pts in index.keyframes:
        i = bisect.bisect_left(shown, pts)
        if i < len(shown) and shown[i] == pts:
            candidates.add(i)
    if not candidates:
        raise NotSeekable("no keyframe is a shown frame")
    frames = sorted(candidates)
    nearest = []
    for position in positions:
        if not 0 <= position < len(shown):
            raise ValueError(f"frame {position} is outside a video of {len(shown)} frames")
        after = bisect.bisect_left(frames, position)  # the first keyframe at or after it
        if after == len(frames):
            nearest.append(frames[-1])
        elif after == 0 or frames[after] == position:
            nearest.append(frames[after])
        else:
            before = frames[after - 1]
            # Ties go to the earlier keyframe: "<=".
            closer = before if position - before <= frames[after] - position else frames[after]
            nearest.append(closer)
    return nearest
