"""`vmae summarize`: what a run's rows say, counted (pandas).

Reads one or more outputs of `vmae classify` (any of :data:`vmae_cli.formats.FORMATS`, read
by its format's class) into one table, then counts: rows by status, ok rows by top-1 label with
the distribution of their scores, ok rows by label group (the rows' ``group`` from
``--label-map``, or a label map applied here), rows by folder at a chosen depth, and the
failed rows with their errors. Each count is a small :class:`pandas.DataFrame`;
:func:`render` prints them as text tables, and the CLI writes one of them as CSV or JSONL for
machines.

Ten million rows fit in well under 2 GB: the table is read a block of rows at a time into
compact columns (:func:`read_results`), and the counts work on codes and on the columns they
need, never on a copy of the paths (Arrow copies a column of many chunks whole to take rows
from it: :func:`take_text`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import VmaeError
from .formats import read_frames
from .results import LOW_CONFIDENCE_MARK

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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
    read through their formats' classes (:func:`vmae_cli.formats.read_frames`: escapes
    undone, ``path`` the video's identity); only ``columns`` (and the required ones) when
    given, so that a large output costs memory for those alone. ``on_notice`` is told, one
    line per file, when an older output's relative paths are resolved against the current
    folder.

    The table is compact, gathered a block of rows at a time (:class:`_Gathered`): text
    columns of a few distinct values (status, label, model, error, ...) are categorical,
    their categories sorted; ``path`` and text of many distinct values are Arrow-backed
    strings; ten million rows of :data:`SUMMARY_COLUMNS` hold about 1 GB, not 3. Raises
    :class:`SummaryError` naming what is wrong with a file that is not vmae's output."""
    import pandas as pd

    from .formats import UnknownFormatError

    def legacy(source: str) -> None:
        if on_notice is not None:
            on_notice(_legacy_notice(source))

    wanted = None if columns is None else {*columns, *REQUIRED_COLUMNS, "label", "error", "model"}
    gathered = _Gathered()
    for path in map(os.fspath, paths):
        names: dict[str, None] = {}  # the file's columns, in order (JSONL rows may differ)
        try:
            for frame in read_frames(path, wanted, on_legacy=legacy):
                names.update(dict.fromkeys(frame.columns))
                gathered.add(frame)
        except UnknownFormatError as exc:
            raise SummaryError(str(exc), path=path) from None
        except FileNotFoundError:
            raise SummaryError(f"{path}: no such file", path=path) from None
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SummaryError(f"{path}: not a vmae output ({first})", path=path) from None
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing and (len(names) or (wanted is not None and os.path.getsize(path))):
            raise SummaryError(
                f"{path}: not a vmae output (no {' or '.join(missing)} column)", path=path
            )
    # Each video once per model (its last row: a later file, or a later row, is newer): the
    # rows a later one repeats are left out as the columns are built, never copied after.
    _give_back()
    repeated = gathered.repeated()
    table = gathered.frame(~repeated if repeated.any() else None)
    del gathered
    _give_back()
    for column in (*REQUIRED_COLUMNS, "label", "error"):
        if column not in table:
            table[column] = pd.Categorical.from_codes([0] * len(table), [""])
    if "score" not in table or not pd.api.types.is_float_dtype(table["score"]):
        table["score"] = pd.to_numeric(table.get("score"), errors="coerce")
    say = on_notice or (lambda line: None)
    models = sorted(m for m in map(str, distinct(table["model"])) if m) if "model" in table else []
    if len(models) > 1:
        say(
            f"the rows hold {len(models)} models ({', '.join(models)}): each video is counted "
            "once per model"
        )
    if repeated.any():
        say(
            f"{int(repeated.sum())} rows repeat a video a later row has again (same model): "
            "the last one is counted"
        )
    return table


#: Distinct values a text column keeps as categories at most; a column with more (an error
#: message per video) is kept as Arrow-backed strings.
CATEGORIES_MAX = 1 << 16
#: Columns read as text whatever a file holds, an empty cell as ``""`` (as ``fillna("")
#: .astype(str)`` makes them).
TEXT_COLUMNS = ("label", "error")


