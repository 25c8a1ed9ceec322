"""The row formats: each one class that writes its rows and reads them back.

A small registry (:data:`FORMATS`) maps a format's name to its class. Each class is the one
home of its format: its name and file extensions, its columns, whether a new file starts with
a byte-order mark, how a row is written (flushed as soon as it is known), how the file is
stored while a run writes it (:meth:`store`: a locked file appended to, see
:mod:`vmae_cli.output`), and how its rows are read back: record by record for a resumed run
(``scan``, into a :class:`~vmae_cli.rowindex.RowIndex`; ``records`` and ``values`` one by
one for a rewrite), as dicts (``read``: all rows, or some videos' only) or as pandas tables
of a block of rows each (``frames``: memory holds a block, whatever the file's length) for
``summarize`` and ``report``. Formula escapes are written and undone in :class:`CsvFormat`
alone, and every ``path`` read back is the video's identity
(:func:`vmae_cli.identity.key_of_cell`).

The format of an output comes from the ``format`` option and the file's extension
(:func:`resolve_format`); :func:`read_rows`, :func:`read_frames` and :func:`read_frame` read
any output by its extension.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import stat
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar

# The formats' names live in `choices` (what `vmae --help` imports).
from .choices import FORMAT_CSV, FORMAT_JSONL, FORMAT_PARQUET
from .errors import VmaeError
from .identity import is_legacy_cell, key_of_cell, path_cell
from .output import (
    BOM,
    CHUNK_BYTES,
    OutputFile,
    OutputMismatchError,
    Scan,
    exact_scan,
    is_row,
    other_columns,
    parquet_rows,
    read_chunks,
    remove_stale_temporaries,
    row_mask,
    temporary_name,
)
from .results import Prediction, WindowRow

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from .rowindex import RowBlock, RowIndex, RowIndexBuilder

#: What a writer writes: a video's prediction or a window's row.
Record = Prediction | WindowRow

#: CSV columns before the top-k columns and after them.
CSV_HEAD = ("path", "status", "error", "label", "score")
CSV_TAIL = (
    "frames_decoded",
    "frames_reported",
    "duration_s",
    "fps",
    "width",
    "height",
    "rotation",
    "decoder",
    "notes",
    "protocol",
    "model",
    "model_revision",
    "size_bytes",
    "mtime_ns",
)
#: JSONL keys, in order.
JSONL_KEYS = (*CSV_HEAD, "top_k", *CSV_TAIL, "mtime", "frame_indices")
#: The frames the model saw, last in a CSV row, as space-separated indices (what `vmae report`
#: decodes again).
CSV_TAIL = (*CSV_TAIL, "frame_indices")
#: What produced a video row's labels when they are not the checkpoint's own (text labels, a
#: fitted head: :func:`vmae_cli.labelsource.labels_from`), after ``model_revision``; a run
#: with the checkpoint's labels writes no such column, as outputs before it had none.
LABELS_FROM = "labels_from"
#: The runtime and precision that classified a video (``openvino int8``), after
#: ``model_revision`` (and ``labels_from``) in the rows of a ``dtype="int8"`` run only: where
#: the CPU has no int8 dot products it runs float instead, and the rows say which.
RUNTIME = "runtime"
#: What a segmented video's row adds (``--segments``), after its label and scores.
SEGMENTED_COLUMNS = ("windows", "timeline")


@dataclass(frozen=True)
class Table:
    """The columns of one kind of row: those before the top-k label/score pairs and those
    after them (CSV), and the keys of a JSON line. A record is anything with ``to_dict()``
    giving these keys, ``path`` and ``top_k`` (a list of ``{label, score}``) among them."""

    head: tuple[str, ...]
    tail: tuple[str, ...]
    keys: tuple[str, ...]

    def plus(self, columns: tuple[str, ...], after: str = "score") -> Table:
        """This table with ``columns`` after its column ``after``: after ``score``, what
        ``--label-map`` and ``--min-score`` add (:meth:`vmae_cli.scoring.Scoring.columns`);
        after ``model_revision``, :data:`LABELS_FROM` where the labels are not the
        checkpoint's own."""
        if not columns:
            return self

        def insert(names: tuple[str, ...]) -> tuple[str, ...]:
            if after not in names:
                return names
            at = names.index(after) + 1
            return (*names[:at], *columns, *names[at:])

        return Table(insert(self.head), insert(self.tail), insert(self.keys))


#: One row per video (the main output).
VIDEO_ROWS = Table(CSV_HEAD, CSV_TAIL, JSONL_KEYS)
#: One row per video of a segmented run: its window count and timeline as well.
SEGMENTED_VIDEO_ROWS = Table(
    CSV_HEAD,
    (*SEGMENTED_COLUMNS, *CSV_TAIL),
    (*CSV_HEAD, "top_k", *SEGMENTED_COLUMNS, *JSONL_KEYS[len(CSV_HEAD) + 1 :]),
)
#: One row per window (``--segments-out``, :class:`~vmae_cli.results.WindowRow`).
WINDOW_ROWS = Table(
    ("path", "window", "status", "error", "label", "score"),
    ("start_frame", "end_frame", "start_s", "end_s", "frame_indices"),
    (
        "path",
        "window",
        "status",
        "error",
        "label",
        "score",
        "top_k",
        "start_frame",
        "end_frame",
        "start_s",
        "end_s",
        "frame_indices",
    ),
)

#: Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Digits kept for probabilities: enough to tell classes apart, short enough to read.
SCORE_DIGITS = 6
#: How a CSV cell joins a list of labels (a multi-label model's ``labels``).
LABELS_SEPARATOR = "; "


#: The format of rows on stdout (or a pipe or device) when ``--format`` is not given.
DEFAULT_FORMAT = FORMAT_CSV


class UnknownFormatError(VmaeError, ValueError):
    """The output format (given or implied by the extension) is not one of :data:`FORMATS`,
    or the ``format`` option contradicts the output file's extension."""


class ForeignRowsError(VmaeError, ValueError):
    """Rows vmae did not write: a ``path`` that is not text, a number column holding
    something that is not a finite number (``inf``, ``nan``, a word)."""


#: Columns that hold whole numbers, and those that hold real numbers, in every format (text
#: cells in CSV; their Parquet types: :func:`_arrow_schema`).
INTEGER_COLUMNS = (
    "frames_decoded",
    "frames_reported",
    "width",
    "height",
    "rotation",
    "size_bytes",
    "mtime_ns",
    "windows",
    "window",
    "start_frame",
    "end_frame",
)
FLOAT_COLUMNS = ("score", "group_score", "duration_s", "fps", "mtime", "start_s", "end_s")
#: A row read back must hold a finite number in these, or nothing.
NUMBER_COLUMNS = (*FLOAT_COLUMNS, *INTEGER_COLUMNS)


def _foreign(source: str, where: str, column: str, value: Any, why: str) -> ForeignRowsError:
    value = value.item() if hasattr(value, "item") else value  # numpy's scalars as Python's
    return ForeignRowsError(
        f"{source}, {where}: {column} {value!r} is {why}", value=value, path=source
    )


def check_row(source: str, number: int | None, row: dict[str, Any]) -> None:
    """Raise :class:`ForeignRowsError` for a row vmae cannot have written (see there); the
    row is named by its ``number``, or by its path when that is ``None``."""
    path = row.get("path")
    where = f"row {number}" if number is not None else f"the row of {path!r}"
    if path is not None and not isinstance(path, str):
        raise _foreign(source, where, "path", path, "not text")
    for column in NUMBER_COLUMNS:
        value = row.get(column)
        if value is None or value == "":
            continue
        try:
            finite = not isinstance(value, bool) and math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise _foreign(source, where, column, value, "not a finite number")


