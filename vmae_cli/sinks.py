"""A run's outputs: every one a sink with the same life.

A run writes up to three outputs: the video rows (``output``), the window rows
(``segments_output``) and the vectors (``embeddings_output``). Each is a :class:`Sink`:

1. :meth:`~Sink.lock`, before the model is read, so that a second run is refused at once;
2. :meth:`~Sink.start` once the run knows its rows' :class:`Layout`: truncate for a fresh run,
   or read back what an earlier run wrote (the video-row sink's rows, as a compact
   :class:`~vmae_cli.rowindex.RowIndex`, are the run's memory: never the rows' text);
3. :meth:`~Sink.drop` ``(redone, videos)``: drop what it holds of the videos the run redoes
   and of the videos without a row in ``videos`` (the video rows' index: window rows or a
   vector written before a kill took the video's row); every other video's rows stay,
   walked by this run or not. After it the sink is ready to write;
4. :meth:`~Sink.holds`, while the run walks its inputs (what ``start`` read stays until
   :meth:`~Sink.forget`): does it hold everything of a video an earlier run did (all its
   window rows, its vector), so that the video may be skipped;
5. :meth:`~Sink.write` each prediction, in the order :class:`Outputs` keeps: vectors, window
   rows, then the video's row, which is what makes a video done (a kill in between redoes it);
   :meth:`~Sink.drop` may come once more between two writes, with ``videos`` None: the file
   is read again and the rows of the videos ``redone`` go, the rows written since stay (the
   runner holds back the videos it redoes until its walk ends, see
   :meth:`Outputs.drop`);
6. :meth:`~Sink.finish` (a count), or :meth:`~Sink.close` after an error.

The runner hands each prediction to :class:`Outputs` and knows no format: a format is a class
of :mod:`vmae_cli.formats`, whose ``store`` keeps its file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from .embeddings import DEFAULT_EMBEDDING_DTYPE, EMBEDDINGS_EXTENSION, EmbeddingsFile
from .formats import (
    FORMATS,
    LABELS_FROM,
    RUNTIME,
    SEGMENTED_VIDEO_ROWS,
    VIDEO_ROWS,
    WINDOW_ROWS,
    Table,
    is_stream_path,
    resolve_format,
)
from .identity import path_cell
from .output import OutputMismatchError, check_writable, stdout_stream
from .results import STATUS_OK, Prediction, WindowRow

if TYPE_CHECKING:
    from .rowindex import PreviousRow, RowIndex

#: The ``output`` value meaning "write rows to stdout".
STDOUT = "-"


@dataclass(frozen=True)
class Layout:
    """What a run's outputs hold, known once the model's config is read: the columns added
    after ``score`` (label groups, thresholds), how many labels a row ranks, whether videos
    are segmented, and which model and protocol make the rows."""

    top_k: int
    added: tuple[str, ...]
    segmented: bool
    model: str
    protocol: str
    escape_formulas: bool = True
    #: What produced the labels when not the checkpoint's own (``""``: no such column).
    labels_from: str = ""
    #: Whether rows say which runtime classified them (:data:`RUNTIME`: with ``dtype="int8"``,
    #: whose rows must say whether the CPU ran int8 or fell back to float).
    runtime: bool = False

    @property
    def video_rows(self) -> Table:
        """The columns of a video's row."""
        table = (SEGMENTED_VIDEO_ROWS if self.segmented else VIDEO_ROWS).plus(self.added)
        provenance = ((LABELS_FROM,) if self.labels_from else ()) + (
            (RUNTIME,) if self.runtime else ()
        )
        return table.plus(provenance, after="model_revision")

    @property
    def window_rows(self) -> Table:
        """The columns of a window's row."""
        return WINDOW_ROWS.plus(self.added)


@dataclass
class Started:
    """What a sink found when it started: the video rows it holds (the video-row sink only:
    ``None`` for the others), rows a fresh run replaced, and lines for a person."""

    rows: RowIndex | None = None
    replaced: int = 0
    notices: list[str] = field(default_factory=list)


class Sink(Protocol):
    """One output of a run (see the module's docstring for its life)."""

    target: str
    unit: str  # what it holds, for messages: "rows", "vectors"

    def lock(self) -> None: ...

    def held(self) -> int: ...

    def foreign(self) -> bool: ...

    def start(self, layout: Layout, *, resume: bool) -> Started: ...

    def holds(self, key: str, row: PreviousRow) -> bool: ...

    def drop(self, redone: set[str], videos: RowIndex | None) -> None: ...

    def forget(self) -> None: ...

    def write(self, p: Prediction) -> None: ...

    def finish(self) -> int | None: ...

    def close(self) -> None: ...


