"""The contact sheet of `vmae inspect --sheet`, `vmae inspect --segments` and the tiny-model
script the README runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, app
from vmae_cli.inspection import (
    SHEET_MAX_HEIGHT_PX,
    SHEET_MAX_WIDTH_PX,
    SHEET_TITLE_MIN_WIDTH_PX,
    SHEET_WINDOWS,
    InspectedWindow,
    WindowsInspection,
    contact_sheet,
    crop_axis_for,
    inspect_windows,
    sheet_layout,
    sheet_title,
)
from vmae_cli.preprocessing import cover_size, spatial_crops
from vmae_cli.protocol import PROTOCOLS, Protocol
from vmae_cli.results import VideoMeta
from vmae_cli.segments import Segments, Span, WindowGeometry, plan_windows

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


@pytest.mark.slow
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


# ---------------------------------------------------------------------------------------
# `vmae inspect --segments` (issue 13)
# ---------------------------------------------------------------------------------------

runner = CliRunner()

#: ``window 3: frames 15-22, 0.600-0.880 s, indices 15 16 ...``
WINDOW_LINE = re.compile(
    r"^window (\d+): frames (\d+)-(\d+), ([\d.?]+)-([\d.?]+) s, indices ([\d ]+)$"
)


def _inspect(*args: str):
    return runner.invoke(app, ["inspect", *args], catch_exceptions=False)


def _window_lines(stdout: str) -> list[tuple[int, int, int, tuple[int, ...]]]:
    rows = []
    for line in stdout.splitlines():
        m = WINDOW_LINE.match(line)
        if m:
            index, start, end = int(m[1]), int(m[2]), int(m[3])
            rows.append((index, start, end, tuple(map(int, m[6].split()))))
    return rows


def _png_hw(path: Path) -> tuple[int, int]:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None
    return image.shape[0], image.shape[1]


def test_inspect_segments_lists_the_planned_windows(test_videos, tiny_model_dir: Path) -> None:
    from tools.videogen import pyav_indices

    video = test_videos["h264"]
    result = _inspect(
        str(video), "-m", str(tiny_model_dir), "--segments", "--window", "8f", "--hop", "5f"
    )
    assert result.exit_code == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    n = len(pyav_indices(video))
    assert "status: ok" in lines and f"frames decoded: {n}" in lines
    assert "protocol: segments(window=8f,hop=5f)" in lines
    planned = plan_windows(n, WindowGeometry(8, 5, 8))
    assert f"windows: {len(planned)}" in lines
    assert _window_lines(result.stdout) == [
        (w.index, w.start_frame, w.end_frame, w.frame_indices) for w in planned
    ]
    # The listing comes after the header, one line per window, and nothing else follows.
    first = lines.index(f"windows: {len(planned)}")
    assert len(lines) == first + 1 + len(planned)
    assert lines[first + 1].startswith("window 0: frames 0-7, 0.000-")


def test_inspect_segments_defaults_and_notes(test_videos, tiny_model_dir: Path) -> None:
    # The default window is the model's clip: T = 8 frames every 4th (--frame-stride 0).
    result = _inspect(str(test_videos["short_3"]), "-m", str(tiny_model_dir), "--segments")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "protocol: segments(window=32f,hop=32f)" in result.stdout
    assert "notes: short video: 3 frames for a window of 32, frames repeated" in result.stdout
    assert _window_lines(result.stdout) == [(0, 0, 2, (0, 2, 2, 2, 2, 2, 2, 2))]
    # --window alone implies --segments; the stride sets the default hop's window.
    strided = _inspect(
        str(test_videos["h264"]), "-m", str(tiny_model_dir), "--frame-stride", "2", "--hop", "8f"
    )
    assert strided.exit_code == EXIT_OK, strided.stderr
    assert "protocol: segments(window=16f,hop=8f)" in strided.stdout
    assert _window_lines(strided.stdout)[0] == (0, 0, 15, (0, 2, 4, 6, 8, 10, 12, 14))


def test_inspect_segments_sheet_and_npz_hold_the_first_windows(
    test_videos, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    from tools.videogen import pyav_indices

    video = test_videos["h264"]
    n = len(pyav_indices(video))
    heights = {}
    for hop in ("8f", "2f"):
        sheet, npz = tmp_path / f"{hop}.png", tmp_path / f"{hop}.npz"
        result = _inspect(
            *(str(video), "-m", str(tiny_model_dir), "--window", "8f", "--hop", hop),
            *("--sheet", str(sheet), "--npz", str(npz)),
        )
        assert result.exit_code == EXIT_OK, result.stderr
        planned = plan_windows(n, WindowGeometry(8, int(hop[:-1]), 8))
        assert len(_window_lines(result.stdout)) == len(planned)  # every window listed
        shown = planned[:SHEET_WINDOWS]  # only the first ones drawn and saved
        data = np.load(npz)
        assert data["pixel_values"].shape == (len(shown), 8, 3, 64, 64)
        assert data["pixel_values"].dtype == np.float32
        assert data["frame_indices"].tolist() == [list(w.frame_indices) for w in shown]
        assert data["window"].tolist() == [w.index for w in shown]
        assert data["start_frame"].tolist() == [w.start_frame for w in shown]
        assert data["end_frame"].tolist() == [w.end_frame for w in shown]
        assert np.all(np.diff(data["start_s"]) > 0) and np.all(data["end_s"] > data["start_s"])
        # One labelled row per window, as the layout says.
        layout = sheet_layout(
            (len(shown), 8, 3, 64, 64),
            [i for w in shown for i in w.frame_indices],
            clip_labels=[("window 0", "0.00-0.28 s")] * len(shown),
            title=sheet_title(str(video), str(tiny_model_dir)),  # as the command titles it
        )
        assert len(layout.row_labels) == len(shown)
        heights[hop] = _png_hw(sheet)
        assert heights[hop] == (layout.height, layout.width)
    assert len(plan_windows(n, WindowGeometry(8, 2, 8))) > SHEET_WINDOWS  # capped there
    assert heights["2f"][0] > heights["8f"][0]  # 8 rows, not 3


def test_inspect_segments_with_three_crops(
    test_videos, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    npz, sheet = tmp_path / "c.npz", tmp_path / "c.png"
    result = _inspect(
        *(str(test_videos["h264"]), "-m", str(tiny_model_dir), "--window", "8f", "--crops", "3"),
        *("--npz", str(npz), "--sheet", str(sheet)),
    )
    assert result.exit_code == EXIT_OK, result.stderr
    assert "protocol: segments(window=8f,hop=8f)+crops=3" in result.stdout
    assert np.load(npz)["pixel_values"].shape == (3 * 3, 8, 3, 64, 64)  # windows x crops
    assert _png_hw(sheet)[0] > 3 * 3 * 64


@pytest.mark.parametrize("shape", [(8, 3, 64, 64), (6, 8, 3, 64, 64)])
def test_the_sheet_is_titled_with_the_video_and_the_model(shape: tuple[int, ...]) -> None:
    """A title band above the frames names the video and the model; the frames move down
    by it and nothing else changes."""
    import numpy as np

    title = sheet_title("clips/walk.mp4", "MCG-NJU/videomae-base", "v1.0")
    assert title == ("video: clips/walk.mp4", "model: MCG-NJU/videomae-base @ v1.0")
    indices = list(range(8)) if len(shape) == 4 else _paper_indices(2, 8)
    plain = sheet_layout(shape, indices, crop_axis="width")
    titled = sheet_layout(shape, indices, crop_axis="width", title=title)
    assert [t.text for t in titled.title] == list(title)
    band = titled.height - plain.height
    assert band > 0 and titled.width >= plain.width
    assert [(c.x, c.y + band) for c in plain.cells] == [(c.x, c.y) for c in titled.cells]
    assert [t.y + band for t in plain.captions] == [t.y for t in titled.captions]
    for line in titled.title:
        (w, _), depth = cv2.getTextSize(line.text, cv2.FONT_HERSHEY_SIMPLEX, line.scale, 1)
        assert line.x > 0 and line.x + w <= titled.width and line.y + depth < band
    # Drawn: dark text in the band over white, and the frames below it as before.
    frames = _views(*shape[:2], 64) if len(shape) == 5 else _views(1, 8, 64)[0]
    sheet = contact_sheet(frames, indices, crop_axis="width", title=title)
    assert sheet.shape == (titled.height, titled.width, 3)
    assert (sheet[:band] < 100).any() and (sheet[:band] == 255).mean() > 0.5
    untitled = contact_sheet(frames, indices, crop_axis="width")
    assert np.array_equal(sheet[band:, : plain.width], untitled)


def test_a_long_title_widens_the_sheet_then_loses_its_middle() -> None:
    long_path = "/data/" + "a-very-long-folder-name/" * 40 + "walk é.mp4"  # not ASCII
    layout = sheet_layout((8, 3, 64, 64), list(range(8)), title=sheet_title(long_path, "m"))
    video = layout.title[0].text
    assert layout.width == SHEET_TITLE_MIN_WIDTH_PX  # widened as far as a title may
    assert video.startswith("video: /data/") and "..." in video and video.endswith("walk ?.mp4")
    (w, _), _ = cv2.getTextSize(video, cv2.FONT_HERSHEY_SIMPLEX, layout.title[0].scale, 1)
    assert w <= layout.width
    short = sheet_layout((8, 3, 64, 64), list(range(8)), title=sheet_title("a.mp4", "m"))
    assert short.width == sheet_layout((8, 3, 64, 64), list(range(8))).width  # fits: as it was


def test_window_rows_are_labelled_with_number_and_times() -> None:
    labels = [("window 0", "0.00-0.28 s"), ("window 1", "0.32-0.60 s")]
    indices = list(range(16))
    layout = sheet_layout((2, 8, 3, 64, 64), indices, clip_labels=labels)
    assert layout.row_labels == ("window 0 · 0.00-0.28 s", "window 1 · 0.32-0.60 s")
    assert [t.text for t in layout.labels] == ["window 0", "0.00-0.28 s", "window 1", "0.32-0.60 s"]
    assert [t.text for t in layout.captions[:2]] == ["f 0", "f 1"]
    # A single window is a labelled row, not rows of four frames.
    one = sheet_layout((1, 8, 3, 64, 64), indices[:8], clip_labels=labels[:1])
    assert len({c.y for c in one.cells}) == 1 and one.row_labels == (
        labels[0][0] + " · " + labels[0][1],
    )
    # With three crops each row also names its crop.
    crops = sheet_layout((6, 8, 3, 64, 64), indices, clip_labels=labels, crop_axis="width")
    assert crops.row_labels[:2] == (
        "window 0 · 0.00-0.28 s · crop left",
        "window 0 · 0.00-0.28 s · crop centre",
    )
    assert contact_sheet(_views(6, 8, 64), indices, clip_labels=labels).shape[:2] == (
        crops.height,
        crops.width,
    )
    with pytest.raises(ValueError, match="1 clip labels for 2 clips"):
        sheet_layout((2, 8, 3, 64, 64), indices, clip_labels=labels[:1])


def test_inspect_windows_keeps_only_the_first_frames(test_videos, loaded_tiny) -> None:
    protocol = Protocol(segments=Segments(Span(8, "f"), Span(2, "f")))
    items = list(
        inspect_windows(
            str(test_videos["h264"]),
            loaded_tiny.frames_per_clip,
            loaded_tiny.preprocess,
            protocol,
            keep=2,
        )
    )
    *windows, done = items
    assert all(isinstance(w, InspectedWindow) for w in windows)
    assert isinstance(done, WindowsInspection) and done.failure is None
    assert done.windows == len(windows) == 9
    assert [k.window.index for k in done.kept] == [0, 1]
    assert done.frames.shape == (2, 8, 3, 64, 64) and done.frames.dtype == torch.uint8
    assert done.protocol.name == "segments(window=8f,hop=2f)"


def test_inspect_segments_bad_file_exits_3(bad_files, tiny_model_dir: Path) -> None:
    result = _inspect(str(bad_files["text"]), "-m", str(tiny_model_dir), "--segments")
    assert result.exit_code == EXIT_SOME_FAILED
    assert "status: not_video" in result.stdout.splitlines()
    assert "windows: 0" in result.stdout and _window_lines(result.stdout) == []
    assert "vmae: not_video" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--window", "2x"), "is not a length"),
        (("--hop", "0f"), "must be positive"),
        (("--window", "1.5f"), "must be whole"),
        (("--segments", "--hop", "-1s"), "is not a length"),
        (("--segments", "--protocol", "videomae"), "one clip per window"),
    ],
)
def test_inspect_segments_usage_errors_exit_2(
    args: tuple[str, ...], says: str, test_videos, tiny_model_dir: Path
) -> None:
    result = _inspect(str(test_videos["h264"]), "-m", str(tiny_model_dir), *args)
    assert result.exit_code == EXIT_USAGE, result.stdout
    assert result.stdout == ""
    assert says in " ".join(result.stderr.split())  # rich boxes and wraps the message
