"""Stage 6: write one row per prediction, flushed as soon as it is known.

A small registry maps a format name to a writer class (``get_writer``). Each class is the one
home of its format: its name and file extensions, its columns, whether a new file starts with
a byte-order mark, and how to read its own file back (what ``--resume`` needs). The format of
an output comes from ``--format`` and the file's extension (``resolve_format``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from .results import Prediction, WindowRow

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

    def plus(self, columns: tuple[str, ...]) -> Table:
        """This table with ``columns`` after its ``score`` (what ``--label-map`` and
        ``--min-score`` add: :meth:`vmae_cli.scoring.Scoring.columns`)."""
        if not columns:
            return self

        def after_score(names: tuple[str, ...]) -> tuple[str, ...]:
            at = names.index("score") + 1
            return (*names[:at], *columns, *names[at:])

        return Table(after_score(self.head), self.tail, after_score(self.keys))


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
DEFAULT_FORMAT = "csv"


class UnknownFormatError(ValueError):
    """The output format (given or implied by the extension) is not one of :data:`WRITERS`,
    or ``--format`` contradicts the output file's extension."""


class OutputMismatchError(ValueError):
    """An existing output file cannot be continued (not this format, other columns, rows of
    another model or protocol)."""


@dataclass
class ParsedOutput:
    """An output file read back: its header record (CSV), its records with their values, and
    an incomplete tail (a record torn by a kill; empty when the file ends cleanly)."""

    header: bytes | None
    columns: list[str] | None
    records: list[tuple[bytes, dict[str, Any]]]
    tail: bytes


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


def csv_columns(header: bytes) -> list[str]:
    """The column names of a CSV header record."""
    return next(csv.reader(io.StringIO(header.decode("utf-8", "replace"), newline="")), [])


def display_path(path: str) -> str:
    """``path`` as valid text: bytes that are not UTF-8 appear as ``\\xNN`` escapes.

    Python represents such bytes with lone surrogates, which no UTF-8 file can hold.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def neutralize_formula(value: str) -> str:
    """Prefix ``'`` to text a spreadsheet would evaluate as a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _score(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, SCORE_DIGITS)


class CsvWriter:
    """Comma-separated values with a header row, RFC 4180 quoting, UTF-8.

    Text cells that start with ``= + - @`` (or tab / CR) get a leading ``'`` so a spreadsheet
    shows them instead of running them; pass ``escape_formulas=False`` to keep them raw.
    """

    name: ClassVar[str] = "csv"
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

    @staticmethod
    def parse(data: bytes) -> ParsedOutput:
        """Read a CSV file written by this class (without its BOM) back into records.

        Records that cannot be parsed are dropped (their videos are redone): only the last
        record can be torn by a kill, but a damaged one in the middle must not stop a resume.
        Raises :class:`OutputMismatchError` for a CSV without a ``path`` column.
        """
        records, tail = split_csv_records(data)
        if not records:
            return ParsedOutput(None, None, [], tail)
        header = records[0]
        columns = csv_columns(header)
        if "path" not in columns:
            raise OutputMismatchError("the existing file is not a vmae CSV (no path column)")
        parsed = []
        for record in records[1:]:
            text = record.decode("utf-8", "replace")
            cells = next(csv.reader(io.StringIO(text, newline="")), None)
            if cells is not None and len(cells) == len(columns):
                parsed.append((record, dict(zip(columns, cells, strict=True))))
        return ParsedOutput(header, columns, parsed, tail)

    def _text(self, value: str) -> str:
        return neutralize_formula(value) if self.escape_formulas else value

    def path_cell(self, path: str) -> str:
        """How ``path`` appears in the ``path`` column (what --resume matches rows by)."""
        return self._text(display_path(path))

    def row(self, p: Record) -> list[Any]:
        """The CSV cells for ``p``, in :attr:`columns` order."""
        d = p.to_dict()
        d["path"] = display_path(d["path"])
        d["score"] = _score(d["score"])
        d["group_score"] = _score(d.get("group_score"))
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