class _Column:
    """One column of :func:`read_results`' table, gathered a table of rows at a time.

    Text is kept as codes into one list of the column's distinct values (categorical at the
    end, its categories sorted, so that sorting and grouping by it go as by its text), or as
    Arrow strings (``path``, and a column with more than :data:`CATEGORIES_MAX` values); a
    column that is not text in some table (numbers, lists, mixed values) is kept as pandas
    read it."""

    def __init__(self, name: str):
        self.name = name
        self.mode = "arrow" if name == "path" else "codes"  # then "arrow", or "series"
        self.names: dict[str, int] = {}  # text -> code
        self.parts: list[tuple[str, Any]] = []  # ("codes", array), ("arrow", array),
        # ("series", Series) or ("missing", rows)

    def missing(self, rows: int) -> None:
        """Rows that have no cell in this column."""
        if rows:
            self.parts.append(("missing", rows))

    def add(self, values: pd.Series) -> None:
        """A table's cells of this column."""
        import numpy as np
        import pyarrow.compute as pc

        if self.name == "score":
            self._series(_numbers(values))
            return
        if self.name in TEXT_COLUMNS:
            values = values.fillna("").astype(str)
        elif values.dtype == object and values.isna().all():
            self.missing(len(values))  # its type is the other tables' (JSON nulls)
            return
        text = _text(values) if self.mode != "series" else None
        if text is None:
            self._series(values)
            return
        if self.mode == "arrow":
            self.parts.append(("arrow", _lasting(text)))
            return
        coded = pc.dictionary_encode(text)
        codes = [self.names.setdefault(v, len(self.names)) for v in coded.dictionary.to_pylist()]
        if len(self.names) > CATEGORIES_MAX:
            self._as_arrow()
            self.parts.append(("arrow", _lasting(text)))
            return
        index = coded.indices.fill_null(len(codes)).to_numpy(zero_copy_only=False)
        self.parts.append(("codes", np.asarray([*codes, -1], _code_type(len(self.names)))[index]))

    def _series(self, values: pd.Series) -> None:
        if self.mode != "series":
            self.parts = [("series", self._part_series(p)) for p in self.parts]
            self.mode = "series"
        self.parts.append(("series", values.copy(deep=True)))  # its own memory (_lasting)

    def _as_arrow(self) -> None:
        self.parts = [("arrow", self._part_arrow(p)) for p in self.parts]
        self.mode = "arrow"

    def _categories(self) -> list[str]:
        return list(self.names)

    def _part_arrow(self, part: tuple[str, Any]) -> pa.Array:
        import pyarrow as pa

        kind, value = part
        if kind == "missing":
            return pa.nulls(value, pa.large_string())
        if kind == "codes":
            names = pa.array(self._categories(), pa.large_string())
            return names.take(pa.array(value, mask=value < 0))
        return value

    def _part_series(self, part: tuple[str, Any]) -> pd.Series:
        import numpy as np
        import pandas as pd

        kind, value = part
        if kind == "missing":
            return pd.Series(np.full(value, np.nan))
        if kind == "series":
            return value
        return _pandas_text(self._part_arrow(part))

    def values(self, keep: np.ndarray | None = None, *, release: bool = False) -> Any:
        """The column (its rows ``keep`` says, when given): a categorical, Arrow-backed
        strings, or what pandas read; with ``release``, each part is let go once used (Arrow
        strings are filtered a block at a time: memory never holds the column twice)."""
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        if self.mode == "series":
            values = pd.concat([self._part_series(p) for p in self.parts], ignore_index=True)
            return values if keep is None else values[keep].reset_index(drop=True)
        if self.mode == "arrow":
            parts = self.parts
            if release:
                self.parts = []
            chunks, start = [], 0
            for i, part in enumerate(parts):
                chunk = self._part_arrow(part).cast(pa.large_string())
                size = len(chunk)
                if keep is not None:
                    chunk = chunk.filter(pa.array(keep[start : start + size]))
                start += size
                if release:
                    parts[i] = ("missing", 0)  # its chunk freed, once filtered
                chunks.append(chunk)
            return _pandas_text(pa.chunked_array(chunks, pa.large_string()))
        names = self._categories()
        if self.name in TEXT_COLUMNS and any(kind == "missing" for kind, _ in self.parts):
            empty = self.names.setdefault("", len(self.names))  # "" where a file has none
            names = self._categories()
        else:
            empty = -1
        width = _code_type(len(names))
        parts = [v if kind == "codes" else np.full(v, empty, width) for kind, v in self.parts]
        codes = np.concatenate(parts or [np.zeros(0, width)])  # the widest part's type
        if keep is not None:
            codes = codes[keep]
        order = sorted(range(len(names)), key=names.__getitem__)
        rank = np.empty(len(names) + 1, codes.dtype)
        rank[order] = np.arange(len(names))
        rank[-1] = -1
        categories = pd.Index([names[i] for i in order], dtype=_text_dtype())
        return pd.Categorical.from_codes(rank[codes], categories)


