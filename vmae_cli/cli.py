"""The ``vmae`` command: parses options into one :class:`~vmae_cli.runner.RunOptions`, calls
:func:`~vmae_cli.runner.run`, draws the progress bar, handles signals and maps the outcome
and library errors onto exit codes (one table). Everything else lives in the library.

stdout carries data only; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

# No torch, transformers or cv2 at import time: `vmae --help` must stay fast.
from .embeddings import EMBEDDING_DTYPES
from .formats import FORMATS as WRITERS
from .model import BACKEND_CHOICES, DEFAULT_MODEL, DEVICE_CHOICES, DTYPE_CHOICES
from .protocol import CROP_CHOICES, PROTOCOLS, SAMPLING_CHOICES
from .ray_engine import DEFAULT_VIDEOS_PER_TASK
from .report import DEFAULT_MAX_BYTES, DEFAULT_PER_LABEL
from .report import DEFAULT_TIMEOUT_S as REPORT_TIMEOUT_S
from .runner import DEFAULT_TIMEOUT_S, ENGINES

# Exit codes (documented in the README).
EXIT_OK = 0  # every video classified
EXIT_FATAL = 1  # nothing useful happened: model not loadable, output not writable, ...
EXIT_USAGE = 2  # bad options or arguments (Typer/Click use 2 as well)
EXIT_SOME_FAILED = 3  # the run completed, but some videos could not be classified
EXIT_BUSY = 75  # another run is writing the same output file (EX_TEMPFAIL: try again later)
EXIT_SIGNAL_BASE = 128  # + signal number when stopped by SIGINT / SIGTERM / SIGPIPE

#: Help panels of `vmae classify`, in the order they are shown.
PANEL_IO = "Inputs and outputs"
PANEL_MODEL = "Model"
PANEL_SAMPLING = "Sampling"
PANEL_SEGMENTS = "Segments: what happens when, in long videos"
PANEL_SPEED = "Speed"
PANEL_CURATION = "Curation: embeddings, label groups, thresholds"
PANEL_CRON = "Cron and reliability"
PANEL_RAY = "Many machines (--engine ray)"


app = typer.Typer(
    name="vmae",
    help="Classify folders of videos with a VideoMAE model; one CSV/JSONL row per video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Choices come from the library's registries: a new format or protocol needs no CLI change.
OutputFormat = Enum("OutputFormat", {name: name for name in WRITERS}, type=str)  # type: ignore[misc]
ProtocolName = Enum("ProtocolName", {name: name for name in PROTOCOLS}, type=str)  # type: ignore[misc]
SamplingName = Enum("SamplingName", {name: name for name in SAMPLING_CHOICES}, type=str)  # type: ignore[misc]
DtypeName = Enum("DtypeName", {name: name for name in DTYPE_CHOICES}, type=str)  # type: ignore[misc]
BackendName = Enum("BackendName", {name: name for name in BACKEND_CHOICES}, type=str)  # type: ignore[misc]
EngineName = Enum("EngineName", {name: name for name in ENGINES}, type=str)  # type: ignore[misc]
EmbeddingsDtype = Enum("EmbeddingsDtype", {n: n for n in EMBEDDING_DTYPES}, type=str)  # type: ignore[misc]
#: `vmae summarize --format`: text tables, or one table in a row format.
SummaryFormat = Enum("SummaryFormat", {n: n for n in ("table", *WRITERS)}, type=str)  # type: ignore[misc]


def _device(value: str) -> str:
    """Accept the device names vmae knows; anything else is a usage error (exit 2)."""
    name, _, index = value.partition(":")
    if name in DEVICE_CHOICES and (not index or (name == "cuda" and index.isdigit())):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(DEVICE_CHOICES)}, cuda:N")


# Options shared by `classify` and `inspect`.
ProtocolOpt = Annotated[
    ProtocolName,
    typer.Option(
        help="uniform: T frames spread over the video, centre crop. videomae: the paper's "
        "test (stride 4, 5 clips x 3 crops, softmax averaged).",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
ClipsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Clips per video.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
CropsOpt = Annotated[
    int | None,
    typer.Option(
        metavar="|".join(map(str, CROP_CHOICES)),
        help="Crops per clip.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
StrideOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="S",
        help="Take clip frames every S frames; 0 = spread over the whole video.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
SamplingOpt = Annotated[
    SamplingName,
    typer.Option(
        help="exact: decode the protocol's frames. keyframes: the keyframe nearest each one "
        "instead; faster, not frame-exact (AVI and MPEG-TS stay exact, with a note).",
        rich_help_panel=PANEL_SAMPLING,
    ),
]


def _span(value: str | None) -> str | None:
    """Check a --window/--hop length now (a usage error, exit 2)."""
    from .segments import SegmentsError, Span

    if value is not None:
        try:
            Span.parse(value)
        except SegmentsError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


SegmentsOpt = Annotated[
    bool,
    typer.Option(
        "--segments",
        metavar="",
        help="Classify consecutive windows of each video, not one clip spread over it; "
        "the row's label is their mean.",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        metavar="64f|2s",
        callback=_span,
        help="Window length in frames or seconds (implies --segments).",
        show_default="the model's clip: T frames every --frame-stride (4), 64 for VideoMAE",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]
HopOpt = Annotated[
    str | None,
    typer.Option(
        metavar="64f|2s",
        callback=_span,
        help="Start a window every this many frames or seconds (implies --segments).",
        show_default="the window: no overlap",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]


#: Decoding processes (`classify`, `report`).
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="N",
        help="Decoding processes; 0 = in this process.",
        show_default="one per core",
        rich_help_panel=PANEL_SPEED,
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="ID|DIR",
        help="Hugging Face model id or local folder.",
        rich_help_panel=PANEL_MODEL,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        metavar="REV",
        help="Model revision on the Hub (branch, tag or commit).",
        rich_help_panel=PANEL_MODEL,
    ),
]


def _protocol(
    name: Any,
    clips: int | None,
    crops: int | None,
    stride: int | None,
    sampling: Any,
    segments: Any = None,
) -> Any:
    """The protocol named by --protocol, with --clips/--crops/--frame-stride/--sampling and
    the segments (``vmae_cli.segments.Segments`` or None) applied."""
    from dataclasses import replace

    changes = {"clips": clips, "crops": crops, "frame_stride": stride, "sampling": sampling.value}
    changes["segments"] = segments
    return replace(PROTOCOLS[name.value], **{k: v for k, v in changes.items() if v is not None})


def _segments(on: bool, window: str | None, hop: str | None, out: Any = None) -> Any:
    """The ``Segments`` asked for: by --segments, or implied by --window, --hop or
    --segments-out; None when none of them is given."""
    from .segments import Segments, Span

    if not (on or window or hop or out is not None):
        return None
    return Segments(Span.parse(window) if window else None, Span.parse(hop) if hop else None)


@app.callback()
def main() -> None:
    """Classify folders of videos with a VideoMAE model; one CSV/JSONL row per video."""


def _stderr_console() -> Any:
    from rich.console import Console

    # rich's default console writes to stdout, which carries only data here.
    return Console(stderr=True, highlight=False)


def _say(console: Any, line: str) -> None:
    """One line on stderr, never wrapped (a cron log is grepped line by line)."""
    console.print(line, markup=False, soft_wrap=True)


def _log_to_stderr() -> None:
    """--debug: the library's debug messages on stderr (stdout carries data only)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vmae: debug: %(message)s"))
    logger = logging.getLogger("vmae_cli")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _exit_for(exc: BaseException) -> tuple[int, str]:
    """The one table from library errors to exit codes, with the line to print."""
    from .discovery import FileListError, InputNotFoundError
    from .extras import MissingExtraError
    from .formats import UnknownFormatError
    from .model import DeviceError, ModelLoadError
    from .output import OutputBusyError, OutputMismatchError
    from .protocol import ProtocolError
    from .ray_engine import EngineError
    from .report import ReportError
    from .runner import RunOptionsError
    from .scoring import LabelMapError
    from .segments import SegmentsError
    from .summary import SummaryError

    usage = (
        UnknownFormatError,
        OutputMismatchError,
        ProtocolError,
        RunOptionsError,
        SegmentsError,
        FileListError,
        SummaryError,
        ReportError,
        LabelMapError,
        typer.BadParameter,
    )
    table: tuple[tuple[Any, int, Any], ...] = (
        (InputNotFoundError, EXIT_USAGE, lambda e: f"no such file or directory: {e}"),
        (usage + (MissingExtraError,), EXIT_USAGE, str),
        (OutputBusyError, EXIT_BUSY, str),
        ((ModelLoadError, DeviceError, EngineError), EXIT_FATAL, str),
        (OSError, EXIT_FATAL, _os_error),
    )
    for kinds, code, message in table:
        if isinstance(exc, kinds):
            return code, message(exc)
    return EXIT_FATAL, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _os_error(exc: OSError) -> str:
    if exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _fail(exc: BaseException, debug: bool) -> typer.Exit:
    if debug:
        raise exc
    code, message = _exit_for(exc)
    _say(_stderr_console(), f"vmae: {message}")
    return typer.Exit(code)


