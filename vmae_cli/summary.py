"""`vmae summarize`: what a run's rows say, counted (pandas).

Reads one or more outputs of `vmae classify` (any of :data:`vmae_cli.formats.FORMATS`, read
by its format's class) into one table, then counts: rows by status, ok rows by top-1 label with
the distribution of their scores, ok rows by label group (the rows' ``group`` from
``--label-map``, or a label map applied here), rows by folder at a chosen depth, and the
failed rows with their errors. Each count is a small :class:`pandas.DataFrame`;
:func:`render` prints them as text tables, and the CLI writes one of them as CSV or JSONL for
machines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import VmaeError
from .formats import read_frame
from .results import LOW_CONFIDENCE_MARK

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from .scoring import LabelMap

#: What ``--by`` may ask for; ``folder:N`` takes a depth.
TABLES = ("status", "label", "group", "folder", "failed")
#: Columns a file must have to be read as vmae's output.
REQUIRED_COLUMNS = ("path", "status")
#: What ``vmae summarize`` reads of a row, so that a million rows cost their short cells, not
#: their top-k and frame indices: the columns the tables count (:func:`table_for`), and
#: ``frames_decoded``, which ``vmae report`` reads too: both refuse the same foreign rows.
SUMMARY_COLUMNS = (
    "path",
    "status",
    "error",
    "label",
    "score",
    "group",
    "group_score",
    "model",
    "frames_decoded",
)


class SummaryError(VmaeError, ValueError):
    """A file that is not vmae's output, or a table that cannot be made; one line."""


@dataclass(frozen=True)
class Grouping:
    """A ``--by`` choice: a table name, and for ``folder`` the depth (folders below the
    inputs' common folder)."""

    table: str
    depth: int = 1

    @classmethod
    def parse(cls, text: str) -> Grouping:
        """``status``, ``label``, ``failed``, ``folder`` or ``folder:N`` (N >= 1)."""
        name, _, depth = text.partition(":")
        if name not in TABLES or (depth and name != "folder"):
            raise SummaryError(
                f"by={text!r}: use one of status, label, group, failed, folder:N",
                options=("by",),
                value=text,
            )
        if not depth:
            return cls(name)
        if not depth.isdigit() or int(depth) < 1:
            raise SummaryError(
                f"by={text!r}: the folder depth must be 1 or more", options=("by",), value=text
            )
        return cls(name, int(depth))


