"""The ``vmae`` command: parses options, owns the progress bar, picks the writer, and maps
library errors onto exit codes. Everything else lives in the library.

stdout carries data only; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

# model.py imports torch and transformers lazily, so this keeps `vmae --help` fast.
from .model import DEFAULT_MODEL

# Exit codes (documented in the README).
EXIT_OK = 0  # every video classified
EXIT_FATAL = 1  # nothing useful happened: model not loadable, output not writable, ...
EXIT_USAGE = 2  # bad options or arguments (Typer/Click use 2 as well)
EXIT_SOME_FAILED = 3  # the run completed, but some videos could not be classified
EXIT_BUSY = 75  # another run is writing the same output file (EX_TEMPFAIL: try again later)
EXIT_SIGNAL_BASE = 128  # + signal number when stopped by SIGINT / SIGTERM

#: Per-video decoding limit when --timeout is not given (seconds): a file that hangs a
#: decoder (a stuck network mount, a pathological stream) must not hang a cron job for ever,
#: while a long 4K video read sequentially still fits.
DEFAULT_TIMEOUT_S = 600.0


app = typer.Typer(
    name="vmae",
    help="Classify folders of videos with a VideoMAE model; one CSV/JSONL row per video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    """Formats of the output rows."""

    csv = "csv"
    jsonl = "jsonl"


class ProtocolName(str, Enum):
    """Named test protocols (see vmae_cli/protocol.py)."""

    uniform = "uniform"
    videomae = "videomae"


# Options shared by `classify` and `inspect`.
ProtocolOpt = Annotated[
    ProtocolName,
    typer.Option(
        help="uniform: one clip of T frames spread over the whole video, centre crop. "
        "videomae: the paper's test protocol (stride 4, 5 clips x 3 crops, softmax averaged)."
    ),
]
ClipsOpt = Annotated[
    int | None, typer.Option(min=1, help="Clips per video [default: from --protocol].")
]
CropsOpt = Annotated[
    int | None, typer.Option(help="Crops per clip, 1 or 3 [default: from --protocol].")
]
StrideOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Take clip frames every S frames; 0 = spread over the whole video "
        "[default: from --protocol].",
    ),
]


def _protocol(name: ProtocolName, clips: int | None, crops: int | None, stride: int | None) -> Any:
    """The protocol named by --protocol, with --clips/--crops/--frame-stride applied."""
    from dataclasses import replace

    from .protocol import PROTOCOLS, ProtocolError

    base = PROTOCOLS[name.value]
    changes = {"clips": clips, "crops": crops, "frame_stride": stride}
    try:
        return replace(base, **{k: v for k, v in changes.items() if v is not None})
    except ProtocolError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


@app.callback()
def main() -> None:
    """Classify folders of videos with a VideoMAE model; one CSV/JSONL row per video."""


def _stderr_console() -> Any:
    from rich.console import Console

    # rich's default console writes to stdout, which carries only data here.
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int) -> typer.Exit:
    _stderr_console().print(f"[bold red]vmae:[/] {message}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def _stdout_stream() -> tuple[Any, Any]:
    """The text stream rows go to on stdout, and how to let go of it when done."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return sys.stdout, sys.stdout.flush
    # UTF-8 whatever the locale says, and no newline translation (the csv module's own).
    wrapper = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=True)
    # detach() instead of close(): stdout itself stays open for whoever owns it.
    return wrapper, wrapper.detach


