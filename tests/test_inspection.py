"""The contact sheet of `vmae inspect --sheet` and the tiny-model script the README runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vmae_cli.inspection import (
    SHEET_MAX_HEIGHT_PX,
    SHEET_MAX_WIDTH_PX,
    contact_sheet,
    crop_axis_for,
    sheet_layout,
)
from vmae_cli.preprocessing import cover_size, spatial_crops
from vmae_cli.protocol import PROTOCOLS
from vmae_cli.results import VideoMeta

ROOT = Path(__file__).resolve().parents[1]


def _views(views: int, clip_len: int, px: int) -> torch.Tensor:
    """uint8 ``(V, T, 3, px, px)``: every frame one flat colour that encodes (view, position)."""
    colour = torch.stack(
        torch.meshgrid(torch.arange(views), torch.arange(clip_len), indexing="ij"), -1
    )
    rgb = torch.cat([colour * 10, torch.full((views, clip_len, 1), 200)], -1).to(torch.uint8)
    return rgb[..., None, None].expand(views, clip_len, 3, px, px).contiguous()


def _paper_indices(clips: int = 5, clip_len: int = 16) -> list[int]:
    return [100 * c + 4 * i for c in range(clips) for i in range(clip_len)]


def test_videomae_sheet_stays_within_the_bound_and_shows_every_view() -> None:
    proto = PROTOCOLS["videomae"]
    frames = _views(proto.views, 16, 224)  # 5 clips x 3 crops of 16 frames of 224 px
    sheet = contact_sheet(frames, _paper_indices(), crop_axis="width")
    height, width, _ = sheet.shape
    assert width <= SHEET_MAX_WIDTH_PX and height <= SHEET_MAX_HEIGHT_PX  # was 3584 x 3690
    layout = sheet_layout(tuple(frames.shape), _paper_indices(), crop_axis="width")
    assert (layout.height, layout.width) == (height, width)
    ch, cw = layout.cell_hw
    assert min(ch, cw) >= 100  # shrunk, not to thumbnails
    assert len(layout.cells) == 15 * 16
    for cell in layout.cells:  # each frame lands in its cell, shrunk with INTER_AREA
        centre = sheet[cell.y + ch // 2, cell.x + cw // 2]
        assert centre.tolist() == [10 * cell.view, 10 * cell.position, 200]
    # Every caption and label is inside the sheet, the labels left of the frames.
    first_x = min(cell.x for cell in layout.cells)
    for text in (*layout.captions, *layout.labels):
        assert 0 <= text.x < width and 0 < text.y <= height
    assert all(text.x < first_x for text in layout.labels)


def test_rows_are_labelled_with_their_clip_and_crop() -> None:
    layout = sheet_layout((15, 16, 3, 224, 224), _paper_indices(), crop_axis="width")
    assert layout.row_labels[:4] == (
        "clip 1/5 · crop left",
        "clip 1/5 · crop centre",
        "clip 1/5 · crop right",
        "clip 2/5 · crop left",
    )
    assert layout.row_labels[-1] == "clip 5/5 · crop right"
    # Drawn as two lines in the margin (cv2's fonts are ASCII only).
    assert [t.text for t in layout.labels[:4]] == [
        "clip 1/5",
        "crop left",
        "clip 1/5",
        "crop centre",
    ]
    # Frame captions say the frame of the video, once per clip (shared by its crops).
    captions = [t.text for t in layout.captions]
    assert len(captions) == 5 * 16
    assert captions[:3] == ["f 0", "f 4", "f 8"]
    assert captions[16] == "f 100"

    portrait = sheet_layout((6, 8, 3, 64, 64), _paper_indices(2, 8), crop_axis="height")
    assert [label.split(" · ")[1] for label in portrait.row_labels[:3]] == [
        "crop top",
        "crop centre",
        "crop bottom",
    ]
    unknown = sheet_layout((3, 8, 3, 64, 64), _paper_indices(1, 8))
    assert unknown.row_labels == (
        "clip 1/1 · crop 1/3",
        "clip 1/1 · crop 2/3",
        "clip 1/1 · crop 3/3",
    )
    single_crop = sheet_layout((5, 8, 3, 64, 64), _paper_indices(5, 8))
    assert single_crop.row_labels[1] == "clip 2/5 · crop centre"
    with pytest.raises(ValueError, match="clips of 8"):
        sheet_layout((6, 8, 3, 64, 64), list(range(12)))


@pytest.mark.parametrize(
    ("width", "height", "axis"),
    [(1920, 1080, "width"), (1080, 1920, "height"), (480, 480, None), (None, None, None)],
)
def test_crop_axis_follows_spatial_crops(width: int | None, height: int | None, axis: str | None):
    meta = VideoMeta(width=width, height=height)
    assert crop_axis_for(meta, (224, 224)) == axis
    if width and height:
        h, w = cover_size(height, width, (224, 224))
        grid = torch.arange(h * w).reshape(1, h, w)
        last = spatial_crops(grid, (224, 224), 3)[2][0, 0, 0].item()
        moved = {(False, False): None, (True, False): "height", (False, True): "width"}
        assert moved[(last // w > 0, last % w > 0)] == axis


def test_one_clip_sheet_keeps_rows_of_four() -> None:
    indices = [15 * k for k in range(16)]
    frames = _views(1, 16, 224)
    sheet = contact_sheet(frames[0], indices)
    assert sheet.shape == (990, 902, 3)  # 4 x 4 frames at full size, 2 px gutters
    assert contact_sheet(frames, indices).shape == sheet.shape  # (1, T, ...) is the same
    layout = sheet_layout(tuple(frames.shape), indices)
    assert layout.cell_hw == (224, 224)
    assert layout.row_labels == () and layout.labels == ()
    assert len({c.x for c in layout.cells}) == 4 and len({c.y for c in layout.cells}) == 4
    assert [t.text for t in layout.captions[:2]] == ["#0 | frame 0", "#1 | frame 15"]
    assert layout.captions[3].text == "#3 | frame 45"
    # A long clip of large frames is shrunk to the bound too.
    big = sheet_layout((32, 3, 320, 320), list(range(32)))
    assert big.width <= SHEET_MAX_WIDTH_PX and big.height <= SHEET_MAX_HEIGHT_PX
    assert len({c.x for c in big.cells}) == 4


def test_tiny_model_script_prints_only_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "tiny-videomae"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tiny_model.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}\n"
    assert done.stderr == ""
    assert (out / "config.json").is_file() and (out / "preprocessor_config.json").is_file()


def test_tiny_model_folder_is_ignored() -> None:
    assert "/tiny-videomae/" in (ROOT / ".gitignore").read_text().splitlines()
