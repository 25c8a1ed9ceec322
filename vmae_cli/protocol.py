"""The test protocol: which frames of a video form each clip, and which crops of each clip the
model sees. Its predictions are the softmax probabilities averaged over all views.

Two protocols have names:

* ``uniform`` (the default): one clip of T frames at the centres of T equal segments of the
  whole video, one centre crop, exactly what the model's own preprocessor config describes.
* ``videomae``: the VideoMAE paper's Kinetics test protocol (Tong et al., 2022, and its
  ``VideoClsDataset`` test mode): frames at stride 4 over the whole video, 5 clips of T frames
  whose starts are spread evenly from the beginning to the end, each frame resized so its short
  side equals the crop size, and 3 square crops along the long side (start, centre, end):
  15 views.

The knobs behind them (clips, crops, frame stride) can be set one by one.

How the chosen frames are fetched is part of the protocol too (``sampling``): ``exact``
decodes exactly the frames named above; ``keyframes`` takes the keyframe nearest each of them
instead, which is much cheaper to decode but not frame-exact (see
:func:`vmae_cli.decoding.decode_keyframes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# The protocols' names, the crops and the samplings live in `choices` (what `vmae --help`
# imports); re-exported (`X as X`) where they are not used here.
from .choices import (
    CROP_CHOICES,
    PROTOCOL_UNIFORM,
    PROTOCOL_VIDEOMAE,
    SAMPLING_CHOICES,
    SAMPLING_EXACT,
)
from .choices import SAMPLING_KEYFRAMES as SAMPLING_KEYFRAMES
from .errors import VmaeError
from .segments import Segments


class ProtocolError(VmaeError, ValueError):
    """A protocol setting is out of range (the CLI turns this into a usage error)."""


@dataclass(frozen=True)
class Protocol:
    """How many views of a video the model sees.

    ``frame_stride`` is in frames of the video; ``0`` means the T frames of a clip are spread
    uniformly over the whole video (with several clips, each is offset by a fraction of a
    segment so the clips interleave). ``sampling`` is one of :data:`SAMPLING_CHOICES`.
    ``segments`` (``--segments``) classifies consecutive windows of the video instead of
    clips spread over it: one clip per window (``clips`` must be 1), each cut into ``crops``
    views, frames sampled exactly.
    """

    clips: int = 1
    crops: int = 1
    frame_stride: int = 0
    sampling: str = SAMPLING_EXACT
    segments: Segments | None = None

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ProtocolError(
                f"clips must be at least 1, not {self.clips}", options=("clips",), value=self.clips
            )
        if self.crops not in CROP_CHOICES:
            raise ProtocolError(
                f"crops={self.crops}: a clip gives 1 or 3 crops",
                options=("crops",),
                value=self.crops,
            )
        if self.frame_stride < 0:
            raise ProtocolError(
                f"frame_stride must be 0 or more, not {self.frame_stride}",
                options=("frame_stride",),
                value=self.frame_stride,
            )
        if self.sampling not in SAMPLING_CHOICES:
            raise ProtocolError(
                f"sampling must be one of {', '.join(SAMPLING_CHOICES)}, not {self.sampling!r}",
                options=("sampling",),
                value=self.sampling,
            )
        if self.segments is not None and self.clips != 1:
            raise ProtocolError(
                f"segments take one clip per window, not clips={self.clips}: use clips=1 and "
                "not protocol='videomae' (crops=3 gives the paper's three crops of each window)",
                options=("segments", "clips", "protocol", "crops"),
                value=self.clips,
            )
        if self.segments is not None and self.sampling != SAMPLING_EXACT:
            raise ProtocolError(
                f"sampling={self.sampling!r} cannot sample windows: keyframes are further "
                "apart than a window is long",
                options=("sampling", "segments"),
                value=self.sampling,
            )

    @property
    def views(self) -> int:
        """Clips times crops: the number of model inputs per video."""
        return self.clips * self.crops

    @property
    def name(self) -> str:
        """``uniform``, ``videomae``, or the settings spelled out for any other combination;
        with ``+keyframes`` appended when sampling is not exact (``uniform+keyframes``), so
        that rows and ``--resume`` tell the two apart. With segments, their settings:
        ``segments(window=64f,hop=64f)``, and ``+crops=3`` with three crops."""
        if self.segments is not None:
            crops = f"+crops={self.crops}" if self.crops != 1 else ""
            return f"{self.segments.name}{crops}"
        if self.sampling != SAMPLING_EXACT:
            return f"{replace(self, sampling=SAMPLING_EXACT).name}+{self.sampling}"
        for name, proto in PROTOCOLS.items():
            if proto == self:
                return name
        return f"clips={self.clips},crops={self.crops},stride={self.frame_stride}"

    def clip_indices(self, frame_count: int, frames_per_clip: int) -> list[list[int]]:
        """The frame indices of each clip, for a video of ``frame_count`` decodable frames."""
        if frame_count <= 0:
            raise ValueError("frame_count must be positive")
        if frames_per_clip <= 0:
            raise ValueError("frames_per_clip must be positive")
        if self.frame_stride == 0:
            return [
                uniform_indices(frame_count, frames_per_clip, offset=c, offsets=self.clips)
                for c in range(self.clips)
            ]
        return strided_clips(frame_count, frames_per_clip, self.frame_stride, self.clips)

    def flat_indices(self, frame_count: int, frames_per_clip: int) -> list[int]:
        """:meth:`clip_indices` one clip after the other (what the decoder fetches)."""
        return [i for clip in self.clip_indices(frame_count, frames_per_clip) for i in clip]

    def for_model(self, frames_per_clip: int) -> Protocol:
        """This protocol with the segments' defaults filled in for a model of
        ``frames_per_clip`` frames (see :meth:`~vmae_cli.segments.Segments.resolved`)."""
        if self.segments is None:
            return self
        return replace(self, segments=self.segments.resolved(frames_per_clip, self.frame_stride))


#: Named protocols (``--protocol``), in the order of ``choices.PROTOCOL_NAMES``.
PROTOCOLS: dict[str, Protocol] = {
    PROTOCOL_UNIFORM: Protocol(),
    PROTOCOL_VIDEOMAE: Protocol(clips=5, crops=3, frame_stride=4),
}


def uniform_indices(
    frame_count: int, num_samples: int, offset: int = 0, offsets: int = 1
) -> list[int]:
    """Indices spread uniformly over the video: the centres of ``num_samples`` equal segments.

    ``floor((i + 0.5) * frame_count / num_samples)``; with ``offsets > 1`` the position inside
    each segment is ``(offset + 0.5) / offsets`` instead of the centre, so that ``offsets``
    clips interleave. Indices repeat when the video has fewer frames than samples.
    """
    if frame_count <= 0:
        raise ValueError("frame_count must be positive")
    if num_samples <= 0:
        raise ValueError("num_samples must be positive")
    # Integer arithmetic: (i + (offset + 0.5) / offsets) * n / t, floored, without rounding.
    den = 2 * offsets * num_samples
    return [((2 * offsets * i + 2 * offset + 1) * frame_count) // den for i in range(num_samples)]


def strided_clips(
    frame_count: int, frames_per_clip: int, stride: int, clips: int
) -> list[list[int]]:
    """The paper's temporal sampling: clips of ``frames_per_clip`` (T) frames taken every
    ``stride`` frames.

    All frames at ``0, stride, 2*stride, ...`` form one sequence, padded by repeating its last
    frame up to T; clip ``c`` starts at ``int(c * (len - T) / (clips - 1))`` in that
    sequence, so the first clip starts at the beginning and the last ends at the end. A single
    clip is the middle one.
    """
    sequence = list(range(0, frame_count, stride))
    sequence += [sequence[-1]] * (frames_per_clip - len(sequence))
    spare = len(sequence) - frames_per_clip
    if clips == 1:
        starts = [spare // 2]
    else:
        step = spare / (clips - 1)
        starts = [int(c * step) for c in range(clips)]
    return [sequence[s : s + frames_per_clip] for s in starts]
