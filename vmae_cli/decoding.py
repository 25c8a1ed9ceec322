"""Stage 2: decode the uniformly sampled frames of one video, with OpenCV and a PyAV fallback.

Frame exactness comes first. Container headers lie (``CAP_PROP_FRAME_COUNT`` is wrong or
negative on Matroska/WebM written without a duration, on AVI headers, MP4 edit lists and
truncated files) and frame seeking returns wrong frames on several formats, so the decoder
walks the stream in order with ``grab()`` and only converts (``retrieve()``) the frames it
needs. The header's count is used as a guess of which frames those are; when the real count
differs, a second pass fetches the right ones. Sampling always uses the number of frames that
actually decoded. Long MP4/MOV/MKV/WebM files are decoded by seeking to the keyframe before
each sampled frame instead, along a plan made by :mod:`vmae_cli.seeking`. Only
``--sampling keyframes`` gives exactness up, by choice: :func:`decode_keyframes` decodes the
keyframe nearest each sampled frame.

Before any decoder sees a path, :mod:`vmae_cli.filegate` checks that it is a regular,
non-empty, readable file and reads its first bytes, which decide how a file no decoder can
open is reported (``damaged`` or ``not_video``). :func:`decode_video` is the policy that ties
these together: which decoder runs when, and which failure a video ends with.
"""

from __future__ import annotations

import math
import os
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import remote
from .filegate import check_and_read_head, damaged_or_not_video, mp4_media, sniff_video
from .protocol import SAMPLING_CHOICES, SAMPLING_EXACT, SAMPLING_KEYFRAMES, uniform_indices
from .results import (
    STATUS_ERROR,
    STATUS_NO_FRAMES,
    STATUS_NOT_VIDEO,
    STATUS_TOO_LARGE,
    Failure,
    VideoMeta,
)
from .seeking import (
    SEEK_MAX_FRACTION,
    SEEK_MIN_DURATION_S,
    SEEKABLE_CODECS,
    SEEKABLE_FORMATS,
    DecodeCounts,
    FrameIndex,
    NotSeekable,
    SeekSegment,
    index_packets,
    nearest_keyframes,
    plan_seeks,
    skips_nonref_exactly,
)
from .segments import Window, WindowGeometry, WindowTracker, plan_windows

if TYPE_CHECKING:
    import numpy as np

# FFmpeg and OpenCV print their own complaints about bad files on stderr ("moov atom not
# found"); here every failure becomes a row instead, so they are silenced. Must happen before
# cv2 is first imported. setdefault: a user who wants FFmpeg's messages (debugging a file)
# sets OPENCV_FFMPEG_LOGLEVEL (e.g. 24 for warnings) or OPENCV_LOG_LEVEL themselves.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

#: Frames larger than this are refused before decoding (8K UHD, 7680x4320, is allowed): one
#: 16384x8192 H.264 frame of a 395 KB file made OpenCV allocate over 2 GB.
MAX_FRAME_PIXELS = 7680 * 4320

#: After ``grab()`` fails, try this many more times before taking it as the end: a corrupt
#: stretch makes FFmpeg fail 9-20 reads in a row in the middle of a stream and then decode
#: clean frames again from the next keyframe. At the real end each retry returns at once.
MAX_CONSECUTIVE_READ_FAILURES = 64

DECODER_OPENCV = "opencv"
DECODER_PYAV = "pyav"
DECODER_PYAV_SEEK = "pyav-seek"
#: FFmpeg's names of containers whose header states the duration, not a frame count: their
#: duration at the stream's rate is what a cut-off file is compared with (an MPEG-TS
#: "duration" is FFmpeg's guess from the bitrate, so it is not one of them).
DURATION_HEADER_FORMATS = frozenset({"matroska", "webm"})

#: Turns one decoded RGB frame (H, W, 3 uint8) into whatever the caller keeps (e.g. a crop).
FrameTransform = Callable[["np.ndarray"], Any]
#: Maps a video's frame count to the indices to keep, in the order they are wanted (repeats
#: allowed). An int T means :func:`sample_indices` with T samples.
Sampler = Callable[[int], list[int]]


def as_sampler(sampler: int | Sampler) -> Sampler:
    """Turn a number of uniform samples into a :data:`Sampler`; pass samplers through."""
    if callable(sampler):
        return sampler
    num_samples = int(sampler)
    return lambda n: sample_indices(n, num_samples)


class DecodeFailure(Exception):
    """Raised inside this module to abandon a video; carries a :class:`Failure`."""

    def __init__(self, status: str, error: str, meta: VideoMeta | None = None):
        super().__init__(error)
        self.failure = Failure(status, error)
        self.meta = meta or VideoMeta()


class _CannotOpen(DecodeFailure):
    """A decoder could not open the file at all; ``reason`` says why, in the decoder's words.

    :func:`decode_video` turns this ``not_video`` into ``damaged`` when the file's first bytes
    look like a video (:func:`vmae_cli.filegate.damaged_or_not_video`).
    """

    def __init__(self, error: str, reason: str):
        super().__init__(STATUS_NOT_VIDEO, error)
        self.reason = reason


@dataclass
class DecodedFrames:
    """The frames kept for one video (in the order of ``frame_indices``) and its metadata;
    ``notes`` are for the video's row (e.g. why keyframe sampling was not possible)."""

    frames: list[Any]
    frame_indices: list[int]
    meta: VideoMeta
    notes: list[str] = field(default_factory=list)


def sample_indices(num_frames: int, num_samples: int) -> list[int]:
    """Indices of the middle frame of each of ``num_samples`` equal segments of the video.

    ``floor((i + 0.5) * num_frames / num_samples)`` for ``i`` in ``range(num_samples)``; when the
    video has fewer frames than samples, indices repeat (each frame is used more than once).
    """
    return uniform_indices(num_frames, num_samples)