class JsonlWriter:
    """One JSON object per line (UTF-8, no ASCII escaping), with ``top_k`` as a list of
    ``{label, score}`` and the sampled ``frame_indices``. Values are written raw."""

    name: ClassVar[str] = "jsonl"
    extension: ClassVar[str] = ".jsonl"
    extensions: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson")
    bom: ClassVar[bool] = False

    def __init__(self, stream: IO[str], *, top_k: int = 1, table: Table = VIDEO_ROWS, **_: Any):
        self.stream = stream
        self.top_k = top_k
        self.keys = table.keys

    @staticmethod
    def columns_for(top_k: int, table: Table = VIDEO_ROWS) -> None:
        """JSONL has no header: its rows can be continued whatever ``--top-k`` was."""
        del top_k, table

    @staticmethod
    def parse(data: bytes) -> ParsedOutput:
        """Read a JSONL file back into records; lines that do not parse are dropped."""
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: empty, or a torn line
        parsed = []
        for line in lines:
            try:
                values = json.loads(line)
            except ValueError:
                continue
            if isinstance(values, dict):
                parsed.append((line + b"\n", values))
        return ParsedOutput(None, None, parsed, tail)

    def path_cell(self, path: str) -> str:
        """How ``path`` appears in the ``path`` key (what --resume matches rows by)."""
        return display_path(path)

    def row(self, p: Record) -> dict[str, Any]:
        """The JSON object for ``p``."""
        d = p.to_dict()
        d["path"] = display_path(d["path"])
        d["score"] = _score(d["score"])
        d["group_score"] = _score(d.get("group_score"))
        d["top_k"] = [
            {"label": ls["label"], "score": _score(ls["score"])} for ls in d["top_k"][: self.top_k]
        ]
        # 19-digit integers lose precision in jq and JavaScript (doubles): mtime_ns stays
        # exact for Python and --resume, and mtime gives the same instant in float seconds.
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


#: Output formats by name.
WRITERS: dict[str, type[CsvWriter] | type[JsonlWriter]] = {
    CsvWriter.name: CsvWriter,
    JsonlWriter.name: JsonlWriter,
}

#: Extensions that select a format when writing to a file.
EXTENSIONS = {ext: cls.name for cls in WRITERS.values() for ext in cls.extensions}


def _hint(path: str) -> str:
    known = ", ".join(sorted(EXTENSIONS))
    if os.path.splitext(path)[1].lower() == ".json":
        return (
            f"cannot tell the format of {path!r}: vmae writes one JSON object per line, "
            "so name it .jsonl (JSON Lines), or give --format"
        )
    return f"cannot tell the format of {path!r} from its extension: use {known}, or --format"


def format_for_path(path: str) -> str:
    """The format implied by an output file's extension; raises :class:`UnknownFormatError`."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise UnknownFormatError(_hint(path))
    return EXTENSIONS[ext]


def is_stream_path(path: str) -> bool:
    """True for ``-`` and outputs that are not files: ``/dev/stdout``, a pipe, a terminal.

    Those get rows in the default format without an extension, and are written without
    lock, truncation, byte-order mark or resume.
    """
    if path == "-" or path.startswith(("/dev/", "/proc/self/fd/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def resolve_format(output: str | None, fmt: str | None = None) -> str:
    """The format rows are written in: ``fmt`` (``--format``) and/or ``output``'s extension.

    Raises :class:`UnknownFormatError` for an unknown format, an extension that says nothing
    (without ``fmt``), or an ``fmt`` that contradicts the extension (``-o x.csv --format
    jsonl`` would put JSON lines in a file every program opens as CSV).
    """
    if fmt is not None and fmt not in WRITERS:
        raise UnknownFormatError(f"unknown format {fmt!r}: use one of {', '.join(WRITERS)}")
    if output is None or is_stream_path(output):
        return fmt or DEFAULT_FORMAT
    ext = os.path.splitext(output)[1].lower()
    implied = EXTENSIONS.get(ext)
    if implied is None:
        if fmt is None:
            raise UnknownFormatError(_hint(output))
        return fmt
    if fmt is not None and fmt != implied:
        raise UnknownFormatError(
            f"--format {fmt} contradicts the extension of {output!r} ({implied}): "
            f"name the file {os.path.splitext(output)[0]}{WRITERS[fmt].extension}, "
            "or drop --format"
        )
    return implied


def path_key(fmt: str, escape_formulas: bool = True) -> Callable[[str], str]:
    """How format ``fmt`` writes a path in its ``path`` cell: what ``--resume`` matches rows
    by (see the writers' ``path_cell``)."""
    return WRITERS[fmt](
        io.StringIO(), escape_formulas=escape_formulas, write_header=False
    ).path_cell


def get_writer(fmt: str, stream: IO[str], **options: Any) -> CsvWriter | JsonlWriter:
    """A writer for format ``fmt`` (``csv`` or ``jsonl``) writing to ``stream``."""
    try:
        cls = WRITERS[fmt]
    except KeyError:
        raise UnknownFormatError(
            f"unknown format {fmt!r}: use one of {', '.join(WRITERS)}"
        ) from None
    return cls(stream, **options)