@app.command()
def classify(
    inputs: Annotated[
        list[str], typer.Argument(help="Video files and/or folders (walked recursively).")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write rows to this file (.csv or .jsonl) instead of stdout."
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", help="Output format [default: from -o's extension, csv]."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hugging Face model id or local folder.")
    ] = DEFAULT_MODEL,
    revision: Annotated[
        str | None, typer.Option(help="Model revision (branch, tag or commit) on the Hub.")
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, help="Also report the K best labels.")
    ] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="auto, float32, bfloat16 or float16 (auto: bf16 on CUDA and bf16-capable CPUs)."
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Views (clips x crops) per model call [default: 2 CPU, 16 GPU]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=0, help="Decoding processes [default: one per core; 0 = in-process]."),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Give up on a video after this many seconds of decoding (its row says "
            "timeout); 0 = never.",
        ),
    ] = DEFAULT_TIMEOUT_S,
    protocol: ProtocolOpt = ProtocolName.uniform,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
    escape_formulas: Annotated[
        bool,
        typer.Option(
            help="In CSV, prefix ' to cells starting with = + - @ so spreadsheets do not run "
            "them as formulas."
        ),
    ] = True,
    resume: Annotated[
        bool,
        typer.Option(
            help="Keep the rows already in -o FILE and skip their videos when size and "
            "modification time are unchanged; new and changed videos are done."
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(help="Like --resume, and also redo the videos whose row is not ok."),
    ] = False,
    summary: Annotated[
        Path | None,
        typer.Option(help="Write counts by status, elapsed time and videos/s to this JSON file."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line.")
    ] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks of fatal errors.")] = False,
) -> None:
    """Classify every video in INPUTS and write one row per video."""
    # Must precede the first torch import (OpenMP reads it once). The model's threads share
    # the cores with the decoding workers; spinning while waiting wastes the time slices a
    # worker needs. Measured on 2 cores, ViT-B bf16, 23 videos: 57.8 s passive, 62.4 s by
    # default, while the model alone is 3 % slower passive (0.691 vs 0.714 clips/s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .discovery import InputNotFoundError, check_inputs
    from .writers import UnknownFormatError, format_for_path

    console = _stderr_console()
    proto = _protocol(protocol, clips, crops, frame_stride)
    try:
        check_inputs(inputs)
    except InputNotFoundError as exc:
        raise _fail(f"no such file or directory: {exc}", EXIT_USAGE) from None
    try:
        out_fmt = fmt.value if fmt else (format_for_path(str(output)) if output else "csv")
    except UnknownFormatError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    to_stdout = output is None or str(output) == "-"
    if (resume or retry_failed) and to_stdout:
        raise _fail("--resume and --retry-failed need an output file (-o FILE)", EXIT_USAGE)
    if debug:
        os.environ["VMAE_DEBUG"] = "1"
    run = _Run(
        inputs=inputs,
        output=None if to_stdout else output,
        out_fmt=out_fmt,
        model=model,
        revision=revision,
        top_k=top_k,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        workers=workers,
        timeout=timeout,
        protocol=proto,
        escape_formulas=escape_formulas,
        resume=resume or retry_failed,
        retry_failed=retry_failed,
        summary=summary,
        quiet=quiet,
    )
    try:
        code = _run_classify(run, console)
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        raise _fail(_describe(exc), EXIT_FATAL) from None
    raise typer.Exit(code)


@app.command()
def inspect(
    video: Annotated[Path, typer.Argument(help="The video to look at.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hugging Face model id or local folder.")
    ] = DEFAULT_MODEL,
    revision: Annotated[str | None, typer.Option(help="Model revision on the Hub.")] = None,
    npz: Annotated[
        Path | None,
        typer.Option(help="Save pixel_values (1, T, 3, H, W) and frame_indices (T,) here."),
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(help="Save a PNG contact sheet of the sampled frames here.")
    ] = None,
    protocol: ProtocolOpt = ProtocolName.uniform,
    clips: ClipsOpt = None,
    crops: CropsOpt = None,
    frame_stride: StrideOpt = None,
) -> None:
    """Show what the model will see for VIDEO: decoder, frame counts and sampled frames."""
    from .inspection import inspect_video, save_npz, save_sheet
    from .model import DeviceError, ModelLoadError, load_model

    proto = _protocol(protocol, clips, crops, frame_stride)
    if not video.exists():
        raise _fail(f"no such file: {video}", EXIT_USAGE)
    try:
        lm = load_model(model, revision=revision, device="cpu", dtype="float32")
    except (ModelLoadError, DeviceError) as exc:
        raise _fail(str(exc), EXIT_FATAL) from None
    result = inspect_video(str(video), lm.num_frames, lm.preprocess, proto)
    m = result.meta
    lines = [
        f"path: {video}",
        f"decoder: {m.decoder or '-'}",
        f"frames reported: {m.frames_reported if m.frames_reported is not None else '-'}",
        f"frames decoded: {m.frames_decoded}",
        f"fps: {m.fps if m.fps is not None else '-'}",
        f"duration_s: {m.duration_s if m.duration_s is not None else '-'}",
        f"size: {m.width}x{m.height}" if m.width else "size: -",
        f"rotation: {m.rotation}",
        f"protocol: {proto.name}",
        *_index_lines(result.frame_indices, lm.num_frames),
    ]
    typer.echo("\n".join(lines))
    if result.failure is not None:
        raise _fail(f"{result.failure.status}: {result.failure.error}", EXIT_SOME_FAILED)
    try:
        if npz is not None:
            save_npz(result, lm.preprocess, npz)
        if sheet is not None:
            save_sheet(result, sheet)
    except OSError as exc:
        raise _fail(f"cannot write output: {exc}", EXIT_FATAL) from None


def _index_lines(indices: list[int], clip_len: int) -> list[str]:
    """``frame indices: ...``, one line per clip when there are several."""
    if len(indices) <= clip_len:
        return [f"frame indices: {' '.join(map(str, indices)) or '-'}"]
    return [
        f"frame indices, clip {c + 1}: {' '.join(map(str, indices[i : i + clip_len]))}"
        for c, i in enumerate(range(0, len(indices), clip_len))
    ]


def _describe(exc: BaseException) -> str:
    """One line for a fatal error; the full traceback is behind --debug."""
    from .model import DeviceError, ModelLoadError

    if isinstance(exc, (ModelLoadError, DeviceError)):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


@dataclass
class _Run:
    """The options of one `vmae classify` run, as parsed."""

    inputs: list[str]
    output: Path | None
    out_fmt: str
    model: str
    revision: str | None
    top_k: int
    device: str
    dtype: str
    batch_size: int | None
    workers: int | None
    timeout: float
    protocol: Any
    escape_formulas: bool
    resume: bool
    retry_failed: bool
    summary: Path | None
    quiet: bool


def _run_classify(run: _Run, console: Any) -> int:
    from .model import DeviceError, ModelLoadError
    from .pipeline import Classifier
    from .resume import OutputBusyError, OutputFile, OutputMismatchError
    from .writers import get_writer

    started_at = time.time()
    # The lock comes first, so that a second run is refused at once, before the model loads;
    # the file is only truncated (or read, to resume) once the model's config files are read.
    outfile = None
    if run.output is not None:
        try:
            outfile = OutputFile(run.output).lock()
        except OutputBusyError as exc:
            raise _fail(str(exc), EXIT_BUSY) from None
    try:
        try:
            # lazy: the weights load once decoding has started, in parallel with it.
            classifier = Classifier(
                run.model, revision=run.revision, device=run.device, dtype=run.dtype, lazy=True
            )
        except (ModelLoadError, DeviceError) as exc:
            raise _fail(str(exc), EXIT_FATAL) from None
        if outfile is None:
            stream, release = _stdout_stream()
            writer = get_writer(
                run.out_fmt, stream, top_k=run.top_k, escape_formulas=run.escape_formulas
            )
        else:
            columns = get_writer("csv", io.StringIO(), top_k=run.top_k, write_header=False)
            try:
                outfile.start(run.out_fmt, resume=run.resume, csv_columns=columns.columns)
            except OutputMismatchError as exc:
                raise _fail(str(exc), EXIT_USAGE) from None
            stream = outfile.stream(run.out_fmt)
            release = stream.flush
            writer = get_writer(
                run.out_fmt,
                stream,
                top_k=run.top_k,
                escape_formulas=run.escape_formulas,
                write_header=outfile.is_empty,
            )
        return _classify_loop(run, console, classifier, writer, release, outfile, started_at)
    finally:
        if outfile is not None:
            outfile.close()


def _classify_loop(
    run: _Run,
    console: Any,
    classifier: Any,
    writer: Any,
    release: Any,
    outfile: Any,
    started_at: float,
) -> int:
    from .discovery import count_video_paths, iter_video_paths
    from .pipeline import ClassifyOptions
    from .results import STATUS_OK
    from .resume import unfinished

    def walk_error(path: str, reason: str) -> None:
        console.print(f"vmae: warning: cannot read {path}: {reason}", markup=False)

    show_bar = not run.quiet and console.is_terminal
    total = count_video_paths(run.inputs) if show_bar else None
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    counts: Counter[str] = Counter()
    skipped = 0
    redone = 0  # videos of this run that already had a row (changed, or retried)
    start = time.perf_counter()
    opts = ClassifyOptions(
        top_k=run.top_k,
        batch_size=run.batch_size,
        workers=run.workers,
        timeout_s=run.timeout or None,
        protocol=run.protocol,
    )
    paths = iter_video_paths(run.inputs, walk_error)
    done_before = outfile.previous if outfile is not None and run.resume else {}
    code = EXIT_OK
    with _progress(console, total, show_bar) as advance:

        def on_skip(_path: str) -> None:
            nonlocal skipped
            skipped += 1
            advance()

        if done_before:
            paths = unfinished(
                paths,
                done_before,
                writer.path_cell,
                retry_failed=run.retry_failed,
                on_skip=on_skip,
            )
        try:
            for p in classifier.classify_paths(paths, opts, stop=stop):
                writer.write(p)
                counts[p.status] += 1
                redone += bool(done_before) and writer.path_cell(p.path) in done_before
                advance()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as other Unix tools do.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit quiet
            code = EXIT_SIGNAL_BASE + signal.SIGPIPE
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            try:
                writer.close()
                release()
            except BrokenPipeError:
                pass
    if outfile is not None:
        # A redone video's older row goes now; if the run is killed first, the next
        # --resume removes it instead.
        outfile.finish(run.out_fmt, compact=redone > 0)
    elapsed = time.perf_counter() - start
    if code == EXIT_OK:
        if received:
            code = EXIT_SIGNAL_BASE + received[0]
        elif sum(counts.values()) != counts[STATUS_OK]:
            code = EXIT_SOME_FAILED
    if not run.quiet:
        console.print(_summary(counts, elapsed, skipped), markup=False)
    if run.summary is not None:
        _write_summary(run, counts, skipped, elapsed, started_at, code, received)
    return code


def _write_summary(
    run: _Run,
    counts: Counter[str],
    skipped: int,
    elapsed: float,
    started_at: float,
    code: int,
    received: list[int],
) -> None:
    """The run's figures as JSON, written aside then renamed so a reader never sees half."""
    import json
    from datetime import datetime, timezone

    from .results import STATUS_OK
    from .writers import display_path

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")

    total = sum(counts.values())
    data = {
        "started": iso(started_at),
        "finished": iso(time.time()),
        "elapsed_s": round(elapsed, 3),
        "videos": total,
        "videos_per_s": round(total / elapsed, 4) if elapsed > 0 else None,
        "by_status": dict(sorted(counts.items())),
        "ok": counts[STATUS_OK],
        "failed": total - counts[STATUS_OK],
        "skipped": skipped,
        "exit_code": code,
        "stopped_by": signal.Signals(received[0]).name if received else None,
        "output": display_path(str(run.output)) if run.output else "-",
        "model": run.model,
        "protocol": run.protocol.name,
    }
    target = str(run.summary)
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, target)


def _summary(counts: Counter[str], elapsed: float, skipped: int = 0) -> str:
    total = sum(counts.values())
    rate = total / elapsed if elapsed > 0 else 0.0
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if skipped:
        parts = f"{parts}; " if parts else ""
        parts += f"{skipped} skipped (already in the output)"
    return (
        f"vmae: {total} video{'s' if total != 1 else ''} in {elapsed:.1f} s "
        f"({rate:.2f} videos/s): {parts or 'none found'}"
    )


class _progress:
    """A rich progress bar on stderr, or nothing when it must not be drawn."""

    def __init__(self, console: Any, total: int | None, enabled: bool):
        self.console, self.total, self.enabled = console, total, enabled
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("classifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        task = self._progress.add_task("videos", total=self.total, rate="")
        started = time.perf_counter()

        def advance() -> None:
            done = self._progress.tasks[0].completed + 1
            rate = done / max(time.perf_counter() - started, 1e-9)
            self._progress.update(task, advance=1, rate=f"{rate:.2f} videos/s")

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


if __name__ == "__main__":  # pragma: no cover
    app()