@app.command()
def classify(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="INPUTS",
            help="Video files and/or folders (walked recursively).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write rows to FILE (.csv or .jsonl); - or a pipe is stdout.",
            show_default="stdout",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format.",
            show_default="from -o's extension; csv on stdout",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    files_from: Annotated[
        str | None,
        typer.Option(
            metavar="FILE|-",
            help="Also classify the paths listed in FILE (- is stdin), one per line; "
            "relative ones are taken from FILE's folder; a missing one gets a not_found row.",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    null: Annotated[
        bool,
        typer.Option(
            "--null",
            "-0",
            metavar="",
            help="--files-from separates paths with NUL bytes (find -print0).",
            rich_help_panel=PANEL_IO,
        ),
    ] = False,
    path_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="--files-from is a CSV (or .parquet) file: the paths are in column NAME.",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            metavar="GLOB",
            help="Only walked files matching GLOB (repeatable; a pattern with / matches the "
            "whole path, else the name).",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            metavar="GLOB",
            help="Skip walked files matching GLOB (repeatable).",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k",
            "-k",
            min=1,
            metavar="K",
            help="Also report the K best labels.",
            rich_help_panel=PANEL_IO,
        ),
    ] = 1,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            metavar="FILE.parquet",
            help="Write the vector the classifier head receives (768 floats for ViT-B) for "
            "every ok video, and every window with --segments, to this Parquet file.",
            show_default="none",
            rich_help_panel=PANEL_CURATION,
        ),
    ] = None,
    embeddings_dtype: Annotated[
        EmbeddingsDtype,
        typer.Option(
            help="Precision of the stored vectors.",
            rich_help_panel=PANEL_CURATION,
        ),
    ] = EmbeddingsDtype.float16,  # type: ignore[attr-defined]
    label_map: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.csv",
            help="label,group CSV: adds group (the group with the highest summed "
            "probability) and group_score; labels it does not name are in group 'other'.",
            show_default="no groups",
            rich_help_panel=PANEL_CURATION,
        ),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="S",
            help="A video (or window) whose top-1 score is below S gets an empty label and "
            "low_confidence true; its scores stay. Multi-label models: labels at or above S.",
            show_default="none; 0.5 for multi-label models",
            rich_help_panel=PANEL_CURATION,
        ),
    ] = None,
    escape_formulas: Annotated[
        bool,
        typer.Option(
            help="In CSV, prefix ' to cells starting with = + - @ so spreadsheets do not run them.",
            rich_help_panel=PANEL_IO,
        ),
    ] = True,
    model: ModelOpt = DEFAULT_MODEL,
    revision: RevisionOpt = None,
    device: Annotated[
        str,
        typer.Option(
            metavar="DEV",
            callback=_device,
            help="auto, cpu, cuda, cuda:N or mps (auto prefers CUDA).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    dtype: Annotated[
        DtypeName,
        typer.Option(
            help="auto: bf16 on CUDA and bf16-capable CPUs, else float32.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = DtypeName.auto,  # type: ignore[attr-defined]
    backend: Annotated[
        BackendName,
        typer.Option(
            help="Model runtime. auto: OpenVINO on the CPU when vmae-cli[openvino] is "
            "installed (converted once, cached), else torch; torch on CUDA and MPS.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = BackendName.auto,  # type: ignore[attr-defined]
    allow_untrained_head: Annotated[
        bool,
        typer.Option(
            "--allow-untrained-head",
            metavar="",
            help="Run a checkpoint without a trained classification head, or whose weights "
            "do not all load, instead of refusing it (exit 1): its labels mean nothing.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = False,
    protocol: ProtocolOpt = ProtocolName.uniform,  # type: ignore[attr-defined]
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
    sampling: SamplingOpt = SamplingName.exact,  # type: ignore[attr-defined]
    segments: SegmentsOpt = False,
    window: WindowOpt = None,
    hop: HopOpt = None,
    segments_out: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write one row per window to FILE (.csv or .jsonl; - is stdout); implies "
            "--segments.",
            show_default="no window rows",
            rich_help_panel=PANEL_SEGMENTS,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Views (clips x crops) per model call.",
            show_default="2 on CPU, 16 on GPU",
            rich_help_panel=PANEL_SPEED,
        ),
    ] = None,
    workers: WorkersOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Give up on a video after this long decoding (row: timeout); with "
            "--segments, this long without a window; 0 = never.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = DEFAULT_TIMEOUT_S,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            metavar="",
            help="Keep the rows already in -o FILE; skip their videos if unchanged.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            metavar="",
            help="Like --resume, and also redo the videos whose row is not ok.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    summary: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.json",
            help="Write counts by status, time and videos/s to this JSON file.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            metavar="",
            help="No progress bar and no summary line.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            metavar="",
            help="Show full tracebacks of fatal errors (and where Ray keeps its logs).",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    engine: Annotated[
        EngineName,
        typer.Option(
            help="local: this machine. ray: the nodes of a Ray cluster (pip install "
            "'vmae-cli[ray]').",
            rich_help_panel=PANEL_RAY,
        ),
    ] = EngineName.local,  # type: ignore[attr-defined]
    ray_address: Annotated[
        str | None,
        typer.Option(
            metavar="auto|HOST:PORT",
            help="Join this Ray cluster (auto: the one this machine joined with `ray start`).",
            show_default="start a local Ray for this run",
            rich_help_panel=PANEL_RAY,
        ),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Ray actors, each a model with its own decoding workers.",
            show_default="as many as the cluster has room for",
            rich_help_panel=PANEL_RAY,
        ),
    ] = None,
    cpus_per_actor: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            metavar="C",
            help="CPUs each actor reserves; also its decoding workers unless --workers.",
            show_default="a whole node (CPU), the node's share (GPU)",
            rich_help_panel=PANEL_RAY,
        ),
    ] = None,
    gpus_per_actor: Annotated[
        float | None,
        typer.Option(
            min=0,
            metavar="G",
            help="GPUs each actor reserves.",
            show_default="1 with --device cuda, else 0",
            rich_help_panel=PANEL_RAY,
        ),
    ] = None,
    videos_per_task: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Videos handed to an actor at a time (what a lost node redoes).",
            rich_help_panel=PANEL_RAY,
        ),
    ] = DEFAULT_VIDEOS_PER_TASK,
) -> None:
    """Classify every video in INPUTS and write one row per video."""
    # Must precede the first torch import (OpenMP reads it once). The model's threads share
    # the cores with the decoding workers; spinning while waiting wastes the time slices a
    # worker needs. Measured on 2 cores, ViT-B bf16, 23 videos: 57.8 s passive, 62.4 s by
    # default, while the model alone is 3 % slower passive (0.691 vs 0.714 clips/s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if debug:
        _log_to_stderr()
    from .output import check_writable
    from .pipeline import ClassifyOptions
    from .ray_engine import RayOptions
    from .runner import STDOUT, STOPPED_BY_CLOSED_OUTPUT, RunHooks, RunOptions, StopRequest, run
    from .scoring import read_label_map

    console = _stderr_console()
    if not inputs and files_from is None:
        raise _fail(typer.BadParameter("give INPUTS (files or folders) or --files-from"), debug)
    try:
        options = RunOptions(
            model=model,
            revision=revision,
            device=device,
            dtype=dtype.value,
            backend=backend.value,
            allow_untrained_head=allow_untrained_head,
            format=fmt.value if fmt else None,
            segments_output=str(segments_out) if segments_out is not None else None,
            embeddings_output=str(embeddings) if embeddings is not None else None,
            embeddings_dtype=embeddings_dtype.value,
            files_from=files_from,
            null=null,
            path_column=path_column,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            escape_formulas=escape_formulas,
            resume=resume,
            retry_failed=retry_failed,
            engine=engine.value,
            ray=RayOptions(
                ray_address=ray_address,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                gpus_per_actor=gpus_per_actor,
                videos_per_task=videos_per_task,
            ),
            classify=ClassifyOptions(
                top_k=top_k,
                label_map=read_label_map(label_map) if label_map is not None else None,
                min_score=min_score,
                batch_size=batch_size,
                workers=workers,
                timeout_s=timeout or None,
                protocol=_protocol(
                    protocol,
                    clips,
                    crops,
                    frame_stride,
                    sampling,
                    _segments(segments, window, hop, segments_out),
                ),
            ),
        )
        if summary is not None:
            check_writable(summary)  # before the work, not after it
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, debug) from None
    progress = _Progress(console, enabled=not quiet and console.is_terminal)
    hooks = RunHooks(
        on_total=progress.set_total,
        on_row=lambda _p: progress.advance(),
        on_skip=lambda _p: progress.advance(),
        on_status=progress.set_status,
        on_notice=lambda line: _say(console, f"vmae: {line}"),
        on_windows=progress.add_windows,
        on_warning=lambda line: _say(console, f"vmae: warning: {line}"),
    )
    stop = StopRequest()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.request(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with progress:
            report = run(
                inputs or [],
                STDOUT if output is None else str(output),
                options=options,
                hooks=hooks,
                stop=stop,
            )
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, debug) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if report.stopped_by == STOPPED_BY_CLOSED_OUTPUT:
        # Python would complain about the unflushed stdout at exit: point it at /dev/null.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # not a real file descriptor (a test runner's stdout)
            pass
    code = _exit_code(report)
    if not quiet:
        _say(console, report.summary_line())
    if summary is not None:
        try:
            report.write_json(summary, exit_code=code)
        except OSError as exc:
            raise _fail(exc, debug) from None
    raise typer.Exit(code)