def read_results(
    paths: Iterable[str | os.PathLike[str]],
    columns: Iterable[str] | None = None,
    *,
    on_notice: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The rows of vmae outputs (any format vmae writes) as one table (``score`` as a number),
    read through their formats' classes (:func:`vmae_cli.formats.read_frame`: escapes undone,
    ``path`` the video's identity); only ``columns`` (and the required ones) when given, so
    that a large output costs memory for those alone. ``on_notice`` is told, one line per
    file, when an older output's relative paths are resolved against the current folder.
    Raises :class:`SummaryError` naming what is wrong with a file that is not vmae's
    output."""
    import pandas as pd

    from .formats import UnknownFormatError

    def legacy(source: str) -> None:
        if on_notice is not None:
            on_notice(_legacy_notice(source))

    wanted = None if columns is None else {*columns, *REQUIRED_COLUMNS, "label", "error", "model"}
    frames = []
    for path in map(os.fspath, paths):
        try:
            frame = read_frame(path, wanted, on_legacy=legacy)
        except UnknownFormatError as exc:
            raise SummaryError(str(exc), path=path) from None
        except FileNotFoundError:
            raise SummaryError(f"{path}: no such file", path=path) from None
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SummaryError(f"{path}: not a vmae output ({first})", path=path) from None
        missing = [c for c in REQUIRED_COLUMNS if c not in frame]
        if missing and (len(frame.columns) or (wanted is not None and os.path.getsize(path))):
            raise SummaryError(
                f"{path}: not a vmae output (no {' or '.join(missing)} column)", path=path
            )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in (*REQUIRED_COLUMNS, "label", "error"):
        if column not in table:
            table[column] = ""
    table["score"] = pd.to_numeric(table.get("score"), errors="coerce")
    table[["label", "error"]] = table[["label", "error"]].fillna("").astype(str)
    return _once_per_video(table, on_notice)


def _once_per_video(table: pd.DataFrame, on_notice: Callable[[str], None] | None) -> pd.DataFrame:
    """Each video once per model (its last row: a later file, or a later row, is newer), and
    a line for a person when the rows hold several models or repeat videos."""
    say = on_notice or (lambda line: None)
    models = (
        sorted(m for m in table["model"].dropna().astype(str).unique() if m)
        if ("model" in table)
        else []
    )
    if len(models) > 1:
        say(
            f"the rows hold {len(models)} models ({', '.join(models)}): each video is counted "
            "once per model"
        )
    repeated = _repeated(table)
    if repeated.any():
        say(
            f"{int(repeated.sum())} rows repeat a video a later row has again (same model): "
            "the last one is counted"
        )
        table = table[~repeated].reset_index(drop=True)
    return table


#: Paths digested at once by :func:`_repeated` (a block's Python strings at a time).
DIGEST_BLOCK_ROWS = 65536


def _repeated(table: pd.DataFrame) -> np.ndarray:
    """Which rows a later row of the same video and model repeats (what
    ``table.duplicated(["path", "model"], keep="last")`` says), from 128-bit digests of the
    paths and codes of the models: 24 bytes a row, where a hash table of ten million path
    strings would hold them all again."""
    import numpy as np
    import pandas as pd

    from .rowindex import digest_keys

    n = len(table)
    if n < 2:
        return np.zeros(n, dtype=bool)
    hi, lo = np.empty(n, np.uint64), np.empty(n, np.uint64)
    paths = table["path"]
    for start in range(0, n, DIGEST_BLOCK_ROWS):
        block = paths.iloc[start : start + DIGEST_BLOCK_ROWS].astype(str).tolist()
        hi[start : start + len(block)], lo[start : start + len(block)] = digest_keys(block)
    models = pd.factorize(table["model"])[0] if "model" in table else np.zeros(n, np.int64)
    order = np.lexsort((np.arange(n), models, lo, hi))
    same_as_next = (
        (hi[order[:-1]] == hi[order[1:]])
        & (lo[order[:-1]] == lo[order[1:]])
        & (models[order[:-1]] == models[order[1:]])
    )
    repeated = np.zeros(n, dtype=bool)
    repeated[order[:-1][same_as_next]] = True  # all but the last row of each key
    return repeated


def _legacy_notice(source: str) -> str:
    return (
        f"{source} was written by an older vmae: its relative paths are read as relative to "
        f"{os.getcwd()}"
    )


def by_status(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows per status, most first, with their share of all rows."""
    counts = rows["status"].value_counts()
    return _with_share(counts.rename_axis("status").reset_index(name="videos"))


def by_label(rows: pd.DataFrame) -> pd.DataFrame:
    """Ok rows per top-1 label, most first, with the distribution of their scores; those
    whose label ``--min-score`` emptied count as ``(low confidence)``."""
    ok = ok_rows(rows)
    scores = ok.groupby("label")["score"]
    table = scores.agg(
        videos="size",
        score_min="min",
        score_p10=lambda s: s.quantile(0.1),
        score_median="median",
        score_p90=lambda s: s.quantile(0.9),
        score_max="max",
    ).reset_index()
    table = table.sort_values(["videos", "label"], ascending=[False, True])
    return _with_share(table.reset_index(drop=True))


def with_groups(rows: pd.DataFrame, label_map: LabelMap) -> pd.DataFrame:
    """``rows`` with the ``group`` of each ok row's top-1 label from ``label_map`` (for
    results classified without ``--label-map``; a row's own group is replaced)."""
    ok = rows["status"] == "ok"
    groups = rows["label"].map(label_map.group_of).where(ok & (rows["label"] != ""), "")
    return rows.assign(group=groups)


def by_group(rows: pd.DataFrame) -> pd.DataFrame:
    """Ok rows per label group, most first, with the median group score (when the rows have
    one) and the most frequent top-1 label of each group."""
    import pandas as pd

    if "group" not in rows:
        raise SummaryError(
            "the rows have no group column: classify with a label_map, or give summarize "
            "a label_map",
            options=("label_map",),
        )
    ok = ok_rows(rows)
    grouped = ok.groupby("group")
    table = grouped.agg(videos=("path", "size")).reset_index()
    if "group_score" in ok:
        scores = pd.to_numeric(ok["group_score"], errors="coerce").groupby(ok["group"])
        table["group_score_median"] = table["group"].map(scores.median())
    top = grouped["label"].agg(lambda s: s.value_counts().index[0])
    table["top_label"] = table["group"].map(top).fillna("")
    table = table.sort_values(["videos", "group"], ascending=[False, True])
    return _with_share(table.reset_index(drop=True))


def by_folder(rows: pd.DataFrame, depth: int = 1) -> pd.DataFrame:
    """Rows per folder ``depth`` levels below the folder all paths share (``.`` for videos
    right in it): videos, ok, failed, and the most frequent ok label."""
    folders = _folders(rows["path"], depth)
    table = rows.assign(folder=folders, ok=rows["status"] == "ok")
    grouped = table.groupby("folder")
    out = grouped.agg(videos=("path", "size"), ok=("ok", "sum")).reset_index()
    out["failed"] = out["videos"] - out["ok"]
    top = ok_rows(table).groupby("folder")["label"].agg(lambda s: s.value_counts().index[0])
    out["top_label"] = out["folder"].map(top).fillna("")
    return out.sort_values("folder").reset_index(drop=True)


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The ok rows, an empty label (emptied by ``--min-score``) shown as
    ``(low confidence)``."""
    ok = rows[rows["status"] == "ok"]
    return ok.assign(label=ok["label"].where(ok["label"] != "", LOW_CONFIDENCE_MARK))


def failed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that are not ok: path, status, error."""
    bad = rows[rows["status"] != "ok"][["path", "status", "error"]]
    return bad.sort_values(["status", "path"]).reset_index(drop=True)


def table_for(rows: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    """The table ``grouping`` names."""
    if grouping.table == "status":
        return by_status(rows)
    if grouping.table == "label":
        return by_label(rows)
    if grouping.table == "group":
        return by_group(rows)
    if grouping.table == "folder":
        return by_folder(rows, grouping.depth)
    return failed(rows)


def _folders(paths: pd.Series, depth: int) -> pd.Categorical:
    """Each path's folder ``depth`` levels below the folder all of them share, worked out
    once per distinct folder (a collection has thousands of folders, not millions)."""
    import numpy as np
    import pandas as pd

    # "/x/a.mp4" -> "/x/", "/a.mp4" -> "/"; a name without a folder stays as it is.
    codes, heads = pd.factorize(paths.astype(str).str.replace(r"/[^/]*$", "/", regex=True))
    dirs = [os.path.normpath(h) if h.endswith("/") else "" for h in heads]
    try:
        root = os.path.commonpath(dirs) if dirs else ""
    except ValueError:  # absolute and relative paths mixed
        root = ""
    of_dir = []
    for d in dirs:
        rel = os.path.relpath(d, root) if root else d
        parts = [p for p in rel.split(os.sep) if p and p != "."]
        of_dir.append(os.sep.join(parts[:depth]) or ".")
    names = sorted(set(of_dir))  # the categories in order: the table is sorted by folder
    code = {name: i for i, name in enumerate(names)}
    per_dir = np.asarray([code[f] for f in of_dir], dtype=np.int64)
    return pd.Categorical.from_codes(per_dir[codes], names)


def _with_share(table: pd.DataFrame) -> pd.DataFrame:
    total = table["videos"].sum()
    table["share"] = (table["videos"] / total).round(4) if total else 0.0
    return table


def render(title: str, table: pd.DataFrame) -> str:
    """A text table under a ``## title`` line: columns padded, numbers right-aligned,
    scores to 3 decimals (markdown-like, readable in a terminal and in a log)."""
    if table.empty:
        return f"## {title}\n\n(none)\n"
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    header = [str(c) for c in table.columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    numeric = [table[c].dtype.kind in "iuf" for c in table.columns]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"## {title}", "", line(header), rule, *map(line, cells), ""])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("\n", "\\n").replace("|", "\\|")