class _Stdout:
    """stdout, shared by the row sinks that write there, let go of once."""

    def __init__(self) -> None:
        self._stream: tuple[IO[str], Callable[[], Any]] | None = None

    def stream(self) -> IO[str]:
        if self._stream is None:
            self._stream = stdout_stream()
        return self._stream[0]

    def release(self) -> None:
        if self._stream is not None:
            release, self._stream = self._stream[1], None
            release()


class RowSink:
    """Rows in one of :data:`~vmae_cli.formats.FORMATS`: a video's (``windows=False``) or
    its windows' (``windows=True``), to a file (locked, resumable) or to stdout."""

    def __init__(self, target: str, fmt: str, *, windows: bool, stdout: _Stdout | None):
        self.target = target
        self.format = FORMATS[fmt]
        self.windows = windows
        self._stdout = stdout if target == STDOUT else None
        self._file: Any = None  # the format's store (an OutputFile for text formats)
        self._writer: Any = None  # made by drop, once the file is as it will stay
        self._layout: Layout | None = None
        self._index: RowIndex | None = None  # what start read back, until forget

    unit = "rows"

    def lock(self) -> None:
        if self._stdout is None:
            self._file = self.format.store(self.target).lock()

    def held(self) -> int:
        """Rows the file holds now (0 for stdout)."""
        return self._file.count_rows() if self._file is not None else 0

    def foreign(self) -> bool:
        """Whether the file holds something else than rows (see ``OutputFile.foreign``)."""
        return self._file is not None and self._file.foreign()

    def start(self, layout: Layout, *, resume: bool) -> Started:
        from .rowindex import RowIndex

        self._layout = layout
        started = Started(rows=None if self.windows else RowIndex.empty())
        if self._file is None:
            return started
        if resume and self.foreign():
            raise _foreign_data(self.target)
        if not resume:
            started.replaced = 0 if self.windows else self._file.count_rows()
        columns = self.format.columns_for(layout.top_k, self._table())
        self._index = self._file.start(resume=resume, columns=columns)
        if self._file.legacy:
            started.notices.append(
                f"{self.target} was written by an older vmae: its relative paths are read "
                f"as relative to {os.getcwd()}"
            )
        if not self.windows:
            started.rows = self._index
        return started

    def _table(self) -> Table:
        return self._layout.window_rows if self.windows else self._layout.video_rows

    def holds(self, key: str, row: PreviousRow) -> bool:
        if not self.windows or self._index is None:
            return True
        return row.windows is not None and self._index.windows_of(key) == list(range(row.windows))

    def drop(self, redone: set[str], videos: RowIndex | None) -> None:
        stream: IO[str]
        if self._writer is not None:
            self._drop_again(redone)
            return
        if self._file is None:
            stream, header = self._stdout.stream(), True  # type: ignore[union-attr]
        else:
            # The video rows are their own index: only window rows can lack their video's.
            self._file.drop(redone, videos if self.windows else None)
            # Only now: drop may have put a new file in the old one's place.
            stream, header = self._file.stream(), self._file.is_empty
        self._open_writer(stream, header)

    def _drop_again(self, redone: set[str]) -> None:
        """After rows were written: read the file again, this run's rows included, and drop
        the rows of ``redone`` (none of them written by this run yet)."""
        if self._file is None or not redone:
            return  # stdout: nothing is read back, nothing dropped
        self._writer.close()
        self._file.start(
            resume=True, columns=self.format.columns_for(self._layout.top_k, self._table())
        )
        self._file.drop(redone, None)
        self._open_writer(self._file.stream(), self._file.is_empty)

    def _open_writer(self, stream: IO[str], header: bool) -> None:
        self._writer = self.format(
            stream,
            top_k=self._layout.top_k,
            escape_formulas=self._layout.escape_formulas,
            write_header=header,
            table=self._table(),
        )

    def forget(self) -> None:
        self._index = None

    def write(self, p: Prediction) -> None:
        if self.windows:
            for w in p.windows or ():
                self._writer.write(WindowRow(p.path, w))
        else:
            self._writer.write(p)

    def finish(self) -> int | None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.finish()
        return None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class EmbeddingsSink:
    """The vectors the classifier head received (:mod:`vmae_cli.embeddings`)."""

    def __init__(self, target: str, dtype: str):
        self.target = target
        self._dtype = dtype
        self._file: EmbeddingsFile | None = None
        self._has: set[str] = set()  # videos with a vector, as start read them, until forget
        self._dropped = False

    unit = "vectors"

    def held(self) -> int:
        """Vectors the file and its journal hold now."""
        assert self._file is not None
        return self._file.count()

    def foreign(self) -> bool:
        """Never: a file that is not vmae's embeddings counts as held (see ``held``)."""
        return False

    def lock(self) -> None:
        check_writable(self.target)
        # The model and protocol are set by start(), once known.
        self._file = EmbeddingsFile(self.target, model="", protocol="", dtype=self._dtype).lock()

    def start(self, layout: Layout, *, resume: bool) -> Started:
        assert self._file is not None
        self._file.model, self._file.protocol = layout.model, layout.protocol
        self._has = self._file.start(resume=resume)
        return Started()

    def holds(self, key: str, row: PreviousRow) -> bool:
        return row.status != STATUS_OK or key in self._has

    def drop(self, redone: set[str], videos: RowIndex | None) -> None:
        from .rowindex import digest_keys

        assert self._file is not None
        if self._dropped:
            if not redone:
                return
            # Again, after vectors were written: the final file and the journal read again,
            # this run's vectors included (none of the redone videos' yet).
            self._file.start(resume=True)
        self._dropped = True
        # The vectors' own paths, few as the file's videos, not all of the run's rows.
        candidates = [p for p in self._file.paths() if p not in redone]
        if videos is not None:
            hi, lo = digest_keys(candidates)
            with_row = videos.holds(hi, lo)
            candidates = [p for p, ok in zip(candidates, with_row, strict=True) if ok]
        self._file.keep_only(set(candidates))

    def forget(self) -> None:
        self._has = set()

    def write(self, p: Prediction) -> None:
        assert self._file is not None
        if p.embedding is not None:
            windows = [(w.index, w.embedding) for w in p.windows or () if w.embedding is not None]
            self._file.write(path_cell(p.path), p.embedding, windows)

    def finish(self) -> int:
        assert self._file is not None
        return self._file.finish()

    def close(self) -> None:
        # After an unexpected error the journal stays: a resumed run reads it.
        if self._file is not None:
            self._file.close()


