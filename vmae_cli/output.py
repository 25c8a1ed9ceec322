"""The output of a run: a file held under an exclusive lock, never a lost or doubled row, or
stdout.

* **Lock.** The output file is locked with ``flock`` for the whole run, so a second run on the
  same file is refused at once. The kernel drops the lock when the process dies, even by
  SIGKILL; there is no PID file to go stale. When the file is rewritten, the new copy is
  locked before it replaces the old one, so there is no unlocked moment.
* **Nothing lost.** Rows are appended and flushed one by one (see :mod:`vmae_cli.formats`).
  A SIGKILL can leave at most a torn last record; it is cut off when the file is opened
  again, and its video is redone.
* **Nothing doubled.** A resumed run skips videos whose row is there with the same size and
  modification time; a redone video's older row is removed when the run ends (or, if the run
  is killed first, when the file is next opened), keeping the newest row per path.

What a file holds is its format's business (:mod:`vmae_cli.formats`): an :class:`OutputFile`
is given the format's class, and asks it to parse the file's records and to encode a record.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import VmaeError
from .identity import key_of_cell
from .results import FileStamp

#: How often lock() retries when the file it locked was removed or replaced meanwhile.
LOCK_ATTEMPTS = 5

#: The UTF-8 byte-order mark a CSV file starts with (so spreadsheets read it as UTF-8).
BOM = "\ufeff".encode()

#: How a file of vmae's rows starts: a CSV header's first column, a JSON line's first key.
ROW_STARTS = (b"path,", b'{"path"')
#: Bytes read from a file's start to tell whether it is vmae's (:meth:`OutputFile.foreign`).
FOREIGN_SNIFF_BYTES = 64


class OutputBusyError(VmaeError, RuntimeError):
    """Another run holds the output file's lock (``path``)."""


class OutputMismatchError(VmaeError, ValueError):
    """An existing output file cannot be continued (not this format, other columns, rows of
    another model or protocol), or outputs that cannot go together."""


class _Parsed(Protocol):
    header: bytes | None
    columns: list[str] | None
    records: list[tuple[bytes, dict[str, Any]]]
    tail: bytes


class RecordFormat(Protocol):
    """What an :class:`OutputFile` needs of a format (a class of :mod:`vmae_cli.formats`)."""

    name: str
    bom: bool

    @staticmethod
    def parse(data: bytes) -> _Parsed: ...

    @staticmethod
    def encode(columns: list[str] | None, values: dict[str, Any]) -> bytes: ...


@dataclass(frozen=True)
class PreviousRow:
    """A row found in the output file: its video's identity (the ``path`` cell, see
    :mod:`vmae_cli.identity`), status, file stamp, the model and protocol that made it, and
    its bytes."""

    key: str
    status: str
    stamp: FileStamp | None
    record: bytes
    model: str = ""
    protocol: str = ""
    windows: int | None = None  # a segmented video's window count (--segments)
    window: int | None = None  # a window row's number (--segments-out)
    model_revision: str = ""


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _row(
    fmt: RecordFormat, columns: list[str] | None, record: bytes, values: dict[str, Any]
) -> PreviousRow | None:
    cell = values.get("path")
    if not isinstance(cell, str):
        return None
    key = key_of_cell(cell)
    if key != cell:
        # An older vmae's relative path: the record is written again with the identity, so
        # the file holds one spelling per video from now on.
        record = fmt.encode(columns, {**values, "path": key})
    size, mtime = _int(values.get("size_bytes")), _int(values.get("mtime_ns"))
    stamp = FileStamp(size, mtime) if size is not None and mtime is not None else None
    return PreviousRow(
        key,
        str(values.get("status") or ""),
        stamp,
        record,
        str(values.get("model") or ""),
        str(values.get("protocol") or ""),
        _int(values.get("windows")),
        _int(values.get("window")),
        str(values.get("model_revision") or ""),
    )


@dataclass
class ReadBack:
    """An output file read back: its header record (CSV) and columns, its rows, a torn tail
    (empty when the file ends cleanly), and whether some rows held an older vmae's relative
    paths (their records now hold the identity)."""

    header: bytes | None
    columns: list[str] | None
    rows: list[PreviousRow]
    tail: bytes
    legacy: bool = False