class _Gathered:
    """The tables :func:`read_results` reads, gathered column by column (:class:`_Column`),
    with the digests of their paths: memory holds the compact columns and one table of rows
    as read."""

    def __init__(self) -> None:
        self.columns: dict[str, _Column] = {}
        self.rows = 0
        self.digests: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])  # hi, lo

    def add(self, frame: pd.DataFrame) -> None:
        import pandas as pd

        for name in frame.columns:
            if name not in self.columns:
                self.columns[name] = column = _Column(name)
                column.missing(self.rows)
            self.columns[name].add(frame[name])
        for name, column in self.columns.items():
            if name not in frame.columns:
                column.missing(len(frame))
        paths = frame["path"] if "path" in frame else pd.Series([""] * len(frame))
        for part, digest in zip(self.digests, _digests(paths), strict=True):
            part.append(digest)
        self.rows += len(frame)

    def repeated(self) -> np.ndarray:
        """Which rows a later row of the same video and model repeats (:func:`_repeats`)."""
        import numpy as np
        import pandas as pd

        halves = []
        for parts in self.digests:  # one half at a time: its parts freed as it is joined
            halves.append(np.concatenate(parts or [np.zeros(0, np.uint64)]))
            parts.clear()
        model = self.columns.get("model")
        models = model.values() if model else np.zeros(self.rows, np.int8)
        if isinstance(models, pd.Categorical):
            models = models.codes
        elif model:
            models = pd.factorize(models)[0]
        return _repeats(*halves, models)

    def frame(self, keep: np.ndarray | None = None) -> pd.DataFrame:
        """The table (only the rows ``keep`` says, when given), each column's parts freed
        once it is built."""
        import pandas as pd

        columns = {}
        for name in list(self.columns):
            columns[name] = self.columns.pop(name).values(keep, release=True)
        rows = self.rows if keep is None else int(keep.sum())
        return pd.DataFrame(columns, index=pd.RangeIndex(rows), copy=False)


def _give_back() -> None:
    """Hand the memory the blocks read and freed back to the system (Arrow's pool and
    glibc's heap keep it otherwise): what comes next grows from the table, not from the
    read's high-water mark."""
    import pyarrow as pa

    from .heap import HeapTrimmer

    pa.default_memory_pool().release_unused()
    HeapTrimmer(interval_s=0).trim()


def _lasting(text: pa.Array) -> pa.Array:
    """A block's text copied out of Arrow's default pool (mimalloc) into the C library's:
    what the table keeps for good then shares no pages with what a block's reading frees,
    so that the pool can give those back (ten million rows' reads left ~250 MB behind)."""
    import pyarrow as pa

    return pa.concat_arrays([text], memory_pool=pa.system_memory_pool())


