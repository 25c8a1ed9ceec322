"""``vmae summarize``: counts of what vmae's rows say."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

# No torch, transformers or cv2 at import time: `vmae --help` must stay fast.
from .common import EscapeFormulasOpt, app, choice, say, stderr_console
from .errors import fail

#: `vmae summarize --format`: text tables, or one table as text rows on stdout.
SUMMARY_FORMATS = ("table", "csv", "jsonl")


@app.command()
def summarize(
    results: Annotated[
        list[Path],
        typer.Argument(
            metavar="RESULTS", help="CSV, JSONL or Parquet files written by vmae classify."
        ),
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
        str,
        choice(
            SUMMARY_FORMATS,
            "--format",
            "-f",
            help="table: text tables; csv or jsonl: the first --by table, for machines.",
        ),
    ] = "table",
    label_map: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.csv",
            help="label,group CSV: group the ok rows by their top-1 label's group (--by "
            "group), replacing the rows' own group column.",
            show_default="the rows' group column, if any",
        ),
    ] = None,
    escape_formulas: EscapeFormulasOpt = True,
) -> None:
    """Count what vmae's rows say, and list the failed videos.

    By status, label, label group and folder; --by chooses the tables.
    """
    from ..formats import SCORE_DIGITS, write_csv_table
    from ..scoring import read_label_map
    from ..summary import SUMMARY_COLUMNS, Grouping, read_results, render, table_for, with_groups

    try:
        console = stderr_console()
        rows = read_results(
            results, SUMMARY_COLUMNS, on_notice=lambda line: say(console, f"vmae: {line}")
        )
        if label_map is not None:
            rows = with_groups(rows, read_label_map(label_map))
        default = ["status", "label", *(["group"] if "group" in rows else []), "folder:1"]
        groupings = [Grouping.parse(b) for b in by or [*default, "failed"]]
        tables = [table_for(rows, g) for g in groupings]
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, False) from None
    fmt = summary_format
    # Scores as the rows write them (6 digits), not 0.6971765000000001 beside 0.697177.
    tables = [t.round(SCORE_DIGITS) for t in tables]
    if fmt == "csv":
        table = tables[0]
        cells = table.astype(object).where(table.notna(), None).itertuples(index=False)
        write_csv_table(sys.stdout, table.columns, cells, escape_formulas=escape_formulas)
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