def parse_output(data: bytes, fmt: RecordFormat) -> ReadBack:
    """Parse an output file of format ``fmt``. Records that cannot be parsed are dropped
    (they are redone)."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    parsed = fmt.parse(data)
    rows = []
    legacy = False
    for record, values in parsed.records:
        row = _row(fmt, parsed.columns, record, values)
        if row is not None:
            rows.append(row)
            legacy = legacy or row.record is not record
    return ReadBack(parsed.header, parsed.columns, rows, parsed.tail, legacy)


def newest_per_key(rows: Iterable[PreviousRow]) -> dict[tuple[str, int | None], PreviousRow]:
    """The last row written for each video (and window, for window rows): a redone video's
    newer row wins."""
    latest: dict[tuple[str, int | None], PreviousRow] = {}
    for row in rows:
        key = (row.key, row.window)
        latest.pop(key, None)  # re-insert so the dict keeps the order of the newest rows
        latest[key] = row
    return latest


def other_columns(path: str, found: list[str], columns: list[str]) -> OutputMismatchError:
    """The error for an output whose columns are not the ones this run writes, naming what
    differs: the options that add or remove columns are the usual cause."""
    extra = [c for c in found if c not in columns]
    lacking = [c for c in columns if c not in found]
    parts = []
    if extra:
        parts.append(f"the file has {', '.join(extra)}, which this run does not write")
    if lacking:
        parts.append(f"this run writes {', '.join(lacking)}, which the file lacks")
    differs = "; ".join(parts) or "the same columns in another order"
    return OutputMismatchError(
        f"{path} has other columns than this run would write ({differs}): use the options "
        "that wrote it (top_k, label_map, min_score, segments) or another output file",
        options=("top_k", "label_map", "min_score"),
        value=(tuple(extra), tuple(lacking)),
        path=path,
    )


class OutputFile:
    """An output file of rows in format ``fmt``, held under an exclusive lock for a whole run.

    Use :meth:`lock` first (it fails at once with :class:`OutputBusyError` when another run
    writes the file), then :meth:`start` once the run is ready to write, :meth:`stream` to
    append, :meth:`finish` at the end (or :meth:`close` on an error).
    """

    def __init__(self, path: str | os.PathLike[str], fmt: RecordFormat):
        self.path = os.fspath(path)
        self.fmt = fmt
        self.fd = -1
        self._created = False  # lock() made the file and the run has not started yet
        self.is_empty = True
        self.regular = True
        #: start(resume=True) found rows of an older vmae with relative paths.
        self.legacy = False
        self._stream: io.TextIOWrapper | None = None
        # What start read to resume: header and rows (until keep_only).
        self._read: ReadBack | None = None

    def lock(self) -> OutputFile:
        """Open (creating if needed, never truncating) and lock the file. A file this call
        created is removed again by :meth:`close` if the run never started (a model that
        cannot be loaded leaves no empty output behind)."""
        import fcntl

        for _ in range(LOCK_ATTEMPTS):
            try:
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                self.fd, self._created = os.open(self.path, flags, 0o666), True
            except FileExistsError:
                self.fd, self._created = os.open(self.path, os.O_RDWR | os.O_CLOEXEC), False
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                # /dev/stdout, a pipe or a terminal: nothing to lock, truncate or resume.
                self.regular = False
                return self
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                self.fd = -1
                raise OutputBusyError(
                    f"{self.path} is being written by another vmae run; wait for it to finish "
                    "or write to another file",
                    path=self.path,
                ) from None
            # A run that gave up between our open and our lock removed the file we opened
            # (or one that finished renamed another over it): that lock guards nothing.
            try:
                same = os.path.samestat(os.fstat(self.fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                remove_stale_temporaries(self.path)
                return self
            os.close(self.fd)
            self.fd = -1
        raise OutputBusyError(
            f"{self.path} keeps being replaced by other vmae runs", path=self.path
        )

    def start(self, *, resume: bool, columns: list[str] | None = None) -> list[PreviousRow]:
        """Truncate the file for a fresh run (returns no rows), or read its rows to resume
        (returns the complete ones, a torn tail left out, in the file's order).

        ``columns`` are the header columns this run writes (CSV): a file with other columns
        cannot be continued (raises :class:`OutputMismatchError`). Nothing is rewritten yet:
        call :meth:`keep_only` next.
        """
        self._created = False  # the run started: the file is its output now
        if not self.regular:
            if resume:
                raise OutputMismatchError(
                    f"cannot resume into {self.path}: not a regular file",
                    options=("resume",),
                    path=self.path,
                )
            return []
        if not resume:
            os.ftruncate(self.fd, 0)
            return []
        read = parse_output(_read_all(self.fd), self.fmt)
        self._check_columns(read.columns, columns)
        self._read = read
        self.legacy = read.legacy
        self.is_empty = read.header is None and not read.rows
        return read.rows

    def count_rows(self) -> int:
        """Rows in the file as it is (0 for a file that is not of this format)."""
        if not self.regular or os.fstat(self.fd).st_size == 0:
            return 0
        try:
            return len(parse_output(_read_all(self.fd), self.fmt).rows)
        except OutputMismatchError:
            return 0

    def foreign(self) -> bool:
        """Whether the file holds bytes that are not a vmae run's rows (a file of the user's,
        such as a label list, under the name given as the output): no row of this format,
        and not even the start of one (a vmae CSV's header, a first row torn by a kill)."""
        if not self.regular or os.fstat(self.fd).st_size == 0:
            return False
        head = os.pread(self.fd, FOREIGN_SNIFF_BYTES, 0).removeprefix(BOM).lstrip()
        return bool(head) and not head.startswith(ROW_STARTS) and self.count_rows() == 0

    def _check_columns(self, found: list[str] | None, columns: list[str] | None) -> None:
        """Refuse to continue a CSV whose header is not the one this run writes."""
        if found is not None and columns is not None and found != columns:
            raise other_columns(self.path, found, columns)

    def keep_only(self, rows: Iterable[PreviousRow]) -> None:
        """Rewrite the file read by :meth:`start` with only ``rows`` (in the file's order),
        when that changes anything: rows of videos that are redone, orphaned or torn by a
        kill go, and an older vmae's relative paths become identities."""
        if not self.regular or self._read is None:
            return
        read, self._read = self._read, None
        kept = list(rows)
        if len(kept) != len(read.rows) or read.tail or read.legacy:
            self._rewrite(read.header, kept)

    def replace(self, rows: Iterable[PreviousRow]) -> None:
        """Make ``rows`` the file's whole content (a format without a header), aside then
        renamed; the file stays locked."""
        self._read = None
        self._rewrite(None, rows)

    def flush(self) -> None:
        """Flush what the stream holds."""
        if self._stream is not None:
            self._stream.flush()

    def stream(self) -> io.TextIOWrapper:
        """A text stream appending to the file (UTF-8, with a BOM first for a new file of a
        format that wants one)."""
        if self.regular:
            os.lseek(self.fd, 0, os.SEEK_END)
        raw = os.fdopen(os.dup(self.fd), "ab", buffering=0)
        self._stream = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        if self.fmt.bom and self.is_empty and self.regular:
            self._stream.write(BOM.decode("utf-8"))
        return self._stream

    def finish(self) -> None:
        """Flush and release the lock."""
        if self._stream is not None:
            self._stream.flush()
            self._stream.close()
            self._stream = None
        self.close()

    def close(self) -> None:
        """Release the lock (also done by the kernel if the process dies). The stream's
        descriptor is a duplicate holding the same lock, so it is closed too (a run that
        failed midway must not keep its output locked in a long-lived process)."""
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass
            self._stream = None
        if self.fd >= 0:
            if self._created and os.fstat(self.fd).st_size == 0:
                # Made by lock() for a run that never started: not left behind, empty.
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            os.close(self.fd)
            self.fd = -1

    def _rewrite(self, header: bytes | None, rows: Iterable[PreviousRow]) -> None:
        """Replace the file with ``header`` + ``rows``: written aside, locked, then renamed over
        the old file, so a kill at any moment leaves either the old or the new file whole."""
        import fcntl

        tmp = temporary_name(self.path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            chunks = [BOM + header] if header is not None else []
            chunks += [row.record for row in rows]
            write_all(fd, b"".join(chunks))
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        os.close(self.fd)
        self.fd = fd
        self.is_empty = not chunks


def temporary_name(path: str) -> str:
    """Where a new copy of ``path`` is written before it is renamed over it (hidden, beside
    it, named by this process)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.vmae-{os.getpid()}.tmp")


def remove_stale_temporaries(path: str) -> None:
    """Remove the copies of ``path`` that runs killed while writing them left (see
    :func:`temporary_name`). Called by whoever holds ``path``'s lock: no live run is writing
    one then, since a run writes its copy only while it holds that lock."""
    directory, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}.vmae-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def parquet_rows(path: str) -> int:
    """Rows of the Parquet file at ``path`` (its footer only): 0 when there is none, 1 for a
    file that is not Parquet but holds something (it is not to be replaced unasked)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        return 0
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return int(os.path.getsize(path) > 0)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def stdout_stream() -> tuple[io.TextIOBase | Any, Any]:
    """The text stream rows go to on stdout, and how to let go of it when done."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return sys.stdout, sys.stdout.flush
    # UTF-8 whatever the locale says, and no newline translation (the csv module's own).
    wrapper = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=True)
    # detach() instead of close(): stdout itself stays open for whoever owns it.
    return wrapper, wrapper.detach


def write_text_aside(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a file beside it renamed into place, so a
    reader never sees half of it; nothing is left behind when writing fails."""
    target = os.fspath(path)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OSError` now if a file cannot be written at ``path`` later (its folder
    is missing or not writable, or it is a folder), so a run fails before its work, not
    after it. Creates nothing."""
    import errno

    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "no such folder", target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)
