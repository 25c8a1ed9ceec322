"""Stage 6: write one row per prediction, flushed as soon as it is known.

A small registry maps a format name to a writer class (``get_writer``); the format of an
output file comes from its extension (``format_for_path``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import IO, Any, ClassVar

from .results import Prediction

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
    "size_bytes",
    "mtime_ns",
)
#: JSONL keys, in order.
JSONL_KEYS = (*CSV_HEAD, "top_k", *CSV_TAIL, "frame_indices")

#: Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Digits kept for probabilities: enough to tell classes apart, short enough to read.
SCORE_DIGITS = 6


class UnknownFormatError(ValueError):
    """The output format (given or implied by the extension) is not one of :data:`WRITERS`."""


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

    def __init__(
        self,
        stream: IO[str],
        *,
        top_k: int = 1,
        escape_formulas: bool = True,
        write_header: bool = True,
    ):
        self.stream = stream
        self.top_k = top_k if top_k > 1 else 0
        self.escape_formulas = escape_formulas
        self.columns = list(CSV_HEAD)
        for i in range(1, self.top_k + 1):
            self.columns += [f"label_{i}", f"score_{i}"]
        self.columns += list(CSV_TAIL)
        # CRLF as RFC 4180 says: the csv module quotes a cell only when it holds a character
        # of the line terminator, so with "\n" alone a "\r" in a file name went unquoted
        # and split the row for every CSV reader.
        self._csv = csv.writer(stream, lineterminator="\r\n")
        if write_header:
            self._csv.writerow(self.columns)
            self.stream.flush()

    def _text(self, value: str) -> str:
        return neutralize_formula(value) if self.escape_formulas else value

    def path_cell(self, path: str) -> str:
        """How ``path`` appears in the ``path`` column (what --resume matches rows by)."""
        return self._text(display_path(path))

    def row(self, p: Prediction) -> list[Any]:
        """The CSV cells for ``p``, in :attr:`columns` order."""
        d = p.to_dict()
        d["path"] = display_path(d["path"])
        d["score"] = _score(d["score"])
        for i in range(1, self.top_k + 1):
            ls = p.top_k[i - 1] if i <= len(p.top_k) else None
            d[f"label_{i}"] = ls.label if ls else ""
            d[f"score_{i}"] = _score(ls.score) if ls else None
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

    def write(self, p: Prediction) -> None:
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

    def __init__(self, stream: IO[str], *, top_k: int = 1, **_: Any):
        self.stream = stream
        self.top_k = top_k

    def path_cell(self, path: str) -> str:
        """How ``path`` appears in the ``path`` key (what --resume matches rows by)."""
        return display_path(path)

    def row(self, p: Prediction) -> dict[str, Any]:
        """The JSON object for ``p``."""
        d = p.to_dict()
        d["path"] = display_path(d["path"])
        d["score"] = _score(d["score"])
        d["top_k"] = [
            {"label": ls["label"], "score": _score(ls["score"])} for ls in d["top_k"][: self.top_k]
        ]
        return {k: d[k] for k in JSONL_KEYS}

    def write(self, p: Prediction) -> None:
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
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_for_path(path: str) -> str:
    """The format implied by an output file's extension; raises :class:`UnknownFormatError`."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise UnknownFormatError(
            f"cannot tell the format of {path!r} from its extension: use .csv or .jsonl, "
            "or --format"
        )
    return EXTENSIONS[ext]


def get_writer(fmt: str, stream: IO[str], **options: Any) -> CsvWriter | JsonlWriter:
    """A writer for format ``fmt`` (``csv`` or ``jsonl``) writing to ``stream``."""
    try:
        cls = WRITERS[fmt]
    except KeyError:
        raise UnknownFormatError(
            f"unknown format {fmt!r}: use one of {', '.join(WRITERS)}"
        ) from None
    return cls(stream, **options)
