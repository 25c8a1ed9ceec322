"""`vmae inspect`: show what the model will see for one video.

Uses the same decoding and preprocessing as `vmae classify`, so what it saves is exactly what
classification feeds the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .batching import DecodeJob
from .preprocessing import PreprocessConfig, normalize
from .protocol import Protocol
from .results import Failure, VideoMeta

if TYPE_CHECKING:
    import numpy as np
    import torch

#: Frames per row of the contact sheet.
SHEET_COLUMNS = 4
#: Height in pixels of the caption strip under each frame of the contact sheet.
SHEET_CAPTION_PX = 22


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
    path: str, num_frames: int, config: PreprocessConfig, protocol: Protocol | None = None
) -> Inspection:
    """Decode and preprocess ``path`` as `vmae classify` would, without running the model."""
    outcome = DecodeJob(num_frames, config, protocol or Protocol())(path)
    if outcome.clip is None:
        return Inspection(path, outcome.meta, [], None, outcome.failure)
    c = outcome.clip
    return Inspection(path, c.meta, c.frame_indices, c.frames)


def save_npz(inspection: Inspection, config: PreprocessConfig, out: str | Path) -> None:
    """Save ``pixel_values`` (float32, ``(V, T, 3, H, W)``) and ``frame_indices`` (int64).

    ``frame_indices`` has shape ``(T,)`` for one clip and ``(clips, T)`` for several.
    """
    import numpy as np

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


def contact_sheet(frames: torch.Tensor, indices: list[int]) -> np.ndarray:
    """An RGB image of the frames in a grid, each captioned with its frame index.

    ``frames`` is ``(T, 3, H, W)`` (T frames in rows of four) or ``(V, T, 3, H, W)``
    (one row per view; ``indices`` then lists each clip's T indices, shared by its crops).
    """
    import cv2
    import numpy as np

    cols = SHEET_COLUMNS
    if frames.ndim == 5 and frames.shape[0] == 1:
        frames = frames[0]
    elif frames.ndim == 5:
        views, clip_len = int(frames.shape[0]), int(frames.shape[1])
        crops = views // max(1, len(indices) // clip_len)
        indices = [
            indices[(v // crops) * clip_len + i] for v in range(views) for i in range(clip_len)
        ]
        frames = frames.reshape(views * clip_len, *frames.shape[2:])
        cols = clip_len
    t, _, h, w = frames.shape
    cols = min(cols, t)
    rows = (t + cols - 1) // cols
    cell_h = h + SHEET_CAPTION_PX
    sheet = np.full((rows * cell_h, cols * w, 3), 255, dtype=np.uint8)
    for k in range(t):
        r, c = divmod(k, cols)
        y, x = r * cell_h, c * w
        sheet[y : y + h, x : x + w] = frames[k].permute(1, 2, 0).numpy()
        cv2.putText(
            sheet,
            f"#{k}: frame {indices[k]}",
            (x + 4, y + h + SHEET_CAPTION_PX - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return sheet


def save_sheet(inspection: Inspection, out: str | Path) -> None:
    """Write the contact sheet of ``inspection`` as a PNG file."""
    import cv2

    assert inspection.frames is not None
    sheet = contact_sheet(inspection.frames, inspection.frame_indices)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