@dataclass
class StreamFacts:
    """What a decoder learned about a video stream while decoding it; becomes its metadata.

    ``reported`` is the header's frame count (0 or negative: none); ``width``/``height`` the
    stream's coded size as the container states it; ``shape`` the (height, width) of the first
    frame kept, after rotation, which wins over ``width``/``height`` in :meth:`to_meta`.
    Values learned from kept frames (``shape``; ``rotation`` when seeking) are set only while
    still ``None``: the first frame's value stands for the video's.
    """

    reported: int = 0
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    shape: tuple[int, int] | None = None
    hidden: int = 0  # frames the header counts that an edit list hides
    #: Frames the header's duration holds at its rate, where it gives a duration and no count
    #: (Matroska, WebM); 0 where it does not.
    expected: int = 0

    @classmethod
    def of_stream(cls, stream: Any) -> StreamFacts:
        """What a PyAV video stream's header says (frame count, rate, coded size, how many of
        its frames an edit list hides, and for a container that states a duration but no
        frame count, the frames that duration holds)."""
        rate = stream.average_rate or stream.guessed_rate
        cc = stream.codec_context
        reported = stream.frames or 0
        hidden = expected = 0
        if reported > 0 and rate and stream.duration and stream.time_base:
            # An MP4 header counts every sample, its duration only what the edit list shows
            # (a stream-copy cut keeps the frames before the cut point): those are hidden,
            # not lost. A file cut short keeps the header's whole duration.
            shown = round(float(stream.duration * stream.time_base * rate))
            hidden = max(0, reported - shown)
        container = getattr(stream, "container", None)
        if reported <= 0 and rate and container is not None and container.duration:
            names = set((container.format.name or "").split(","))
            if names & DURATION_HEADER_FORMATS:
                expected = round(container.duration / 1_000_000 * float(rate))
        return cls(
            reported=reported,
            fps=float(rate) if rate else None,
            width=cc.width,
            height=cc.height,
            hidden=hidden,
            expected=expected,
        )

    def to_meta(self, decoder: str, n: int) -> VideoMeta:
        """The :class:`VideoMeta` of a video ``decoder`` decoded ``n`` frames from."""
        fps = self.fps
        height, width = self.shape or (self.height, self.width)
        reported = self.reported
        return VideoMeta(
            decoder=decoder,
            frames_reported=reported if reported and reported > 0 else None,
            frames_decoded=n,
            fps=round(fps, 3) if fps else None,
            duration_s=round(n / fps, 3) if fps and n else None,
            width=int(width) if width else None,
            height=int(height) if height else None,
            rotation=int(self.rotation or 0),
            frames_hidden=self.hidden,
            frames_expected=self.expected or None,
        )


@contextmanager
def decoder_path(path: str) -> Iterator[Any]:
    """A name for ``path`` that FFmpeg reads as a plain local file; for a URL, a seekable
    reader of it (:class:`~vmae_cli.remote.RangeFile`, range requests), which PyAV and
    OpenCV read as they read a file (pass it through :func:`_fresh` at each open).

    FFmpeg parses ``pipe:0.mp4`` or ``file:x.mp4`` as protocols, so the name is made absolute
    (``/dir/pipe:0.mp4`` has no protocol prefix). A name that is not valid UTF-8 crashes
    OpenCV with SIGSEGV when passed as ``str``; it is opened here and handed over as
    ``/proc/self/fd/N`` instead.
    """
    if remote.is_url(path):
        with remote.opened(path) as reader:
            yield reader
        return
    absolute = os.path.abspath(path)
    try:
        absolute.encode("utf-8")
    except UnicodeEncodeError:
        fd = os.open(absolute, os.O_RDONLY | os.O_NONBLOCK)
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    yield absolute


def _fresh(name: Any) -> Any:
    """What a decoder opens for a name :func:`decoder_path` gave: the name itself, or a new
    reader at the start of the same remote object (its blocks shared) for each open."""
    return name.obj.open() if isinstance(name, remote.RangeFile) else name


#: FFmpeg's read buffer over a remote reader (bytes; FFmpeg's own is 32 KiB): each read past
#: what a seek plan fetched costs a request, so it asks for little at a time.
REMOTE_READ_BUFFER_BYTES = 8 * 1024


def _av_open(name: Any) -> Any:
    """PyAV's container for a name :func:`decoder_path` gave (a fresh reader for a URL)."""
    import av

    if isinstance(name, remote.RangeFile):
        return av.open(_fresh(name), metadata_errors="ignore", buffer_size=REMOTE_READ_BUFFER_BYTES)
    return av.open(name, metadata_errors="ignore")


def _refuse_huge_frames(width: int, height: int) -> None:
    """Raise ``too_large`` before decoding frames above :data:`MAX_FRAME_PIXELS`."""
    if width * height > MAX_FRAME_PIXELS:
        raise DecodeFailure(
            STATUS_TOO_LARGE,
            f"frame size {width}x{height} is above the "
            f"{MAX_FRAME_PIXELS // 1_000_000} megapixel limit",
        )


def _seconds(pts: int | None, time_base: Any) -> float | None:
    """A timestamp in seconds (``None`` when there is none)."""
    return float(pts * time_base) if pts is not None and time_base else None


def _positive(value: float) -> float | None:
    return float(value) if value and value > 0 and math.isfinite(value) else None


