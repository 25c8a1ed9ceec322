"""Segments: the consecutive windows of a long video that ``--segments`` classifies one by one.

Numbers only, like :mod:`vmae_cli.protocol`: how long a window is and how far the next one
starts (:class:`Span`, :class:`Segments`), which frames each window holds
(:class:`WindowGeometry`, :func:`plan_windows`, and :class:`WindowTracker` for a decoder that
learns the frame count only at the end), and the one-line summary of a video's windows
(:func:`timeline`).

A window spans ``span`` consecutive frames and the model sees T of them, ``start + floor(j *
span / T)`` for ``j < T``: with the default window, T frames taken every S frames (the
VideoMAE training clip: 16 frames every 4th, 64 frames), these are exactly ``start, start +
S, ...``. Windows start every ``hop`` frames from the first frame; the last one is placed to
end on the last frame (overlapping its neighbour) rather than padded, and a video shorter
than one window gets a single window whose frames repeat the last one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import VmaeError

#: The frame stride of the default window when the protocol spreads frames over the whole
#: video (``--frame-stride 0``): every 4th frame, as VideoMAE was trained on Kinetics.
DEFAULT_WINDOW_STRIDE = 4
#: Frame rate assumed for a window given in seconds when the video does not state one.
FALLBACK_FPS = 30.0
#: Unit suffixes of a :class:`Span`: frames and seconds.
UNIT_FRAMES = "f"
UNIT_SECONDS = "s"
#: The timeline column is cut to about this many characters (a spreadsheet cell stays
#: readable; the window rows hold everything).
TIMELINE_MAX_CHARS = 300

_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([fs])\s*$", re.IGNORECASE)


class SegmentsError(VmaeError, ValueError):
    """A window or hop that cannot be used (the CLI turns this into a usage error)."""


@dataclass(frozen=True)
class Span:
    """A length along a video: ``value`` frames (``unit="f"``) or seconds (``unit="s"``)."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in (UNIT_FRAMES, UNIT_SECONDS):
            raise SegmentsError(f"unit must be {UNIT_FRAMES!r} or {UNIT_SECONDS!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise SegmentsError(f"a window or hop must be positive, not {self.value:g}")
        if self.unit == UNIT_FRAMES and self.value != int(self.value):
            raise SegmentsError(f"a length in frames must be whole, not {self.value:g}")

    @classmethod
    def parse(cls, text: str) -> Span:
        """``"64f"`` (frames) or ``"2s"``, ``"0.5s"`` (seconds)."""
        match = _SPAN.match(text)
        if match is None:
            raise SegmentsError(
                f"{text!r} is not a length: give frames (64f) or seconds (2s, 0.5s)"
            )
        return cls(float(match.group(1)), match.group(2).lower())

    def frames(self, fps: float) -> int:
        """This length in frames at ``fps`` frames per second (at least 1)."""
        if self.unit == UNIT_FRAMES:
            return int(self.value)
        return max(1, math.floor(self.value * fps + 0.5))  # halves up, unlike round()

    def __str__(self) -> str:
        if self.unit == UNIT_FRAMES:
            return f"{int(self.value)}f"
        return f"{self.value:g}s"


@dataclass(frozen=True)
class Segments:
    """``--segments``: classify windows of ``window`` (default: the model's clip, T frames
    every S) starting every ``hop`` (default: the window, no overlap)."""

    window: Span | None = None
    hop: Span | None = None

    def resolved(self, frames_per_clip: int, frame_stride: int) -> Segments:
        """These settings with the defaults filled in for a model of ``frames_per_clip`` (T)
        frames and the protocol's ``frame_stride`` (S; 0 means :data:`DEFAULT_WINDOW_STRIDE`)."""
        stride = frame_stride or DEFAULT_WINDOW_STRIDE
        window = self.window or Span(frames_per_clip * stride, UNIT_FRAMES)
        return Segments(window, self.hop or window)

    @property
    def name(self) -> str:
        """``segments(window=64f,hop=64f)``: how rows name these settings (part of the
        protocol's name, so ``--resume`` does not mix windows of different lengths)."""
        window = str(self.window) if self.window else "clip"
        hop = str(self.hop) if self.hop else "window"
        return f"segments(window={window},hop={hop})"

    def geometry(self, frames_per_clip: int, fps: float | None) -> tuple[WindowGeometry, str]:
        """The window and hop in frames of a video at ``fps`` (for spans in seconds), and a
        note for its row when something had to be assumed or adjusted (else ``""``).

        Call on :meth:`resolved` settings. A window shorter than T frames is widened to T
        (a window in seconds on a low frame rate); without a frame rate, seconds are taken
        at :data:`FALLBACK_FPS`.
        """
        if self.window is None or self.hop is None:
            raise ValueError("geometry() needs resolved settings (Segments.resolved)")
        notes = []
        in_seconds = UNIT_SECONDS in (self.window.unit, self.hop.unit)
        rate = fps if fps and fps > 0 else FALLBACK_FPS
        if in_seconds and rate != fps:
            notes.append(f"frame rate unknown: seconds taken at {FALLBACK_FPS:g} fps")
        span = self.window.frames(rate)
        if span < frames_per_clip:
            notes.append(
                f"window {self.window} is {span} frames, fewer than the model's "
                f"{frames_per_clip}: widened to {frames_per_clip} frames"
            )
            span = frames_per_clip
        return WindowGeometry(span, self.hop.frames(rate), frames_per_clip), "; ".join(notes)


@dataclass(frozen=True)
class Window:
    """One window: its number in the video, its first and last frame, and the T frames the
    model sees (repeats only in the single window of a video shorter than one window)."""

    index: int
    start_frame: int
    end_frame: int
    frame_indices: tuple[int, ...]


@dataclass(frozen=True)
class WindowGeometry:
    """Windows in frames: ``span`` frames each, one starting every ``hop`` frames, ``frames``
    (T) of each given to the model."""

    span: int
    hop: int
    frames: int

    def __post_init__(self) -> None:
        if self.span < 1 or self.hop < 1 or self.frames < 1:
            raise SegmentsError("span, hop and frames must be at least 1")

    @property
    def offsets(self) -> tuple[int, ...]:
        """Where the T frames lie inside a window, from its first frame."""
        return tuple((j * self.span) // self.frames for j in range(self.frames))

    def window(self, index: int, start: int, frame_count: int | None = None) -> Window:
        """The window numbered ``index`` starting at frame ``start``; with ``frame_count``
        shorter than the window, it ends on the last frame and repeats it."""
        last = start + self.span - 1
        if frame_count is not None and last >= frame_count:
            last = frame_count - 1
        return Window(index, start, last, tuple(min(start + o, last) for o in self.offsets))

    def regular_count(self, frame_count: int) -> int:
        """How many windows start every ``hop`` frames and end inside the video."""
        if frame_count < self.span:
            return 0
        return (frame_count - self.span) // self.hop + 1


def plan_windows(frame_count: int, geometry: WindowGeometry) -> list[Window]:
    """Every window of a video of ``frame_count`` frames, in order (see the module's doc)."""
    if frame_count <= 0:
        return []
    regular = geometry.regular_count(frame_count)
    if regular == 0:
        return [geometry.window(0, 0, frame_count)]
    windows = [geometry.window(k, k * geometry.hop) for k in range(regular)]
    if windows[-1].end_frame < frame_count - 1:
        windows.append(geometry.window(regular, frame_count - geometry.span))
    return windows


class WindowTracker:
    """The windows of a video read in one pass whose frame count is known only at its end.

    Every regular window (one that starts on the hop and ends inside the video) is complete
    as soon as its last frame is read, whatever the count turns out to be; only the last
    window (placed to end on the last frame) and the single window of a short video wait for
    :meth:`finish`.
    """

    def __init__(self, geometry: WindowGeometry):
        self.geometry = geometry
        self._offsets = frozenset(geometry.offsets)
        self.emitted = 0  # regular windows completed so far

    def wanted(self, frame: int) -> bool:
        """Whether some regular window gives ``frame`` to the model."""
        g = self.geometry
        first = max(0, -(-(frame - g.span + 1) // g.hop))  # the first window reaching it
        return any(frame - k * g.hop in self._offsets for k in range(first, frame // g.hop + 1))

    def completed_by(self, frame: int) -> Window | None:
        """The regular window whose last frame is ``frame``, once it has been read."""
        g = self.geometry
        start = frame - g.span + 1
        if start < 0 or start % g.hop:
            return None
        self.emitted += 1
        return g.window(start // g.hop, start)

    def finish(self, frame_count: int) -> list[Window]:
        """The windows that only the frame count places (none, the last, or the only one)."""
        return plan_windows(frame_count, self.geometry)[self.emitted :]


@dataclass(frozen=True)
class TimelineEntry:
    """One window for :func:`timeline`: its times and its top-1 label and probability."""

    start_s: float | None
    end_s: float | None
    label: str
    score: float


def timeline(entries: Iterable[TimelineEntry], max_chars: int = TIMELINE_MAX_CHARS) -> str:
    """``"0.0-12.8 playing guitar 0.81; 12.8-40.3 ..."``: consecutive windows with the same
    top-1 label merged (from the first's start to the last's end, with the label's mean
    probability over them), cut after about ``max_chars`` characters with ``"; ... (N
    more)"``. Times are seconds; ``?`` where a time is unknown."""
    merged: list[tuple[float | None, float | None, str, list[float]]] = []
    for e in entries:
        if merged and merged[-1][2] == e.label:
            start, _, label, scores = merged[-1]
            merged[-1] = (start, e.end_s, label, [*scores, e.score])
        else:
            merged.append((e.start_s, e.end_s, e.label, [e.score]))

    def when(t: float | None) -> str:
        return "?" if t is None else f"{t:.1f}"

    parts = [f"{when(s)}-{when(t)} {label} {sum(sc) / len(sc):.2f}" for s, t, label, sc in merged]
    text = ""
    for i, part in enumerate(parts):
        candidate = f"{text}; {part}" if text else part
        if len(candidate) > max_chars and text:
            return f"{text}; ... ({len(parts) - i} more)"
        text = candidate
    return text
