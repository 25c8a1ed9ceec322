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
  modification time; a redone video's older row is removed before the run writes (or, if the
  run is killed first, when the file is next opened), keeping the newest row per path.
* **Memory that does not grow with the file.** Resume reads the file a chunk at a time into
  a :class:`~vmae_cli.rowindex.RowIndex` (tens of bytes a row, never the rows' text), and a
  rewrite copies the records that stay a chunk at a time; a file with nothing to drop is
  left as it is (a torn record cut off).

What a file holds is its format's business (:mod:`vmae_cli.formats`): an :class:`OutputFile`
is given the format's class, and asks it to read the file's rows into an index (``scan``),
to split it into records and read one (``records``, ``values``), and to encode a record.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import VmaeError
from .identity import key_of_cell

if TYPE_CHECKING:
    import numpy as np

    from .rowindex import RowIndex, RowIndexBuilder

#: How often lock() retries when the file it locked was removed or replaced meanwhile.
LOCK_ATTEMPTS = 5

#: This process's descriptors that hold an output's lock (an ``flock`` belongs to the open
#: file, so each duplicate holds it too). A forked child points them at ``/dev/null`` at
#: once (:func:`_forget_locks_in_child`): a decoding worker that outlives its run, or takes a
#: while to exit, must not keep the run's output locked against the next run.
_LOCK_FDS: set[int] = set()


def hold_lock(fd: int) -> int:
    """Remember that ``fd`` holds an output's lock (see :data:`_LOCK_FDS`); returns it."""
    _LOCK_FDS.add(fd)
    return fd


def release_lock(fd: int) -> None:
    """Forget ``fd`` (before it is closed)."""
    _LOCK_FDS.discard(fd)


def _forget_locks_in_child() -> None:
    """In a forked child: the lock descriptors now read and write ``/dev/null`` (the numbers
    stay valid for objects that still name them; the lock is the parent's alone)."""
    if not _LOCK_FDS:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in _LOCK_FDS:
        with contextlib.suppress(OSError):
            os.dup2(null, fd, inheritable=False)
    os.close(null)
    _LOCK_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)

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


class RecordFormat(Protocol):
    """What an :class:`OutputFile` needs of a format (a class of :mod:`vmae_cli.formats`)."""

    name: str
    bom: bool

    @staticmethod
    def scan(fd: int, size: int, builder: RowIndexBuilder) -> Scan: ...

    @staticmethod
    def records(chunks: Iterable[bytes]) -> Iterator[bytes]: ...

    @staticmethod
    def values(columns: list[str] | None, record: bytes) -> dict[str, Any] | None: ...

    @staticmethod
    def encode(columns: list[str] | None, values: dict[str, Any]) -> bytes: ...


#: Bytes read at once when an output is read back or copied.
CHUNK_BYTES = 1 << 24


@dataclass
class Scan:
    """An output file read back for resume (its rows went to a :class:`~vmae_cli.rowindex.
    RowIndexBuilder`): its header record (CSV) and columns, where its rows start (``body``,
    after a BOM and the header) and where its complete records end (``end``: a record torn
    by a kill follows), how many rows it holds, and whether those rows are exactly its
    non-blank records (``fast``: a reader that refuses any other record read them) or are
    told record by record (``fmt.values``)."""

    header: bytes | None
    columns: list[str] | None
    body: int
    end: int
    rows: int
    fast: bool = False
    junk: int = 0  # records that are no row (damaged): gone when the file is rewritten


def is_row(values: dict[str, Any] | None) -> bool:
    """Whether a record's values are a row resume counts (one with a text ``path``)."""
    return values is not None and isinstance(values.get("path"), str)