def check_frame(source: str, table: pd.DataFrame, *, first: int = 1) -> None:
    """:func:`check_row` for a whole table (vectorised), its rows numbered from ``first``."""
    import numpy as np
    import pandas as pd

    # A column of a string or number dtype is checked by its dtype, not cell by cell: a
    # 10,000,000-row output is checked in a second, not a minute.
    if "path" in table and not isinstance(table["path"].dtype, pd.StringDtype):
        text = table["path"].map(lambda v: v is None or isinstance(v, str))
        if not text.all():
            at = int((~text).to_numpy().argmax())
            raise _foreign(source, f"row {first + at}", "path", table["path"].iloc[at], "not text")
    for column in NUMBER_COLUMNS:
        if column not in table:
            continue
        cells = table[column]
        if pd.api.types.is_numeric_dtype(cells.dtype) and not pd.api.types.is_bool_dtype(
            cells.dtype
        ):
            values = cells.to_numpy(dtype=float, na_value=np.nan)
            bad = pd.Series(np.isinf(values), index=cells.index)
        else:
            given = cells.notna() & (cells.astype(str) != "")
            values = _arrow_floats(cells.where(given))
            if values is None:
                values = pd.to_numeric(cells.where(given), errors="coerce").astype(float)
            bad = given & ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            at = int(bad.to_numpy().argmax())
            where = f"row {first + at}"
            raise _foreign(source, where, column, cells.iloc[at], "not a finite number")


#: Rows per table :meth:`CsvFormat.frames` and its kin give at once: memory holds this many
#: rows' cells read, whatever the file's length.
FRAME_ROWS = 65536


def _csv_header(path: str) -> list[str]:
    """A CSV file's column names (its first line, BOM left out)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return next(csv.reader([f.readline()]), [])


def _arrow_csv_frames(path: str, keep: set[str] | None) -> Iterator[pd.DataFrame]:
    """A CSV file's columns ``keep`` (all when None) as text cells, an empty cell as ``""``,
    read by Arrow's streaming reader into Arrow-backed strings about :data:`FRAME_ROWS` rows
    at a time: a 10,000,000-row output in a fraction of the time pandas' reader takes, in
    the memory of a block. At least one table (with no rows when the file has none)."""
    import pyarrow.csv as pacsv

    names = [c for c in _csv_header(path) if keep is None or c in keep]
    if not names:
        raise ValueError("no column to read")
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=_arrow_text_cells(names),
    )
    given = False
    for block in _blocks(reader, FRAME_ROWS):
        given = True
        yield block.to_pandas()
    if not given:
        yield reader.schema.empty_table().to_pandas()


def _arrow_csv_picked(
    path: str, keep: set[str] | None, paths: Collection[str]
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """:meth:`CsvFormat.read` of the rows whose ``path`` is among ``paths``, a block at a
    time by Arrow's streaming reader: each block's picked rows and how many rows it held
    (raises ``ValueError`` or :class:`_NotFast` where Arrow must not be trusted: the caller
    reads the rest record by record)."""
    import pyarrow.csv as pacsv

    header = _csv_header(path)
    if len(set(header)) != len(header) or "path" not in header:
        raise _NotFast  # csv.DictReader keeps a repeated column's last cell
    names = [c for c in header if keep is None or c in keep or c == "path"]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=_arrow_text_cells(names),
    )
    wanted = _identities(paths)
    for block in _blocks(reader, FRAME_ROWS):
        cells = block.column("path")
        escaped = [unescape(v) for v in cells.to_pylist()] if _any_escaped(cells) else cells
        picked = [
            {k: unescape(v) for k, v in row.items() if keep is None or k in keep}
            for row in block.filter(_picked(escaped, wanted)).to_pylist()
        ]
        yield picked, block.num_rows


def _any_escaped(cells: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a column of CSV text cells holds a formula escape."""
    import pyarrow.compute as pc

    return bool(pc.any(pc.starts_with(cells, "'")).as_py())


def _pandas_csv_frames(path: str, keep: set[str] | None, skip: int) -> Iterator[pd.DataFrame]:
    """:func:`_arrow_csv_frames` by pandas' reader, for what Arrow will not read as asked (a
    ragged or oddly quoted file), the first ``skip`` rows (those Arrow gave) left out."""
    import pandas as pd

    options: dict[str, Any] = {
        "encoding": "utf-8-sig",
        "dtype": str,
        "keep_default_na": False,
        "usecols": None if keep is None else (lambda c: c in keep),
    }
    given = False
    with pd.read_csv(path, chunksize=FRAME_ROWS, **options) as reader:
        for table in reader:
            if skip >= len(table):
                skip -= len(table)
                continue
            given = True
            yield table.iloc[skip:].reset_index(drop=True)
            skip = 0
    if not given:
        yield pd.read_csv(path, nrows=0, **options)


def _undo_escapes(table: pd.DataFrame) -> pd.DataFrame:
    """``table``'s text cells with their formula escapes undone (in place)."""
    for column in table.columns:
        cells = table[column]
        escaped = cells.str.startswith("'", na=False)
        if escaped.any():
            table.loc[escaped, column] = cells[escaped].map(unescape)
    return table


def numbers(cells: pd.Series) -> pd.Series:
    """``pd.to_numeric(cells, errors="coerce")``: a column's cells as numbers, ``NaN`` where
    a cell is empty or no number; read by Arrow where it can (:func:`_arrow_floats`), by
    pandas otherwise, and for a column of whole numbers (which pandas makes integers)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    found = _arrow_floats(cells)
    if found is not None and len(found):
        values = pa.array(found, from_pandas=True)
        if values.null_count or not pc.all(pc.equal(pc.round(values), values)).as_py():
            return found
    return pd.to_numeric(cells, errors="coerce")


def _arrow_floats(cells: pd.Series) -> pd.Series | None:
    """A column of Arrow-backed text as floats (an empty cell as ``NaN``), read by Arrow ten
    times faster than by pandas, to the same doubles (both round correctly); ``None`` where
    Arrow reads a cell as no number (pandas may: ``" 2"``) or the cells are not such
    text."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (isinstance(cells.dtype, pd.StringDtype) and cells.dtype.storage == "pyarrow"):
        return None
    text = pa.array(cells)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
    try:
        values = pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    found = values.to_numpy(zero_copy_only=False)
    return pd.Series(found, index=cells.index, name=cells.name)


