"""``vmae classify``: options -> one :class:`~vmae_cli.runner.RunOptions` -> :func:`~vmae_cli.
runner.run` -> exit code, with the progress bar and signals."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

# Only the options' choices and defaults at import time (`vmae --help` must stay fast): the
# run's modules are imported inside `classify`.
from ..choices import (
    BACKEND_AUTO,
    BACKEND_CHOICES,
    DEFAULT_EMBEDDING_DTYPE,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_VIDEOS_PER_TASK,
    DTYPE_CHOICES,
    EMBEDDING_DTYPES,
    ENGINE_LOCAL,
    ENGINES,
    FORMAT_NAMES,
    PROTOCOL_UNIFORM,
    SAMPLING_EXACT,
)
from .common import (
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_SOME_FAILED,
    PANEL_CRON,
    PANEL_CURATION,
    PANEL_IO,
    PANEL_MODEL,
    PANEL_RAY,
    PANEL_SEGMENTS,
    PANEL_SPEED,
    ClipsOpt,
    CropsOpt,
    EscapeFormulasOpt,
    HopOpt,
    ModelOpt,
    ProtocolOpt,
    RevisionOpt,
    SamplingOpt,
    SegmentsOpt,
    StrideOpt,
    WindowOpt,
    WorkersOpt,
    app,
    choice,
    device_name,
    log_to_stderr,
    protocol_of,
    say,
    segments_of,
    stderr_console,
)
from .errors import fail, flagged
from .progress import Progress


@app.command()
def classify(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="INPUTS",
            help="Video files and/or folders (walked recursively), or URLs: s3://bucket/prefix/, "
            "gs://..., https://host/clip.mp4 (needs vmae-cli[remote]).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write rows to FILE (.csv, .jsonl or .parquet); - or a pipe is stdout.",
            show_default="stdout",
            rich_help_panel=PANEL_IO,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        choice(
            FORMAT_NAMES,
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
            "whole path, else the name; case is ignored).",
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
    keep_url_query: Annotated[
        bool,
        typer.Option(
            "--keep-url-query",
            help="Keep a URL's query string in its path cell (where it names the video, "
            "?id=42). By default it is left out: a signed URL's signature never reaches a row.",
            rich_help_panel=PANEL_IO,
        ),
    ] = False,
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
        str,
        choice(
            EMBEDDING_DTYPES,
            help="Precision of the stored vectors.",
            rich_help_panel=PANEL_CURATION,
        ),
    ] = DEFAULT_EMBEDDING_DTYPE,
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
    escape_formulas: EscapeFormulasOpt = True,
    model: ModelOpt = DEFAULT_MODEL,
    revision: RevisionOpt = None,
    device: Annotated[
        str,
        typer.Option(
            metavar="DEV",
            callback=device_name,
            help="auto, cpu, cuda, cuda:N or mps (auto prefers CUDA).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    dtype: Annotated[
        str,
        choice(
            DTYPE_CHOICES,
            help="auto: bf16 on CUDA and bf16-capable CPUs, else float32. int8: the model "
            "quantized once with NNCF (OpenVINO only, cached; float where the CPU lacks "
            "VNNI/AMX).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    calibration: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="--dtype int8: calibrate the quantization on the first 8 videos of DIR "
            "(default: the first 8 videos of the run that quantizes; later runs reuse it).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            metavar="LIST",
            help="A zero-shot model (X-CLIP): the labels to score each video against, "
            'comma-separated ("cooking,skateboarding,a dog playing"); the scores are a softmax '
            "over them.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    labels_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="As --labels, from a UTF-8 file: one label a line, or a label, a tab and the "
            "prompt the model reads instead; # starts a comment.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Label with a head `vmae fit-head` fitted on this model's embeddings instead "
            "of the model's own labels (refused on another model).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    backend: Annotated[
        str,
        choice(
            BACKEND_CHOICES,
            help="Model runtime. auto: OpenVINO on the CPU when vmae-cli[openvino] is "
            "installed (converted once, cached), else torch; torch on CUDA and MPS.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = BACKEND_AUTO,
    allow_untrained_head: Annotated[
        bool,
        typer.Option(
            "--allow-untrained-head",
            help="Run a checkpoint without a trained classification head, or whose weights "
            "do not all load, instead of refusing it (exit 1): its labels mean nothing.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = False,
    protocol: ProtocolOpt = PROTOCOL_UNIFORM,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
    sampling: SamplingOpt = SAMPLING_EXACT,
    segments: SegmentsOpt = False,
    window: WindowOpt = None,
    hop: HopOpt = None,
    segments_out: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write one row per window to FILE (.csv, .jsonl or .parquet; - is stdout); "
            "implies --segments.",
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
            help="Keep the rows already in -o FILE; skip their videos if unchanged.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Like --resume, and also redo the videos whose row is not ok.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the rows an existing output holds (without it, or --resume, a run "
            "onto an output that holds rows is refused).",
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
            help="No progress bar and no summary line.",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show full tracebacks of fatal errors (and where Ray keeps its logs).",
            rich_help_panel=PANEL_CRON,
        ),
    ] = False,
    engine: Annotated[
        str,
        choice(
            ENGINES,
            help="local: this machine. ray: the nodes of a Ray cluster (pip install "
            "'vmae-cli[ray]').",
            rich_help_panel=PANEL_RAY,
        ),
    ] = ENGINE_LOCAL,
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
        log_to_stderr()
    from ..labelsource import parse_text_labels, read_labels_file
    from ..model import ModelRef
    from ..output import check_writable
    from ..pipeline import ClassifyOptions
    from ..ray_engine import RayOptions
    from ..runner import STDOUT, STOPPED_BY_CLOSED_OUTPUT, RunHooks, RunOptions, StopRequest, run
    from ..scoring import read_label_map

    console = stderr_console()
    if not inputs and files_from is None:
        raise fail(typer.BadParameter("give INPUTS (files or folders) or --files-from"), debug)
    if labels is not None and labels_file is not None:
        raise fail(typer.BadParameter("give --labels or --labels-file, not both"), debug)
    try:
        if labels is not None:
            text_labels = parse_text_labels(labels)
        elif labels_file is not None:
            text_labels = read_labels_file(labels_file)
        else:
            text_labels = ()
        options = RunOptions(
            model=ModelRef(
                name=model,
                revision=revision,
                device=device,
                dtype=dtype,
                backend=backend,
                allow_untrained_head=allow_untrained_head,
                calibration=str(calibration) if calibration is not None else None,
                text_labels=text_labels,
                head=str(head) if head is not None else None,
            ),
            format=fmt,
            segments_output=str(segments_out) if segments_out is not None else None,
            embeddings_output=str(embeddings) if embeddings is not None else None,
            embeddings_dtype=embeddings_dtype,
            files_from=files_from,
            null=null,
            path_column=path_column,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            escape_formulas=escape_formulas,
            keep_url_query=keep_url_query,
            resume=resume,
            retry_failed=retry_failed,
            overwrite=overwrite,
            engine=engine,
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
                protocol=protocol_of(
                    protocol,
                    clips,
                    crops,
                    frame_stride,
                    sampling,
                    segments_of(segments, window, hop, segments_out),
                ),
            ),
        )
        if summary is not None:
            check_writable(summary)  # before the work, not after it
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, debug) from None
    progress = Progress(console, enabled=not quiet and console.is_terminal)
    hooks = RunHooks(
        on_total=progress.set_total,
        on_row=lambda _p: progress.advance(),
        on_skip=lambda _p: progress.advance(),
        on_status=progress.set_status,
        on_notice=lambda line: say(console, f"vmae: {flagged(line)}"),
        on_windows=progress.add_windows,
        on_warning=lambda line: say(console, f"vmae: warning: {flagged(line)}"),
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
        raise fail(exc, debug) from None
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
        say(console, summary_line(report))
    if summary is not None:
        try:
            report.write_json(summary, exit_code=code)
        except OSError as exc:
            raise fail(exc, debug) from None
    raise typer.Exit(code)


def summary_line(report: Any) -> str:
    """The run's summary line, with how to finish a run that was stopped."""
    line = report.summary_line()
    if report.stopped_by is None:
        return line
    if report.resumable:
        return f"{line}; rerun the same command with --resume to finish"
    return f"{line}; write to a file (-o FILE) to be able to finish later with --resume"


def _exit_code(report: Any) -> int:
    """A finished run's exit code: stopped (128 + signal), some failed or a folder could not
    be read (3), or 0."""
    if report.stopped_by is not None:
        return EXIT_SIGNAL_BASE + signal.Signals[report.stopped_by].value
    return EXIT_SOME_FAILED if report.failed or report.unreadable_folders else EXIT_OK