def _exit_code(report: Any) -> int:
    """A finished run's exit code: stopped (128 + signal), some failed (3), or 0."""
    if report.stopped_by is not None:
        return EXIT_SIGNAL_BASE + signal.Signals[report.stopped_by].value
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


def _first_windows() -> str:
    """Which windows `vmae inspect --segments` keeps for --npz and --sheet (for their help)."""
    from .inspection import SHEET_WINDOWS

    return f"the first {SHEET_WINDOWS} windows"


@app.command()
def inspect(
    video: Annotated[Path, typer.Argument(help="The video to look at.")],
    model: ModelOpt = DEFAULT_MODEL,
    revision: RevisionOpt = None,
    npz: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.npz",
            help="Save pixel_values (V, T, 3, H, W) and frame_indices here. With --segments: "
            f"those of {_first_windows()} (V = windows x crops, frame_indices (windows, T)), "
            "and each one's window, start_frame, end_frame, start_s and end_s.",
        ),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.png",
            help="Save a contact sheet of the sampled frames. With --segments: one row per "
            f"window (per crop with --crops 3) for {_first_windows()}.",
        ),
    ] = None,
    protocol: ProtocolOpt = ProtocolName.uniform,  # type: ignore[attr-defined]
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
    sampling: SamplingOpt = SamplingName.exact,  # type: ignore[attr-defined]
    segments: Annotated[
        bool,
        typer.Option(
            "--segments",
            metavar="",
            help="List the consecutive windows `vmae classify --segments` classifies (their "
            "frames and times), not one clip spread over the video.",
            rich_help_panel=PANEL_SEGMENTS,
        ),
    ] = False,
    window: WindowOpt = None,
    hop: HopOpt = None,
) -> None:
    """Show what the model will see for VIDEO: decoder, frame counts and sampled frames."""
    from .inspection import inspect_video, save_npz, save_sheet
    from .model import load_model
    from .output import check_writable

    if not video.exists():
        raise _fail(_input_missing(str(video)), False)
    try:
        proto = _protocol(
            protocol, clips, crops, frame_stride, sampling, _segments(segments, window, hop)
        )
        for target in (npz, sheet):
            if target is not None:
                check_writable(target)  # before the work, not after it
        # torch: inspect only needs the model's input shape, never an OpenVINO conversion.
        lm = load_model(model, revision=revision, device="cpu", dtype="float32", backend="torch")
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, False) from None
    if proto.segments is not None:
        _inspect_windows(video, lm, proto, npz, sheet)
        return
    result = inspect_video(str(video), lm.frames_per_clip, lm.preprocess, proto)
    lines = [
        *_inspect_header(video, result.meta, result.failure, proto.name),
        *_index_lines(result.frame_indices, lm.frames_per_clip),
    ]
    typer.echo("\n".join(lines))
    if result.failure is not None:
        _say(_stderr_console(), f"vmae: {result.failure.status}: {result.failure.error}")
        raise typer.Exit(EXIT_SOME_FAILED)
    try:
        if npz is not None:
            save_npz(result, lm.preprocess, npz)
        if sheet is not None:
            save_sheet(result, sheet)
    except OSError as exc:
        raise _fail(exc, False) from None


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