def _arrow_text_cells(names: list[str]) -> pacsv.ConvertOptions:
    """How Arrow reads the columns ``names`` of a vmae CSV, for resume and for summaries
    alike: every cell as the text it holds (numbers too: the caller converts them), an empty
    cell as ``""``, not a null."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        include_columns=names,
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )


def split_csv_records(data: bytes) -> tuple[list[bytes], bytes]:
    """Split CSV bytes into complete records (each ending in a newline outside quotes) and the
    incomplete tail (empty when the file ends cleanly).

    ``"`` and ``\\n`` are ASCII and never part of a multi-byte UTF-8 character, so counting
    them on bytes is exact; a doubled quote inside a field toggles twice and changes nothing.
    """
    records: list[bytes] = []
    start = 0
    pending_quotes = 0
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        pending_quotes += data.count(b'"', pos, nl)
        pos = nl + 1
        if pending_quotes % 2 == 0:
            records.append(data[start:pos])
            start = pos
            pending_quotes = 0
    return records, data[start:]


def iter_csv_records(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The complete records of CSV bytes given a chunk at a time (as :func:`split_csv_records`
    splits them); an incomplete tail is left out. Linear however records fall across chunks."""
    parts: list[bytes] = []  # the record in progress, from earlier chunks
    quotes = 0
    for chunk in chunks:
        start = pos = 0
        while (nl := chunk.find(b"\n", pos)) >= 0:
            quotes += chunk.count(b'"', pos, nl)
            pos = nl + 1
            if quotes % 2 == 0:
                if parts:
                    parts.append(chunk[start:pos])
                    yield b"".join(parts)
                    parts = []
                else:
                    yield chunk[start:pos]
                start, quotes = pos, 0
        quotes += chunk.count(b'"', pos)
        if start < len(chunk):
            parts.append(chunk[start:])


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The complete lines (each ending in a newline) of bytes given a chunk at a time; an
    incomplete last line is left out."""
    parts: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            if parts:
                parts.append(chunk[start : nl + 1])
                yield b"".join(parts)
                parts = []
            else:
                yield chunk[start : nl + 1]
            start = nl + 1
        if start < len(chunk):
            parts.append(chunk[start:])


def csv_columns(header: bytes) -> list[str]:
    """The column names of a CSV header record."""
    return next(csv.reader(io.StringIO(header.decode("utf-8", "replace"), newline="")), [])


def neutralize_formula(value: str) -> str:
    """Prefix ``'`` to text a spreadsheet would evaluate as a formula, and to text that starts
    with ``'`` already, so that :func:`unescape` gives back exactly what was written."""
    return "'" + value if value.startswith(_ESCAPED_PREFIXES) else value


def unescape(cell: str) -> str:
    """A CSV cell as it was before :func:`neutralize_formula` (``'=x`` -> ``=x``,
    ``''x`` -> ``'x``); other cells as they are."""
    if len(cell) > 1 and cell[0] == "'" and cell.startswith(_ESCAPED_PREFIXES, 1):
        return cell[1:]
    return cell


#: What neutralize_formula prefixes: formulas, and the escape character itself.
_ESCAPED_PREFIXES = (*FORMULA_PREFIXES, "'")