def _opencv_pass(
    name: str,
    wanted: set[int] | None,
    sampler: Sampler,
    transform: FrameTransform,
    limit: int | None,
) -> tuple[int, dict[int, Any], StreamFacts]:
    """One sequential pass: count frames, keep the transformed frames whose index is wanted.

    ``wanted=None`` means "the sample indices for the frame count the header reports".
    """
    import cv2

    # Single-threaded decoding: parallelism comes from decoding several videos at once, and
    # frame threading costs 10-60% more CPU for the same frames.
    cap = cv2.VideoCapture(_fresh(name), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        if not cap.isOpened():
            raise _CannotOpen(
                "not a video, or a format OpenCV cannot open", "OpenCV cannot open it"
            )
        # Rotation metadata is applied explicitly: OpenCV's default changed between 4.6, 4.11
        # and 5.x, and it is not accepted as an open() parameter.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        facts = StreamFacts(
            reported=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            fps=_positive(cap.get(cv2.CAP_PROP_FPS)),
            width=width,
            height=height,
            rotation=int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360,
        )
        _refuse_huge_frames(width, height)
        if wanted is None:
            reported = facts.reported
            wanted = set(sampler(reported)) if reported > 0 else set()
        kept: dict[int, Any] = {}
        n = 0
        failures = 0
        last_needed = max(wanted) if wanted else -1
        while limit is None or n < limit:
            if limit is not None and n > last_needed:
                break
            if not cap.grab():
                # A failed read may be a corrupt block, not the end (whatever the header says).
                if failures < MAX_CONSECUTIVE_READ_FAILURES:
                    failures += 1
                    continue
                break
            failures = 0
            if n in wanted:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    kept[n] = transform(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                    if facts.shape is None:
                        facts.shape = frame.shape[:2]
            n += 1
        return n, kept, facts
    finally:
        if isinstance(name, str):
            cap.release()
        else:
            # Over a Python reader (a URL), release() drops the reader with the GIL let go and
            # kills the process ("PyThreadState_Get: the function must be called with the
            # GIL held", opencv-python-headless 5.1.0); the capture's own destructor, run
            # when the last reference goes, holds the GIL.
            del cap


def _plan(
    decoder: str, facts: StreamFacts, n: int, sampler: Sampler, kept: dict[int, Any]
) -> tuple[list[int], set[int]]:
    """After the first pass: the true sample indices and those the pass did not keep."""
    if n == 0:
        raise _no_frames(decoder, facts)
    indices = sampler(n)
    return indices, set(indices) - kept.keys()


def _no_frames(decoder: str, facts: StreamFacts) -> DecodeFailure:
    """The failure of a video that opened but gave no frame."""
    reported = facts.reported or 0
    said = f" (the header says {reported} frames)" if reported > 0 else ""
    return DecodeFailure(
        STATUS_NO_FRAMES, f"no frame could be decoded{said}", facts.to_meta(decoder, 0)
    )


def _finish(
    decoder: str, facts: StreamFacts, n: int, indices: list[int], kept: dict[int, Any]
) -> DecodedFrames:
    meta = facts.to_meta(decoder, n)
    missing = set(indices) - kept.keys()
    if missing:
        raise DecodeFailure(
            STATUS_NO_FRAMES, f"frames {sorted(missing)} could not be decoded twice", meta
        )
    return DecodedFrames([kept[i] for i in indices], indices, meta)


def decode_opencv(path: str, sampler: int | Sampler, transform: FrameTransform) -> DecodedFrames:
    """Decode the sampled frames of ``path`` with OpenCV (FFmpeg backend).

    ``sampler`` is a number of uniform samples or a :data:`Sampler`. Raises
    :class:`DecodeFailure` when the file cannot be opened or yields no frame.
    """
    sampler = as_sampler(sampler)
    with decoder_path(path) as name:
        n, kept, facts = _opencv_pass(name, None, sampler, transform, limit=None)
        indices, missing = _plan(DECODER_OPENCV, facts, n, sampler, kept)
        if missing:
            # The header's frame count was wrong: fetch the right frames in a second pass.
            _, more, facts2 = _opencv_pass(name, missing, sampler, transform, limit=n)
            kept.update(more)
            if facts.shape is None:
                facts.shape = facts2.shape
        return _finish(DECODER_OPENCV, facts, n, indices, kept)


def _pyav_frames(
    name: str, failed: list[float | None] | None = None
) -> Iterator[tuple[Any, StreamFacts]]:
    """Yield every decodable frame of the first video stream, skipping corrupt packets (their
    times go to ``failed`` when given).

    Each frame comes with the same :class:`StreamFacts` object, read from the stream's header.
    """
    import av

    try:
        container = _av_open(name)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _CannotOpen(f"not a video, or damaged at the start: {reason}", reason) from None
    with container:
        stream = video_stream(container)
        # Single-threaded: parallelism comes from decoding several videos at once.
        stream.thread_type = "NONE"
        cc = stream.codec_context
        facts = StreamFacts.of_stream(stream)
        _refuse_huge_frames(cc.width or 0, cc.height or 0)
        for frame in _decoded_frames(container, stream, failed=failed):
            yield frame, facts


#: FFmpeg's AV_DISPOSITION_ATTACHED_PIC flag.
_ATTACHED_PIC = 0x0400


def video_stream(container: Any) -> Any:
    """The first real video stream of a PyAV container.

    A cover image (``attached_pic``: one picture in an MP3 or M4A file) is no video, although
    FFmpeg lists it as a video stream and OpenCV happily "decodes" it as a 1-frame video;
    raises ``not_video`` for a file that has nothing else.
    """
    streams = list(container.streams.video)
    real = [s for s in streams if not int(getattr(s, "disposition", 0)) & _ATTACHED_PIC]
    if real:
        return real[0]
    if streams:
        raise DecodeFailure(STATUS_NOT_VIDEO, "audio with a cover image, no video stream")
    raise DecodeFailure(STATUS_NOT_VIDEO, "the file has no video stream")


#: FFmpeg demuxers (any of the names ``av.open(...).format.name`` lists) of videos: video
#: containers and elementary video streams. FFmpeg "decodes" far more than videos: a text
#: file as ``tty`` (.nfo, .ans), images as ``image2`` or ``*_pipe`` (PPM, TGA, QOI, PCX), an
#: MP3's cover as a one-frame video; vmae classifies (and the report shows) videos only.
VIDEO_CONTAINERS = frozenset(
    {
        "mov", "mp4", "3gp", "3g2", "mj2",  # ISO base media: MP4, MOV, M4V, 3GP
        "matroska", "webm",
        "avi",
        "mpegts", "mpeg", "mpegvideo",  # MPEG transport and program streams, MPEG-1/2 video
        "h264", "hevc", "m4v", "ivf", "obu",  # elementary streams (Annex B, MPEG-4, VP/AV1)
        "flv", "ogg", "asf", "mxf", "nut", "rm", "dv", "gxf",
        "yuv4mpegpipe",  # Y4M: raw frames with a header, what video tools pipe between them
    }
)  # fmt: skip
#: Codecs (by codec name, as :func:`probe_format` gives it) of video streams: codecs made for
#: moving pictures, and the intra-only ones that video containers carry (Motion JPEG, ProRes,
#: FFV1, PNG and QuickTime RLE in MOV). Image codecs (``ppm``, ``targa``, ``qoi``, ``pcx``,
#: ``bmp``, ``gif``) and ``ansi`` (text) are not here: in a video container they are still no
#: video anyone shot.
VIDEO_CODECS = frozenset(
    {
        "h264", "hevc", "vvc", "vp8", "vp9", "av1",
        "mpeg1video", "mpeg2video", "mpeg4", "h263", "h263p", "flv1",
        "msmpeg4v1", "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "wmv3", "vc1",
        "theora", "rv10", "rv20", "rv30", "rv40", "svq1", "svq3", "cinepak", "indeo3",
        "mjpeg", "prores", "dnxhd", "dvvideo", "ffv1", "huffyuv", "ffvhuff", "utvideo",
        "qtrle", "png", "rawvideo", "cfhd", "hap",
    }
)  # fmt: skip


def container_failure(path: str, head: bytes, *, trust_signature: bool = True) -> Failure | None:
    """``not_video`` when FFmpeg reads ``path`` as something else than a video: a demuxer
    outside :data:`VIDEO_CONTAINERS` or a codec outside :data:`VIDEO_CODECS` (a text file, an
    image format the file gate does not know by its signature); ``None`` otherwise, and when
    FFmpeg cannot open it at all (the decoders then say why, ``damaged`` or ``not_video``).

    With ``trust_signature`` a file whose first bytes ``head`` are those of a video container
    (:func:`~vmae_cli.filegate.sniff_video`) is not probed: the header is read only for the
    files that need it, so a collection of MP4s pays nothing.
    """
    if trust_signature and sniff_video(head) is not None:
        return None
    try:
        formats, codec = probe_format(path)
    except DecodeFailure as exc:
        return exc.failure if not trust_signature else None
    if not VIDEO_CONTAINERS.intersection(formats):
        return Failure(
            STATUS_NOT_VIDEO,
            f"not a video container: FFmpeg reads it as {','.join(formats)} ({codec}), "
            "an image or a text file",
        )
    if codec not in VIDEO_CODECS:
        return Failure(STATUS_NOT_VIDEO, f"not a video codec: {codec} in {','.join(formats)}")
    return None


def probe_format(path: str) -> tuple[tuple[str, ...], str]:
    """What FFmpeg takes ``path`` for, from its header alone (no frame is decoded): the names
    of the demuxer it picks (``("mov", "mp4", "m4a", "3gp", "3g2", "mj2")``, ``("tty",)`` for
    a text file, ``("ppm_pipe",)`` for a PPM image) and the codec of the video stream the
    decoders read, by its codec name (``"av1"``, not the decoder ``"libdav1d"``).

    Raises :class:`DecodeFailure` (``not_video``) when PyAV cannot open the file or it has no
    video stream. Call it after :func:`~vmae_cli.filegate.check_and_read_head`: opening a FIFO
    would block.
    """
    import av

    with decoder_path(path) as name:
        try:
            container = _av_open(name)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DecodeFailure(STATUS_NOT_VIDEO, f"FFmpeg cannot open it: {reason}") from None
        with container:
            stream = video_stream(container)
            formats = tuple((container.format.name or "").split(","))
            return formats, stream.codec_context.codec.canonical_name


def display_rotation(frame: Any) -> int:
    """The clockwise rotation (0, 90, 180, 270) a PyAV frame's display matrix asks for.

    The convention of the ``rotation`` column, of the legacy ``rotate`` tag and of OpenCV's
    ``CAP_PROP_ORIENTATION_META`` (90 for a phone held upright); PyAV's ``frame.rotation``
    is the same angle counter-clockwise (-90 for that phone), so it is negated.
    """
    return (-int(frame.rotation or 0)) % 360


def _rgb_upright(frame: Any) -> np.ndarray:
    import numpy as np

    arr = frame.to_ndarray(format="rgb24")
    # frame.rotation is the display matrix's counter-clockwise angle; np.rot90 turns the
    # same way, which reproduces what ffmpeg's autorotate shows.
    k = (int(frame.rotation or 0) // 90) % 4
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def decode_pyav(path: str, sampler: int | Sampler, transform: FrameTransform) -> DecodedFrames:
    """Decode the sampled frames of ``path`` with PyAV: the fallback decoder.

    Used when OpenCV cannot open a file or decodes no frame from it (the pip OpenCV wheel
    opens AV1 files, reports a frame count, and decodes 0 frames).
    """
    sampler = as_sampler(sampler)
    with decoder_path(path) as name:
        kept: dict[int, Any] = {}
        n = 0
        # Stays empty when no frame decodes: such a failure reports no header facts.
        facts = StreamFacts()
        wanted: set[int] = set()
        for frame, facts in _pyav_frames(name):
            if n == 0 and facts.reported > 0:
                wanted = set(sampler(facts.reported))
                facts.rotation = display_rotation(frame)
            if n in wanted:
                kept[n] = _keep(frame, facts, transform)
            n += 1
        indices, missing = _plan(DECODER_PYAV, facts, n, sampler, kept)
        kept.update(_pyav_refetch(name, missing, facts, transform))
        return _finish(DECODER_PYAV, facts, n, indices, kept)


def _pyav_refetch(
    name: str, wanted: set[int], facts: StreamFacts, transform: FrameTransform
) -> dict[int, Any]:
    """A second sequential PyAV pass for the frames a first one could not know it needed
    (the header's frame count was wrong): ``wanted`` kept, decoding stopped after the last."""
    kept: dict[int, Any] = {}
    if not wanted:
        return kept
    last = max(wanted)
    for i, (frame, _) in enumerate(_pyav_frames(name)):
        if i in wanted:
            kept[i] = _keep(frame, facts, transform)
        if i >= last:
            break
    return kept


# --------------------------------------------------------------------------------------
# Keyframe-aware seeking for long videos (the plan: vmae_cli.seeking)
# --------------------------------------------------------------------------------------


def _decoded_frames(
    container: Any,
    stream: Any,
    targets: Collection[int] | None = None,
    *,
    skip_nonref: bool = False,
    counts: DecodeCounts | None = None,
    failed: list[float | None] | None = None,
) -> Iterator[Any]:
    """Frames from the current demuxer position on, skipping packets that fail to decode.

    With ``targets`` (the presentation timestamps a seek segment keeps), decoding stops once
    the last target's packet is sent: the decoder is drained instead, which hands out the
    frames it holds back for reordering without decoding the packets that follow. With
    ``skip_nonref`` too, every packet that is not a target is decoded with ``skip_frame =
    "NONREF"``: the decoder drops its frame if it is not a reference (nothing refers to it,
    so every other frame decodes exactly as in a full decode) and, frames being identified
    by timestamp, a dropped frame simply never comes out. Only for streams
    :func:`~vmae_cli.seeking.skips_nonref_exactly` accepts. ``counts`` adds up what was sent
    and what came out; ``failed`` collects the time (seconds, ``None`` if unknown) of each
    packet that failed to decode.
    """
    import av

    cc = stream.codec_context
    unsent = set(targets) if targets is not None else None
    for packet in container.demux(stream):
        skippable = skip_nonref and unsent is not None and packet.pts not in unsent
        if skip_nonref:
            # Frame threading is off, so the decoder reads the setting while it decodes the
            # packet sent next: it may change from one packet to the next.
            cc.skip_frame = "NONREF" if skippable else "DEFAULT"
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            frames = []  # a corrupt packet: the decoder resynchronises on the next one
            if failed is not None:
                failed.append(_seconds(packet.pts, stream.time_base))
        done = False
        if unsent is not None:
            unsent.discard(packet.pts)
            done = not unsent
            if done:
                # Drained, the decoder takes no more packets until flushed (the next seek).
                try:
                    frames = [*frames, *cc.decode(None)]
                except av.error.FFmpegError:
                    pass
        if counts is not None and packet.size:
            counts.packets += 1
            counts.skippable += skippable
            counts.frames += len(frames)
        yield from frames
        if done:
            return


def decode_pyav_seek(
    path: str,
    sampler: int | Sampler,
    transform: FrameTransform,
    *,
    min_duration_s: float = SEEK_MIN_DURATION_S,
    max_fraction: float = SEEK_MAX_FRACTION,
    skip_nonref: bool = True,
    counts: DecodeCounts | None = None,
) -> DecodedFrames | None:
    """Decode the sampled frames of a video by seeking to the keyframe before each one.

    Frames are identified by their presentation timestamps from a demux-only pass over the
    file, so the result is the same as a full sequential decode (measured on a 60 s 1080p
    H.264 file: 1.7 s instead of 3.7 s, before non-reference frames were skipped). Returns
    ``None`` when the file should be read sequentially instead: shorter than
    ``min_duration_s``, a container or codec whose timestamps cannot be trusted, a damaged
    packet, or a plan that would not save enough; any surprise while decoding also returns
    ``None``.

    ``skip_nonref`` lets the decoder skip the non-reference frames between a keyframe and a
    sampled frame where that is exact (:data:`~vmae_cli.seeking.SKIP_NONREF_DECODERS`); off,
    every frame on the way is decoded (for comparisons). ``counts``, when given, receives
    the packets sent and frames decoded (:class:`~vmae_cli.seeking.DecodeCounts`).
    """
    import av

    sampler = as_sampler(sampler)
    with decoder_path(path) as name:
        try:
            container = _av_open(name)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
            return None
        with container:
            try:
                return _seek_decode(
                    container,
                    sampler,
                    transform,
                    min_duration_s,
                    max_fraction,
                    skip_nonref=skip_nonref,
                    counts=counts,
                    source=name,
                )
            except (NotSeekable, av.error.FFmpegError):
                return None


def _seekable_stream(
    container: Any, codec_of: Callable[[Any], str], min_duration_s: float = 0.0
) -> Any:
    """The first video stream of ``container``, single-threaded, once its timestamps and
    keyframes can be trusted for seeking: a container in
    :data:`~vmae_cli.seeking.SEEKABLE_FORMATS`, a codec in
    :data:`~vmae_cli.seeking.SEEKABLE_CODECS` (as ``codec_of(codec_context)`` names it), a
    duration of at least ``min_duration_s``. Raises :class:`~vmae_cli.seeking.NotSeekable`
    saying why, or :class:`DecodeFailure` for no video stream or frames too large.
    """
    fmt = container.format.name or ""
    stream = video_stream(container)  # raises not_video for audio with only cover art
    if not any(f in fmt.split(",") for f in SEEKABLE_FORMATS):
        raise NotSeekable(f"container {fmt}")
    cc = stream.codec_context
    codec = codec_of(cc)
    if codec not in SEEKABLE_CODECS:
        raise NotSeekable(f"codec {codec}")
    if (container.duration or 0) / 1_000_000 < min_duration_s:
        raise NotSeekable("short video")
    _refuse_huge_frames(cc.width or 0, cc.height or 0)
    stream.thread_type = "NONE"  # parallelism comes from decoding several videos at once
    return stream


def _keep(frame: Any, facts: StreamFacts, transform: FrameTransform) -> Any:
    """A kept PyAV frame, upright and transformed; the first kept frame's size and rotation
    stand for the video's (set in ``facts`` while still unknown)."""
    rgb = _rgb_upright(frame)
    if facts.shape is None:
        facts.shape = rgb.shape[:2]
    if facts.rotation is None:
        facts.rotation = display_rotation(frame)
    return transform(rgb)


def _seek_decode(
    container: Any,
    sampler: Sampler,
    transform: FrameTransform,
    min_duration_s: float,
    max_fraction: float,
    *,
    skip_nonref: bool = True,
    counts: DecodeCounts | None = None,
    source: Any = None,
) -> DecodedFrames:
    # By the decoder's name, as before keyframe sampling came: AV1, decoded by "libdav1d",
    # is read sequentially here.
    stream = _seekable_stream(container, lambda cc: cc.name, min_duration_s)
    index = _index(container, stream, source)
    n = len(index.shown)
    indices = sampler(n)
    positions = sorted(set(indices))
    segments, cost = plan_seeks(index, [index.shown[i] for i in positions])
    if cost > max_fraction * n:
        raise NotSeekable("seeking would not save enough")
    kept: dict[int, Any] = {}
    facts = StreamFacts.of_stream(stream)
    frames = _planned_frames(
        container, stream, index, segments, transform, facts, skip_nonref, counts, source
    )
    for i, frame in frames:
        if frame is _MISSING:
            raise NotSeekable("a sampled frame did not come out of the decoder")
        kept[i] = frame
    return _finish(DECODER_PYAV_SEEK, facts, n, indices, kept)


def _payload_free(source: Any) -> remote.RangeFile | None:
    """For a reader of a remote, whole, unfragmented MP4, a second reader of it whose media
    data reads as zeros, fetching nothing; ``None`` for anything else."""
    if not isinstance(source, remote.RangeFile):
        return None
    obj = source.obj
    probe = obj.open()
    if probe.read(8)[4:8] != b"ftyp":
        return None
    ranges = mp4_media(probe, obj.size)
    return obj.open(payload_free=ranges) if ranges and obj.error is None else None


def _index(container: Any, stream: Any, source: Any) -> FrameIndex:
    """The demux-only index of ``stream``. A remote MP4's is demuxed from a second reader
    whose media data reads as zeros (:func:`~vmae_cli.filegate.mp4_media`): the
    packets' times and flags come from the MP4's index, so only the stretches the seek plan
    decodes are fetched (the container itself has read nothing past its index yet)."""
    import av

    free = _payload_free(source)
    if free is None:
        return index_packets(container, stream)
    with av.open(free, metadata_errors="ignore") as other:
        same = other.streams[stream.index]
        # A parser given zeros calls no packet a keyframe: the sync samples of the MP4's index
        # say which are (FFmpeg seeks by them too).
        keyframes = {e.timestamp for e in same.index_entries if e.is_keyframe}
        return index_packets(other, same, keyframe_dts=keyframes, spans=True)


#: Stands for a planned frame that did not come out of the decoder (a transform may return
#: anything, None included).
_MISSING: Any = object()


def _planned_frames(
    container: Any,
    stream: Any,
    index: FrameIndex,
    segments: list[SeekSegment],
    transform: FrameTransform,
    facts: StreamFacts,
    skip_nonref: bool,
    counts: DecodeCounts | None = None,
    source: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Carry out a seek plan (:func:`~vmae_cli.seeking.plan_seeks` over ``index``); yield
    ``(frame index, kept frame)`` for each target in presentation order, with :data:`_MISSING`
    for a target that did not come out of the decoder (a damaged packet). ``skip_nonref``: skip
    non-reference frames that are not targets, where
    :func:`~vmae_cli.seeking.skips_nonref_exactly` allows it. A remote ``source`` (a
    :class:`~vmae_cli.remote.RangeFile`) is asked for each segment's bytes first."""
    cc = stream.codec_context
    skip = skip_nonref and skips_nonref_exactly(cc.name, cc.extradata)
    position = {pts: i for i, pts in enumerate(index.shown)}
    for segment in segments:
        span = index.byte_range(segment.seek_to, segment.targets[-1])
        if span is not None and isinstance(source, remote.RangeFile):
            source.obj.prefetch(*span)  # one request for the stretch, nothing past it
        container.seek(segment.seek_to, stream=stream, backward=True, any_frame=False)
        targets = segment.targets  # ascending
        next_target = 0
        frames = _decoded_frames(container, stream, targets, skip_nonref=skip, counts=counts)
        for frame in frames:
            if frame.pts is None:
                raise NotSeekable("a decoded frame without a timestamp")
            # Frames come out in presentation order: a target before this frame that has not
            # come will not come.
            while next_target < len(targets) and targets[next_target] < frame.pts:
                yield position[targets[next_target]], _MISSING
                next_target += 1
            if next_target < len(targets) and targets[next_target] == frame.pts:
                yield position[frame.pts], _keep(frame, facts, transform)
                next_target += 1
            if next_target == len(targets):
                break
        for pts in targets[next_target:]:
            yield position[pts], _MISSING


def decode_video(
    path: str,
    sampler: int | Sampler,
    transform: FrameTransform,
    *,
    sampling: str = SAMPLING_EXACT,
) -> tuple[DecodedFrames | None, Failure | None, VideoMeta]:
    """Check, then decode ``path``: by keyframe seeking when :func:`decode_pyav_seek` takes the
    file (long MP4/MOV/MKV/WebM), else OpenCV, and PyAV when OpenCV gets no frame out of it.

    With ``sampling="keyframes"`` (one of :data:`~vmae_cli.protocol.SAMPLING_CHOICES`),
    :func:`decode_keyframes` is tried first; a file it cannot serve is decoded exactly as
    above, with a note saying why. Returns ``(decoded, None, meta)`` or
    ``(None, failure, meta)`` where ``meta`` holds what was learned before the failure;
    never raises for a bad file.
    """
    if sampling not in SAMPLING_CHOICES:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING_CHOICES)}: {sampling!r}")
    decoded, failure, meta = _decode_video(path, sampler, transform, sampling)
    if remote.is_url(path) and (cut := remote.fetch_error(path)) is not None:
        # A read that failed looks like the end of the file to a decoder: never a shorter
        # video, nor "damaged" bytes that were only not fetched.
        return None, cut, meta
    return decoded, failure, meta


def _decode_video(
    path: str, sampler: int | Sampler, transform: FrameTransform, sampling: str
) -> tuple[DecodedFrames | None, Failure | None, VideoMeta]:
    failure, head = check_and_read_head(path)
    failure = failure or container_failure(path, head)
    if failure is not None:
        return None, failure, VideoMeta()
    if sampling == SAMPLING_KEYFRAMES:
        return _keyframes_or_exact(path, sampler, transform)
    try:
        decoded = decode_pyav_seek(path, sampler, transform)
    except DecodeFailure as exc:  # too_large or no video stream, before any frame is decoded
        return None, _reported_failure(exc, head, path), exc.meta
    except Exception:  # noqa: BLE001 - any surprise: read the file sequentially instead
        decoded = None
    if decoded is not None:
        return decoded, None, decoded.meta
    first: DecodeFailure | None = None
    for decode in (decode_opencv, decode_pyav):
        try:
            decoded = decode(path, sampler, transform)
            return decoded, None, decoded.meta
        except DecodeFailure as exc:
            if exc.failure.status == STATUS_TOO_LARGE:
                return None, exc.failure, exc.meta
            # Keep the most informative failure: "opened but no frames" beats "cannot open",
            # and PyAV's reason for not opening beats OpenCV's silence.
            if first is None or first.failure.status == STATUS_NOT_VIDEO:
                first = exc
        except MemoryError:
            return None, _OUT_OF_MEMORY, VideoMeta()
        except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one row, not the run
            first = first or DecodeFailure(STATUS_ERROR, f"{type(exc).__name__}: {exc}")
    assert first is not None
    return None, _reported_failure(first, head, path), first.meta


#: How a video that exhausted memory while decoding is reported.
_OUT_OF_MEMORY = Failure(STATUS_TOO_LARGE, "out of memory while decoding")


def _reported_failure(exc: DecodeFailure, head: bytes, path: str) -> Failure:
    """The failure to report for ``exc``: ``not_video`` or ``damaged``, as the file gate
    decides from the file's first bytes (:func:`vmae_cli.filegate.damaged_or_not_video`)."""
    open_error = exc.reason if isinstance(exc, _CannotOpen) else None
    return damaged_or_not_video(path, head, exc.failure, open_error)


#: A header's frame count is questioned only when the frames that decode fall short of it by
#: both this many frames and this fraction of the count. Headers are often a little off
#: without anything being wrong: Matroska reports duration x fps (one frame too many is usual,
#: VFR clips more: 28 for 24 in the tests), an MP4 edit list hides a few frames (B-frame delay,
#: encoder priming; 24 for 21 in the tests) and a stream-copy cut can hide a GOP of pre-roll.
#: A cut-off download or copy usually loses far more (the reported case: 300 for 144).
TRUNCATION_MIN_MISSING_FRAMES = 10
TRUNCATION_MIN_MISSING_FRACTION = 0.2


def truncation_note(meta: VideoMeta) -> str | None:
    """A note for an ``ok`` row whose header promises clearly more frames than decode: its
    frame count, or where it gives none, its duration at its rate (``frames_expected``).

    E.g. ``"header says 300 frames, 144 decode (truncated?)"``; ``None`` when the counts agree
    within :data:`TRUNCATION_MIN_MISSING_FRAMES` / :data:`TRUNCATION_MIN_MISSING_FRACTION`
    or the header gives no count. Worded as a question: an AVI header can also simply lie.
    """
    reported, decoded = meta.frames_reported or meta.frames_expected, meta.frames_decoded
    if not reported or decoded <= 0:
        return None
    # Frames an edit list hides are in the header's count, not lost (a stream-copy cut).
    missing = reported - meta.frames_hidden - decoded
    if (
        missing < TRUNCATION_MIN_MISSING_FRAMES
        or missing < TRUNCATION_MIN_MISSING_FRACTION * reported
    ):
        return None
    if not meta.frames_reported and meta.fps:
        said = f"{reported / meta.fps:.1f} s ({reported} frames at {meta.fps:g} fps)"
        return f"header says {said}, {decoded} decode (truncated?)"
    return f"header says {reported} frames, {decoded} decode (truncated?)"


# --------------------------------------------------------------------------------------
# --sampling keyframes: the keyframe nearest each sampled frame, decoded by itself (the
# plan: vmae_cli.seeking.nearest_keyframes)
# --------------------------------------------------------------------------------------

DECODER_PYAV_KEYFRAMES = "pyav-keyframes"


def decode_keyframes(path: str, sampler: int | Sampler, transform: FrameTransform) -> DecodedFrames:
    """Decode, for each sampled frame of ``path``, the keyframe nearest to it instead.

    The frame count and the keyframes come from a demux-only pass
    (:func:`~vmae_cli.seeking.index_packets`); then each distinct keyframe costs one seek and
    one decoded packet, and nothing between keyframes is decoded: far cheaper than an exact
    decode, and not frame-exact. ``frame_indices`` holds the keyframes' indices, one per
    sampled frame (repeats allowed).

    Raises :class:`~vmae_cli.seeking.NotSeekable`, saying why, where keyframes cannot be
    trusted: a container or codec outside :data:`~vmae_cli.seeking.SEEKABLE_FORMATS` /
    :data:`~vmae_cli.seeking.SEEKABLE_CODECS` (AVI, MPEG-TS, ...), packets without
    timestamps, a seek that does not find its keyframe, a keyframe that gives no frame by
    itself. Raises :class:`DecodeFailure` for frames above :data:`MAX_FRAME_PIXELS` or no
    video stream, and lets PyAV's errors through; :func:`decode_video` then decodes exactly.
    """

    sampler = as_sampler(sampler)
    with decoder_path(path) as name, _av_open(name) as container:
        # The codec's own name: PyAV may decode with a library (AV1 with "libdav1d").
        stream = _seekable_stream(container, lambda cc: cc.codec.canonical_name)
        index = index_packets(container, stream)
        n = len(index.shown)
        indices = nearest_keyframes(index, sampler(n))
        facts = StreamFacts.of_stream(stream)
        kept: dict[int, Any] = {}
        for i in sorted(set(indices)):
            frame = _decode_keyframe(container, stream, index.shown[i])
            kept[i] = _keep(frame, facts, transform)
        decoded = _finish(DECODER_PYAV_KEYFRAMES, facts, n, indices, kept)
        note = few_keyframes_note(indices)
        if note:
            decoded.notes.append(note)
        return decoded


def few_keyframes_note(indices: list[int]) -> str:
    """A row's note when half or more of its keyframe-sampled frames are one frame (a video
    with few keyframes: the model sees little of it), else ``""``."""
    if not indices:
        return ""
    frame, count = Counter(indices).most_common(1)[0]
    if 2 * count < len(indices):
        return ""
    return (
        f"{count} of the {len(indices)} sampled frames are the same keyframe (frame {frame}): "
        "the video has few keyframes, so keyframe sampling sees little of it; exact sampling "
        "sees all of it"
    )


def _decode_keyframe(container: Any, stream: Any, pts: int) -> Any:
    """Seek to the keyframe shown at ``pts`` and decode its packet alone."""
    container.seek(pts, stream=stream, backward=True, any_frame=False)
    for packet in container.demux(stream):
        if packet.pts != pts:
            # The demuxer may land on an earlier keyframe (it does on an MP4 with an edit
            # list): read on to the wanted packet without decoding anything.
            if packet.is_keyframe and packet.pts is not None and packet.pts > pts:
                break
            continue
        if not packet.is_keyframe:
            break
        # Draining the decoder (decode(None)) makes it give the frame now, whatever its
        # reordering delay; the next seek resets it.
        frames = [*packet.decode(), *stream.codec_context.decode(None)]
        for frame in frames:
            if frame.pts == pts:
                return frame
        raise NotSeekable("a keyframe gave no frame by itself")
    raise NotSeekable("a seek did not find its keyframe")


def _keyframes_or_exact(
    path: str, sampler: int | Sampler, transform: FrameTransform
) -> tuple[DecodedFrames | None, Failure | None, VideoMeta]:
    """:func:`decode_keyframes`, or else the exact decode, whose row says why.

    Whatever goes wrong with keyframes (a bad file included) hands the file to the exact
    path, so failures are decided, and worded, exactly as with exact sampling.
    """
    try:
        decoded = decode_keyframes(path, sampler, transform)
    except Exception as exc:  # noqa: BLE001 - any surprise: decode exactly instead
        why = exc.failure.error if isinstance(exc, DecodeFailure) else str(exc)
        if not isinstance(exc, NotSeekable | DecodeFailure):
            why = f"{type(exc).__name__}: {why}"
    else:
        return decoded, None, decoded.meta
    # The file gate runs again there: a stat and a short read, nothing next to decoding.
    decoded, failure, meta = decode_video(path, sampler, transform)
    if decoded is not None:
        decoded.notes.append(f"keyframe sampling not possible ({why}): frames sampled exactly")
    return decoded, failure, meta


# --------------------------------------------------------------------------------------
# --segments: the frames of consecutive windows, streamed (the plan: vmae_cli.segments)
# --------------------------------------------------------------------------------------

#: A sequential pass learns the frame count only at the end, where the last window is placed
#: (it ends on the last frame). Every frame is kept from this far before the end the header
#: announces (frames, or this fraction of the count, whichever is more), so that the last
#: window's frames are at hand when the header is about right; when it is not (a truncated
#: file, a header that says nothing), a second pass fetches them.
TAIL_MARGIN_FRAMES = 32
TAIL_MARGIN_FRACTION = 0.05
#: Frames shown further apart than this many frame intervals (at the stream's average rate)
#: get a note on the video's row: frames are missing there, or the video stood still (a
#: screen recording), and a window across the gap spans more time than it says.
GAP_NOTE_FRAMES = 8

#: A video's window geometry from its frame rate, and a note for its row (``""`` if none):
#: :meth:`vmae_cli.segments.Segments.geometry` for the model's T.
GeometryFor = Callable[[float | None], tuple[WindowGeometry, str]]


@dataclass
class DecodedWindow:
    """One window of a video: its T kept frames in order (``None`` when some of them did not
    decode) and the presentation times of its first and last frame, in seconds."""

    window: Window
    frames: list[Any] | None
    start_s: float | None
    end_s: float | None


@dataclass
class WindowsDone:
    """What :func:`decode_windows` yields after a video's last window: its metadata and the
    notes for its row, or the failure that gave it no window at all."""

    meta: VideoMeta
    notes: list[str] = field(default_factory=list)
    failure: Failure | None = None


def decode_windows(
    path: str, geometry_for: GeometryFor, transform: FrameTransform
) -> Iterator[DecodedWindow | WindowsDone]:
    """Decode the consecutive windows of ``path`` (``--segments``), yielding each as soon as
    its frames are decoded, in order, then one :class:`WindowsDone`. Never raises for a bad
    file: a file no window comes from ends with a failure, as :func:`decode_video` reports it.

    Memory does not grow with the video's length: only the frames of windows not yet complete
    are held (and, in a sequential pass, those near the end). Frames are the ones a full
    decode gives. In containers whose timestamps can be trusted, a demux-only pass gives the
    frame count and every frame's time first, and the frames are decoded along a seek plan
    (non-reference frames no window uses are skipped, stretches no window uses are seeked
    over); a frame that does not decode there fails only its windows. Elsewhere one
    sequential PyAV pass reads every frame that decodes (a damaged stretch is left out and
    named in the notes).
    """
    failure, head = check_and_read_head(path)
    failure = failure or container_failure(path, head)
    if failure is not None:
        yield WindowsDone(VideoMeta(), failure=failure)
        return
    try:
        with decoder_path(path) as name:
            done = yield from _indexed_windows(name, geometry_for, transform)
            if done is None:
                done = yield from _sequential_windows(name, geometry_for, transform)
    except DecodeFailure as exc:
        failure, meta = _reported_failure(exc, head, path), exc.meta
        if failure.status == STATUS_NO_FRAMES:
            # Worded, with the header's facts, as the exact decoders report the same file
            # (PyAV's pass learns the header only from a frame).
            _, exact_failure, exact_meta = decode_video(path, 1, lambda _: None)
            if exact_failure is not None:
                failure, meta = exact_failure, exact_meta
        done = WindowsDone(meta, failure=failure)
    except MemoryError:
        done = WindowsDone(VideoMeta(), failure=_OUT_OF_MEMORY)
    except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one row, not the run
        done = WindowsDone(
            VideoMeta(), failure=Failure(STATUS_ERROR, f"{type(exc).__name__}: {exc}")
        )
    if remote.is_url(path) and (cut := remote.fetch_error(path)) is not None:
        done = WindowsDone(done.meta, failure=cut)  # as decode_video says it
    yield done


def _indexed_windows(
    name: str, geometry_for: GeometryFor, transform: FrameTransform
) -> Iterator[DecodedWindow]:
    """Windows by a demux-only index and a seek plan; returns the :class:`WindowsDone`, or
    ``None`` (having yielded nothing) when the file is not one to index."""
    import av

    try:
        container = _av_open(name)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None
    with container:
        try:
            stream = _seekable_stream(container, lambda cc: cc.name)
            index = index_packets(container, stream)
        except (NotSeekable, av.error.FFmpegError):
            return None
        n = len(index.shown)
        facts = StreamFacts.of_stream(stream)
        geometry, note = geometry_for(facts.fps)
        windows = deque(plan_windows(n, geometry))
        positions = sorted({i for w in windows for i in w.frame_indices})
        segments, _ = plan_seeks(index, [index.shown[i] for i in positions])
        time_base = stream.time_base

        def placed(w: Window, frames: list[Any] | None) -> DecodedWindow:
            start = _seconds(index.shown[w.start_frame], time_base)
            return DecodedWindow(w, frames, start, _seconds(index.shown[w.end_frame], time_base))

        missing: list[int] = []
        got: dict[int, Any] = {}
        stopped = ""
        frames = _planned_frames(container, stream, index, segments, transform, facts, True)
        try:
            for i, frame in frames:
                got[i] = frame
                if frame is _MISSING:
                    missing.append(i)
                while windows and windows[0].frame_indices[-1] <= i:
                    w = windows.popleft()
                    kept = [got[j] for j in w.frame_indices]
                    yield placed(w, None if any(f is _MISSING for f in kept) else kept)
                    first_needed = windows[0].start_frame if windows else n
                    for j in [j for j in got if j < first_needed]:
                        del got[j]
        except (NotSeekable, av.error.FFmpegError) as exc:
            stopped = f"decoding stopped ({exc})"
        unfinished = list(windows)
        for w in unfinished:
            yield placed(w, None)
        notes = [note] if note else []
        if missing:
            notes.append(_missing_note(missing, index, time_base))
        notes += _gap_note([float(pts * time_base) for pts in index.shown], facts.fps)
        if stopped and unfinished:
            notes.append(f"{stopped}: windows {_span_text(unfinished)} not classified")
        notes += _short_note(n, geometry)
        return WindowsDone(facts.to_meta(DECODER_PYAV_SEEK, n), notes)


def _sequential_windows(
    name: str, geometry_for: GeometryFor, transform: FrameTransform
) -> Iterator[DecodedWindow]:
    """Windows from one sequential PyAV pass (a second one only for the last window, when the
    header's frame count was far off); returns the :class:`WindowsDone`."""
    from array import array

    failed: list[float | None] = []
    times = array("d")  # every frame's time (NaN: none), for windows' first and last frames
    kept: dict[int, Any] = {}
    facts = StreamFacts()
    tracker: WindowTracker | None = None
    note = ""
    keep_all_from = 0
    n = 0
    guessed = 0  # frames without a timestamp, timed by the frame rate
    for frame, facts in _pyav_frames(name, failed):
        if tracker is None:
            geometry, note = geometry_for(facts.fps)
            tracker = WindowTracker(geometry)
            facts.rotation = display_rotation(frame)
            expected = facts.reported
            if expected > 0:
                margin = max(TAIL_MARGIN_FRAMES, int(TAIL_MARGIN_FRACTION * expected))
                keep_all_from = max(0, expected - geometry.span - margin)
        t = frame.time
        if t is None and facts.fps:
            # A raw stream (Annex B H.264) has no timestamps: its frame rate places it.
            t, guessed = n / facts.fps, guessed + 1
        times.append(t if t is not None else math.nan)
        if n >= keep_all_from or tracker.wanted(n):
            kept[n] = _keep(frame, facts, transform)
        w = tracker.completed_by(n)
        if w is not None:
            yield _timed(w, [kept[i] for i in w.frame_indices], times)
        # No window still open, nor the last one, needs a frame this far back.
        for j in [j for j in kept if j <= n - tracker.geometry.span]:
            del kept[j]
        n += 1
    if tracker is None:
        raise _no_frames(DECODER_PYAV, facts)
    rest = tracker.finish(n)
    # The header's count was far off when the last window's frames were not all kept.
    need = {i for w in rest for i in w.frame_indices} - kept.keys()
    kept.update(_pyav_refetch(name, need, facts, transform))
    for w in rest:
        frames = [kept.get(i, _MISSING) for i in w.frame_indices]
        yield _timed(w, None if any(f is _MISSING for f in frames) else frames, times)
    notes = [note] if note else []
    if failed:
        known = [t for t in failed if t is not None]
        where = f" between {min(known):.1f} and {max(known):.1f} s" if known else ""
        packets = f"{len(failed)} packet{'s' if len(failed) != 1 else ''}"
        notes.append(f"{packets} did not decode{where}: their frames are left out of the windows")
    if guessed:
        notes.append(f"{guessed} frames without timestamps: their times are frame / fps")
    notes += _gap_note([t for t in times if not math.isnan(t)], facts.fps)
    notes += _short_note(n, tracker.geometry)
    return WindowsDone(facts.to_meta(DECODER_PYAV, n), notes)


def _timed(w: Window, frames: list[Any] | None, times: Any) -> DecodedWindow:
    def at(i: int) -> float | None:
        t = times[i]
        return None if math.isnan(t) else t

    return DecodedWindow(w, frames, at(w.start_frame), at(w.end_frame))


def _short_note(n: int, geometry: WindowGeometry) -> list[str]:
    if n >= geometry.span:
        return []
    return [f"short video: {n} frames for a window of {geometry.span}, frames repeated"]


def _gap_note(times: list[float], fps: float | None) -> list[str]:
    """A note when frames are missing from the timeline: shown frames further apart than
    :data:`GAP_NOTE_FRAMES` frame intervals (a demuxer that drops damaged packets without a
    word, as MPEG-TS does, leaves only this trace). ``times`` in presentation order."""
    if not fps or len(times) < 2:
        return []
    limit = GAP_NOTE_FRAMES / fps
    gaps = [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a > limit]
    if not gaps:
        return []
    a, b = max(gaps, key=lambda g: g[1] - g[0])
    more = f" (the longest of {len(gaps)} such gaps)" if len(gaps) > 1 else ""
    return [
        f"no frame shown between {a:.2f} and {b:.2f} s, {(b - a) * fps:.0f} frame intervals"
        f"{more}: frames missing or damaged?"
    ]


def _span_text(windows: list[Window]) -> str:
    first, last = windows[0].index, windows[-1].index
    return str(first) if first == last else f"{first}-{last}"


def _missing_note(missing: list[int], index: FrameIndex, time_base: Any) -> str:
    """Which frames did not decode, e.g. ``frames 300-340 (12.0-13.6 s) did not decode``."""
    first, last = min(missing), max(missing)
    t0 = _seconds(index.shown[first], time_base) or 0.0
    t1 = _seconds(index.shown[last], time_base) or 0.0
    what = f"frame {first}" if first == last else f"{len(missing)} frames in {first}-{last}"
    return f"{what} ({t0:.1f}-{t1:.1f} s) did not decode: their windows are not classified"
