"""``vmae fit-head``: a head of your own labels, trained on the vectors of ``classify
--embeddings`` and a few labelled examples (:func:`~vmae_cli.fitting.fit_head`).

The head goes to a folder; stdout gets that folder's path (data, for a script) and stderr
what a person reads: the cross-validated accuracy per label and the confusion table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

# Only the options' defaults at import time (`vmae --help` must stay fast): the fitting's
# modules (torch among them) are imported inside `fit_head`.
from ..choices import DEFAULT_HEAD_L2
from .common import app, counted, say, stderr_console
from .errors import fail

if TYPE_CHECKING:
    from ..fitting import FitReport

#: Example paths a message names, at most.
SHOWN = 3
#: A label's name is cut to this many characters in the tables.
LABEL_WIDTH = 24


@app.command("fit-head")
def fit_head(
    embeddings: Annotated[
        Path,
        typer.Argument(
            metavar="EMBEDDINGS.parquet",
            help="The vectors a run wrote: vmae classify DIR --embeddings EMBEDDINGS.parquet.",
        ),
    ],
    examples: Annotated[
        Path,
        typer.Argument(
            metavar="EXAMPLES.csv",
            help="A CSV with the columns path,label (others ignored): a few dozen videos per "
            "label, at least 2. Paths as vmae writes them; a relative path is taken from the "
            "current folder; rows with an empty label are skipped.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FOLDER",
            help="Where the head goes (head.safetensors, head.json): a new or empty folder.",
        ),
    ],
    l2: Annotated[
        float,
        typer.Option(
            "--l2",
            metavar="X",
            help="L2 penalty on the standardised weights: larger is smoother, for fewer examples.",
        ),
    ] = DEFAULT_HEAD_L2,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the head the folder already holds."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    """Train a head of your own labels on a run's embeddings.

    The embeddings are the vectors of vmae classify --embeddings; the head is a linear
    classifier (multinomial logistic regression) on them. Then classify with --model BACKBONE
    --head FOLDER. Prints the cross-validated accuracy per label and a confusion table on
    stderr, the folder on stdout.
    """
    from ..fitting import fit_head as fit

    console = stderr_console()
    try:
        report = fit(
            embeddings,
            examples,
            output,
            l2=l2,
            overwrite=overwrite,
            on_notice=lambda line: say(console, f"vmae: {line}"),
        )
    except Exception as exc:  # noqa: BLE001 - mapped by exit_for, one table
        raise fail(exc, debug) from None
    for line in _lines(report):
        say(console, line)
    sys.stdout.write(f"{report.folder}\n")


def _lines(report: FitReport) -> list[str]:
    """What a person reads: skipped examples, accuracy per label, the confusion table."""
    lines = []
    if report.missing:
        first = ", ".join(report.missing[:SHOWN])
        lines.append(
            f"vmae: {counted(len(report.missing), 'example')} without a vector in the "
            f"embeddings file, skipped (first: {first})"
        )
    if report.unlabelled:
        lines.append(f"vmae: {counted(report.unlabelled, 'row')} without a label, skipped")
    lines.append(
        f"{counted(report.examples, 'example')} of {counted(len(report.labels), 'label')}, "
        f"{report.folds}-fold cross-validated accuracy {report.accuracy:.1%} "
        f"(always the commonest label: {report.chance:.1%})"
    )
    names = [_cut(label) for label in report.labels]
    width = max(len("label"), *map(len, names))
    lines.append(f"  {'label':<{width}}  examples  accuracy")
    for name, score in zip(names, report.per_label, strict=True):
        lines.append(f"  {name:<{width}}  {score.examples:>8}  {score.accuracy:>8.1%}")
    lines.append("confusion (rows: the example's label; columns: predicted, in the same order)")
    cell = max(3, *(len(str(v)) for row in report.confusion for v in row))
    header = " ".join(f"{i:>{cell}}" for i in range(len(names)))
    lines.append(f"  {'':<{width}}    {header}")
    for i, (name, row) in enumerate(zip(names, report.confusion, strict=True)):
        cells = " ".join(f"{v:>{cell}}" for v in row)
        lines.append(f"  {name:<{width}} {i:>2} {cells}")
    lines.append(f"head written to {report.folder}")
    return lines


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"
