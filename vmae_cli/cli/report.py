"""``vmae report``: one offline HTML page of what the model saw and said."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Only the options' defaults at import time (`vmae --help` must stay fast): the report's
# modules are imported inside `report`.
from ..choices import DEFAULT_REPORT_MAX_BYTES, DEFAULT_REPORT_PER_LABEL, DEFAULT_REPORT_TIMEOUT_S
from .common import WorkersOpt, app, counted, say, stderr_console
from .errors import fail
from .progress import Progress


@app.command()
def report(
    results: Annotated[
        list[Path],
        typer.Argument(
            metavar="RESULTS", help="CSV, JSONL or Parquet files written by vmae classify."
        ),
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
    ] = DEFAULT_REPORT_PER_LABEL,
    max_mb: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="MB",
            help="The page stays under this size: frames of the least frequent labels are "
            "left out first.",
        ),
    ] = DEFAULT_REPORT_MAX_BYTES / 2**20,
    workers: WorkersOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0, metavar="SECONDS", help="Give up on a video's frames after this long; 0 = never."
        ),
    ] = DEFAULT_REPORT_TIMEOUT_S,
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
    """Write one HTML page of what the model saw and said.

    Offline and self-contained: counts, frames of sampled videos per label, timelines,
    failures.
    """
    from ..output import check_writable
    from ..report import ReportOptions, build_report

    console = stderr_console()
    try:
        check_writable(output)
        options = ReportOptions(
            per_label=per_label,
            max_bytes=int(max_mb * 2**20),
            workers=workers,
            timeout_s=timeout or None,
            folder_depth=folder_depth,
        )
        progress = Progress(
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
                on_notice=lambda line: say(console, f"vmae: {line}"),
            )
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, False) from None
    if not quiet:
        left = (
            f"; frames of {counted(made.left_out, 'label')} left out (--max-mb)"
            if made.left_out
            else ""
        )
        say(
            console,
            f"vmae: wrote {made.output}: {counted(made.rows, 'row')}, "
            f"{counted(made.labels, 'label')}, frames of {counted(made.strips, 'video')}{left}, "
            f"{made.bytes / 2**20:.1f} MB in {made.seconds:.1f} s",
        )
