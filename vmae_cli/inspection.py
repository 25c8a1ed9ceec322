"""`vmae inspect`: show what the model will see for one video.

Uses the same decoding and preprocessing as `vmae classify`, so what it saves is exactly what
classification feeds the model. With ``--segments``, :func:`inspect_windows` goes through the
video's windows one by one as `vmae classify --segments` does, keeping the frames of only the
first :data:`SHEET_WINDOWS` of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

# The windows kept for a sheet live in `choices` (what `vmae --help` imports).
from .choices import SHEET_WINDOWS
from .preprocessing import PreprocessConfig, cover_size, normalize
from .protocol import Protocol
from .results import Failure, VideoMeta, WindowChunk, WindowPrediction
from .views import ViewMaker, WindowMaker

if TYPE_CHECKING:
    import numpy as np
    import torch

#: Frames per row of the contact sheet of a single view (the default protocol).
SHEET_COLUMNS = 4
#: Height in pixels of a caption strip: under each frame of a single view, above each clip of
#: several views (the frame indices, shared by the clip's crops).
SHEET_CAPTION_PX = 22
#: The largest contact sheet, in pixels. Frames are shrunk (cv2.INTER_AREA, never enlarged)
#: until the sheet fits: the paper's 5 clips x 3 crops of 16 frames of 224 px come out as
#: 113 px cells on a sheet of 1990 x 1925 px instead of 3584 x 3690 px.
SHEET_MAX_WIDTH_PX = 2000
SHEET_MAX_HEIGHT_PX = 2000
#: White space between frames, and between the clips of a sheet of several views.
SHEET_GUTTER_PX = 2
SHEET_CLIP_GAP_PX = 10
#: Font scales of cv2.FONT_HERSHEY_SIMPLEX (1.0 is about 22 px tall): chosen from the cell
#: size between these bounds, shrunk to the minimum only when a caption would not fit.
SHEET_FONT_MAX = 0.5
SHEET_FONT_MIN = 0.35
SHEET_FONT_FLOOR = 0.3
#: Padding in pixels around the row labels in the left margin and around captions.
SHEET_PAD_PX = 6
#: Height in pixels of a line of the title above the frames (the video, the model), and the
#: white space between the title and the frames.
SHEET_TITLE_LINE_PX = 22
SHEET_TITLE_GAP_PX = 6
#: A sheet narrower than this widens for its title up to this width (pixels): a clip of
#: small frames still shows a model's name whole (50 characters). Beyond it a title line
#: loses its middle: the frames, not the title, decide a sheet's size.
SHEET_TITLE_MIN_WIDTH_PX = 512
#: What stands for the middle of a title line too long for the sheet.
SHEET_ELLIPSIS = "..."

#: Names of the crops along each side (see :func:`~vmae_cli.preprocessing.spatial_crops`).
CROP_NAMES = {"width": ("left", "centre", "right"), "height": ("top", "centre", "bottom")}


@dataclass
class Inspection:
    """What the model sees for one video: the sampled frames and their ``pixel_values``."""

    path: str
    meta: VideoMeta
    frame_indices: list[int]
    frames: torch.Tensor | None  # uint8 (V, T, 3, H, W), after resize and crop
    failure: Failure | None = None

    def pixel_values(self, config: PreprocessConfig) -> torch.Tensor:
        """float32 ``(V, T, 3, H, W)`` exactly as passed to the model in float32.

        V is 1 for the default protocol, clips x crops otherwise.
        """
        assert self.frames is not None
        return normalize(self.frames, config)


def inspect_video(
    path: str, frames_per_clip: int, config: PreprocessConfig, protocol: Protocol | None = None
) -> Inspection:
    """Decode and preprocess ``path`` as `vmae classify` would, without running the model."""
    outcome = ViewMaker(frames_per_clip, config, protocol or Protocol())(path)
    if outcome.views is None:
        return Inspection(path, outcome.meta, [], None, outcome.failure)
    c = outcome.views
    return Inspection(path, c.meta, c.frame_indices, c.frames)


@dataclass
class InspectedWindow:
    """One window of `vmae inspect --segments`, as :func:`inspect_windows` yields it.

    ``window`` says where it lies (``index``, ``start_frame``/``end_frame``,
    ``start_s``/``end_s``), its T ``frame_indices`` and its ``status`` (``ok``, or
    ``no_frames`` when a frame of it did not decode). ``frames`` is uint8 ``(crops, T, 3, H,
    W)`` after resize and crop, ``None`` when it did not decode.
    """

    window: WindowPrediction
    frames: torch.Tensor | None


@dataclass
class WindowsInspection:
    """What :func:`inspect_windows` yields after a video's last window.

    ``protocol`` has its segments resolved (its ``name`` is what rows say); ``windows`` counts
    the windows yielded; ``kept`` holds the first ones that decoded (up to ``keep``), with
    their frames, for :func:`save_sheet` and :func:`save_npz`; ``notes`` are those of the
    video's row in `vmae classify` (short video, damaged stretch, truncated file).
    """

    path: str
    meta: VideoMeta
    protocol: Protocol
    windows: int
    kept: list[InspectedWindow]
    notes: list[str]
    failure: Failure | None = None

    @property
    def frames(self) -> torch.Tensor:
        """uint8 ``(kept windows x crops, T, 3, H, W)``: window after window, crop after crop."""
        import torch

        if not self.kept:
            raise ValueError(f"no window of {self.path} decoded")
        return torch.cat([w.frames for w in self.kept if w.frames is not None])

    def pixel_values(self, config: PreprocessConfig) -> torch.Tensor:
        """float32 ``(kept windows x crops, T, 3, H, W)``: what the model gets, each window's
        ``crops`` views in one batch."""
        return normalize(self.frames, config)


def inspect_windows(
    path: str,
    frames_per_clip: int,
    config: PreprocessConfig,
    protocol: Protocol,
    keep: int = SHEET_WINDOWS,
) -> Iterator[InspectedWindow | WindowsInspection]:
    """Decode and preprocess the windows of ``path`` as `vmae classify --segments` would,
    without running the model: yield each window (:class:`InspectedWindow`) as soon as it is
    decoded, in order, then one :class:`WindowsInspection`. Never raises for a bad file (the
    last item then has a ``failure``).

    ``protocol`` must have segments (its defaults are filled in for ``frames_per_clip``).
    Memory does not grow with the video: a window's frames are dropped once the caller lets go
    of it, except those of the first ``keep`` windows that decode.
    """
    proto = protocol.for_model(frames_per_clip)
    if proto.segments is None:
        raise ValueError("inspect_windows needs a protocol with segments")
    maker = WindowMaker(frames_per_clip, config, proto, windows_per_chunk=1)
    kept: list[InspectedWindow] = []
    count = 0
    for item in maker(path):
        if isinstance(item, WindowChunk):
            at = 0
            for w in item.windows:
                frames = None
                if w.ok and item.frames is not None:
                    frames = item.frames[at : at + proto.crops]
                    at += proto.crops
                window = InspectedWindow(w, frames)
                if frames is not None and len(kept) < keep:
                    kept.append(window)
                count += 1
                yield window
            continue
        yield WindowsInspection(path, item.meta, proto, count, kept, list(item.notes), item.failure)
        return


def save_npz(
    inspection: Inspection | WindowsInspection, config: PreprocessConfig, out: str | Path
) -> None:
    """Save ``pixel_values`` (float32, ``(V, T, 3, H, W)``) and ``frame_indices`` (int64).

    ``frame_indices`` has shape ``(T,)`` for one clip and ``(clips, T)`` for several. For the
    windows of a :class:`WindowsInspection` (its ``kept`` ones): V is windows x crops,
    ``frame_indices`` is ``(windows, T)``, and ``window``, ``start_frame``, ``end_frame``
    (int64) and ``start_s``, ``end_s`` (float64, NaN where unknown) have one entry per window.
    """
    import numpy as np

    if isinstance(inspection, WindowsInspection):
        ws = [k.window for k in inspection.kept]

        def seconds(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        np.savez(
            out,
            pixel_values=inspection.pixel_values(config).numpy().astype(np.float32),
            frame_indices=np.array([w.frame_indices for w in ws], dtype=np.int64),
            window=np.array([w.index for w in ws], dtype=np.int64),
            start_frame=np.array([w.start_frame for w in ws], dtype=np.int64),
            end_frame=np.array([w.end_frame for w in ws], dtype=np.int64),
            start_s=seconds([w.start_s for w in ws]),
            end_s=seconds([w.end_s for w in ws]),
        )
        return
    np.savez(
        out,
        pixel_values=inspection.pixel_values(config).numpy().astype(np.float32),
        frame_indices=_index_array(inspection),
    )


def _index_array(inspection: Inspection) -> np.ndarray:
    import numpy as np

    indices = np.asarray(inspection.frame_indices, dtype=np.int64)
    assert inspection.frames is not None
    clip_len = int(inspection.frames.shape[1])
    return indices if indices.size == clip_len else indices.reshape(-1, clip_len)


@dataclass(frozen=True)
class SheetText:
    """A line of text on the contact sheet: ``(x, y)`` is the left end of its baseline."""

    text: str
    x: int
    y: int
    scale: float


@dataclass(frozen=True)
class SheetCell:
    """Where frame ``position`` (0 to T-1) of view ``view`` goes: its top-left corner."""

    view: int
    position: int
    x: int
    y: int


@dataclass(frozen=True)
class SheetLayout:
    """Everything :func:`contact_sheet` draws, computed without drawing (see :func:`sheet_layout`).

    ``row_labels`` has one entry per view when there are several (``"clip 2/5 · crop left"``,
    drawn as two lines in the left margin; ``"window 3 · 6.40-8.53 s"`` for windows) and is
    empty for one view. ``title`` holds the lines above the frames (see :func:`sheet_title`).
    """

    width: int
    height: int
    cell_hw: tuple[int, int]
    cells: tuple[SheetCell, ...]
    captions: tuple[SheetText, ...]
    labels: tuple[SheetText, ...]
    row_labels: tuple[str, ...]
    title: tuple[SheetText, ...] = ()


def sheet_title(video: str, model: str, revision: str | None = None) -> tuple[str, str]:
    """The title of a video's contact sheet: ``("video: clips/a.mp4", "model: NAME")``, the
    revision after the model's name when one was asked for (``"model: NAME @ v1.0"``)."""
    return f"video: {video}", f"model: {model}" + (f" @ {revision}" if revision else "")


