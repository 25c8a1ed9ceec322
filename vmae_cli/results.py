"""Typed values that flow between the stages: video metadata, decoded clips, predictions.

A failure is a value here, not an exception: every stage passes a :class:`Failure` along so
that each input video ends as exactly one :class:`Prediction`, ok or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .segments import TIMELINE_MAX_CHARS, TimelineEntry, timeline

if TYPE_CHECKING:  # torch is imported lazily to keep `vmae --help` fast
    import torch

# Row statuses. ``ok`` means classified; every other value names what went wrong.
STATUS_OK = "ok"
STATUS_NOT_FOUND = "not_found"  # vanished between discovery and decoding, or a broken symlink
STATUS_NOT_A_FILE = "not_a_file"  # a FIFO, socket or device: never handed to a decoder
STATUS_EMPTY = "empty"  # a zero-byte file
STATUS_UNREADABLE = "unreadable"  # permission denied or another OS error on open
STATUS_NOT_VIDEO = "not_video"  # no video stream, or neither opens nor looks like a video
# Starts like a video container or stream (MP4 boxes, Matroska, AVI, ...) but no decoder could
# open it: truncated (an MP4 without its moov index), still being copied, or overwritten.
STATUS_DAMAGED = "damaged"
STATUS_NO_FRAMES = "no_frames"  # opened as a video, but no frame could be decoded
STATUS_TOO_LARGE = "too_large"  # frame size above the memory guard
STATUS_TIMEOUT = "timeout"  # took longer than --timeout
STATUS_CRASHED = "crashed"  # the decoding process died (signal)
STATUS_ERROR = "error"  # any other unexpected error

FAILURE_STATUSES = (
    STATUS_NOT_FOUND,
    STATUS_NOT_A_FILE,
    STATUS_EMPTY,
    STATUS_UNREADABLE,
    STATUS_NOT_VIDEO,
    STATUS_DAMAGED,
    STATUS_NO_FRAMES,
    STATUS_TOO_LARGE,
    STATUS_TIMEOUT,
    STATUS_CRASHED,
    STATUS_ERROR,
)


#: How a timeline shows a window whose top-1 score is below the threshold (``--min-score``).
LOW_CONFIDENCE_MARK = "(low confidence)"


@dataclass(frozen=True)
class FileStamp:
    """Size and modification time of a file when it was read: how --resume tells whether a
    video changed since its row was written."""

    size_bytes: int
    mtime_ns: int


def file_stamp(path: str) -> FileStamp | None:
    """The :class:`FileStamp` of ``path``, or ``None`` when it cannot be ``stat``-ed (a URL:
    what its store says, :func:`vmae_cli.remote.stamp`)."""
    import os

    from .remote import is_url, stamp

    if is_url(path):
        return stamp(path)

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return FileStamp(st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class VideoMeta:
    """What the decoder learned about a video.

    ``frames_reported`` is what the container header claims (``None`` when it does not say);
    ``frames_decoded`` is the number of frames actually decoded, the count sampling uses;
    ``frames_hidden`` the frames the header counts but an edit list hides (known where a
    packet index was read; an MP4 cut by stream copy has them).
    """

    decoder: str = ""
    frames_reported: int | None = None
    frames_decoded: int = 0
    fps: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    frames_hidden: int = 0
    #: Where the header gives a duration but no frame count (Matroska, WebM): the frames the
    #: duration holds at the stream's rate. Not a column: what the truncation note compares.
    frames_expected: int | None = None


@dataclass
class Failure:
    """Why a video produced no prediction. ``status`` is one of :data:`FAILURE_STATUSES`."""

    status: str
    error: str


@dataclass
class VideoViews:
    """All the views of one video, ready for the model (a view is one clip, or one crop of a
    clip, of T frames; ``Protocol.clips`` counts the clips).

    ``frames`` is a uint8 tensor of shape ``(V, T, 3, H, W)``: V views (clips x crops of the
    test protocol; 1 by default) of T frames, RGB, already resized and cropped. uint8 is four
    times smaller than float32 to move between processes; normalisation happens on the
    model's device. ``frame_indices`` lists the T indices of each clip, one clip after the
    other.
    """

    path: str
    meta: VideoMeta
    frame_indices: list[int]
    frames: torch.Tensor
    notes: list[str] = field(default_factory=list)
    stamp: FileStamp | None = None

    @property
    def num_views(self) -> int:
        """How many model inputs this video makes (clips x crops)."""
        return int(self.frames.shape[0])


@dataclass
class DecodeOutcome:
    """A decoding worker's answer for one path: its views, or a failure with what was
    learned. For a segmented video (``--segments``), the last answer after its window chunks
    (:class:`WindowChunk`): ``windows`` counts the windows sent, ``notes`` are for its row."""

    path: str
    views: VideoViews | None = None
    failure: Failure | None = None
    meta: VideoMeta = field(default_factory=VideoMeta)
    seconds: float = 0.0
    stamp: FileStamp | None = None
    windows: int | None = None
    notes: list[str] = field(default_factory=list)


class _Ranked:
    """``ok``, ``label`` and ``score`` of a result with a ``status`` and a ``top_k`` sorted
    by decreasing score (a video's or a window's), and what :mod:`vmae_cli.scoring` adds to
    it: the label group, the threshold verdict, a multi-label model's labels."""

    status: str
    top_k: list[LabelScore]
    group: str
    group_score: float | None
    low_confidence: bool | None
    labels: list[str] | None

    @property
    def ok(self) -> bool:
        """True when it was classified."""
        return self.status == STATUS_OK

    @property
    def label(self) -> str:
        """The top-1 label; ``""`` for a failure, and when its score is below the threshold
        (``low_confidence``)."""
        return self.top_k[0].label if self.top_k and not self.low_confidence else ""

    def ranked_dict(self) -> dict[str, Any]:
        """The keys of a row that come from the ranking (label, scores, group, ...)."""
        return {
            "label": self.label,
            "score": self.score,
            "top_k": [{"label": ls.label, "score": ls.score} for ls in self.top_k],
            "group": self.group,
            "group_score": self.group_score,
            "low_confidence": self.low_confidence,
            "labels": self.labels,
        }

    @property
    def score(self) -> float | None:
        """The top-1 probability, or ``None`` for a failure."""
        return self.top_k[0].score if self.top_k else None


