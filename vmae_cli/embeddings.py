"""The embeddings of a run (``--embeddings FILE``): the vector the classifier head receives, for
every ok video and every window of a segmented video, in one Parquet file.

* **Journal while it goes.** A Parquet file is unreadable until its footer is written, so
  vectors are first appended to a journal beside it (``FILE.partial``), one self-checking
  record each, a video's records in one ``write`` call. A SIGKILL can leave at most a torn
  last record; it is cut off when the journal is read again.
* **Parquet at the end.** :meth:`EmbeddingsFile.finish` merges the Parquet file of earlier
  runs and the journal into a new file written aside, then renames it over the old one, and
  only then removes the journal: a kill at any moment leaves either the old file and the
  journal, or the new file, and the next ``--resume`` run reads whichever is there.
* **Lock.** The journal is locked with ``flock`` for the whole run (like the CSV output, see
  :mod:`vmae_cli.output`), so a second run on the same file is refused at once.
* **Nothing doubled.** One row per (path, window) in the final file: a journal's vectors of a
  path replace that path's older ones, and a later journal record wins over an earlier one.

Journal layout: a file header record, then one record per vector. Every record is::

    magic (4 bytes) | header length (uint32) | payload length (uint32) | CRC-32 (uint32)
    | header (JSON, ASCII) | payload

little-endian, the CRC (``zlib.crc32``) taken over the magic, both lengths, the header and
the payload. The file header record (magic ``VMEH``) holds ``{"format", "model",
"protocol", "dtype", "model_revision"}`` and no payload (``model_revision`` only since vmae
recorded it: an older journal's is read as unknown); a vector record (magic ``VMEV``) holds
``{"path", "window"}`` (``window`` null for a video's own vector) and the vector's values in
the journal's dtype.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# The vectors' element types live in `choices` (what `vmae --help` imports).
from .choices import DEFAULT_EMBEDDING_DTYPE, EMBEDDING_DTYPES
from .output import (
    OutputBusyError,
    OutputMismatchError,
    hold_lock,
    parquet_rows,
    release_lock,
    write_all,
)

if TYPE_CHECKING:
    import numpy
    import pandas
    import pyarrow

__all__ = [
    "COLUMNS",
    "DEFAULT_EMBEDDING_DTYPE",
    "EMBEDDING_DTYPES",
    "EMBEDDINGS_EXTENSION",
    "JOURNAL_SUFFIX",
    "ROW_GROUP_ROWS",
    "REVISION_KEY",
    "EmbeddingsFile",
    "EmbeddingsInfo",
    "describe",
    "file_revision",
    "read_embeddings",
    "read_video_vectors",
]


#: The extension the embeddings file must have (it is always Parquet).
EMBEDDINGS_EXTENSION = ".parquet"

#: The journal's name is the embeddings file's name with this appended.
JOURNAL_SUFFIX = ".partial"

#: Rows per Parquet row group (at 768 float16 values, 12 MiB of vectors): what a merge holds
#: in memory at once, and the unit a reader can skip to.
ROW_GROUP_ROWS = 8192

#: The final file's columns, in order.
COLUMNS = ("path", "window", "model", "protocol", "dim", "embedding")

#: The key of the Parquet schema's key-value metadata that holds the revision of the model
#: whose vectors the file holds (``provenance.model_revision``: a Hub commit or ``sha256:``
#: of a folder's files). Files written before vmae recorded it have none: the revision is then
#: unknown, and such a file is still read and resumed.
REVISION_KEY = "model_revision"

#: Version of the journal layout, in its file header record.
JOURNAL_FORMAT = 1

_FILE_MAGIC = b"VMEH"  # the journal's file header record
_VECTOR_MAGIC = b"VMEV"  # one vector
#: magic, header length (bytes), payload length (bytes), CRC-32; little-endian.
_PREFIX = struct.Struct("<4sIII")
#: Bounds on a record's lengths (bytes): a corrupt length must read as a torn record, not make
#: the reader allocate gigabytes. A path is at most 4 KiB, 24 KiB once JSON-escaped; a vector
#: of 16 Mi float32 values is far beyond any model's width.
_MAX_HEADER_BYTES = 1 << 20
_MAX_PAYLOAD_BYTES = 64 << 20
#: Bytes read from the journal per system call when scanning it.
_READ_CHUNK_BYTES = 1 << 20
#: How often lock() retries when the journal it locked was removed meanwhile (see there).
_LOCK_ATTEMPTS = 5
#: The largest window number a record may carry (the column is int32).
_INT32_MAX = 2**31 - 1

#: (path, window): the key of a row; window None for a video's own vector.
Key = tuple[str, "int | None"]


@dataclass(frozen=True)
class _Entry:
    """A whole vector record of the journal: where it starts, its key and its bytes."""

    offset: int
    end: int
    path: str
    window: int | None
    payload: bytes


@dataclass
class _Journal:
    """What a scan of the journal found: its file header (None when it has none whole), the
    whole vector records' offsets and keys, where they end, and the vectors' length."""

    meta: dict[str, Any] | None = None
    records: list[tuple[int, str, int | None]] = field(default_factory=list)
    end: int = 0
    dim: int | None = None


@dataclass
class _Final:
    """What start(resume=True) read of the final file."""

    video_paths: set[str]  # paths with a video vector (window null)
    all_paths: set[str]  # paths with any vector


class EmbeddingsFile:
    """Vectors of a run: a journal while it goes, one Parquet file at the end.

    Use :meth:`lock` first (it fails at once with :class:`~vmae_cli.output.OutputBusyError`
    when another run writes the file), then :meth:`start`, then :meth:`keep_only` when
    resuming, :meth:`write` per video, and :meth:`finish` (or :meth:`close` on an error).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: str,
        protocol: str,
        dtype: str = DEFAULT_EMBEDDING_DTYPE,
        model_revision: str = "",
    ):
        if dtype not in EMBEDDING_DTYPES:
            raise ValueError(
                f"embeddings dtype must be one of {', '.join(EMBEDDING_DTYPES)}, not {dtype!r}"
            )
        self.path = os.fspath(path)
        self.journal_path = self.path + JOURNAL_SUFFIX
        self.model = model
        self.protocol = protocol
        self.dtype = dtype
        #: The model's revision ("" when unknown), in the journal's header and the final
        #: file's schema metadata (:data:`REVISION_KEY`).
        self.model_revision = model_revision
        self.fd = -1
        self._created = False  # lock() made the journal
        self._started = False
        self._dim: int | None = None  # every vector of the file has this many values
        self._resumed = False  # start(resume=True) was called, keep_only not yet
        self._final: _Final | None = None  # what start(resume=True) read of the final file

    # -- the run --------------------------------------------------------------------------

    def lock(self) -> EmbeddingsFile:
        """Open (creating if needed, never truncating) and lock the journal."""
        import fcntl

        for _ in range(_LOCK_ATTEMPTS):
            flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
            try:
                fd, self._created = (
                    os.open(self.journal_path, flags | os.O_CREAT | os.O_EXCL, 0o666),
                    True,
                )
            except FileExistsError:
                fd, self._created = os.open(self.journal_path, flags), False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputBusyError(
                    f"{self.path} is being written by another vmae run; wait for it to finish "
                    "or write the embeddings to another file"
                ) from None
            # A run that finished between our open and our flock removed the journal we
            # opened: that lock guards nothing, so open the path again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.journal_path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = hold_lock(fd)
                return self
            os.close(fd)
        raise OutputBusyError(f"{self.path} keeps being replaced by other vmae runs")

    def start(self, *, resume: bool) -> set[str]:
        """Remove an earlier run's vectors for a fresh run (returns an empty set), or read them
        to resume: returns the paths whose video vector (window null) is in the final file or
        the journal.

        Resuming refuses (:class:`~vmae_cli.formats.OutputMismatchError`) a file written with
        another model, protocol or dtype, or one that is not a vmae embeddings file. Nothing is
        rewritten yet (a torn journal tail is cut off): call :meth:`keep_only` next.
        """
        self._require_lock()
        self._started = True
        self._dim = None
        self._final = None
        self._resumed = resume
        if not resume:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self._reset_journal()
            return set()
        final = self._read_final()
        journal = self._scan_journal()
        if journal.records:
            self._check_journal(journal)
            if self._dim is not None and journal.dim != self._dim:
                raise OutputMismatchError(
                    f"{self.path} holds vectors of {self._dim} values, {self.journal_path} "
                    f"of {journal.dim}: start afresh (without resume=True), or use another file",
                    options=("resume",),
                    path=self.path,
                )
            self._dim = journal.dim
            # Records appended after a torn one could never be read back.
            os.ftruncate(self.fd, journal.end)
        else:
            # Only a header (maybe of another run's settings) or nothing whole: start it anew.
            self._reset_journal()
        self._final = final
        done = set(final.video_paths) if final else set()
        done.update(path for _, path, window in journal.records if window is None)
        return done

    def paths(self) -> set[str]:
        """After ``start(resume=True)``: every path with a vector (a video's or a window's) in
        the final file or the journal; empty after a fresh start."""
        self._require_lock()
        if not self._resumed:
            return set()
        held = set(self._final.all_paths) if self._final is not None else set()
        held.update(path for _, path, _ in self._scan_journal().records)
        return held

    def keep_only(self, paths: set[str]) -> None:
        """After ``start(resume=True)``: rewrite the final file with only the vectors (a video's
        and its windows') of ``paths``, from the final file and the journal, then empty the
        journal. A no-op after a fresh start."""
        self._require_lock()
        if not self._resumed:
            return  # a fresh start: nothing to keep or drop
        final_paths = self._final.all_paths if self._final is not None else set()
        self._resumed = False
        self._final = None
        journal = self._scan_journal()
        if journal.records or not final_paths <= paths:
            self._merge(journal, keep=paths)
        self._reset_journal()

    def write(
        self,
        path: str,
        vector: numpy.ndarray,
        windows: Sequence[tuple[int, numpy.ndarray]] = (),
    ) -> None:
        """Append one video's vectors to the journal: its windows' first, in the order given,
        then its own. One ``write`` call, so after a kill the video's own record is there only
        if its windows' are too. Vectors are 1-D; all of a file have the same length."""
        import operator

        import numpy as np

        self._require_lock()
        if not self._started:
            raise RuntimeError("EmbeddingsFile.start() must come before write()")
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        dtype = np.dtype(self.dtype).newbyteorder("<")
        dim = self._dim
        chunks = []
        for window, values in [*windows, (None, vector)]:
            if window is not None:
                number = operator.index(window)  # an int (numpy's too), not a float or str
                if isinstance(window, bool) or not 0 <= number <= _INT32_MAX:
                    raise ValueError(f"bad window number {window!r} for {path}")
                window = number
            array = np.ascontiguousarray(values, dtype=dtype)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(f"a vector must be 1-D and not empty, not of shape {array.shape}")
            if dim is None:
                dim = array.size
            elif array.size != dim:
                raise ValueError(f"vectors of {path} have {array.size} values, the file's {dim}")
            header = {"path": path, "window": window}
            chunks.append(_record(_VECTOR_MAGIC, header, array.tobytes()))
        self._dim = dim  # only once the whole video is valid: a refused one writes nothing
        # O_APPEND: each write lands at the end, whatever the file offset.
        write_all(self.fd, b"".join(chunks))

    def count(self) -> int:
        """Vectors in the final file and the journal, as they are (a final file that is not
        Parquet counts as one: it is not to be replaced unasked)."""
        self._require_lock()
        return len(self._scan_journal().records) + parquet_rows(self.path)

    def finish(self) -> int:
        """Merge the final file and the journal into the final file, remove the journal and
        release the lock. Returns the number of vectors in the final file.

        A run with no vector at all still gets a valid file: the columns and no rows, the
        embedding column's vectors then of length 0 (when no earlier file told the length).
        """
        self._require_lock()
        if not self._started:
            raise RuntimeError("EmbeddingsFile.start() must come before finish()")
        try:
            journal = self._scan_journal()
            if journal.records or not os.path.exists(self.path):
                rows = self._merge(journal, keep=None)
            else:
                import pyarrow.parquet as pq

                rows = pq.ParquetFile(self.path).metadata.num_rows
            # Only now: until the new final file is in place, the journal is the only copy.
            os.unlink(self.journal_path)
        finally:
            self.close()
        return rows

    def close(self) -> None:
        """Release the lock without merging (the journal stays for a resume); idempotent. A
        journal :meth:`lock` made for a run that never started is removed."""
        if self.fd >= 0:
            if self._created and not self._started and os.fstat(self.fd).st_size == 0:
                with contextlib.suppress(OSError):
                    os.unlink(self.journal_path)
            release_lock(self.fd)
            os.close(self.fd)
            self.fd = -1

    # -- the journal ----------------------------------------------------------------------

    def _require_lock(self) -> None:
        if self.fd < 0:
            raise RuntimeError("EmbeddingsFile.lock() must come first (or it was closed)")

    def _meta(self) -> dict[str, Any]:
        return {
            "format": JOURNAL_FORMAT,
            "model": self.model,
            "protocol": self.protocol,
            "dtype": self.dtype,
            "model_revision": self.model_revision,
        }

    def _reset_journal(self) -> None:
        """Empty the journal and write its file header. A kill in between leaves an empty
        journal, which reads as one without records."""
        os.ftruncate(self.fd, 0)
        write_all(self.fd, _record(_FILE_MAGIC, self._meta(), b""))

    def _entries(self) -> Iterator[_Entry | dict[str, Any]]:
        """The journal's file header (a dict, first), then its whole vector records, up to the
        first record that is torn, corrupt or not one of ours."""
        meta: dict[str, Any] | None = None
        itemsize = 0
        dim: int | None = None
        for offset, end, magic, header, payload in _raw_records(self.fd):
            try:
                values = json.loads(header)
            except ValueError:
                return
            if meta is None:
                if (
                    magic != _FILE_MAGIC
                    or not isinstance(values, dict)
                    or values.get("dtype") not in EMBEDDING_DTYPES
                    or payload
                ):
                    return
                meta = values | {"end": end}
                itemsize = 2 if values["dtype"] == "float16" else 4
                yield meta
                continue
            if magic != _VECTOR_MAGIC or not isinstance(values, dict):
                return
            path, window = values.get("path"), values.get("window")
            if not isinstance(path, str) or not (
                window is None or (type(window) is int and 0 <= window <= _INT32_MAX)
            ):
                return
            if not payload or len(payload) % itemsize:
                return
            if dim is None:
                dim = len(payload) // itemsize
            elif len(payload) != dim * itemsize:
                return
            yield _Entry(offset, end, path, window, payload)

    def _scan_journal(self) -> _Journal:
        """Offsets and keys of the journal's whole records (not their vectors)."""
        journal = _Journal()
        itemsize = 0
        for entry in self._entries():
            if isinstance(entry, dict):
                journal.meta = entry
                itemsize = 2 if entry["dtype"] == "float16" else 4
                journal.end = entry["end"]
                continue
            journal.records.append((entry.offset, entry.path, entry.window))
            journal.dim = len(entry.payload) // itemsize
            journal.end = entry.end
        return journal

    def _check_journal(self, journal: _Journal) -> None:
        """Refuse a journal whose vectors another model, protocol or dtype made."""
        meta = journal.meta or {}
        if meta.get("format") != JOURNAL_FORMAT:
            raise OutputMismatchError(
                f"{self.journal_path} is a vmae embeddings journal of another version "
                f"(format {meta.get('format')!r}); remove it, or use another file"
            )
        self._check_settings(
            self.journal_path, meta.get("dtype"), [meta.get("model")], [meta.get("protocol")]
        )
        self._check_revision(self.journal_path, meta.get("model_revision"))

    def _check_revision(self, name: str, revision: object) -> None:
        """Refuse vectors of another revision of the model; a file or journal written before
        vmae recorded revisions (none), or a run that does not know its own, passes."""
        if revision and self.model_revision and revision != self.model_revision:
            raise OutputMismatchError(
                f"{name} holds vectors of model {self.model!r} at revision {revision}, this "
                f"run's is at {self.model_revision}: resuming would mix two versions of the "
                "model in one file; use another file, or start afresh without resume=True",
                options=("resume",),
                value=revision,
                path=name,
            )

    def _check_settings(
        self, name: str, dtype: object, models: Iterable[object], protocols: Iterable[object]
    ) -> None:
        if dtype != self.dtype:
            raise OutputMismatchError(
                f"{name} holds {dtype} vectors, this run writes {self.dtype}: use the same "
                "embeddings_dtype, or another file",
                options=("embeddings_dtype",),
                value=self.dtype,
                path=name,
            )
        for model in models:
            if model != self.model:
                raise OutputMismatchError(
                    f"{name} holds vectors of model {model!r}, this run uses {self.model!r}: "
                    "use the same model, or another file",
                    options=("model",),
                    value=self.model,
                    path=name,
                )
        for protocol in protocols:
            if protocol != self.protocol:
                raise OutputMismatchError(
                    f"{name} holds vectors made with protocol {protocol}, this run uses "
                    f"{self.protocol}: use the same protocol and sampling, or another file",
                    options=("protocol", "sampling"),
                    value=self.protocol,
                    path=name,
                )

    # -- the final file -------------------------------------------------------------------

    def _open_final(self) -> tuple[Any, str, int] | None:
        """The final file (a ``pyarrow.parquet.ParquetFile``), its dtype and vector length;
        None when there is none. Raises OutputMismatchError for a file that is not ours."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not os.path.lexists(self.path):
            return None
        not_ours = OutputMismatchError(
            f"{self.path} is not a vmae embeddings file; remove it, or use another file"
        )
        try:
            parquet = pq.ParquetFile(self.path)
            schema = parquet.schema_arrow
        except (OSError, pa.ArrowException):
            raise not_ours from None
        expected = _schema(self.dtype, 0)
        embedding = schema.field("embedding").type if "embedding" in schema.names else None
        if (
            tuple(schema.names) != COLUMNS
            or any(schema.field(n).type != expected.field(n).type for n in COLUMNS[:-1])
            or not pa.types.is_fixed_size_list(embedding)
            or str(embedding.value_type) not in ("halffloat", "float")
        ):
            raise not_ours
        dtype = "float16" if str(embedding.value_type) == "halffloat" else "float32"
        return parquet, dtype, embedding.list_size

    def _read_final(self) -> _Final | None:
        """Check the final file's settings and gather its paths (by row groups)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        opened = self._open_final()
        if opened is None:
            return None
        parquet, dtype, dim = opened
        final = _Final(set(), set())
        if parquet.metadata.num_rows == 0:
            return final  # nothing to mix up: any dtype can follow
        self._check_settings(self.path, dtype, (), ())
        self._check_revision(self.path, file_revision(parquet.schema_arrow))
        self._dim = dim
        try:
            for batch in parquet.iter_batches(
                batch_size=ROW_GROUP_ROWS, columns=["path", "window", "model", "protocol"]
            ):
                self._check_settings(
                    self.path,
                    dtype,
                    pc.unique(batch.column("model")).to_pylist(),
                    pc.unique(batch.column("protocol")).to_pylist(),
                )
                paths = batch.column("path")
                final.all_paths.update(pc.unique(paths).to_pylist())
                videos = pc.filter(paths, pc.is_null(batch.column("window")))
                final.video_paths.update(videos.to_pylist())
        except (OSError, pa.ArrowException):
            raise OutputMismatchError(
                f"{self.path} is not a vmae embeddings file (it cannot be read); remove it, "
                "or use another file"
            ) from None
        return final

    def _merge(self, journal: _Journal, *, keep: set[str] | None) -> int:
        """Write the final file anew: the old final file's rows (those of ``keep``, all when
        None, less the paths the journal has again), then the journal's newest records (of
        ``keep``). Streams: in memory are the journal's keys and offsets, and a row group."""
        import pyarrow as pa
        import pyarrow.compute as pc

        chosen, redone = _newest_records(journal.records)
        opened = self._open_final()
        dim = self._dim or journal.dim
        if dim is None and opened is not None and opened[0].metadata.num_rows:
            dim = opened[2]
        # The run's revision; where it does not know one, the old file's (if it had one).
        revision = self.model_revision or (
            file_revision(opened[0].schema_arrow) if opened is not None else ""
        )
        schema = _schema(self.dtype, dim or 0, revision)
        drop = pa.array(sorted(redone), pa.string())
        kept = pa.array(sorted(keep), pa.string()) if keep is not None else None

        def old_rows() -> Iterator[pyarrow.RecordBatch]:
            if opened is None or not opened[0].metadata.num_rows:
                return
            for batch in opened[0].iter_batches(batch_size=ROW_GROUP_ROWS):
                paths = batch.column("path")
                mask = pc.invert(pc.is_in(paths, value_set=drop))
                if kept is not None:
                    mask = pc.and_(mask, pc.is_in(paths, value_set=kept))
                yield batch.filter(mask).cast(schema)

        def new_rows() -> Iterator[pyarrow.RecordBatch]:
            rows: list[_Entry] = []
            for entry in self._entries():
                if isinstance(entry, dict) or entry.offset not in chosen:
                    continue
                if keep is None or entry.path in keep:
                    rows.append(entry)
                    if len(rows) >= ROW_GROUP_ROWS:
                        yield self._batch(schema, rows)
                        rows = []
            if rows:
                yield self._batch(schema, rows)

        return self._replace_final(schema, itertools.chain(old_rows(), new_rows()))

    def _batch(self, schema: pyarrow.Schema, rows: list[_Entry]) -> pyarrow.RecordBatch:
        """Journal records as rows of the final file."""
        import numpy as np
        import pyarrow as pa

        dim = schema.field("embedding").type.list_size
        stored = np.dtype(self.dtype).newbyteorder("<")
        values = np.frombuffer(b"".join(r.payload for r in rows), stored).astype(self.dtype)
        count = len(rows)
        columns = [
            pa.array([r.path for r in rows], pa.string()),
            pa.array([r.window for r in rows], pa.int32()),
            pa.array([self.model] * count, pa.string()),
            pa.array([self.protocol] * count, pa.string()),
            pa.array(np.full(count, dim, np.int32)),
            pa.FixedSizeListArray.from_arrays(
                pa.array(values), type=schema.field("embedding").type
            ),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _replace_final(self, schema: pyarrow.Schema, batches: Iterable[pyarrow.RecordBatch]) -> int:
        """Write ``batches`` to a file aside in row groups of ROW_GROUP_ROWS, flush it to disk
        and rename it over the final file, so a kill leaves either the old or the new file
        whole. Returns the number of rows written."""
        import pyarrow.parquet as pq

        directory, name = os.path.split(os.path.abspath(self.path))
        tmp = os.path.join(directory, f".{name}.vmae-{os.getpid()}.tmp")
        rows = 0
        try:
            with open(tmp, "wb") as stream:
                with pq.ParquetWriter(stream, schema) as writer:
                    for group in _row_groups(schema, batches):
                        writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
                        rows += group.num_rows
                    if not rows:
                        # Without a row group the file still needs the schema: an empty one.
                        writer.write_table(schema.empty_table())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return rows


@dataclass(frozen=True)
class EmbeddingsInfo:
    """What a finished embeddings file says about its vectors (:func:`describe`)."""

    path: str
    model: str  # the model's name as the run was given it ("" for a file without rows)
    protocol: str
    dtype: str  # float16 or float32
    dim: int  # values per vector
    model_revision: str  # "" for a file written before vmae recorded it
    rows: int  # vectors, windows' included
    journal: bool  # a journal lies beside it: a run is going on, or was killed


def describe(path: str | os.PathLike[str]) -> EmbeddingsInfo:
    """The settings of the finished embeddings file ``path`` (its schema and its ``model`` and
    ``protocol`` columns, not its vectors). Raises
    :class:`~vmae_cli.output.OutputMismatchError` for a file that is not a vmae embeddings
    file, or whose rows name more than one model or protocol, and :class:`FileNotFoundError`
    for none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such embeddings file", path)
    reader = EmbeddingsFile(path, model="", protocol="")
    opened = reader._open_final()
    assert opened is not None
    parquet, dtype, dim = opened
    models: set[str] = set()
    protocols: set[str] = set()
    try:
        for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS, columns=["model", "protocol"]):
            models.update(pc.unique(batch.column("model")).to_pylist())
            protocols.update(pc.unique(batch.column("protocol")).to_pylist())
    except (OSError, pa.ArrowException):
        raise OutputMismatchError(
            f"{path} is not a vmae embeddings file (it cannot be read)", path=path
        ) from None
    if len(models) > 1 or len(protocols) > 1:
        raise OutputMismatchError(
            f"{path} holds vectors of several models or protocols "
            f"({', '.join(map(repr, sorted(map(str, models | protocols))))})",
            path=path,
        )
    return EmbeddingsInfo(
        path=path,
        model=str(next(iter(models), "") or ""),
        protocol=str(next(iter(protocols), "") or ""),
        dtype=dtype,
        dim=dim,
        model_revision=file_revision(parquet.schema_arrow),
        rows=parquet.metadata.num_rows,
        journal=os.path.exists(path + JOURNAL_SUFFIX),
    )


def read_video_vectors(
    path: str | os.PathLike[str], paths: Iterable[str]
) -> dict[str, numpy.ndarray]:
    """The video vectors (window null) of ``paths`` (``path`` cells) in the finished
    embeddings file ``path``, as float32 arrays by cell; a path without one is absent.
    Streams the file a row group at a time: in memory are only the vectors asked for."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted(set(paths)), pa.string())
    found: dict[str, numpy.ndarray] = {}
    parquet = pq.ParquetFile(os.fspath(path))
    for batch in parquet.iter_batches(
        batch_size=ROW_GROUP_ROWS, columns=["path", "window", "embedding"]
    ):
        mask = pc.and_(
            pc.is_null(batch.column("window")), pc.is_in(batch.column("path"), value_set=wanted)
        )
        chosen = batch.filter(mask)
        if not chosen.num_rows:
            continue
        column = chosen.column("embedding")
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        matrix = values.reshape(chosen.num_rows, column.type.list_size)
        for cell, vector in zip(chosen.column("path").to_pylist(), matrix, strict=True):
            found[cell] = vector  # a later row of a path (none in a finished file) wins
    return found


def read_embeddings(path: str | os.PathLike[str]) -> pandas.DataFrame:
    """The final file as a DataFrame (pandas.read_parquet), a convenience for tests and users.

    ``window`` is a nullable integer column (``<NA>`` for a video's own vector); each
    ``embedding`` cell is a numpy array.
    """
    import pandas as pd

    frame = pd.read_parquet(path)
    frame["window"] = frame["window"].astype("Int32")
    return frame


# -- helpers ------------------------------------------------------------------------------


def file_revision(schema: pyarrow.Schema) -> str:
    """The model revision an embeddings file's schema records (:data:`REVISION_KEY`); ``""``
    for a file written before vmae recorded it."""
    raw = (schema.metadata or {}).get(REVISION_KEY.encode())
    return raw.decode("utf-8", "replace") if raw else ""


def _schema(dtype: str, dim: int, revision: str = "") -> pyarrow.Schema:
    """The final file's columns for vectors of ``dim`` values of ``dtype``, and the model's
    ``revision`` in its metadata (none when unknown)."""
    import pyarrow as pa

    value = pa.float16() if dtype == "float16" else pa.float32()
    return pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("window", pa.int32()),
            pa.field("model", pa.string()),
            pa.field("protocol", pa.string()),
            pa.field("dim", pa.int32()),
            # Named "element" as Parquet names a list's values, so a file read back has the
            # very type this one is written with.
            pa.field("embedding", pa.list_(pa.field("element", value), dim)),
        ],
        metadata={REVISION_KEY: revision} if revision else None,
    )