def _inspect_windows(video: Path, lm: Any, proto: Any, npz: Any, sheet: Any) -> None:
    """`vmae inspect --segments`: the header, ``notes:``, ``windows: N`` and one line per
    window, then the --npz and --sheet of the first windows. The window lines are written
    to a spooled temporary file while the video is read, so memory does not grow with it."""
    import tempfile

    from .inspection import InspectedWindow, inspect_windows, save_npz, save_sheet

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
        _say(_stderr_console(), f"vmae: {done.failure.status}: {done.failure.error}")
        raise typer.Exit(EXIT_SOME_FAILED)
    if (npz is not None or sheet is not None) and not done.kept:
        _say(_stderr_console(), "vmae: no window decoded: nothing to save")
        raise typer.Exit(EXIT_SOME_FAILED)
    try:
        if npz is not None:
            save_npz(done, lm.preprocess, npz)
        if sheet is not None:
            save_sheet(done, sheet)
    except OSError as exc:
        raise _fail(exc, False) from None


def _window_line(w: Any) -> str:
    """``window 3: frames 192-255, 6.400-8.500 s, indices 192 196 ...``."""

    def at(t: float | None) -> str:
        return "?" if t is None else f"{t:.3f}"

    line = (
        f"window {w.index}: frames {w.start_frame}-{w.end_frame}, "
        f"{at(w.start_s)}-{at(w.end_s)} s, indices {' '.join(map(str, w.frame_indices))}"
    )
    return line if w.ok else f"{line} ({w.status}: {w.error})"