def _code_type(names: int) -> type:
    """The smallest integer type that holds codes of ``names`` values, and -1."""
    import numpy as np

    return np.int8 if names < 128 else np.int16 if names < 32768 else np.int32


def _numbers(values: pd.Series) -> pd.Series:
    from .formats import numbers

    return numbers(values)


def _text(values: pd.Series) -> pa.Array | None:
    """A table's cells as an Arrow array of text, or ``None`` when they are not all text (or
    missing)."""
    import pandas as pd
    import pyarrow as pa

    if not (isinstance(values.dtype, pd.StringDtype) or values.dtype == object):
        return None
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    return None


def _text_dtype() -> Any:
    """The dtype pandas gives a column of text read by Arrow (``str`` from pandas 3)."""
    import pyarrow as pa

    return _pandas_text(pa.array([], pa.large_string())).dtype


def _pandas_text(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    """Arrow text as a pandas column, as Arrow's ``to_pandas`` makes it (Arrow-backed strings
    from pandas 3: no copy)."""
    import pyarrow as pa

    return pa.table({"values": array}).to_pandas()["values"]


#: Paths digested at once by :func:`_digests` (a block's Python strings at a time).
DIGEST_BLOCK_ROWS = 65536


def _digests(paths: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit digests of ``paths`` (:func:`~vmae_cli.rowindex.digest_keys`), a block
    at a time: two uint64 arrays."""
    import numpy as np

    from .rowindex import digest_keys

    n = len(paths)
    hi, lo = np.empty(n, np.uint64), np.empty(n, np.uint64)
    whole = paths.dtype == _text_dtype() and not paths.isna().any()
    for start in range(0, n, DIGEST_BLOCK_ROWS):
        block = paths.iloc[start : start + DIGEST_BLOCK_ROWS]
        # Arrow-backed text straight to UTF-8 bytes (what the digest takes), no str made.
        keys = _utf8(block) if whole else block.astype(str).tolist()
        hi[start : start + len(block)], lo[start : start + len(block)] = digest_keys(keys)
    return hi, lo


def _utf8(text: pd.Series) -> list[bytes]:
    """Arrow-backed text as its UTF-8 bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(arrow_text(text), pa.large_binary()).to_pylist()


def _repeated(table: pd.DataFrame) -> np.ndarray:
    """Which rows of ``table`` a later row of the same video and model repeats (what
    ``table.duplicated(["path", "model"], keep="last")`` says; :func:`_repeats`)."""
    import numpy as np
    import pandas as pd

    models = pd.factorize(table["model"])[0] if "model" in table else np.zeros(len(table), int)
    return _repeats(*_digests(table["path"]), models)


def _repeats(hi: np.ndarray, lo: np.ndarray, models: np.ndarray) -> np.ndarray:
    """Which rows a later row with the same path digest (``hi``, ``lo``) and model code
    repeats: 17 to 24 bytes a row, where a hash table of ten million path strings would hold
    them all again. One stable sort by ``hi`` finds the few rows that share it; only those
    are sorted by the whole key."""
    import numpy as np

    n = len(hi)
    repeated = np.zeros(n, dtype=bool)
    if n < 2:
        return repeated
    order = np.argsort(hi, kind="stable")
    ordered = hi[order]
    shared = np.flatnonzero(ordered[:-1] == ordered[1:])  # a row and the next share hi
    del ordered
    if not len(shared):
        return repeated
    among = np.zeros(n, dtype=bool)
    among[shared] = among[shared + 1] = True
    rows = order[among]  # in the order of hi, then of the rows (a stable sort)
    del order, among
    rows = rows[np.lexsort((models[rows], lo[rows], hi[rows]))]  # stable too
    same_as_next = (
        (hi[rows[:-1]] == hi[rows[1:]])
        & (lo[rows[:-1]] == lo[rows[1:]])
        & (models[rows[:-1]] == models[rows[1:]])
    )
    repeated[rows[:-1][same_as_next]] = True  # all but the last row of each key
    return repeated


def _legacy_notice(source: str) -> str:
    return (
        f"{source} was written by an older vmae: its relative paths are read as relative to "
        f"{os.getcwd()}"
    )


def by_status(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows per status, most first, with their share of all rows."""
    counts = _value_counts(rows["status"])
    return _with_share(counts.rename_axis("status").reset_index(name="videos"))


def by_label(rows: pd.DataFrame) -> pd.DataFrame:
    """Ok rows per top-1 label, most first, with the distribution of their scores; those
    whose label ``--min-score`` emptied count as ``(low confidence)``."""
    ok = _ok(rows, ["label", "score"])
    scores = ok.groupby("label", observed=True)["score"]
    table = scores.agg(
        videos="size",
        score_min="min",
        score_p10=lambda s: s.quantile(0.1),
        score_median="median",
        score_p90=lambda s: s.quantile(0.9),
        score_max="max",
    ).reset_index()
    table["label"] = _plain(table["label"])
    table = table.sort_values(["videos", "label"], ascending=[False, True])
    return _with_share(table.reset_index(drop=True))


def with_groups(rows: pd.DataFrame, label_map: LabelMap) -> pd.DataFrame:
    """``rows`` with the ``group`` of each ok row's top-1 label from ``label_map`` (for
    results classified without ``--label-map``; a row's own group is replaced)."""
    import numpy as np
    import pandas as pd

    ok = rows["status"] == "ok"
    labels = rows["label"]
    if isinstance(labels.dtype, pd.CategoricalDtype):
        # Each distinct label looked up once; the rows keep small codes.
        of_label = [label_map.group_of(label) if label else "" for label in labels.cat.categories]
        names = sorted({*of_label, ""})
        code = {name: i for i, name in enumerate(names)}
        table = np.asarray([*(code[g] for g in of_label), code[""]], np.int64)
        codes = table[labels.cat.codes.to_numpy()]
        codes[~ok.to_numpy()] = code[""]
        categories = pd.Index(names, dtype=labels.cat.categories.dtype)
        return rows.assign(group=pd.Categorical.from_codes(codes, categories))
    groups = labels.map(label_map.group_of).where(ok & (labels != ""), "")
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
    ok = _ok(rows, [c for c in ("group", "label", "group_score") if c in rows])
    grouped = ok.groupby("group", observed=True)
    table = grouped.agg(videos=("label", "size")).reset_index()
    table["group"] = _plain(table["group"])
    if "group_score" in ok:
        scores = pd.to_numeric(ok["group_score"], errors="coerce")
        table["group_score_median"] = table["group"].map(
            _keyed(scores.groupby(ok["group"], observed=True).median())
        )
    table["top_label"] = table["group"].map(_top_per_group(ok["group"], ok["label"])).fillna("")
    table = table.sort_values(["videos", "group"], ascending=[False, True])
    return _with_share(table.reset_index(drop=True))


def by_folder(rows: pd.DataFrame, depth: int = 1) -> pd.DataFrame:
    """Rows per folder ``depth`` levels below the folder all paths share (``.`` for videos
    right in it): videos, ok, failed, and the most frequent ok label."""
    import pandas as pd

    folders = pd.Series(_folders(rows["path"], depth))
    ok = (rows["status"] == "ok").to_numpy()
    table = pd.DataFrame({"folder": folders, "ok": ok})
    grouped = table.groupby("folder", observed=True)
    out = grouped.agg(videos=("ok", "size"), ok=("ok", "sum")).reset_index()
    out["failed"] = out["videos"] - out["ok"]
    labels = _ok(rows, ["label"])["label"].reset_index(drop=True)
    top = _top_per_group(folders[ok].reset_index(drop=True), labels)
    out["top_label"] = out["folder"].map(top).fillna("")
    return out.sort_values("folder").reset_index(drop=True)


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The ok rows, an empty label (emptied by ``--min-score``) shown as
    ``(low confidence)``."""
    return _ok(rows, list(rows.columns))


def _ok(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """:func:`ok_rows`, only ``columns`` of them (copied: ten million rows' paths are
    not)."""
    ok = _taken(rows, (rows["status"] == "ok").to_numpy(), columns)
    if "label" in ok:
        ok["label"] = low_confidence(ok["label"])
    return ok


def _taken(rows: pd.DataFrame, mask: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """``rows.loc[mask, columns]``, a column at a time (the rows' other columns, and the
    rows left out, never copied)."""
    import numpy as np
    import pandas as pd

    at = np.flatnonzero(mask)
    return pd.DataFrame({c: rows_at(rows[c], at) for c in columns}, index=rows.index[at])


def rows_at(values: pd.Series, at: np.ndarray) -> pd.Series:
    """``values.iloc[at]`` (positions), Arrow-backed text taken a chunk at a time
    (:func:`take_text`)."""
    import pandas as pd

    if values.dtype != _text_dtype() or isinstance(values.dtype, pd.CategoricalDtype):
        return values.iloc[at]
    taken = _pandas_text(take_text(arrow_text(values), at)).rename(values.name)
    taken.index = values.index[at]
    return taken


def take_text(text: pa.ChunkedArray, at: np.ndarray) -> pa.Array:
    """``text.take(at)``, chunk by chunk: Arrow takes from a column of many chunks by
    joining them first (the whole path column again: 600 MB for ten million rows)."""
    import numpy as np
    import pyarrow as pa

    at = np.asarray(at, dtype=np.int64)
    if text.num_chunks == 1:
        return text.chunk(0).take(pa.array(at))
    order = np.argsort(at, kind="stable")
    ordered = at[order]
    starts = np.cumsum([0, *(len(c) for c in text.chunks)])
    which = np.searchsorted(starts, ordered, side="right") - 1
    pieces = [
        text.chunk(which[p[0]]).take(pa.array(ordered[p] - starts[which[p[0]]]))
        for p in np.split(np.arange(len(ordered)), np.flatnonzero(np.diff(which)) + 1)
        if len(p)
    ]
    taken = pa.concat_arrays(pieces) if pieces else pa.array([], text.type)
    if (order == np.arange(len(order))).all():
        return taken
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return taken.take(pa.array(back))  # in the order asked


def low_confidence(labels: pd.Series) -> pd.Series:
    """Labels, an empty one (emptied by ``--min-score``) as ``(low confidence)``."""
    import pandas as pd

    if isinstance(labels.dtype, pd.CategoricalDtype):
        return _recoded(labels, lambda label: label or LOW_CONFIDENCE_MARK)
    return labels.where(labels != "", LOW_CONFIDENCE_MARK)


def failed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that are not ok: path, status, error."""
    bad = _taken(rows, (rows["status"] != "ok").to_numpy(), ["path", "status", "error"])
    bad = bad.assign(status=_plain(bad["status"]), error=_plain(bad["error"]))
    return bad.sort_values(["status", "path"]).reset_index(drop=True)


def distinct(values: pd.Series) -> list[Any]:
    """The values a column holds, each once, none missing (a categorical column's categories
    that some row has)."""
    import numpy as np
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        return list(values.cat.categories[np.unique(codes[codes >= 0])])
    return list(values.dropna().unique())


def arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """A column of text as Arrow strings (Arrow-backed strings as they are, no copy)."""
    import pyarrow as pa

    given = getattr(values.array, "__arrow_array__", None)
    text = given() if given is not None else pa.array(values, from_pandas=True)
    if isinstance(text, pa.Array):
        text = pa.chunked_array([text])
    if pa.types.is_dictionary(text.type):
        text = text.cast(text.type.value_type)
    return text


def codes_of(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """A column as integer codes (-1 for none) and the values they stand for: a categorical
    column's own, or codes in the order values first appear."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


def _value_counts(values: pd.Series) -> pd.Series:
    """``values.value_counts()`` as pandas counts text: most first, ties in the order the
    values first appear, none missing; for a categorical column too (whose own counts list
    every category, ties in the categories' order)."""
    import pandas as pd

    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values.value_counts()
    codes = values.cat.codes.to_numpy()
    counts = pd.Series(codes[codes >= 0]).value_counts(sort=False)  # as first seen
    names = values.cat.categories[counts.index.to_numpy()]
    found = pd.Series(counts.to_numpy(), index=names.rename(values.name), name="count")
    return found.sort_values(ascending=False, kind="stable")


def _top_per_group(groups: pd.Series, labels: pd.Series) -> pd.Series:
    """The most frequent label of each group, ties to the label the group has first: what
    ``labels.groupby(groups).agg(lambda s: s.value_counts().index[0])`` gives, in one pass
    over codes (no Python call per group; a collection has thousands of folders)."""
    import numpy as np
    import pandas as pd

    group, group_names = codes_of(groups)
    label, label_names = codes_of(labels)
    given = (group >= 0) & (label >= 0)
    width = max(len(label_names), 1)
    pairs = group[given].astype(np.int64) * width + label[given]
    counts = pd.Series(pairs).value_counts(sort=False)  # in the order pairs first appear
    keys, n = counts.index.to_numpy(), counts.to_numpy()
    of_group = keys // width
    order = np.lexsort((np.arange(len(keys)), -n, of_group))
    first = order[np.r_[True, of_group[order][1:] != of_group[order][:-1]]] if len(keys) else order
    return pd.Series(
        np.asarray(label_names, dtype=object)[keys[first] % width],
        index=pd.Index(np.asarray(group_names, dtype=object)[of_group[first]]),
        dtype=object,
    )


def _recoded(values: pd.Series, change: Callable[[Any], Any]) -> pd.Series:
    """A categorical column with ``change`` applied to each category (two may become one),
    its categories sorted again."""
    import numpy as np
    import pandas as pd

    old = values.cat.categories
    changed = [change(v) for v in old]
    names = sorted(set(changed))
    code = {name: i for i, name in enumerate(names)}
    table = np.asarray([*(code[c] for c in changed), -1], np.int64)
    codes = table[values.cat.codes.to_numpy()]
    categories = pd.Index(names, dtype=old.dtype)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories), index=values.index, name=values.name
    )


def _plain(values: pd.Series) -> pd.Series:
    """A categorical column as the text it holds (the dtype pandas reads text as)."""
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.astype(values.cat.categories.dtype)
    return values


def _keyed(values: pd.Series) -> pd.Series:
    """``values`` with plain (not categorical) keys, for ``Series.map``."""
    import numpy as np
    import pandas as pd

    return pd.Series(values.to_numpy(), index=pd.Index(np.asarray(values.index, dtype=object)))


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


#: Paths whose folders :func:`_folders` works out at once (their heads' text at a time).
FOLDER_BLOCK_ROWS = 1 << 20


def _folders(paths: pd.Series, depth: int) -> pd.Categorical:
    """Each path's folder ``depth`` levels below the folder all of them share, worked out
    once per distinct folder (a collection has thousands of folders, not millions), a block
    of paths at a time."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    codes = np.empty(len(paths), np.int64)
    heads: dict[str, int] = {}  # in the order they first appear
    arrow = paths.dtype == _text_dtype()
    for start in range(0, len(paths), FOLDER_BLOCK_ROWS):
        block = paths.iloc[start : start + FOLDER_BLOCK_ROWS].astype(str)
        # "/x/a.mp4" -> "/x/", "/a.mp4" -> "/"; a name without a folder stays as it is.
        if arrow:  # Arrow-backed text: by Arrow's own kernels, without pandas' regex checks
            coded = pc.dictionary_encode(
                pc.replace_substring_regex(arrow_text(block), r"/[^/]*$", "/").combine_chunks()
            )
            local = coded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            found = coded.dictionary.to_pylist()
        else:
            local, found = pd.factorize(block.str.replace(r"/[^/]*$", "/", regex=True))
        known = np.asarray([*(heads.setdefault(h, len(heads)) for h in found), -1], np.int64)
        codes[start : start + len(block)] = known[local]
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
