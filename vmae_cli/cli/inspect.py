"""``vmae inspect``: what the model will see for one video (decoder, frame counts, sampled
frames; with ``--segments`` its windows), without classifying it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

# Only the options' choices and defaults at import time (`vmae --help` must stay fast): the
# library's modules are imported inside `inspect`.
from ..choices import DEFAULT_MODEL, PROTOCOL_UNIFORM, SAMPLING_EXACT, SHEET_WINDOWS
from .common import (
    EXIT_SOME_FAILED,
    PANEL_SEGMENTS,
    ClipsOpt,
    CropsOpt,
    HopOpt,
    ModelOpt,
    ProtocolOpt,
    RevisionOpt,
    SamplingOpt,
    StrideOpt,
    WindowOpt,
    app,
    protocol_of,
    say,
    segments_of,
    stderr_console,
)
from .errors import fail

#: Which windows `vmae inspect --segments` keeps for --npz and --sheet (for their help).
FIRST_WINDOWS = f"the first {SHEET_WINDOWS} windows"


@app.command()
def inspect(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The video to look at.")],
    model: ModelOpt = DEFAULT_MODEL,
    revision: RevisionOpt = None,
    npz: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.npz",
            help="Save pixel_values (V, T, 3, H, W) and frame_indices here. With --segments: "
            f"those of {FIRST_WINDOWS} (V = windows x crops, frame_indices (windows, T)), "
            "and each one's window, start_frame, end_frame, start_s and end_s.",
        ),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.png",
            help="Save a contact sheet of the sampled frames, titled with the video and the "
            "model. With --segments: one row per "
            f"window (per crop with --crops 3) for {FIRST_WINDOWS}.",
        ),
    ] = None,
    protocol: ProtocolOpt = PROTOCOL_UNIFORM,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
    sampling: SamplingOpt = SAMPLING_EXACT,
    segments: Annotated[
        bool,
        typer.Option(
            "--segments",
            help="List the consecutive windows `vmae classify --segments` classifies (their "
            "frames and times), not one clip spread over the video.",
            rich_help_panel=PANEL_SEGMENTS,
        ),
    ] = False,
    window: WindowOpt = None,
    hop: HopOpt = None,
) -> None:
    """Show what the model will see for VIDEO, without classifying it.

    Its decoder, frame counts and sampled frames; with --segments, its windows.
    """
    from ..inspection import inspect_video, save_npz, save_sheet, sheet_title
    from ..model import ModelRef, load_model, read_model_spec
    from ..output import check_writable

    if not video.exists():
        raise fail(_input_missing(str(video)), False)
    if video.is_dir():
        raise fail(
            typer.BadParameter(
                f"{video} is a folder: vmae inspect looks at one video (vmae classify takes "
                "folders)"
            ),
            False,
        )
    try:
        proto = protocol_of(
            protocol, clips, crops, frame_stride, sampling, segments_of(segments, window, hop)
        )
        for target in (npz, sheet):
            if target is not None:
                check_writable(target)  # before the work, not after it
        # torch: inspect only needs the model's input shape, never an OpenVINO conversion.
        ref = ModelRef(model, revision, device="cpu", dtype="float32", backend="torch")
        spec = read_model_spec(model, revision=revision)
        # A zero-shot model's input is all in its configs, and it needs labels to load.
        lm = spec if spec.zero_shot else load_model(ref, spec=spec)
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, False) from None
    title = sheet_title(str(video), model, revision)
    if proto.segments is not None:
        _inspect_windows(video, lm, proto, npz, sheet, title)
        return
    result = inspect_video(str(video), lm.frames_per_clip, lm.preprocess, proto)
    lines = [
        *_inspect_header(video, result.meta, result.failure, proto.name),
        *_index_lines(result.frame_indices, lm.frames_per_clip),
    ]
    typer.echo("\n".join(lines))
    if result.failure is not None:
        say(stderr_console(), f"vmae: {result.failure.status}: {result.failure.error}")
        raise typer.Exit(EXIT_SOME_FAILED)
    try:
        if npz is not None:
            save_npz(result, lm.preprocess, npz)
        if sheet is not None:
            save_sheet(result, sheet, title)
    except OSError as exc:
        raise fail(exc, False) from None


#: Window lines of `vmae inspect --segments` held in memory before they go to a temporary
#: file (they are printed after the header, which is known only once the video is read).
WINDOW_LINES_IN_MEMORY_BYTES = 1 << 20


def _inspect_header(video: Path, m: Any, failure: Any, protocol_name: str) -> list[str]:
    """The lines `vmae inspect` starts with: the video's status and what the decoder learned."""
    return [
        f"path: {video}",
        f"status: {'ok' if failure is None else failure.status}",
        *([f"error: {failure.error}"] if failure is not None else []),
        f"decoder: {m.decoder or '-'}",
        f"frames reported: {m.frames_reported if m.frames_reported is not None else '-'}",
        f"frames decoded: {m.frames_decoded}",
        f"fps: {m.fps if m.fps is not None else '-'}",
        f"duration_s: {m.duration_s if m.duration_s is not None else '-'}",
        f"size: {m.width}x{m.height}" if m.width else "size: -",
        f"rotation: {m.rotation}",
        f"protocol: {protocol_name}",
    ]