@app.command()
def summarize(
    results: Annotated[
        list[Path],
        typer.Argument(metavar="RESULTS", help="CSV/JSONL files written by vmae classify."),
    ],
    by: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TABLE",
            help="status, label (with score distribution), group, folder:N (N levels below the "
            "folder all videos share) or failed; repeatable.",
            show_default="status, label, group (when the rows have one), folder:1, failed",
        ),
    ] = None,
    summary_format: Annotated[
        SummaryFormat,
        typer.Option(
            "--format",
            "-f",
            help="table: text tables; csv or jsonl: the first --by table, for machines.",
        ),
    ] = SummaryFormat.table,  # type: ignore[attr-defined]
    label_map: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.csv",
            help="label,group CSV: group the ok rows by their top-1 label's group (--by "
            "group), replacing the rows' own group column.",
            show_default="the rows' group column, if any",
        ),
    ] = None,
) -> None:
    """Count what vmae's rows say: by status, label, label group, folder; the failed
    videos."""
    from .scoring import read_label_map
    from .summary import Grouping, read_results, render, table_for, with_groups

    try:
        rows = read_results(results)
        if label_map is not None:
            rows = with_groups(rows, read_label_map(label_map))
        default = ["status", "label", *(["group"] if "group" in rows else []), "folder:1"]
        groupings = [Grouping.parse(b) for b in by or [*default, "failed"]]
        tables = [table_for(rows, g) for g in groupings]
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, False) from None
    fmt = summary_format.value
    if fmt == "csv":
        tables[0].to_csv(sys.stdout, index=False, lineterminator="\n")
        return
    if fmt == "jsonl":
        text = tables[0].to_json(orient="records", lines=True, force_ascii=False)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    parts = [f"{len(rows)} rows in {len(results)} file{'s' if len(results) != 1 else ''}", ""]
    titles = {
        "status": "by status",
        "label": "by label (ok videos)",
        "group": "by label group (ok videos)",
    }
    for g, table in zip(groupings, tables, strict=True):
        title = f"by folder (depth {g.depth})" if g.table == "folder" else titles.get(g.table)
        parts.append(render(title or g.table, table))
    typer.echo("\n".join(parts).rstrip())