def read_small_csv(
    path: str | os.PathLike[str], columns: tuple[str, ...], what: str
) -> list[tuple[int, tuple[str, ...]]]:
    """The cells of ``columns`` in each record of a small CSV file a person wrote or vmae
    did (a label map, ``fit-head``'s examples): UTF-8 with or without a byte-order mark, a
    header naming the columns (blanks around the names allowed, other columns ignored), the
    formula escapes vmae writes undone (:func:`unescape`); each record with its line number
    (2 for the first). Raises :class:`ValueError` with one line naming ``what`` (``"the label
    map"``) for a file that cannot be read or lacks a column."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {what} {source}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    names = [c.strip() for c in reader.fieldnames or []]
    if not all(c in names for c in columns):
        raise ValueError(
            f"{what} {source} needs a header with the columns {' and '.join(columns)} "
            f"(it has: {', '.join(names) or 'nothing'})"
        )
    reader.fieldnames = names
    return [
        (line, tuple(unescape(record.get(c) or "") for c in columns))
        for line, record in enumerate(reader, start=2)
    ]


def write_csv_table(
    stream: IO[str],
    columns: Iterable[str],
    rows: Iterable[Iterable[Any]],
    *,
    escape_formulas: bool = True,
) -> None:
    """A table of vmae's own making (``vmae labels``, ``vmae summarize --format csv``) as CSV
    on ``stream``, under the rule every CSV of vmae follows: text cells a spreadsheet would
    run get the ``'`` prefix of :func:`neutralize_formula` unless ``escape_formulas`` is
    off."""

    def cell(value: Any) -> Any:
        return neutralize_formula(value) if escape_formulas and isinstance(value, str) else value

    out = csv.writer(stream, lineterminator="\n")
    out.writerow([cell(c) for c in columns])
    out.writerows([cell(v) for v in row] for row in rows)


def _score(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, SCORE_DIGITS)


def _cells(p: Record) -> dict[str, Any]:
    """What every format writes of ``p``: its values, the path as its identity cell and the
    scores rounded."""
    d = p.to_dict()
    d["path"] = path_cell(d["path"])
    d["score"] = _score(d["score"])
    d["group_score"] = _score(d.get("group_score"))
    return d


class CsvFormat:
    """Comma-separated values with a header row, RFC 4180 quoting, UTF-8.

    Text cells that start with ``= + - @`` (or tab / CR) get a leading ``'`` so a spreadsheet
    shows them instead of running them (and so do cells starting with ``'``, so the escape
    can be undone exactly); pass ``escape_formulas=False`` to keep them raw.
    """

    name: ClassVar[str] = FORMAT_CSV
    extension: ClassVar[str] = ".csv"
    extensions: ClassVar[tuple[str, ...]] = (".csv",)
    #: A new CSV file starts with a UTF-8 byte-order mark so that spreadsheets read it as
    #: UTF-8 (not on stdout: a pipe's reader does not expect one).
    bom: ClassVar[bool] = True

    def __init__(
        self,
        stream: IO[str],
        *,
        top_k: int = 1,
        escape_formulas: bool = True,
        write_header: bool = True,
        table: Table = VIDEO_ROWS,
    ):
        self.stream = stream
        self.top_k = top_k if top_k > 1 else 0
        self.escape_formulas = escape_formulas
        self.columns = self.columns_for(top_k, table)
        # CRLF as RFC 4180 says: the csv module quotes a cell only when it holds a character
        # of the line terminator, so with "\n" alone a "\r" in a file name went unquoted
        # and split the row for every CSV reader.
        self._csv = csv.writer(stream, lineterminator="\r\n")
        if write_header:
            self._csv.writerow(self.columns)
            self.stream.flush()

    @staticmethod
    def columns_for(top_k: int, table: Table = VIDEO_ROWS) -> list[str]:
        """The header this format writes for ``top_k`` (label/score pairs only when K > 1)."""
        columns = list(table.head)
        for i in range(1, (top_k if top_k > 1 else 0) + 1):
            columns += [f"label_{i}", f"score_{i}"]
        return columns + list(table.tail)

    @classmethod
    def store(cls, path: str) -> OutputFile:
        """The file a run appends this format's rows to (locked, resumable)."""
        return OutputFile(path, cls)

    @staticmethod
    def records(chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The complete records of a CSV file's bytes (a torn tail left out)."""
        return iter_csv_records(chunks)

    @staticmethod
    def values(columns: list[str] | None, record: bytes) -> dict[str, Any] | None:
        """One record's cells by column, escapes undone; ``None`` for a record that is not
        a row of ``columns`` (damaged: its video is redone)."""
        text = record.decode("utf-8", "replace")
        cells = next(csv.reader(io.StringIO(text, newline="")), None)
        if columns is None or cells is None or len(cells) != len(columns):
            return None
        return dict(zip(columns, map(unescape, cells), strict=True))

    @staticmethod
    def scan(fd: int, size: int, builder: RowIndexBuilder) -> Scan:
        """Read a CSV file written by this class back for resume: its header, and its rows
        into ``builder``, a block at a time.

        Arrow's CSV reader reads the columns resume needs (fast) of a file with
        :data:`ARROW_MIN_BYTES` of rows or more (a smaller one is read record by record, which
        costs less than importing Arrow); a file it reads otherwise
        than record by record would (a cell that is not UTF-8, a record with other cells
        than the header's, a record torn inside a quoted cell) is read record by record
        instead (:func:`~vmae_cli.output.exact_scan`). Raises :class:`OutputMismatchError`
        for a CSV without a ``path`` column.
        """
        bom = len(BOM) if os.pread(fd, len(BOM), 0) == BOM else 0
        header = next(iter_csv_records(read_chunks(fd, bom, size, TAIL_BYTES)), None)
        if header is None:
            return Scan(None, None, 0, 0, 0)  # nothing whole: the file starts anew
        columns = csv_columns(header)
        if "path" not in columns:
            raise OutputMismatchError("the existing file is not a vmae CSV (no path column)")
        body = bom + len(header)
        if size - body >= ARROW_MIN_BYTES:
            mark = builder.mark()
            try:
                return _arrow_csv_scan(fd, size, builder, header, columns, body)
            except (ArithmeticError, ValueError, _NotFast):  # pyarrow's errors are ValueErrors
                builder.rollback(mark)
        return exact_scan(CsvFormat, fd, size, builder, header=header, columns=columns, body=body)

    @staticmethod
    def encode(columns: list[str], values: dict[str, Any]) -> bytes:
        """One record of ``values`` (as :meth:`values` gives them) under ``columns``."""
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(
            [neutralize_formula(v) if isinstance(v, str) else v for v in map(values.get, columns)]
        )
        return out.getvalue().encode("utf-8")

    @staticmethod
    def read(
        path: str, columns: Iterable[str] | None = None, *, paths: Collection[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of a CSV file written by this class, one dict of text cells at a time,
        escapes undone (only ``columns`` when given). With ``paths``, the rows whose ``path``
        is not among them (as identities) are skipped a block at a time by Arrow's reader,
        never made dicts (record by record where Arrow would read the file otherwise)."""
        keep = None if columns is None else set(columns)
        given = 0
        if paths is not None:
            try:
                for rows, read in _arrow_csv_picked(path, keep, paths):
                    yield from rows
                    given += read
                return
            except (ValueError, OSError, UnicodeDecodeError, _NotFast):
                pass
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in itertools.islice(csv.DictReader(f), given, None):
                yield {
                    k: unescape(v) if isinstance(v, str) else v
                    for k, v in row.items()
                    if keep is None or k in keep
                }

    @staticmethod
    def frames(path: str, columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """A CSV file of this class as tables of text cells, escapes undone, about
        :data:`FRAME_ROWS` rows at a time (at least one table).

        Arrow's streaming reader reads it; where Arrow will not read the file as asked (a
        ragged or oddly quoted file), pandas' reader reads the rest, or refuses it, as it
        always did."""
        keep = None if columns is None else set(columns)
        given = 0
        try:
            for table in _arrow_csv_frames(path, keep):
                yield _undo_escapes(table)
                given += len(table)
            return
        except (ValueError, OSError, UnicodeDecodeError):  # pyarrow's errors are ValueErrors
            pass
        for table in _pandas_csv_frames(path, keep, given):
            yield _undo_escapes(table)

    @classmethod
    def frame(cls, path: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """A CSV file of this class as one table of text cells, escapes undone."""
        return _concat(cls.frames(path, columns))

    def _text(self, value: str) -> str:
        return neutralize_formula(value) if self.escape_formulas else value

    def row(self, p: Record) -> list[Any]:
        """The CSV cells for ``p``, in :attr:`columns` order."""
        d = _cells(p)
        if d.get("labels") is not None:
            d["labels"] = LABELS_SEPARATOR.join(d["labels"])
        if "frame_indices" in d:
            d["frame_indices"] = " ".join(map(str, d["frame_indices"])) or None
        best = d["top_k"]
        for i in range(1, self.top_k + 1):
            ls = best[i - 1] if i <= len(best) else None
            d[f"label_{i}"] = ls["label"] if ls else ""
            d[f"score_{i}"] = _score(ls["score"]) if ls else None
        cells = []
        for col in self.columns:
            v = d.get(col)
            if v is None:
                cells.append("")
            elif isinstance(v, str):
                cells.append(self._text(v))
            else:
                cells.append(v)
        return cells

    def write(self, p: Record) -> None:
        """Write and flush one row."""
        self._csv.writerow(self.row(p))
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream (the caller owns it)."""
        self.stream.flush()


#: The columns resume reads of a row; the others are copied as they are, never parsed.
RESUME_COLUMNS = (
    "path",
    "status",
    "model",
    "protocol",
    "model_revision",
    LABELS_FROM,
    "size_bytes",
    "mtime_ns",
    "windows",
    "window",
)
#: Bytes of CSV Arrow parses at once. It holds several such blocks in flight: larger ones read
#: no faster and hold a hundred megabytes more.
ARROW_BLOCK_BYTES = 1 << 20
#: A CSV with fewer bytes of rows is read back record by record: importing pyarrow (and the
#: pandas it imports to fill nulls) costs about 0.5 s of CPU, what reading some 25,000 rows one
#: by one costs (issue 26: a cron job's ``--resume`` over a small output).
ARROW_MIN_BYTES = 2 << 20
#: Bytes read first from a file's end to find its last newline (a record is far shorter).
TAIL_BYTES = 1 << 16
#: What makes a ``path`` cell maybe not an identity (:func:`~vmae_cli.identity.
#: is_legacy_cell`, or a formula escape): not absolute, or a part that normalising changes.
_MAYBE_LEGACY = r"^[^/]|^$|//|/\.\.?(?:/|$)|./$"


class _NotFast(Exception):
    """The fast reader cannot read this file as the record-by-record one would."""


class _Slice:
    """Bytes ``start``..``stop`` of a descriptor as a file for Arrow, counting the quotes
    it hands out (an odd count: the last record was torn inside a quoted cell)."""

    def __init__(self, fd: int, start: int, stop: int):
        self.fd, self.offset, self.stop = fd, start, stop
        self.quotes = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        left = self.stop - self.offset
        size = left if size is None or size < 0 else min(size, left)
        data = os.pread(self.fd, size, self.offset) if size > 0 else b""
        self.offset += len(data)
        self.quotes += data.count(b'"')
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _end_of_records(fd: int, start: int, size: int) -> int:
    """Where the file's last newline ends (``start`` when there is none after it): a kill
    tears at most the record after it."""
    stop, span = size, TAIL_BYTES
    while stop > start:
        begin = max(start, stop - span)
        at = os.pread(fd, stop - begin, begin).rfind(b"\n")
        if at >= 0:
            return begin + at + 1
        stop, span = begin, min(span * 2, CHUNK_BYTES)
    return start


def _arrow_csv_scan(
    fd: int,
    size: int,
    builder: RowIndexBuilder,
    header: bytes,
    columns: list[str],
    body: int,
) -> Scan:
    """:meth:`CsvFormat.scan` with Arrow's streaming reader (raises ``ValueError`` or
    :class:`_NotFast` where it must not be trusted)."""
    import pyarrow.csv as pacsv

    if len(set(columns)) != len(columns):
        raise _NotFast
    end = _end_of_records(fd, body, size)
    used = [c for c in RESUME_COLUMNS if c in columns]
    source = _Slice(fd, body, end)
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=columns, block_size=ARROW_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=_arrow_text_cells(used),
    )
    rows = 0
    for block in _blocks(reader):
        builder.add(_arrow_block(block, escaped=True))
        rows += block.num_rows
    if source.quotes % 2:
        raise _NotFast  # torn inside a quoted cell: Arrow read the torn part as a row
    return Scan(header, columns, body, end, rows, fast=True)


def _blocks(batches: Iterable[pa.RecordBatch], size: int | None = None) -> Iterator[pa.Table]:
    """Arrow's small batches gathered into blocks of about ``size`` rows (by default
    :data:`~vmae_cli.rowindex.BLOCK_ROWS`: each computation over a block costs the same
    whatever its size)."""
    import pyarrow as pa

    from .rowindex import BLOCK_ROWS

    size = BLOCK_ROWS if size is None else size
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= size:
            yield pa.Table.from_batches(pending).combine_chunks()
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks()


def _arrow_block(batch: pa.RecordBatch | pa.Table, *, escaped: bool) -> RowBlock:
    """A block of rows read by Arrow (``escaped``: CSV cells, with formula escapes and
    numbers as text), the same :meth:`~vmae_cli.rowindex.RowBlock.of_values` makes of the
    same rows read one by one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .rowindex import MISSING, NO_WINDOW, ORIGIN_COLUMNS, Coded, RowBlock, int_column

    n = batch.num_rows
    names = batch.schema.names

    def col(name: str) -> pa.Array:
        column = batch.column(name)
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column

    def text(name: str) -> pa.Array:
        if name not in names:
            return pa.array([""] * n, pa.string())
        column = pc.cast(col(name), pa.string()).fill_null("")
        if escaped and pc.any(pc.starts_with(column, "'")).as_py():
            column = pa.array([unescape(v) for v in column.to_pylist()], pa.string())
        return column

    def codes(column: pa.Array) -> tuple[np.ndarray, list[str]]:
        coded = pc.dictionary_encode(column)
        return coded.indices.to_numpy(zero_copy_only=False), coded.dictionary.to_pylist()

    def integers(name: str, dtype: type, none: int) -> np.ndarray:
        if name not in names:
            return np.full(n, none, dtype)
        column = col(name)
        try:
            if pa.types.is_string(column.type):
                # An empty cell is none; plain decimal digits Arrow reads as int() does (it
                # would read "0x1" too): anything else is read by int(), cell by cell.
                if not pc.all(pc.match_substring_regex(column, r"^(-?[0-9]+)?$")).as_py():
                    return int_column(column.to_pylist(), dtype, none)
                blank = pa.scalar(None, pa.string())
                column = pc.if_else(pc.equal(column, ""), blank, column)
            values = pc.cast(column, pa.int64()).fill_null(MISSING).to_numpy(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return int_column(column.to_pylist(), dtype, none)
        info = np.iinfo(dtype)
        inside = (values > info.min) & (values <= info.max) & (values != MISSING)
        return np.where(inside, values, none).astype(dtype)

    if col("path").null_count:
        raise ValueError("a row without a path")  # not vmae's: read row by row (or refused)
    cells = text("path")
    # UTF-8 bytes: what the digest takes, without making each cell a str first.
    keys = pc.cast(cells, pa.binary()).to_pylist()
    legacy = []
    for i in np.flatnonzero(pc.match_substring_regex(cells, _MAYBE_LEGACY).to_numpy(False)):
        cell = keys[i].decode("utf-8")
        key = key_of_cell(cell)
        if key != cell:
            keys[i] = key.encode("utf-8", "surrogatepass")
            legacy.append(i)
    status_codes, statuses = codes(text("status"))
    parts = [codes(text(c)) for c in ORIGIN_COLUMNS]
    sizes = [max(len(names_), 1) for _, names_ in parts]
    combined = np.zeros(n, np.int64)
    for (part, _), size in zip(parts, sizes, strict=True):
        combined = combined * size + part
    distinct, inverse = np.unique(combined, return_inverse=True)
    origins = []
    for value in distinct.tolist():
        origin = []
        for (_, names_), size in zip(reversed(parts), reversed(sizes), strict=True):
            origin.append(names_[value % size] if names_ else "")
            value //= size
        origins.append(tuple(reversed(origin)))
    return RowBlock(
        keys=keys,
        status=Coded(status_codes.astype(np.int32), statuses),
        origin=Coded(inverse.astype(np.int32).reshape(-1), origins),
        size_bytes=integers("size_bytes", np.int64, MISSING),
        mtime_ns=integers("mtime_ns", np.int64, MISSING),
        windows=integers("windows", np.int32, NO_WINDOW),
        window=integers("window", np.int32, NO_WINDOW),
        legacy=np.array(legacy, np.int64),
    )


class JsonlFormat:
    """One JSON object per line (UTF-8, no ASCII escaping), with ``top_k`` as a list of
    ``{label, score}`` and the sampled ``frame_indices``. Values are written raw."""

    name: ClassVar[str] = FORMAT_JSONL
    extension: ClassVar[str] = ".jsonl"
    extensions: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson")
    bom: ClassVar[bool] = False

    def __init__(self, stream: IO[str], *, top_k: int = 1, table: Table = VIDEO_ROWS, **_: Any):
        self.stream = stream
        self.top_k = top_k
        self.keys = table.keys

    @staticmethod
    def columns_for(top_k: int, table: Table = VIDEO_ROWS) -> None:
        """JSONL has no header: its rows can be continued whatever ``top_k`` was."""
        del top_k, table

    @classmethod
    def store(cls, path: str) -> OutputFile:
        """The file a run appends this format's rows to (locked, resumable)."""
        return OutputFile(path, cls)

    @staticmethod
    def records(chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The complete lines of a JSONL file's bytes (a torn last line left out)."""
        return iter_lines(chunks)

    @staticmethod
    def values(columns: list[str] | None, record: bytes) -> dict[str, Any] | None:
        """One line's values; ``None`` for a line that is not a JSON object."""
        del columns
        try:
            values = json.loads(record)
        except ValueError:
            return None
        return values if isinstance(values, dict) else None

    @staticmethod
    def scan(fd: int, size: int, builder: RowIndexBuilder) -> Scan:
        """Read a JSONL file back for resume, line by line, its rows into ``builder``."""
        return exact_scan(JsonlFormat, fd, size, builder)

    @staticmethod
    def encode(columns: list[str] | None, values: dict[str, Any]) -> bytes:
        """One line of ``values`` (as :meth:`values` gives them)."""
        del columns
        return (json.dumps(values, ensure_ascii=False) + "\n").encode("utf-8")

    @staticmethod
    def read(
        path: str, columns: Iterable[str] | None = None, *, paths: Collection[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of a JSONL file, one dict at a time (only ``columns`` when given);
        raises ValueError for a line that is not a JSON object. ``paths`` picks nothing
        here: each line is parsed to know its path (:func:`read_rows` picks)."""
        del paths
        keep = None if columns is None else set(columns)
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"line {number} is not a JSON object")
                yield row if keep is None else {k: v for k, v in row.items() if k in keep}

    @classmethod
    def frames(cls, path: str, columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """A JSONL file as tables of :data:`FRAME_ROWS` rows (values as JSON typed them; at
        least one table)."""
        import pandas as pd

        if columns is None:
            with pd.read_json(path, lines=True, dtype=False, chunksize=FRAME_ROWS) as reader:
                yield from _at_least_one(reader)
            return
        yield from _record_frames(cls.read(path, columns))

    @classmethod
    def frame(cls, path: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """A JSONL file as one table (values as JSON typed them)."""
        return _concat(cls.frames(path, columns))

    def row(self, p: Record) -> dict[str, Any]:
        """The JSON object for ``p``."""
        d = _cells(p)
        d["top_k"] = [
            {"label": ls["label"], "score": _score(ls["score"])} for ls in d["top_k"][: self.top_k]
        ]
        # 19-digit integers lose precision in jq and JavaScript (doubles): mtime_ns stays
        # exact for Python and resume, and mtime gives the same instant in float seconds.
        if "mtime" in self.keys:
            d["mtime"] = d["mtime_ns"] / 1e9 if d["mtime_ns"] is not None else None
        return {k: d[k] for k in self.keys}

    def write(self, p: Record) -> None:
        """Write and flush one line."""
        self.stream.write(json.dumps(self.row(p), ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream (the caller owns it)."""
        self.stream.flush()


class ParquetFormat(JsonlFormat):
    """Apache Parquet: typed columns (ints, floats, lists: ``top_k`` as a list of
    ``{label, score}``, ``frame_indices`` as a list of ints), the keys of a JSONL row, in the
    file curators' tools (pandas, pyarrow, DuckDB, polars) read fastest.

    A Parquet file is unreadable until its footer is written, so while a run goes its rows
    are appended as JSON lines (this class's rows are :class:`JsonlFormat`'s) to a journal
    beside it, ``FILE.partial``; the run's end writes the Parquet file aside and renames it
    into place, then removes the journal (:class:`ParquetStore`). Readers read both.
    """

    name: ClassVar[str] = FORMAT_PARQUET
    extension: ClassVar[str] = ".parquet"
    extensions: ClassVar[tuple[str, ...]] = (".parquet",)
    bom: ClassVar[bool] = False
    #: Binary: written to a file, never to stdout.
    file_only: ClassVar[bool] = True

    @staticmethod
    def columns_for(top_k: int, table: Table = VIDEO_ROWS) -> list[str]:
        """The file's columns: the keys of a JSONL row (``top_k`` a list of the K best)."""
        del top_k
        return list(table.keys)

    @classmethod
    def store(cls, path: str) -> ParquetStore:
        """The journal a run appends rows to, and the Parquet file it becomes."""
        return ParquetStore(path)

    @staticmethod
    def read(
        path: str, columns: Iterable[str] | None = None, *, paths: Collection[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of the Parquet file and of its journal (a run still going, or killed),
        one dict at a time; a row the journal has again is read from the journal. With
        ``paths``, the Parquet file's rows whose ``path`` is not among them (as identities)
        are skipped a row group at a time, never made dicts."""
        import pyarrow.parquet as pq

        keep = None if columns is None else set(columns)
        again, newest = _newest_in_journal(path)
        if os.path.exists(path):
            parquet = pq.ParquetFile(path)
            names = [n for n in parquet.schema_arrow.names if keep is None or n in keep]
            for key in ("path", "window"):
                needed = again or (key == "path" and paths is not None)
                if needed and key in parquet.schema_arrow.names and key not in names:
                    names.append(key)  # to tell the rows the journal has again, or picked
            wanted = _identities(paths)
            for batch in parquet.iter_batches(batch_size=PARQUET_ROW_GROUP_ROWS, columns=names):
                if wanted is not None and "path" in names:
                    batch = batch.filter(_picked(batch.column("path"), wanted))
                for row in batch.to_pylist():
                    if again and (row.get("path"), row.get("window")) in again:
                        continue
                    yield row if keep is None else {k: v for k, v in row.items() if k in keep}
        for row in _newest_rows(path, newest):
            yield row if keep is None else {k: v for k, v in row.items() if k in keep}

    @classmethod
    def frames(cls, path: str, columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """The Parquet file (and its journal) as tables of :data:`FRAME_ROWS` rows, typed as
        the file holds them (at least one table)."""
        import pyarrow.parquet as pq

        if os.path.exists(path + JOURNAL_SUFFIX):
            yield from _record_frames(cls.read(path, columns))
            return
        keep = None if columns is None else set(columns)
        parquet = pq.ParquetFile(path)
        names = [n for n in parquet.schema_arrow.names if keep is None or n in keep]
        given = False
        for batch in parquet.iter_batches(batch_size=FRAME_ROWS, columns=names):
            given = True
            yield batch.to_pandas()
        if not given:
            yield parquet.schema_arrow.empty_table().select(names).to_pandas()

    @classmethod
    def frame(cls, path: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The Parquet file (and its journal) as one table, typed as the file holds it."""
        return _concat(cls.frames(path, columns))


def _record_frames(rows: Iterable[dict[str, Any]]) -> Iterator[pd.DataFrame]:
    """Rows (dicts) as tables of :data:`FRAME_ROWS` rows (at least one table)."""
    import pandas as pd

    rows = iter(rows)
    given = False
    while block := list(itertools.islice(rows, FRAME_ROWS)):
        given = True
        yield pd.DataFrame.from_records(block)
    if not given:
        yield pd.DataFrame()


def _at_least_one(tables: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``tables``, or one empty table when there is none."""
    import pandas as pd

    given = False
    for table in tables:
        given = True
        yield table
    if not given:
        yield pd.DataFrame()


def _concat(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Tables read a block at a time as one table."""
    import pandas as pd

    tables = list(tables)
    if len(tables) == 1:
        return tables[0]
    return pd.concat(tables, ignore_index=True)


def _identities(paths: Collection[str] | None) -> pa.Array | None:
    """``paths`` as an Arrow array, for :func:`_picked` (``None`` for none)."""
    import pyarrow as pa

    return None if paths is None else pa.array(list(paths), pa.string())


def _picked(cells: pa.Array | pa.ChunkedArray | list[str], wanted: pa.Array) -> pa.Array:
    """Which ``path`` cells name a video among ``wanted`` (identities): a cell as it is, or,
    where it may be an older spelling (:data:`_MAYBE_LEGACY`), as
    :func:`~vmae_cli.identity.key_of_cell` reads it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(cells, list):
        cells = pa.array(cells, pa.string())
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    keys = pc.cast(cells, pa.string())
    maybe = pc.fill_null(pc.match_substring_regex(keys, _MAYBE_LEGACY), False)
    if pc.any(maybe).as_py():
        values = keys.to_pylist()
        for i in np.flatnonzero(maybe.to_numpy(zero_copy_only=False)):
            values[i] = key_of_cell(values[i])
        keys = pa.array(values, pa.string())
    return pc.fill_null(pc.is_in(keys, value_set=wanted), False)


#: The journal of a Parquet output is the file's name with this appended.
JOURNAL_SUFFIX = ".partial"
#: Rows per row group of a Parquet output: what a reader can skip to, and what the end of a
#: run holds in memory at once while it writes the file.
PARQUET_ROW_GROUP_ROWS = 16384


def _journal(path: str) -> Iterator[dict[str, Any]]:
    """The whole rows of a Parquet output's journal, one at a time (a line that is not a JSON
    object, and a torn last line, left out); nothing when there is no journal."""
    try:
        f = open(path + JOURNAL_SUFFIX, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # torn by a kill
            try:
                values = json.loads(line)
            except ValueError:
                continue
            if isinstance(values, dict):
                yield values


def _newest_in_journal(path: str) -> tuple[set[tuple[Any, Any]], set[int]]:
    """The (path, window) keys a Parquet output's journal holds, and the positions of the
    newest row of each (one pass, holding keys only)."""
    last: dict[tuple[Any, Any], int] = {}
    for i, row in enumerate(_journal(path)):
        last[(row.get("path"), row.get("window"))] = i
    return set(last), set(last.values())


def _newest_rows(path: str, newest: set[int]) -> Iterator[dict[str, Any]]:
    """The journal's rows at the positions ``newest``, in the journal's order."""
    return (row for i, row in enumerate(_journal(path)) if i in newest)


def _arrow_schema(columns: list[str]) -> Any:
    """The Parquet schema of rows with these keys (text for a key it does not know)."""
    import pyarrow as pa

    types = {
        **dict.fromkeys(FLOAT_COLUMNS, pa.float64()),
        **dict.fromkeys(INTEGER_COLUMNS, pa.int64()),
        "low_confidence": pa.bool_(),
        "labels": pa.list_(pa.string()),
        "top_k": pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())])),
        "frame_indices": pa.list_(pa.int64()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])


class ParquetStore:
    """A Parquet output while a run writes it: a journal of JSON lines (an
    :class:`~vmae_cli.output.OutputFile`, locked for the whole run) beside the Parquet file,
    the two made one Parquet file by :meth:`finish`.

    * Resuming reads the Parquet file's rows (a few columns, a row group at a time), then the
      journal's: a row in both is the journal's (it is newer). :meth:`drop` rewrites the
      Parquet file (row group by row group, aside, then renamed) only when rows in it are to
      go for good (a redone video's, older rows, an older vmae's relative paths), and the
      journal likewise; the Parquet file's other rows stay where they are.
    * :meth:`finish` writes the new Parquet file aside: the old file's row groups less the
      rows the journal has again, then the journal's newest rows; renames it into place, and
      only then removes the journal. A kill at any moment leaves rows in one or both: a row
      in both is read once, from the journal.
    """

    def __init__(self, path: str):
        self.path = path
        self.journal = OutputFile(path + JOURNAL_SUFFIX, JsonlFormat)
        self.is_empty = True
        self.legacy = False
        self._columns: list[str] = []
        self._index: RowIndex | None = None  # what start(resume=True) read, until drop
        self._parquet_rows = 0  # rows of the Parquet file that start read
        self._parquet_keep: np.ndarray | None = None  # its rows finish keeps (None: all)

    def lock(self) -> ParquetStore:
        """Lock the journal (created if needed); refused at once while another run holds it.
        Copies of the Parquet file a killed run left half-written are removed."""
        self.journal.lock()
        remove_stale_temporaries(self.path)
        return self

    def count_rows(self) -> int:
        """Rows in the Parquet file and the journal, as they are (a file that is not Parquet
        counts as one: it is not to be replaced unasked)."""
        return self.journal.count_rows() + parquet_rows(self.path)

    def foreign(self) -> bool:
        """Never: a file that is not Parquet already counts as held (:meth:`count_rows`), and
        a resume refuses it when it reads it."""
        return False

    def start(self, *, resume: bool, columns: list[str] | None = None) -> RowIndex:
        """Remove an earlier run's rows for a fresh run (returns an empty index), or read
        them to resume (the Parquet file's, then the journal's). ``columns``: the keys this
        run writes; a file with other columns cannot be continued."""
        from .rowindex import RowIndex, RowIndexBuilder

        self._columns = list(columns or [])
        if not resume:
            self.journal.start(resume=False)
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            return RowIndex.empty()
        builder = RowIndexBuilder()
        self._read_parquet(builder)
        self._parquet_rows = builder.rows
        self.journal.start(resume=True, builder=builder)
        index = self._index = builder.seal()
        self.legacy = index.legacy
        self.is_empty = not index.rows
        return index

    def _open(self) -> Any:
        """The Parquet file (``None`` when there is none), its columns checked."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not os.path.exists(self.path):
            return None
        try:
            parquet = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException):
            raise self._unreadable() from None
        names = parquet.schema_arrow.names
        if self._columns and names != self._columns:
            raise other_columns(self.path, names, self._columns)
        return parquet

    def _unreadable(self) -> OutputMismatchError:
        return OutputMismatchError(
            f"{self.path} is not a vmae Parquet output (it cannot be read); remove it, "
            "or use another file",
            path=self.path,
        )

    def _read_parquet(self, builder: RowIndexBuilder) -> None:
        """The Parquet file's rows into ``builder``: the columns resume reads, a row group
        at a time."""
        import pyarrow as pa

        parquet = self._open()
        if parquet is None:
            return
        names = parquet.schema_arrow.names
        if "path" not in names:
            raise self._unreadable()
        used = [c for c in RESUME_COLUMNS if c in names]
        try:
            batches = parquet.iter_batches(batch_size=PARQUET_ROW_GROUP_ROWS, columns=used)
            for block in _blocks(batches):
                builder.add(_arrow_block(block, escaped=False))
        except (OSError, ValueError, pa.ArrowException):
            raise self._unreadable() from None

    def drop(self, redone: set[str], videos: RowIndex | None) -> None:
        """Drop the rows of the ``redone`` videos, of videos without a row in ``videos``
        (when given) and older rows of a video: from the Parquet file (rewritten) only when
        it holds some not replaced by the journal's; from the journal likewise. A no-op
        after a fresh start."""
        index, self._index = self._index, None
        if index is None:
            return
        keep = index.rows_kept(redone, videos)
        legacy = row_mask(index.rows, index.legacy_rows)
        first = self._parquet_rows
        winners = index.ordinal[index.ordinal < first]  # the Parquet file's newest rows
        if not keep[winners].all() or legacy[:first].any():
            self._rewrite_parquet(keep[:first], legacy[:first])
        else:
            self._parquet_keep = keep[:first]  # older rows and the journal's: gone at finish
        self.journal.keep_rows(keep[first:], legacy[first:])
        self.is_empty = not keep.any()

    def _rewrite_parquet(self, keep: np.ndarray, legacy: np.ndarray) -> None:
        """The Parquet file with only the rows ``keep`` marks (those ``legacy`` marks with the
        identity as their path), aside then renamed."""
        import pyarrow as pa

        parquet = self._open()
        schema = parquet.schema_arrow

        def kept() -> Iterator[pa.RecordBatch]:
            at = 0
            for batch in parquet.iter_batches(batch_size=PARQUET_ROW_GROUP_ROWS):
                n = batch.num_rows
                mine, again = keep[at : at + n], legacy[at : at + n]
                at += n
                if again.any():
                    paths = batch.column("path").to_pylist()
                    for i in again.nonzero()[0]:
                        paths[i] = key_of_cell(paths[i])
                    where = schema.get_field_index("path")
                    batch = batch.set_column(where, "path", pa.array(paths, pa.string()))
                yield batch.filter(pa.array(mine))

        _write_parquet_aside(self.path, schema, kept())
        self._parquet_keep = None

    def stream(self) -> IO[str]:
        """The journal, appended to."""
        return self.journal.stream()

    def finish(self) -> None:
        """Make the Parquet file and the journal one Parquet file (aside, then renamed),
        remove the journal, release the lock."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from .rowindex import NO_WINDOW, RowIndexBuilder, digest_keys

        self.journal.flush()
        builder = RowIndexBuilder()
        fd = self.journal.fd
        scan = exact_scan(JsonlFormat, fd, os.fstat(fd).st_size, builder)
        journal = builder.seal()
        parquet = self._open() if os.path.exists(self.path) else None
        parquet_keep = self._parquet_keep
        schema = _arrow_schema(self._columns) if parquet is None else parquet.schema_arrow
        if journal.rows or parquet is None or (parquet_keep is not None and not parquet_keep.all()):
            newest = journal.rows_kept(())

            def old_rows() -> Iterator[pa.RecordBatch]:
                if parquet is None:
                    return
                at = 0
                for batch in parquet.iter_batches(batch_size=PARQUET_ROW_GROUP_ROWS):
                    n = batch.num_rows
                    mine = parquet_keep[at : at + n] if parquet_keep is not None else None
                    at += n
                    if len(journal):
                        hi, lo = digest_keys(pc.cast(batch.column("path"), pa.binary()).to_pylist())
                        window = (
                            batch.column("window").fill_null(NO_WINDOW).to_numpy(False)
                            if "window" in schema.names
                            else NO_WINDOW
                        )
                        again = journal.holds(hi, lo, window)
                        mine = ~again if mine is None else mine & ~again
                    yield batch if mine is None else batch.filter(pa.array(mine))

            def new_rows() -> Iterator[pa.RecordBatch]:
                group: list[dict[str, Any]] = []
                row = 0
                chunks = read_chunks(fd, 0, scan.end)
                for record in JsonlFormat.records(chunks):
                    values = JsonlFormat.values(None, record)
                    if not is_row(values):
                        continue
                    if newest[row]:
                        group.append({k: values.get(k) for k in schema.names})
                        if len(group) == PARQUET_ROW_GROUP_ROWS:
                            yield pa.RecordBatch.from_pylist(group, schema=schema)
                            group = []
                    row += 1
                if group:
                    yield pa.RecordBatch.from_pylist(group, schema=schema)

            _write_parquet_aside(self.path, schema, itertools.chain(old_rows(), new_rows()))
        # Only now: until the Parquet file is in place, the journal is the only copy.
        os.unlink(self.journal.path)
        self.journal.close()

    def close(self) -> None:
        """Release the lock; the journal stays for a resumed run."""
        self.journal.close()


def _write_parquet_aside(path: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """A Parquet file of ``batches`` written beside ``path`` and renamed over it (synced
    first: a kill leaves the old file or the new one, whole)."""
    import pyarrow.parquet as pq

    tmp = temporary_name(path)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch.cast(schema))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: A row format's class (see :class:`CsvFormat` for what one has).
Format = type[CsvFormat] | type[JsonlFormat] | type[ParquetFormat]

#: Output formats by name, in the order of ``choices.FORMAT_NAMES`` (what ``--format`` offers).
FORMATS: dict[str, Format] = {
    CsvFormat.name: CsvFormat,
    JsonlFormat.name: JsonlFormat,
    ParquetFormat.name: ParquetFormat,
}

#: Extensions that select a format when writing to a file.
EXTENSIONS = {ext: cls.name for cls in FORMATS.values() for ext in cls.extensions}


def _hint(path: str) -> str:
    known = ", ".join(sorted(EXTENSIONS))
    if os.path.splitext(path)[1].lower() == ".json":
        return (
            f"cannot tell the format of {path!r}: vmae writes one JSON object per line, "
            "so name it .jsonl (JSON Lines), or give format='jsonl'"
        )
    return (
        f"cannot tell the format of {path!r} from its extension: use {known}, or give format=NAME"
    )


def is_stream_path(path: str) -> bool:
    """True for ``-``, the process's own streams (``/dev/stdout``, ``/dev/fd/N``) and
    outputs that are not files: a pipe, a terminal, a character device (``/dev/null``).

    Those get rows in the default format without an extension, and are written without
    lock, truncation, byte-order mark or resume.
    """
    if path == "-" or path in STREAM_NAMES or path.startswith(STREAM_FOLDERS):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # a file to be made (under /dev/shm too: a file system like any other)
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


#: Names that are the process's own streams whatever they point at now (``-o /dev/stdout``
#: is stdout even when stdout was redirected to a file).
STREAM_NAMES = ("/dev/stdout", "/dev/stderr")
STREAM_FOLDERS = ("/dev/fd/", "/proc/self/fd/")


def resolve_format(output: str | None, fmt: str | None = None) -> str:
    """The format rows are written in: ``fmt`` (the ``format`` option) and/or ``output``'s
    extension.

    Raises :class:`UnknownFormatError` for an unknown format, an extension that says nothing
    (without ``fmt``), or an ``fmt`` that contradicts the extension (``x.csv`` with format
    ``jsonl`` would put JSON lines in a file every program opens as CSV).
    """
    if fmt is not None and fmt not in FORMATS:
        raise UnknownFormatError(
            f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}",
            options=("format",),
            value=fmt,
        )
    if output is None or is_stream_path(output):
        chosen = fmt or DEFAULT_FORMAT
        if output is not None and getattr(FORMATS[chosen], "file_only", False):
            raise UnknownFormatError(
                f"format={chosen!r} writes to a file, not to a stream: name one "
                f"(output=rows{FORMATS[chosen].extension})",
                options=("format", "output"),
                value=chosen,
                path=output,
            )
        return chosen
    ext = os.path.splitext(output)[1].lower()
    implied = EXTENSIONS.get(ext)
    if implied is None:
        if fmt is None:
            raise UnknownFormatError(_hint(output), options=("format",), path=output)
        return fmt
    if fmt is not None and fmt != implied:
        raise UnknownFormatError(
            f"format={fmt!r} contradicts the extension of {output!r} ({implied}): "
            f"name the file {os.path.splitext(output)[0]}{FORMATS[fmt].extension}, "
            "or leave the format out",
            options=("format",),
            value=fmt,
            path=output,
        )
    return implied


def format_of_file(path: str) -> Format:
    """The format class of an existing output, by its extension."""
    fmt = EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise UnknownFormatError(f"{path}: not a vmae output ({known})", path=path)
    return FORMATS[fmt]


def read_rows(
    path: str | os.PathLike[str],
    columns: Iterable[str] | None = None,
    *,
    on_legacy: Callable[[str], None] | None = None,
    paths: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of any vmae output (video or window rows), one dict at a time, through its
    format's class: escapes undone, ``path`` the video's identity (an older output's relative
    path resolved against the current folder, ``on_legacy(file)`` called once if so). Raises
    :class:`ForeignRowsError` at a row vmae cannot have written.

    With ``paths`` (identities), only the rows of those videos: the others are skipped as
    the format reads them (CSV and Parquet a block at a time, never made dicts), and only
    the rows given are checked."""
    source = os.fspath(path)
    legacy = False
    for number, row in enumerate(format_of_file(source).read(source, columns, paths=paths), 1):
        check_row(source, number if paths is None else None, row)
        cell = row.get("path")
        if isinstance(cell, str) and is_legacy_cell(cell):
            row["path"] = key_of_cell(cell)
            if not legacy and on_legacy is not None:
                on_legacy(source)
            legacy = True
        if paths is None or row.get("path") in paths:
            yield row


def read_frames(
    path: str | os.PathLike[str],
    columns: Iterable[str] | None = None,
    *,
    on_legacy: Callable[[str], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Any vmae output as pandas tables of about :data:`FRAME_ROWS` rows, in the file's
    order, through its format's class (at least one table, with the file's columns), each
    checked (:func:`check_frame`); see :func:`read_rows` for ``path`` and ``on_legacy``.
    Memory holds a table at a time, whatever the file's length."""
    source = os.fspath(path)
    first, told = 1, False
    for table in format_of_file(source).frames(source, columns):
        check_frame(source, table, first=first)
        first += len(table)
        if "path" in table and len(table) and _resolve_legacy(table) and not told:
            told = True
            if on_legacy is not None:
                on_legacy(source)
        yield table


def _resolve_legacy(table: pd.DataFrame) -> bool:
    """Read ``table``'s ``path`` cells of an older vmae as identities (in place); whether
    there was one."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = table["path"].astype(str)
    # Only cells that may be an older spelling are asked (what resume's reader asks too): the
    # others are this version's, and there are millions (asked by Arrow when it holds them).
    if isinstance(cells.dtype, pd.StringDtype) and cells.dtype.storage == "pyarrow":
        found = pc.fill_null(pc.match_substring_regex(pa.array(cells), _MAYBE_LEGACY), False)
        maybe = pd.Series(found.to_numpy(zero_copy_only=False), index=cells.index)
    else:
        maybe = cells.str.contains(_MAYBE_LEGACY)
    legacy = maybe.copy()
    legacy[maybe] = cells[maybe].map(is_legacy_cell)
    if not legacy.any():
        return False
    table.loc[legacy, "path"] = cells[legacy].map(key_of_cell)
    return True


def read_frame(
    path: str | os.PathLike[str],
    columns: Iterable[str] | None = None,
    *,
    on_legacy: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Any vmae output as one pandas table, through its format's class (:func:`read_frames`
    gathered)."""
    return _concat(read_frames(path, columns, on_legacy=on_legacy))