def crop_axis_for(meta: VideoMeta, crop_hw: tuple[int, int]) -> str | None:
    """``"width"`` or ``"height"``: the side of the video the crops were spread along.

    The same rule as :func:`~vmae_cli.preprocessing.spatial_crops` on the frame resized by
    :func:`~vmae_cli.preprocessing.cover_size`; ``None`` when the size is unknown or the crops
    all coincide (a video with the crop's own aspect ratio).
    """
    if not meta.width or not meta.height:
        return None
    height, width = cover_size(meta.height, meta.width, crop_hw)
    spare_h, spare_w = height - crop_hw[0], width - crop_hw[1]
    if spare_w >= spare_h and spare_w > 0:
        return "width"
    return "height" if spare_h > 0 else None


def crop_name(crop: int, crops: int, axis: str | None) -> str:
    """``"left"``, ``"centre"``, ``"top"``... or ``"2/3"`` when the side is unknown."""
    if crops == 1:
        return "centre"
    if crops == 3 and axis in CROP_NAMES:
        return CROP_NAMES[axis][crop]
    return f"{crop + 1}/{crops}"


def _text_size(text: str, scale: float) -> tuple[int, int, int]:
    """``(width, height above the baseline, depth below it)`` of ``text`` in pixels."""
    import cv2

    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return w, h, base