@app.command()
def report(
    results: Annotated[
        list[Path],
        typer.Argument(metavar="RESULTS", help="CSV/JSONL files written by vmae classify."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="FILE.html", help="Where the page goes."),
    ],
    segments: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="WINDOWS",
            help="The window rows of the run (--segments-out files): a timeline per video.",
            show_default="no timelines",
        ),
    ] = None,
    per_label: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Videos shown per label: half the highest scores, half the lowest.",
        ),
    ] = DEFAULT_PER_LABEL,
    max_mb: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="MB",
            help="The page stays under this size: frames of the least frequent labels are "
            "left out first.",
        ),
    ] = DEFAULT_MAX_BYTES / 2**20,
    workers: WorkersOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0, metavar="SECONDS", help="Give up on a video's frames after this long; 0 = never."
        ),
    ] = REPORT_TIMEOUT_S,
    run_summary: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            metavar="FILE.json",
            help="The run's --summary file: engine, runtime and dates on the page.",
        ),
    ] = None,
    folder_depth: Annotated[
        int, typer.Option(min=1, metavar="N", help="Depth of the folder table.")
    ] = 1,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary line.")
    ] = False,
) -> None:
    """Write one HTML page (offline, self-contained) showing what the model saw and said:
    counts, frames of sampled videos per label, timelines, failures."""
    from .output import check_writable
    from .report import ReportOptions, build_report

    console = _stderr_console()
    try:
        check_writable(output)
        options = ReportOptions(
            per_label=per_label,
            max_bytes=int(max_mb * 2**20),
            workers=workers,
            timeout_s=timeout or None,
            folder_depth=folder_depth,
        )
        progress = _Progress(
            console, enabled=not quiet and console.is_terminal, verb="decoding frames"
        )
        with progress:
            progress.set_status("reading the rows")
            made = build_report(
                results,
                output,
                segments=segments or (),
                run_summary=run_summary,
                options=options,
                on_total=progress.set_total,
                on_strip=progress.advance,
            )
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, False) from None
    if not quiet:
        left = f"; frames of {made.left_out} labels left out (--max-mb)" if made.left_out else ""
        _say(
            console,
            f"vmae: wrote {made.output}: {made.rows} rows, {made.labels} labels, frames of "
            f"{made.strips} videos{left}, {made.bytes / 2**20:.1f} MB in {made.seconds:.1f} s",
        )