def _record(magic: bytes, header: dict[str, Any], payload: bytes) -> bytes:
    """One journal record (see the module's docstring)."""
    body = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    prefix = struct.pack("<4sII", magic, len(body), len(payload))
    crc = zlib.crc32(payload, zlib.crc32(body, zlib.crc32(prefix)))
    return prefix + struct.pack("<I", crc) + body + payload


def _raw_records(fd: int) -> Iterator[tuple[int, int, bytes, bytes, bytes]]:
    """(offset, end offset, magic, header, payload) of each record whose lengths and CRC check
    out, up to the first that does not (a torn tail, or damage: what follows cannot be
    trusted)."""
    reader = _Reader(fd)
    while True:
        offset = reader.offset
        prefix = reader.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            return
        magic, header_len, payload_len, crc = _PREFIX.unpack(prefix)
        if (
            magic not in (_FILE_MAGIC, _VECTOR_MAGIC)
            or header_len > _MAX_HEADER_BYTES
            or payload_len > _MAX_PAYLOAD_BYTES
        ):
            return
        header = reader.read(header_len)
        payload = reader.read(payload_len)
        if len(header) < header_len or len(payload) < payload_len:
            return
        if zlib.crc32(payload, zlib.crc32(header, zlib.crc32(prefix[:12]))) != crc:
            return
        yield offset, reader.offset, magic, header, payload