def _fit_scale(texts: list[str], scale: float, width: int, height: int) -> float:
    """``scale``, or less (down to :data:`SHEET_FONT_FLOOR`) until every text fits the box."""
    while scale > SHEET_FONT_FLOOR:
        sizes = [_text_size(t, scale) for t in texts]
        if all(w <= width and h + b <= height for w, h, b in sizes):
            break
        scale = round(scale - 0.05, 2)
    return max(scale, SHEET_FONT_FLOOR)


def _cell_scale(cell: int, per_font: float) -> float:
    return min(SHEET_FONT_MAX, max(SHEET_FONT_MIN, cell / per_font))


def sheet_layout(
    shape: tuple[int, ...],
    indices: list[int],
    *,
    crop_axis: str | None = None,
    clip_labels: Sequence[tuple[str, ...]] | None = None,
    title: Sequence[str] = (),
) -> SheetLayout:
    """The layout of the contact sheet of frames of ``shape``, as :func:`contact_sheet` draws it.

    ``shape`` is ``(T, 3, H, W)`` or ``(V, T, 3, H, W)``. One view: T frames in rows of
    :data:`SHEET_COLUMNS`, each captioned ``"#3 | frame 45"`` (position in the clip, frame of
    the video). Several views (``indices`` then lists each clip's T indices, one clip after the
    other, shared by its crops; views are clip after clip, crop after crop): one row per view
    with T frames, labelled ``clip c/C`` and ``crop left|centre|right`` (``top|centre|bottom``
    when ``crop_axis`` is ``"height"``) in a left margin, and a strip of ``"f 123"`` captions
    above each clip. Frames are shrunk so the sheet fits :data:`SHEET_MAX_WIDTH_PX` x
    :data:`SHEET_MAX_HEIGHT_PX`.

    ``clip_labels`` (one tuple of lines per clip, e.g. ``("window 3", "6.40-8.53 s")``)
    replaces ``clip c/C``; the crop line then follows only with several crops, and even one
    view is laid out as a labelled row (the windows of `vmae inspect --segments`).

    ``title`` (lines, e.g. :func:`sheet_title`) goes above the frames, one line each: a
    narrow sheet widens for it up to :data:`SHEET_TITLE_MIN_WIDTH_PX`, and a line still too
    long loses its middle (``SHEET_ELLIPSIS``), so the file's name stays readable.
    """
    top = len(title) * SHEET_TITLE_LINE_PX + SHEET_TITLE_GAP_PX if title else 0
    if len(shape) == 5 and shape[0] == 1 and clip_labels is None:
        shape = tuple(shape[1:])
    if len(shape) == 4:
        layout = _single_view_layout(int(shape[0]), int(shape[2]), int(shape[3]), indices, top)
        return _titled(layout, title)
    views, clip_len, h, w = int(shape[0]), int(shape[1]), int(shape[3]), int(shape[4])
    clips = len(indices) // clip_len if clip_len else 0
    if clips < 1 or clips * clip_len != len(indices) or views % clips:
        raise ValueError(
            f"{len(indices)} frame indices do not make clips of {clip_len} for {views} views"
        )
    if clip_labels is not None and len(clip_labels) != clips:
        raise ValueError(f"{len(clip_labels)} clip labels for {clips} clips")
    layout = _multi_view_layout(
        clips, views // clips, clip_len, h, w, indices, crop_axis, clip_labels, top
    )
    return _titled(layout, title)