@app.command()
def labels(model: ModelOpt = DEFAULT_MODEL, revision: RevisionOpt = None) -> None:
    """Print the model's labels as CSV (index,label): a start for a label map."""
    import csv

    from .model import read_labels

    try:
        names = read_labels(model, revision=revision)
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise _fail(exc, False) from None
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["index", "label"])
    out.writerows(names.items())


def _input_missing(path: str) -> Exception:
    from .discovery import InputNotFoundError

    return InputNotFoundError(path)


def _index_lines(indices: list[int], frames_per_clip: int) -> list[str]:
    """``frame indices: ...``, one line per clip when there are several."""
    if len(indices) <= frames_per_clip:
        return [f"frame indices: {' '.join(map(str, indices)) or '-'}"]
    return [
        f"frame indices, clip {c + 1}: {' '.join(map(str, indices[i : i + frames_per_clip]))}"
        for c, i in enumerate(range(0, len(indices), frames_per_clip))
    ]


class _Progress:
    """A rich progress bar on stderr, or nothing when it must not be drawn (not a terminal,
    ``--quiet``). Until the first video is done it says what the run is busy with; its ETA
    divides the time since the run started by the videos done, start-up included."""

    def __init__(self, console: Any, enabled: bool, verb: str = "classifying"):
        self.console, self.enabled, self.verb = console, enabled, verb
        self._bar: Any = None
        self._task: Any = None
        self._started = time.perf_counter()
        self._done = 0
        self._total: int | None = None
        self._windows = 0

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("starting", total=None, rate="", eta="")
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def set_total(self, total: int) -> None:
        self._total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def set_status(self, text: str) -> None:
        if self._bar is not None and self._done == 0:
            self._bar.update(self._task, description=text)

    def add_windows(self, count: int) -> None:
        """``count`` more windows classified (--segments): a long video shows progress
        before its row is done."""
        self._windows += count
        if self._bar is not None:
            self._bar.update(self._task, description=self._description())

    def _description(self) -> str:
        return f"{self.verb}, {self._windows} windows" if self._windows else self.verb

    def advance(self) -> None:
        self._done += 1
        if self._bar is None:
            return
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        rate = self._done / elapsed
        eta = ""
        if self._total:
            left = max(self._total - self._done, 0) / rate
            eta = f"ETA {int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}"
        self._bar.update(
            self._task,
            advance=1,
            description=self._description(),
            rate=f"{rate:.2f} videos/s",
            eta=eta,
        )


if __name__ == "__main__":  # pragma: no cover
    app()