def read_chunks(fd: int, start: int, stop: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of ``fd`` from ``start`` to ``stop``, ``chunk_bytes`` at a time."""
    offset = start
    while offset < stop:
        chunk = os.pread(fd, min(stop - offset, chunk_bytes), offset)
        if not chunk:
            return
        yield chunk
        offset += len(chunk)


def exact_scan(
    fmt: RecordFormat,
    fd: int,
    size: int,
    builder: RowIndexBuilder,
    *,
    header: bytes | None = None,
    columns: list[str] | None = None,
    body: int = 0,
) -> Scan:
    """Read the records of ``fd`` from ``body`` one by one (``fmt.values``), their rows into
    ``builder`` a block at a time. Records that cannot be parsed are left out (their videos
    are redone): only the last one can be torn by a kill, but a damaged one in the middle
    must not stop a resume."""
    from .rowindex import BLOCK_ROWS, RowBlock

    end, rows, junk, batch = body, 0, 0, []
    for record in fmt.records(read_chunks(fd, body, size)):
        end += len(record)
        values = fmt.values(columns, record)
        junk += not is_row(values)
        if is_row(values):
            batch.append(values)
            if len(batch) == BLOCK_ROWS:
                builder.add(RowBlock.of_values(batch))
                rows, batch = rows + len(batch), []
    builder.add(RowBlock.of_values(batch))
    return Scan(header, columns, body, end, rows + len(batch), junk=junk)


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
        # What start read to resume (until drop or keep_rows).
        self._scan: Scan | None = None
        self._index: RowIndex | None = None

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
                hold_lock(self.fd)
                remove_stale_temporaries(self.path)
                return self
            os.close(self.fd)
            self.fd = -1
        raise OutputBusyError(
            f"{self.path} keeps being replaced by other vmae runs", path=self.path
        )

    def start(
        self,
        *,
        resume: bool,
        columns: list[str] | None = None,
        builder: RowIndexBuilder | None = None,
    ) -> RowIndex:
        """Truncate the file for a fresh run (returns an empty index), or read its rows to
        resume (returns their :class:`~vmae_cli.rowindex.RowIndex`: the newest row of each
        video and window, a torn tail left out).

        ``columns`` are the header columns this run writes (CSV): a file with other columns
        cannot be continued (raises :class:`OutputMismatchError`). Given a ``builder``, the
        rows are added to it (after the rows it holds: a Parquet file's, which the journal
        continues) and the index it returns is empty. Nothing is rewritten yet: call
        :meth:`drop` or :meth:`keep_rows` next. It may be called again to resume after rows
        were appended (their stream is closed first), to drop more rows.
        """
        from .rowindex import RowIndex, RowIndexBuilder

        self._created = False  # the run started: the file is its output now
        if self._stream is not None:
            # Read again after rows were appended (a second drop): the stream goes, and
            # stream() makes one for the file as drop leaves it.
            self._stream.close()
            self._stream = None
        if not self.regular:
            if resume:
                raise OutputMismatchError(
                    f"cannot resume into {self.path}: not a regular file",
                    options=("resume",),
                    path=self.path,
                )
            return RowIndex.empty()
        if not resume:
            os.ftruncate(self.fd, 0)
            return RowIndex.empty()
        own = builder is None
        builder = RowIndexBuilder() if builder is None else builder
        scan = self.fmt.scan(self.fd, os.fstat(self.fd).st_size, builder)
        self._check_columns(scan.columns, columns)
        index = builder.seal() if own else RowIndex.empty()
        self._scan = scan
        self._index = index if own else None
        self.legacy = bool(own and index.legacy)
        self.is_empty = scan.header is None and not scan.rows
        return index

    def count_rows(self) -> int:
        """Rows in the file as it is (0 for a file that is not of this format)."""
        from .rowindex import RowIndexBuilder

        if not self.regular or os.fstat(self.fd).st_size == 0:
            return 0
        try:
            return self.fmt.scan(self.fd, os.fstat(self.fd).st_size, RowIndexBuilder()).rows
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

    def drop(self, redone: set[str], videos: RowIndex | None) -> None:
        """After :meth:`start` read the file: drop the rows of the ``redone`` videos, of
        videos without a row in ``videos`` (when given) and the older rows of a video
        (:meth:`~vmae_cli.rowindex.RowIndex.rows_kept`), through :meth:`keep_rows`."""
        from .rowindex import RowIndexBuilder

        index, self._index = self._index, None
        if not self.regular or self._scan is None or index is None:
            return
        try:
            self.keep_rows(index.rows_kept(redone, videos), row_mask(index.rows, index.legacy_rows))
        except _Disagreement:
            # The fast reader took the file for other rows than the record-by-record reading
            # does (a hand-edited record): read it that way and decide again.
            builder = RowIndexBuilder()
            scan = self._scan
            self._scan = exact_scan(
                self.fmt,
                self.fd,
                os.fstat(self.fd).st_size,
                builder,
                header=scan.header,
                columns=scan.columns,
                body=scan.body,
            )
            index = builder.seal()
            self.keep_rows(index.rows_kept(redone, videos), row_mask(index.rows, index.legacy_rows))

    def keep_rows(self, keep: np.ndarray, legacy: np.ndarray) -> None:
        """Keep the rows read by :meth:`start` that ``keep`` marks (one bool per row, in the
        file's order), writing those ``legacy`` marks again with the identity, when that
        changes anything: the file is rewritten (streaming, aside then renamed) without the
        others and without damaged records, or only cut before a torn tail."""
        scan = self._scan
        if not self.regular or scan is None:
            return
        if keep.all() and not legacy.any() and not scan.junk:
            self._scan = None
            if scan.end < os.fstat(self.fd).st_size:
                os.ftruncate(self.fd, scan.end)  # a torn record: its video is redone
            return
        self._rewrite(scan, keep, legacy)

    def flush(self) -> None:
        """Flush what the stream holds."""
        if self._stream is not None:
            self._stream.flush()

    def stream(self) -> io.TextIOWrapper:
        """A text stream appending to the file (UTF-8, with a BOM first for a new file of a
        format that wants one)."""
        if self.regular:
            os.lseek(self.fd, 0, os.SEEK_END)
        raw = os.fdopen(hold_lock(os.dup(self.fd)), "ab", buffering=0)
        self._stream = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        if self.fmt.bom and self.is_empty and self.regular:
            self._stream.write(BOM.decode("utf-8"))
        return self._stream

    def finish(self) -> None:
        """Flush and release the lock."""
        if self._stream is not None:
            self._stream.flush()
        self.close()

    def close(self) -> None:
        """Release the lock (also done by the kernel if the process dies). The stream's
        descriptor is a duplicate holding the same lock, so it is closed too (a run that
        failed midway must not keep its output locked in a long-lived process)."""
        if self._stream is not None:
            release_lock(self._stream.fileno())
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
            release_lock(self.fd)
            os.close(self.fd)
            self.fd = -1

    def _rewrite(self, scan: Scan, keep: np.ndarray, legacy: np.ndarray) -> None:
        """Replace the file with its header and the rows ``keep`` marks: written aside,
        locked, then renamed over the old file, so a kill at any moment leaves either the
        old or the new file whole."""
        import fcntl

        tmp = temporary_name(self.path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out = _Writer(fd)
            if scan.header is not None:
                out.write(BOM + scan.header)
            row = 0
            for record in self.fmt.records(read_chunks(self.fd, scan.body, scan.end)):
                if scan.fast:
                    values = None
                    counted = bool(record.strip(b"\r\n"))
                else:
                    values = self.fmt.values(scan.columns, record)
                    counted = is_row(values)
                if not counted:
                    continue
                if row < len(keep) and keep[row]:
                    if legacy[row]:
                        values = values or self.fmt.values(scan.columns, record)
                        if not is_row(values):
                            raise _Disagreement
                        values = {**values, "path": key_of_cell(values["path"])}
                        record = self.fmt.encode(scan.columns, values)
                    out.write(record)
                row += 1
            if row != len(keep):
                raise _Disagreement
            out.flush()
            os.fsync(fd)
            os.replace(tmp, self.path)
            self._scan = None
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        release_lock(self.fd)
        os.close(self.fd)
        self.fd = hold_lock(fd)
        self.is_empty = scan.header is None and not out.written


class _Disagreement(Exception):
    """A file's records, read one by one, are not the rows a fast reader found."""


class _Writer:
    """Buffered writes to a descriptor (records are small, the file may be large)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._parts: list[bytes] = []
        self._size = 0
        self.written = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        self.written += len(data)
        if self._size >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        write_all(self.fd, b"".join(self._parts))
        self._parts, self._size = [], 0


def row_mask(rows: int, positions: np.ndarray) -> np.ndarray:
    """A bool per row, true at ``positions``."""
    import numpy as np

    mask = np.zeros(rows, bool)
    mask[positions] = True
    return mask


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