class _Reader:
    """Sequential reads of a file descriptor with ``pread``, in large chunks (the run's own
    appends, with O_APPEND, do not care where the file offset is, and neither does this)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.offset = 0  # of the next byte read() returns
        self._buffer = b""
        self._start = 0  # where self._buffer begins in the file

    def read(self, size: int) -> bytes:
        parts = []
        wanted = size
        while wanted:
            at = self.offset - self._start
            if at >= len(self._buffer):
                self._start = self.offset
                self._buffer = os.pread(self.fd, max(wanted, _READ_CHUNK_BYTES), self.offset)
                at = 0
                if not self._buffer:
                    break
            part = self._buffer[at : at + wanted]
            parts.append(part)
            self.offset += len(part)
            wanted -= len(part)
        return b"".join(parts)


def _newest_records(
    records: list[tuple[int, str, int | None]],
) -> tuple[set[int], set[str]]:
    """Which journal records make the final file: the offsets of each path's newest whole
    write (the records since its previous video record, up to its last one; a window record
    with no video record after it is what a kill cut short), and the paths that have one
    (their rows in the old final file are replaced: a redone video may have other windows)."""
    # Walking backwards, a path's first video record opens its newest write, its next one
    # closes it; a later record of the same key wins.
    state: dict[str, bool] = {}  # path -> still inside its newest write
    seen: set[Key] = set()
    chosen: set[int] = set()
    for offset, path, window in reversed(records):
        if window is None:
            if path in state:
                state[path] = False
                continue
            state[path] = True
        if state.get(path) and (path, window) not in seen:
            seen.add((path, window))
            chosen.add(offset)
    return chosen, set(state)


def _row_groups(
    schema: pyarrow.Schema, batches: Iterable[pyarrow.RecordBatch]
) -> Iterator[pyarrow.Table]:
    """``batches`` regrouped into tables of ROW_GROUP_ROWS rows (the last one shorter), so
    filtered batches do not make small row groups."""
    import pyarrow as pa

    size = ROW_GROUP_ROWS
    pending: list[pyarrow.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= size:
            table = pa.Table.from_batches(pending, schema=schema)
            whole = count - count % size
            for start in range(0, whole, size):
                yield table.slice(start, size)
            rest = table.slice(whole)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, schema=schema)
