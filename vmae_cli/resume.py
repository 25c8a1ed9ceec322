"""The output file of a run: an exclusive lock, resuming, and never a lost or doubled row.

* **Lock.** The output file is locked with ``flock`` for the whole run, so a second run on the
  same file is refused at once. The kernel drops the lock when the process dies, even by
  SIGKILL; there is no PID file to go stale. When the file is rewritten, the new copy is
  locked before it replaces the old one, so there is no unlocked moment.
* **Nothing lost.** Rows are appended and flushed one by one (see :mod:`vmae_cli.writers`).
  A SIGKILL can leave at most a torn last record; it is cut off when the file is opened
  again, and its video is redone.
* **Nothing doubled.** ``--resume`` skips videos whose row is there with the same size and
  modification time; a redone video's older row is removed when the run ends (or, if the run
  is killed first, when the file is next opened), keeping the newest row per path.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .results import STATUS_OK, FileStamp, file_stamp

#: The UTF-8 byte-order mark a CSV file starts with (so spreadsheets read it as UTF-8).
BOM = "\ufeff".encode()


class OutputBusyError(RuntimeError):
    """Another run holds the output file's lock."""


class OutputMismatchError(ValueError):
    """The existing output file cannot be continued (other CSV columns, not vmae output)."""


@dataclass(frozen=True)
class PreviousRow:
    """A row found in the output file: its path cell, status and file stamp, and its bytes."""

    key: str
    status: str
    stamp: FileStamp | None
    record: bytes


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _row(record: bytes, values: dict) -> PreviousRow | None:
    key = values.get("path")
    if not isinstance(key, str):
        return None
    size, mtime = _int(values.get("size_bytes")), _int(values.get("mtime_ns"))
    stamp = FileStamp(size, mtime) if size is not None and mtime is not None else None
    return PreviousRow(key, str(values.get("status") or ""), stamp, record)


def _columns(header: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(header.decode("utf-8", "replace"), newline="")), [])


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


def parse_output(data: bytes, fmt: str) -> tuple[bytes | None, list[PreviousRow], bytes]:
    """Parse an output file: ``(csv header record or None, rows, torn tail bytes)``.

    Records that cannot be parsed are dropped (they are redone); only the last record can be
    torn by a kill, but a damaged one in the middle must not stop a resume either.
    """
    if data.startswith(BOM):
        data = data[len(BOM) :]
    rows: list[PreviousRow] = []
    if fmt == "csv":
        records, tail = split_csv_records(data)
        if not records:
            return None, [], tail
        header = records[0]
        columns = _columns(header)
        if "path" not in columns:
            raise OutputMismatchError("the existing file is not a vmae CSV (no path column)")
        for record in records[1:]:
            text = record.decode("utf-8", "replace")
            cells = next(csv.reader(io.StringIO(text, newline="")), None)
            if cells is None or len(cells) != len(columns):
                continue
            row = _row(record, dict(zip(columns, cells, strict=True)))
            if row is not None:
                rows.append(row)
        return header, rows, tail
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty, or a torn line
    for line in lines:
        try:
            values = json.loads(line)
        except ValueError:
            continue
        row = _row(line + b"\n", values) if isinstance(values, dict) else None
        if row is not None:
            rows.append(row)
    return None, rows, tail


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

    def start(self, fmt: str, *, resume: bool, csv_columns: list[str] | None = None) -> None:
        """Truncate the file for a fresh run, or read its rows to resume.

        Resuming cuts off a torn last record and removes older duplicates of a path. For CSV,
        ``csv_columns`` are the columns this run writes: a file with other columns cannot be
        continued (raises :class:`OutputMismatchError`).
        """
        if not self.regular:
            if resume:
                raise OutputMismatchError(f"cannot resume into {self.path}: not a regular file")
            return
        if not resume:
            os.ftruncate(self.fd, 0)
            return
        self.previous = self._compact(fmt, csv_columns)

    def stream(self, fmt: str) -> io.TextIOWrapper:
        """A text stream appending to the file (UTF-8, with a BOM first for a new CSV)."""
        if self.regular:
            os.lseek(self.fd, 0, os.SEEK_END)
        raw = os.fdopen(os.dup(self.fd), "ab", buffering=0)
        self._stream = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        if fmt == "csv" and self.is_empty and self.regular:
            self._stream.write("\ufeff")
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

    def _compact(self, fmt: str, csv_columns: list[str] | None = None) -> dict[str, PreviousRow]:
        """Read the rows, and rewrite the file without a torn tail or older duplicates if it
        has them; returns the newest row per path. ``csv_columns``: see :meth:`start`."""
        header, rows, tail = parse_output(_read_all(self.fd), fmt)
        if header is not None and csv_columns is not None and _columns(header) != csv_columns:
            raise OutputMismatchError(
                f"{self.path} has other columns than this run would write (different "
                "--top-k?); use the same options as before, or another output file"
            )
        newest = newest_per_path(rows)
        self.is_empty = header is None and not rows
        if len(newest) != len(rows) or tail:
            self._rewrite(header, newest.values())
        return newest

    def close(self) -> None:
        """Release the lock (also done by the kernel if the process dies)."""
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


def unfinished(
    paths: Iterable[str],
    previous: dict[str, PreviousRow],
    key_of: Callable[[str], str],
    *,
    retry_failed: bool = False,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """The paths a resumed run must (re)do: new ones, changed ones (size or modification time
    differ from the row's), and with ``retry_failed`` those whose row is not ``ok``."""
    for path in paths:
        row = previous.get(key_of(path))
        if (
            row is not None
            and row.stamp == file_stamp(path)
            and (row.status == STATUS_OK or not retry_failed)
        ):
            if on_skip is not None:
                on_skip(path)
            continue
        yield path
