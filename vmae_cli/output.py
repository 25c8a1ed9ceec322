"""The output of a run: a file held under an exclusive lock, never a lost or doubled row, or
stdout.

* **Lock.** The output file is locked with ``flock`` for the whole run, so a second run on the
  same file is refused at once. The kernel drops the lock when the process dies, even by
  SIGKILL; there is no PID file to go stale. When the file is rewritten, the new copy is
  locked before it replaces the old one, so there is no unlocked moment.
* **Nothing lost.** Rows are appended and flushed one by one (see :mod:`vmae_cli.writers`).
  A SIGKILL can leave at most a torn last record; it is cut off when the file is opened
  again, and its video is redone.
* **Nothing doubled.** A resumed run skips videos whose row is there with the same size and
  modification time; a redone video's older row is removed when the run ends (or, if the run
  is killed first, when the file is next opened), keeping the newest row per path.

How a format reads its own file back lives with its writer (:mod:`vmae_cli.writers`).
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .results import FileStamp
from .writers import WRITERS, OutputMismatchError, csv_columns, split_csv_records

__all__ = [
    "BOM",
    "OutputBusyError",
    "OutputFile",
    "OutputMismatchError",
    "PreviousRow",
    "newest_per_path",
    "parse_output",
    "split_csv_records",
    "stdout_stream",
]

#: The UTF-8 byte-order mark a CSV file starts with (so spreadsheets read it as UTF-8).
BOM = "\ufeff".encode()


class OutputBusyError(RuntimeError):
    """Another run holds the output file's lock."""


@dataclass(frozen=True)
class PreviousRow:
    """A row found in the output file: its path cell, status, file stamp, the model and
    protocol that made it, and its bytes."""

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


def _row(record: bytes, values: dict[str, Any]) -> PreviousRow | None:
    key = values.get("path")
    if not isinstance(key, str):
        return None
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