@dataclass
class WindowPrediction(_Ranked):
    """One window of a segmented video (``--segments``): where it lies (frames, and the
    presentation times of its first and last frame in seconds), the T frames the model saw,
    and what it said. ``status`` is ``ok``, or ``no_frames`` when a frame of the window did
    not decode (then ``top_k`` is empty)."""

    index: int
    start_frame: int
    end_frame: int
    start_s: float | None
    end_s: float | None
    frame_indices: list[int]
    status: str = STATUS_OK
    error: str = ""
    top_k: list[LabelScore] = field(default_factory=list)
    group: str = ""
    group_score: float | None = None
    low_confidence: bool | None = None
    labels: list[str] | None = None
    #: The vector the classifier head received (float32 numpy, mean over crops), when
    #: embeddings are asked for.
    embedding: Any = None


@dataclass
class WindowRow:
    """A window with its video's path: one row of the ``--segments-out`` file."""

    path: str
    window: WindowPrediction

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly view used by the formats."""
        w = self.window
        return {
            "path": self.path,
            "window": w.index,
            "status": w.status,
            "error": w.error,
            **w.ranked_dict(),
            "start_frame": w.start_frame,
            "end_frame": w.end_frame,
            "start_s": _time(w.start_s),
            "end_s": _time(w.end_s),
            "frame_indices": list(w.frame_indices),
        }


def _time(seconds: float | None) -> float | None:
    """Seconds as written in rows: microseconds are finer than any frame."""
    return round(seconds, 6) if seconds is not None else None


@dataclass
class WindowChunk:
    """A few consecutive windows of one video on their way from a decoding worker to the model
    (a long video's windows are sent as they are decoded, not all at once).

    ``windows`` are in order, without ``top_k`` yet; those with status ``ok`` have their views
    in ``frames``, a uint8 tensor ``(ok windows x crops, T, 3, H, W)``.
    """

    path: str
    windows: list[WindowPrediction]
    frames: torch.Tensor | None


@dataclass(frozen=True)
class LabelScore:
    """One class of the model's output with its softmax probability."""

    label: str
    score: float


@dataclass
class Prediction(_Ranked):
    """The result for one video: the thing :func:`vmae_cli.classify_paths` yields.

    ``top_k`` is sorted by decreasing score and empty unless ``status == "ok"``.
    """

    path: str
    status: str
    error: str = ""
    top_k: list[LabelScore] = field(default_factory=list)
    meta: VideoMeta = field(default_factory=VideoMeta)
    frame_indices: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: str = ""
    protocol: str = ""
    stamp: FileStamp | None = None
    #: The checkpoint's revision (the Hub commit, or ``sha256:...`` of a folder's files).
    model_revision: str = ""
    #: What produced the labels when they are not the checkpoint's own (text labels, a fitted
    #: head: :func:`vmae_cli.labelsource.labels_from`); a column only then.
    labels_from: str = ""
    node: str = ""  # the Ray node that classified it (--engine ray); not a column
    #: The runtime that classified it, as :attr:`RunReport.runtime` words it (``"openvino
    #: int8"``, ``"torch float32"``); a column in the rows of a ``dtype="int8"`` run only.
    runtime: str = ""
    #: The windows of a segmented video (``--segments``), in order; ``None`` otherwise. Its
    #: ``top_k`` is then the mean of the windows' probabilities.
    windows: list[WindowPrediction] | None = None
    group: str = ""  # the label group (--label-map): see vmae_cli.scoring
    group_score: float | None = None
    low_confidence: bool | None = None  # top-1 below the threshold (None: no threshold)
    labels: list[str] | None = None  # a multi-label model's labels above the threshold
    #: The vector the classifier head received (float32 numpy; the mean over views, or over
    #: the windows of a segmented video), when embeddings are asked for. Not a column.
    embedding: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly view used by the formats."""
        m = self.meta
        return {
            "path": self.path,
            "status": self.status,
            "error": self.error,
            **self.ranked_dict(),
            "frames_decoded": m.frames_decoded if m.decoder else None,
            "frames_reported": m.frames_reported,
            "duration_s": m.duration_s,
            "fps": m.fps,
            "width": m.width,
            "height": m.height,
            "rotation": m.rotation if m.decoder else None,
            "decoder": m.decoder,
            "frame_indices": list(self.frame_indices),
            "notes": "; ".join(self.notes),
            "protocol": self.protocol,
            "model": self.model,
            "model_revision": self.model_revision,
            "labels_from": self.labels_from,
            "runtime": self.runtime,
            "size_bytes": self.stamp.size_bytes if self.stamp else None,
            "mtime_ns": self.stamp.mtime_ns if self.stamp else None,
            "windows": len(self.windows) if self.windows is not None else None,
            "timeline": self.timeline() if self.windows is not None else None,
        }

    def timeline(self, max_chars: int = TIMELINE_MAX_CHARS) -> str:
        """The windows as ``"0.0-12.8 playing guitar 0.81; ..."`` (see
        :func:`vmae_cli.segments.timeline`); ``""`` when not segmented."""
        entries = [
            TimelineEntry(w.start_s, w.end_s, w.label or LOW_CONFIDENCE_MARK, w.score or 0.0)
            for w in self.windows or []
            if w.ok
        ]
        return timeline(entries, max_chars)