def _ascii(text: str) -> str:
    """``text`` as cv2's Hershey fonts can draw it: ASCII, anything else a ``?``."""
    return text.encode("ascii", "replace").decode("ascii")


def _elided(text: str, scale: float, width: int) -> str:
    """``text``, or its start and end around :data:`SHEET_ELLIPSIS`, as wide as ``width`` at
    most at ``scale`` (the end keeps a little more: a file's name, a model's name)."""
    if _text_size(text, scale)[0] <= width:
        return text
    keep = len(text)
    while keep > 0:
        keep -= 1
        head = keep * 2 // 5
        short = text[:head] + SHEET_ELLIPSIS + text[len(text) - (keep - head) :]
        if _text_size(short, scale)[0] <= width:
            return short
    return SHEET_ELLIPSIS


def _titled(layout: SheetLayout, title: Sequence[str]) -> SheetLayout:
    """``layout`` with ``title`` drawn in the band its frames left free at the top (one
    :data:`SHEET_TITLE_LINE_PX` line each), widened for it up to
    :data:`SHEET_TITLE_MIN_WIDTH_PX`."""
    if not title:
        return layout
    lines = [_ascii(line) for line in title]
    pad, line_h = SHEET_PAD_PX, SHEET_TITLE_LINE_PX
    wanted = max(_text_size(line, SHEET_FONT_MAX)[0] for line in lines) + 2 * pad
    width = max(layout.width, min(wanted, SHEET_TITLE_MIN_WIDTH_PX))
    # Smaller letters down to the captions' smallest, then the middle of a line goes.
    fitted = _fit_scale(lines, SHEET_FONT_MAX, width - 2 * pad, line_h - 4)
    scale = max(SHEET_FONT_MIN, fitted)
    texts = []
    for k, line in enumerate(lines):
        shown = _elided(line, scale, width - 2 * pad)
        _, th, base = _text_size(shown, scale)
        texts.append(SheetText(shown, pad, k * line_h + (line_h + th - base) // 2, scale))
    return replace(layout, width=width, title=tuple(texts))


def _fit(cols: int, rows: int, h: int, w: int, fixed_w: int, fixed_h: int) -> tuple[int, int]:
    """The cell size: ``(h, w)`` shrunk so ``cols x rows`` cells plus the fixed parts fit."""
    scale = min(
        1.0,
        (SHEET_MAX_WIDTH_PX - fixed_w) / (cols * w),
        (SHEET_MAX_HEIGHT_PX - fixed_h) / (rows * h),
    )
    if scale >= 1.0:
        return h, w
    return max(1, int(h * scale)), max(1, int(w * scale))


def _single_view_layout(t: int, h: int, w: int, indices: list[int], top: int = 0) -> SheetLayout:
    """Rows of :data:`SHEET_COLUMNS` captioned frames, ``top`` pixels down (the title's)."""
    cols = max(1, min(SHEET_COLUMNS, t))
    rows = (t + cols - 1) // cols
    gutter = SHEET_GUTTER_PX
    fixed_h = top + rows * SHEET_CAPTION_PX + (rows - 1) * gutter
    ch, cw = _fit(cols, rows, h, w, (cols - 1) * gutter, fixed_h)
    texts = [f"#{k} | frame {indices[k]}" for k in range(t)]
    scale = _fit_scale(texts, _cell_scale(cw, 160), cw - SHEET_PAD_PX, SHEET_CAPTION_PX - 4)
    cells, captions = [], []
    row_h = ch + SHEET_CAPTION_PX + gutter
    for k in range(t):
        r, c = divmod(k, cols)
        x, y = c * (cw + gutter), top + r * row_h
        cells.append(SheetCell(0, k, x, y))
        _, th, base = _text_size(texts[k], scale)
        baseline = y + ch + (SHEET_CAPTION_PX + th - base) // 2
        captions.append(SheetText(texts[k], x + SHEET_PAD_PX // 2, baseline, scale))
    return SheetLayout(
        width=cols * cw + (cols - 1) * gutter,
        height=top + rows * row_h - gutter,
        cell_hw=(ch, cw),
        cells=tuple(cells),
        captions=tuple(captions),
        labels=(),
        row_labels=(),
    )


def _multi_view_layout(
    clips: int,
    crops: int,
    clip_len: int,
    h: int,
    w: int,
    indices: list[int],
    axis: str | None,
    clip_labels: Sequence[tuple[str, ...]] | None = None,
    top: int = 0,
) -> SheetLayout:
    """A labelled row per view, a caption strip above each clip, ``top`` pixels down."""
    gutter, gap, strip, pad = SHEET_GUTTER_PX, SHEET_CLIP_GAP_PX, SHEET_CAPTION_PX, SHEET_PAD_PX
    heads = clip_labels or [(f"clip {c + 1}/{clips}",) for c in range(clips)]
    with_crop = clip_labels is None or crops > 1
    lines = [
        (*heads[c], *([f"crop {crop_name(k, crops, axis)}"] if with_crop else []))
        for c in range(clips)
        for k in range(crops)
    ]
    most = max(len(row) for row in lines)
    margin = max(_text_size(t, SHEET_FONT_MAX)[0] for row in lines for t in row) + 2 * pad
    rows = clips * crops
    fixed_w = margin + (clip_len - 1) * gutter
    fixed_h = top + clips * strip + clips * (crops - 1) * gutter + (clips - 1) * gap
    ch, cw = _fit(clip_len, rows, h, w, fixed_w, fixed_h)
    caption_texts = [f"f {i}" for i in indices]
    cap_scale = _fit_scale(caption_texts, _cell_scale(cw, 160), cw - 2, strip - 4)
    label_scale = _fit_scale(
        [t for row in lines for t in row], _cell_scale(ch, 160), margin - 2 * pad, ch // most - 2
    )
    cells, captions, labels = [], [], []
    y = top
    for c in range(clips):
        for p in range(clip_len):
            text = caption_texts[c * clip_len + p]
            tw, th, base = _text_size(text, cap_scale)
            x = margin + p * (cw + gutter) + max(0, (cw - tw) // 2)
            captions.append(SheetText(text, x, y + (strip + th - base) // 2, cap_scale))
        y += strip
        for k in range(crops):
            view = c * crops + k
            for p in range(clip_len):
                cells.append(SheetCell(view, p, margin + p * (cw + gutter), y))
            _, th, base = _text_size(lines[view][0], label_scale)
            line_h = th + base + 2
            top = y + (ch - len(lines[view]) * line_h) // 2 + th
            for j, text in enumerate(lines[view]):
                labels.append(SheetText(text, pad, top + j * line_h, label_scale))
            y += ch + (gutter if k < crops - 1 else 0)
        y += gap if c < clips - 1 else 0
    return SheetLayout(
        width=margin + clip_len * cw + (clip_len - 1) * gutter,
        height=y,
        cell_hw=(ch, cw),
        cells=tuple(cells),
        captions=tuple(captions),
        labels=tuple(labels),
        row_labels=tuple(" · ".join(row) for row in lines),
    )


def contact_sheet(
    frames: torch.Tensor,
    indices: list[int],
    *,
    crop_axis: str | None = None,
    clip_labels: Sequence[tuple[str, ...]] | None = None,
    title: Sequence[str] = (),
) -> np.ndarray:
    """An RGB image of the frames in a grid, laid out by :func:`sheet_layout`.

    ``frames`` is ``(T, 3, H, W)`` (T frames in rows of four) or ``(V, T, 3, H, W)``
    (one row per view, labelled with its clip and crop; ``indices`` then lists each clip's T
    indices, shared by its crops). ``crop_axis`` (``"width"`` or ``"height"``, see
    :func:`crop_axis_for`) names three crops left/centre/right or top/centre/bottom;
    ``clip_labels`` names the clips instead of ``clip c/C`` and ``title`` is written above the
    frames, a line each (see :func:`sheet_layout`).
    """
    import cv2
    import numpy as np

    layout = sheet_layout(
        tuple(frames.shape), indices, crop_axis=crop_axis, clip_labels=clip_labels, title=title
    )
    if frames.ndim == 4:
        frames = frames.unsqueeze(0)
    ch, cw = layout.cell_hw
    sheet = np.full((layout.height, layout.width, 3), 255, dtype=np.uint8)
    for cell in layout.cells:
        image = np.ascontiguousarray(frames[cell.view, cell.position].permute(1, 2, 0).numpy())
        if image.shape[:2] != (ch, cw):
            image = cv2.resize(image, (cw, ch), interpolation=cv2.INTER_AREA)
        sheet[cell.y : cell.y + ch, cell.x : cell.x + cw] = image
    for text in (*layout.title, *layout.captions, *layout.labels):
        cv2.putText(
            sheet,
            text.text,
            (text.x, text.y),
            cv2.FONT_HERSHEY_SIMPLEX,
            text.scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return sheet


def window_label(window: WindowPrediction) -> tuple[str, str]:
    """The two lines naming a window on the contact sheet: ``("window 3", "6.40-8.53 s")``,
    or its frames (``"f 192-255"``) when its times are unknown."""
    if window.start_s is None or window.end_s is None:
        return f"window {window.index}", f"f {window.start_frame}-{window.end_frame}"
    return f"window {window.index}", f"{window.start_s:.2f}-{window.end_s:.2f} s"


def window_sheet(inspection: WindowsInspection, title: Sequence[str] = ()) -> np.ndarray:
    """The contact sheet of the windows ``inspection`` kept: one row per window (per crop of
    it with several crops), labelled with its number and times (see :func:`window_label`),
    ``title`` above them."""
    frames = inspection.frames
    crop_hw = (int(frames.shape[-2]), int(frames.shape[-1]))
    return contact_sheet(
        frames,
        [i for w in inspection.kept for i in w.window.frame_indices],
        crop_axis=crop_axis_for(inspection.meta, crop_hw),
        clip_labels=[window_label(w.window) for w in inspection.kept],
        title=title,
    )


def save_sheet(
    inspection: Inspection | WindowsInspection, out: str | Path, title: Sequence[str] = ()
) -> None:
    """Write the contact sheet of ``inspection`` as a PNG file (of its kept windows, for a
    :class:`WindowsInspection`: see :func:`window_sheet`), ``title`` above the frames (the
    video and the model: :func:`sheet_title`)."""
    import cv2

    if isinstance(inspection, WindowsInspection):
        sheet = window_sheet(inspection, title)
    else:
        assert inspection.frames is not None
        crop_hw = (int(inspection.frames.shape[-2]), int(inspection.frames.shape[-1]))
        axis = crop_axis_for(inspection.meta, crop_hw)
        sheet = contact_sheet(
            inspection.frames, inspection.frame_indices, crop_axis=axis, title=title
        )
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