class Outputs:
    """A run's sinks, in the order a video is written to them (vectors, window rows, then
    the video's row), and what the run learns from them."""

    def __init__(self, sinks: Iterable[Sink], stdout: _Stdout, *, protect: bool = False):
        self.sinks = list(sinks)
        self._stdout = stdout
        #: A fresh run without overwrite: an output that holds rows is refused at lock().
        self._protect = protect
        #: The video rows an earlier run wrote (set by start, let go of by forget).
        self.videos: RowIndex | None = None
        self._dropped = False

    @classmethod
    def plan(
        cls,
        output: str | None,
        fmt: str | None,
        *,
        segments_output: str | None = None,
        embeddings_output: str | None = None,
        embeddings_dtype: str = DEFAULT_EMBEDDING_DTYPE,
        segmented: bool = False,
        resume: bool = False,
        overwrite: bool = False,
    ) -> Outputs:
        """Check the outputs of a run and make their sinks (nothing is opened yet). Raises
        :class:`~vmae_cli.output.OutputMismatchError` (or :class:`~vmae_cli.formats.
        UnknownFormatError`) for outputs that cannot be written as asked."""
        fmt = resolve_format(output, fmt)
        stdout = _Stdout()
        to_file = output is not None and output != STDOUT
        if resume and not to_file:
            raise OutputMismatchError(
                "resume=True and retry_failed=True need an output file (output=FILE)",
                options=("resume", "retry_failed", "output"),
                value=output,
            )
        sinks: list[Sink] = []
        if embeddings_output is not None:
            sinks.append(
                EmbeddingsSink(
                    _embeddings_target(embeddings_output, output, segments_output), embeddings_dtype
                )
            )
        if segments_output is not None:
            if not segmented:
                raise OutputMismatchError(
                    "segments_output needs segments=True",
                    options=("segments_output", "segments"),
                )
            windows_fmt = resolve_format(
                segments_output, fmt if segments_output == STDOUT else None
            )
            if segments_output == STDOUT and output == STDOUT and windows_fmt == "csv":
                raise OutputMismatchError(
                    "video rows and window rows cannot share stdout as CSV: write one of them "
                    "to a file, or use format='jsonl'",
                    options=("output", "segments_output", "format"),
                )
            if segments_output != STDOUT and output and _same(segments_output, output):
                raise OutputMismatchError(
                    "segments_output must be another file than the video rows' output",
                    options=("segments_output", "output"),
                    path=segments_output,
                )
            sinks.append(RowSink(segments_output, windows_fmt, windows=True, stdout=stdout))
        if output is not None:
            sinks.append(RowSink(output, fmt, windows=False, stdout=stdout))
        return cls(sinks, stdout, protect=not (resume or overwrite))

    def lock(self) -> None:
        """Lock every file, the video rows' first (a second run is refused at once). A fresh
        run (neither resume nor overwrite) is refused here, before anything is touched, when
        an output already holds rows."""
        for sink in reversed(self.sinks):
            sink.lock()
            held = sink.held() if self._protect else 0
            if held:
                raise OutputMismatchError(
                    f"{sink.target} holds {held} {sink.unit}: add resume=True to continue "
                    "it, or overwrite=True to replace it",
                    options=("resume", "overwrite"),
                    value=held,
                    path=sink.target,
                )
            if self._protect and sink.foreign():
                raise _foreign_data(sink.target)

    def start(self, layout: Layout, *, resume: bool, on_notice: Callable[[str], None]) -> int:
        """Start every sink; returns how many video rows a fresh run replaced."""
        from .rowindex import RowIndex

        replaced = 0
        self.videos = RowIndex.empty()
        for sink in reversed(self.sinks):
            started = sink.start(layout, resume=resume)
            if started.rows is not None:
                self.videos = started.rows
                replaced = started.replaced
            for line in started.notices:
                on_notice(line)
        return replaced

    def holds(self, key: str, row: PreviousRow) -> bool:
        """Every sink holds all of the video ``row`` says an earlier run did (until
        :meth:`forget`)."""
        return all(sink.holds(key, row) for sink in self.sinks)

    def drop(self, redone: set[str]) -> None:
        """Drop what the sinks hold of the videos ``redone`` (the run redoes them) and of the
        videos without a row (window rows or a vector written before a kill); the rows of
        every other video stay, walked by this run or not (a folder whose videos come and
        go keeps its history). After it the sinks are ready to write.

        It may be called once more, between two writes, with the videos the run redoes but
        held back until then (they are known once the walk ends, and the run writes the
        others meanwhile): each file is read again and their rows go; the rows written
        since the first call stay. None of ``redone`` may have been written by this run."""
        from .rowindex import RowIndex

        if self._dropped:
            for sink in self.sinks:
                sink.drop(redone, None)
            return
        videos = self.videos if self.videos is not None else RowIndex.empty()
        for sink in self.sinks:
            sink.drop(redone, videos)
        self._dropped = True

    def forget(self) -> None:
        """Let go of what :meth:`start` read back (the video rows' index, what :meth:`holds`
        looks at): the run has looked up every video it walked."""
        self.videos = None
        for sink in self.sinks:
            sink.forget()

    def write(self, p: Prediction) -> None:
        """One video to every sink, its row last."""
        for sink in self.sinks:
            sink.write(p)

    def finish(self) -> dict[str, int | None]:
        """Finish every sink (files flushed, merged and unlocked); their counts by target."""
        counts = {}
        for sink in self.sinks:
            counts[sink.target] = sink.finish()
        self._stdout.release()
        return counts

    def close(self) -> None:
        """Let go of every file (idempotent; after finish or an error). Raises
        BrokenPipeError when the reader of stdout went away."""
        for sink in self.sinks:
            sink.close()
        self._stdout.release()


def _foreign_data(target: str) -> OutputMismatchError:
    """The error for an output that holds a file of the user's, not a run's rows."""
    return OutputMismatchError(
        f"{target} holds data that vmae did not write (not rows of a run): write to another "
        "file, or add overwrite=True to replace it",
        options=("overwrite",),
        path=target,
    )


def _same(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _embeddings_target(target: str, *others: str | None) -> str:
    """Check the embeddings' file: Parquet, and none of the rows' outputs."""
    if not target.lower().endswith(EMBEDDINGS_EXTENSION) or is_stream_path(target):
        raise OutputMismatchError(
            f"embeddings are written as Parquet to a file: name it "
            f"{os.path.splitext(target)[0] or 'embeddings'}{EMBEDDINGS_EXTENSION}",
            options=("embeddings_output",),
            path=target,
        )
    if any(o and o != STDOUT and _same(o, target) for o in others):
        raise OutputMismatchError(
            "embeddings_output must be another file than the rows' outputs",
            options=("embeddings_output",),
            path=target,
        )
    return target