def _inspect_windows(
    video: Path, lm: Any, proto: Any, npz: Any, sheet: Any, title: tuple[str, ...]
) -> None:
    """`vmae inspect --segments`: the header, ``notes:``, ``windows: N`` and one line per
    window, then the --npz and --sheet of the first windows. The window lines are written
    to a spooled temporary file while the video is read, so memory does not grow with it."""
    import tempfile

    from ..inspection import InspectedWindow, inspect_windows, save_npz, save_sheet

    done: Any = None
    with tempfile.SpooledTemporaryFile(
        max_size=WINDOW_LINES_IN_MEMORY_BYTES, mode="w+", encoding="utf-8"
    ) as listing:
        for item in inspect_windows(str(video), lm.frames_per_clip, lm.preprocess, proto):
            if isinstance(item, InspectedWindow):
                listing.write(_window_line(item.window) + "\n")
            else:
                done = item
        lines = _inspect_header(video, done.meta, done.failure, done.protocol.name)
        if done.notes:
            lines.append(f"notes: {'; '.join(done.notes)}")
        lines.append(f"windows: {done.windows}")
        typer.echo("\n".join(lines))
        listing.seek(0)
        for chunk in iter(lambda: listing.read(1 << 16), ""):
            typer.echo(chunk, nl=False)
    if done.failure is not None:
        say(stderr_console(), f"vmae: {done.failure.status}: {done.failure.error}")
        raise typer.Exit(EXIT_SOME_FAILED)
    if (npz is not None or sheet is not None) and not done.kept:
        say(stderr_console(), "vmae: no window decoded: nothing to save")
        raise typer.Exit(EXIT_SOME_FAILED)
    try:
        if npz is not None:
            save_npz(done, lm.preprocess, npz)
        if sheet is not None:
            save_sheet(done, sheet, title)
    except OSError as exc:
        raise fail(exc, False) from None


def _window_line(w: Any) -> str:
    """``window 3: frames 192-255, 6.400-8.500 s, indices 192 196 ...``."""

    def at(t: float | None) -> str:
        return "?" if t is None else f"{t:.3f}"

    line = (
        f"window {w.index}: frames {w.start_frame}-{w.end_frame}, "
        f"{at(w.start_s)}-{at(w.end_s)} s, indices {' '.join(map(str, w.frame_indices))}"
    )
    return line if w.ok else f"{line} ({w.status}: {w.error})"


def _input_missing(path: str) -> Exception:
    from ..discovery import InputNotFoundError

    return InputNotFoundError(f"no such file or directory: {path}", path=path)


def _index_lines(indices: list[int], frames_per_clip: int) -> list[str]:
    """``frame indices: ...``, one line per clip when there are several."""
    if len(indices) <= frames_per_clip:
        return [f"frame indices: {' '.join(map(str, indices)) or '-'}"]
    return [
        f"frame indices, clip {c + 1}: {' '.join(map(str, indices[i : i + frames_per_clip]))}"
        for c, i in enumerate(range(0, len(indices), frames_per_clip))
    ]