def parse_output(data: bytes, fmt: str) -> tuple[bytes | None, list[PreviousRow], bytes]:
    """Parse an output file of format ``fmt``: ``(header record or None, rows, torn tail)``.

    Records that cannot be parsed are dropped (they are redone).
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]
    parsed = WRITERS[fmt].parse(data)
    rows = [row for record, values in parsed.records if (row := _row(record, values))]
    return parsed.header, rows, parsed.tail


def newest_per_path(rows: Iterable[PreviousRow]) -> dict[str, PreviousRow]:
    """The last row written for each path (a redone video's newer row wins)."""
    latest: dict[str, PreviousRow] = {}
    for row in rows:
        latest.pop(row.key, None)  # re-insert so the dict keeps the order of the newest rows
        latest[row.key] = row
    return latest


class OutputFile:
    """An output file held under an exclusive lock for a whole run.

    Use :meth:`lock` first (it fails at once with :class:`OutputBusyError` when another run
    writes the file), then :meth:`start` once the run is ready to write.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.fd = -1
        self.previous: dict[str, PreviousRow] = {}
        self.is_empty = True
        self.regular = True
        self._stream: io.TextIOWrapper | None = None
        # What start_windows read: header, rows, torn tail (until keep_only).
        self._read: tuple[bytes | None, list[PreviousRow], bytes] | None = None

    def lock(self) -> OutputFile:
        """Open (creating if needed, never truncating) and lock the file."""
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            # -o /dev/stdout, a pipe or a terminal: nothing to lock, truncate or resume.
            self.regular = False
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = -1
            raise OutputBusyError(
                f"{self.path} is being written by another vmae run; wait for it to finish "
                "or write to another file"
            ) from None
        return self

    def start(self, fmt: str, *, resume: bool, columns: list[str] | None = None) -> int:
        """Truncate the file for a fresh run, or read its rows to resume.

        Resuming cuts off a torn last record and removes older duplicates of a path.
        ``columns`` are the header columns this run writes (CSV): a file with other columns
        cannot be continued (raises :class:`OutputMismatchError`). Returns how many rows a
        fresh run replaced (0 when resuming).
        """
        if not self.regular:
            if resume:
                raise OutputMismatchError(f"cannot resume into {self.path}: not a regular file")
            return 0
        if not resume:
            replaced = self._count_rows(fmt)
            os.ftruncate(self.fd, 0)
            return replaced
        self.previous = self._compact(fmt, columns)
        return 0

    def start_windows(
        self, fmt: str, *, resume: bool, columns: list[str] | None = None
    ) -> list[PreviousRow]:
        """Like :meth:`start` for the window rows (many rows per path): truncate the file for
        a fresh run, or return its complete rows to resume. Then, before writing, call
        :meth:`keep_only` with the rows whose videos are kept."""
        if not self.regular:
            return []
        if not resume:
            os.ftruncate(self.fd, 0)
            return []
        header, rows, tail = parse_output(_read_all(self.fd), fmt)
        self._check_columns(header, columns)
        self._read = header, rows, tail
        self.is_empty = header is None and not rows
        return rows

    def _check_columns(self, header: bytes | None, columns: list[str] | None) -> None:
        """Refuse to continue a CSV whose header is not the one this run writes."""
        if header is not None and columns is not None and csv_columns(header) != columns:
            raise OutputMismatchError(
                f"{self.path} has other columns than this run would write (another "
                "--top-k, --label-map or --min-score, or a file of another vmae version); use "
                "the same options as before, or another output file"
            )

    def keep_only(self, rows: list[PreviousRow]) -> None:
        """Rewrite the file read by :meth:`start_windows` with only ``rows`` (in the file's
        order), when that drops anything: window rows of videos that are redone, orphaned
        (their video's row never got written) or torn by a kill."""
        if not self.regular or self._read is None:
            return
        header, before, tail = self._read
        self._read = None
        if len(rows) != len(before) or tail:
            self._rewrite(header, rows)

    def _count_rows(self, fmt: str) -> int:
        """Rows in the file as it is, read as ``fmt`` (0 for a file that is not ours)."""
        if os.fstat(self.fd).st_size == 0:
            return 0
        try:
            return len(parse_output(_read_all(self.fd), fmt)[1])
        except OutputMismatchError:
            return 0

    def stream(self, fmt: str) -> io.TextIOWrapper:
        """A text stream appending to the file (UTF-8, with a BOM first for a new file of a
        format that wants one)."""
        if self.regular:
            os.lseek(self.fd, 0, os.SEEK_END)
        raw = os.fdopen(os.dup(self.fd), "ab", buffering=0)
        self._stream = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        if WRITERS[fmt].bom and self.is_empty and self.regular:
            self._stream.write(BOM.decode("utf-8"))
        return self._stream

    def finish(self, fmt: str, *, compact: bool) -> None:
        """Flush, remove older rows of videos redone by this run (``compact``), and release
        the lock."""
        if self._stream is not None:
            self._stream.flush()
            self._stream.close()
            self._stream = None
        if compact and self.regular:
            self._compact(fmt)
        self.close()

    def _compact(self, fmt: str, columns: list[str] | None = None) -> dict[str, PreviousRow]:
        """Read the rows, and rewrite the file without a torn tail or older duplicates if it
        has them; returns the newest row per path. ``columns``: see :meth:`start`."""
        header, rows, tail = parse_output(_read_all(self.fd), fmt)
        self._check_columns(header, columns)
        newest = newest_per_path(rows)
        self.is_empty = header is None and not rows
        if len(newest) != len(rows) or tail:
            self._rewrite(header, newest.values())
        return newest

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
            os.close(self.fd)
            self.fd = -1

    def _rewrite(self, header: bytes | None, rows: Iterable[PreviousRow]) -> None:
        """Replace the file with ``header`` + ``rows``: written aside, locked, then renamed over
        the old file, so a kill at any moment leaves either the old or the new file whole."""
        import fcntl

        directory, name = os.path.split(os.path.abspath(self.path))
        tmp = os.path.join(directory, f".{name}.vmae-{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            chunks = [BOM + header] if header is not None else []
            chunks += [row.record for row in rows]
            _write_all(fd, b"".join(chunks))
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


def _write_all(fd: int, data: bytes) -> None:
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
