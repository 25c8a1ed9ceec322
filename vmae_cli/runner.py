"""One classification run, as a library call: the thing ``vmae classify`` does.

>>> from vmae_cli import run
>>> report = run(["videos/"], "labels.csv", model="path/to/videomae")     # doctest: +SKIP
>>> report = run(["videos/"], "labels.csv", model="path/to/videomae", resume=True)  # +SKIP
>>> report.skipped, report.by_status                                       # doctest: +SKIP

It reads top to bottom: lock the output, read the model's config, walk the inputs once and
classify what the walk finds while it goes on (skipping what a resumed output already holds;
rows written and flushed one by one), tidy the output file, report. Everything a person sees
(the progress bar, the summary line, exit codes, signals) belongs to the caller, which
follows the run through :class:`RunHooks` and may end it early through a
:class:`StopRequest`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

# The default timeout and the engines' names live in `choices` (what `vmae --help` imports).
from .choices import DEFAULT_TIMEOUT_S, ENGINE_LOCAL, ENGINE_RAY, ENGINES, INT8
from .discovery import as_inputs, check_inputs, iter_video_paths, path_filter, read_file_list
from .embeddings import DEFAULT_EMBEDDING_DTYPE, EMBEDDING_DTYPES
from .errors import VmaeError
from .extras import require
from .identity import display_path, path_cell, url_queries_kept, video_path
from .labelsource import given_labels
from .model import (
    BACKEND_TORCH,
    MODEL_KEYWORDS,
    ModelRef,
    RunLabels,
    check_head,
    dtype_warning,
    read_labels,
    read_model_spec,
    resolve_dtype,
    run_labels,
)
from .output import OutputMismatchError, write_text_aside
from .pipeline import Classifier, ClassifyOptions, default_workers
from .provenance import FOLDER_REVISION_PREFIX
from .ray_engine import EXTRA as EXTRA_RAY
from .ray_engine import RayOptions
from .remote import check_urls, is_url
from .remote import reset as reset_remote
from .results import STATUS_OK, Prediction, file_stamp
from .scoring import read_label_map
from .segments import Segments
from .sinks import STDOUT, Layout, Outputs

if TYPE_CHECKING:
    from .rowindex import Origin

#: ``RunReport.stopped_by`` when the reader of the output went away (``| head``, ``| true``):
#: the signal a C program would have died of.
STOPPED_BY_CLOSED_OUTPUT = "SIGPIPE"
#: Walked paths looked up in the output's rows at once, at most (one sorted search per
#: block). Blocks start at one path and double, and one is looked up before it is full once
#: :data:`WALK_AHEAD_S` passed since its first path: the first video is classified at once,
#: and on a slow file system a new video is not held back until a block fills.
LOOKUP_PATHS = 65536
#: How long the walk goes on (seconds) each time the engine takes a path, beyond the first
#: video found: the engine takes a path after each row, so the walk ends (the progress bar
#: gets its total, an ETA) long before the last video is classified, while the first video
#: starts at once. It runs in the engine's thread: each row may wait this long for it.
WALK_AHEAD_S = 0.05


@dataclass
class RunOptions:
    """Everything that shapes a run besides its inputs and output.

    ``model`` says which model to load and how (one :class:`~vmae_cli.model.ModelRef`: a
    name given here is made one); ``classify`` holds what each classification needs (top-k,
    batch size, workers, timeout, protocol); ``ray`` where ``engine="ray"`` runs; the rest
    chooses the engine and how the output file is written.
    """

    model: ModelRef = field(default_factory=ModelRef)
    format: str | None = None  # from the output's extension when None; csv on stdout
    #: Where window rows go with segments (a .csv/.jsonl file, "-" for stdout; None: none).
    segments_output: str | os.PathLike[str] | None = None
    #: Where the vectors the classifier head received go (a .parquet file; None: nowhere),
    #: one per ok video and per window (``vmae_cli.embeddings``).
    embeddings_output: str | os.PathLike[str] | None = None
    embeddings_dtype: str = DEFAULT_EMBEDDING_DTYPE  # float16 or float32
    #: More inputs from a list (``discovery.read_file_list``: a file, or "-" for stdin); a
    #: listed path that does not exist gets a ``not_found`` row.
    files_from: str | os.PathLike[str] | None = None
    null: bool = False  # the list is NUL-separated (find -print0)
    path_column: str | None = None  # the list is a CSV/Parquet file; paths in this column
    include: tuple[str, ...] = ()  # shell patterns a walked path must match (one of)
    exclude: tuple[str, ...] = ()  # shell patterns a walked path must not match
    escape_formulas: bool = True
    #: Keep a URL's query string in its ``path`` cell (where it names the video, ``?id=42``);
    #: by default it is left out (a signed URL's signature).
    keep_url_query: bool = False
    resume: bool = False
    retry_failed: bool = False  # implies resume
    #: Replace the rows (window rows, vectors) an existing output holds; without it (or
    #: resume) a run onto an output that holds rows is refused before anything is touched.
    overwrite: bool = False
    engine: str = ENGINE_LOCAL
    classify: ClassifyOptions = field(
        default_factory=lambda: ClassifyOptions(timeout_s=DEFAULT_TIMEOUT_S)
    )
    ray: RayOptions = field(default_factory=RayOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelRef):
            self.model = ModelRef.of(self.model)

    @classmethod
    def of(cls, **kwargs: Any) -> RunOptions:
        """Build options from flat keywords: those of this class, of
        :class:`~vmae_cli.model.ModelRef` (``model="m", device="cpu"``: :data:`~vmae_cli.
        model.MODEL_KEYWORDS`), of :class:`~vmae_cli.pipeline.ClassifyOptions` (``top_k=5,
        workers=2``) and of :class:`~vmae_cli.ray_engine.RayOptions` (``ray_address="auto",
        actors=4``), and ``sampling="keyframes"`` and ``segments=`` (a
        :class:`~vmae_cli.segments.Segments`, or True for the default windows), which set
        those fields of the protocol."""
        model = ModelRef.of(**{k: kwargs.pop(k) for k in MODEL_KEYWORDS if k in kwargs})
        # Fields of the protocol, taken flat as --sampling and --segments are; applied after
        # ``protocol=``.
        sampling = kwargs.pop("sampling", None)
        segments = kwargs.pop("segments", None)
        groups = {"classify": ClassifyOptions(timeout_s=DEFAULT_TIMEOUT_S), "ray": RayOptions()}
        own = {f.name for f in fields(cls)} - set(groups) - {"model"}
        unknown = set(kwargs) - own - {f.name for g in groups.values() for f in fields(g)}
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
        for group in groups.values():
            for f in fields(group):
                if f.name in kwargs:
                    setattr(group, f.name, kwargs[f.name])
        classify = groups["classify"]
        if sampling is not None:
            classify.protocol = replace(classify.protocol, sampling=sampling)
        if segments is not None and segments is not False:
            chosen = Segments() if segments is True else segments
            classify.protocol = replace(classify.protocol, segments=chosen)
        return cls(model=model, **groups, **{k: v for k, v in kwargs.items() if k in own})

    def flat(self) -> dict[str, Any]:
        """The options as the flat keywords :meth:`of` takes."""
        flat = {f.name: getattr(self, f.name) for f in fields(self)}
        flat |= flat.pop("model").flat()
        for name in ("classify", "ray"):
            group = flat.pop(name)
            flat |= {f.name: getattr(group, f.name) for f in fields(group)}
        return flat


class StopRequest(threading.Event):
    """An event that ends a run early, and why (``"SIGINT"``, ``"SIGTERM"``, ...).

    Videos already being decoded are finished and written; the others get no row and are
    done by a later ``resume`` run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        """Stop the run; the first reason given is the one reported."""
        if self.reason is None:
            self.reason = reason
        self.set()


@dataclass
class RunHooks:
    """Callbacks through which a caller follows a run (all optional, called in the run's
    thread): progress, and warnings meant for a person."""

    #: Videos found, once the walk is done (rows may come before: the walk streams).
    on_total: Callable[[int], None] | None = None
    on_row: Callable[[Prediction], None] | None = None  # each row, once written
    on_skip: Callable[[str], None] | None = None  # each video a resumed output already has
    on_status: Callable[[str], None] | None = None  # what the run is busy with
    on_notice: Callable[[str], None] | None = None  # one line each, e.g. a model conversion
    on_windows: Callable[[int], None] | None = None  # this many more windows classified
    on_warning: Callable[[str], None] | None = None  # one line each


@dataclass
class RunReport:
    """What a run did: counts by status, videos skipped because the output already had them,
    time, and whether (and by what) it was stopped before the end."""

    output: str | None
    model: str
    protocol: str
    found: int | None = None  # videos in the inputs (None: stopped before the walk ended)
    by_status: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    replaced: int = 0  # rows of an earlier run that a fresh (not resumed) run replaced
    started: float = 0.0  # wall clock, seconds since the epoch
    elapsed_s: float = 0.0
    stopped_by: str | None = None
    engine: str = ENGINE_LOCAL
    by_node: dict[str, int] = field(default_factory=dict)  # rows per Ray node (engine ray)
    #: The model's runtime and precision, e.g. ``"openvino bfloat16"`` (None: the model was
    #: not loaded in this process, as with the Ray engine or nothing to do).
    runtime: str | None = None
    windows: int | None = None  # windows of the videos written (None: not segmented)
    #: Folders of the inputs that could not be listed (permission denied, a name too long):
    #: their videos got no row, so the run is not complete.
    unreadable_folders: int = 0
    #: Symlinks to folders found in the walked folders: not followed (a link loop would
    #: never end, a folder linked twice would give its videos twice). Name one as an input
    #: to classify what it holds.
    linked_folders: int = 0
    embeddings: int | None = None  # vectors in the embeddings file (None: not written)
    model_revision: str = ""  # the checkpoint's revision (ModelSpec.revision)
    #: What produced the labels when they are not the checkpoint's own (text labels, a fitted
    #: head: :func:`vmae_cli.labelsource.labels_from`).
    labels_from: str = ""

    @property
    def videos(self) -> int:
        """Rows this run wrote."""
        return sum(self.by_status.values())

    @property
    def ok(self) -> int:
        """Rows with status ``ok``."""
        return self.by_status.get(STATUS_OK, 0)

    @property
    def failed(self) -> int:
        """Rows with any other status."""
        return self.videos - self.ok

    @property
    def videos_per_s(self) -> float | None:
        """Rows per second of the whole run, start-up included."""
        return self.videos / self.elapsed_s if self.elapsed_s > 0 else None

    @property
    def resumable(self) -> bool:
        """Whether a run stopped before the end can be finished by the same run with
        ``resume=True``: its rows went to a file (not stdout, not nowhere)."""
        return self.stopped_by is not None and bool(self.output) and self.output != STDOUT

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """The report as a JSON-ready dict (``extra`` keys, such as an exit code, added)."""

        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")

        rate = self.videos_per_s
        return {
            "started": iso(self.started),
            "finished": iso(self.started + self.elapsed_s),
            "elapsed_s": round(self.elapsed_s, 3),
            "videos": self.videos,
            "videos_per_s": round(rate, 4) if rate is not None else None,
            "by_status": dict(sorted(self.by_status.items())),
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "found": self.found,
            "unreadable_folders": self.unreadable_folders,
            "linked_folders": self.linked_folders,
            **extra,
            "stopped_by": self.stopped_by,
            "output": display_path(self.output) if self.output else "-",
            "model": self.model,
            "model_revision": self.model_revision,
            "labels_from": self.labels_from,
            "protocol": self.protocol,
            "windows": self.windows,
            "embeddings": self.embeddings,
            "engine": self.engine,
            "runtime": self.runtime,
            "by_node": dict(sorted(self.by_node.items())),
        }

    def to_json(self, **extra: Any) -> str:
        """:meth:`to_dict` as JSON text (indented)."""
        return json.dumps(self.to_dict(**extra), indent=2)

    def write_json(self, path: str | os.PathLike[str], **extra: Any) -> None:
        """Write :meth:`to_json` to ``path``, aside then renamed, so no reader sees half."""
        write_text_aside(path, self.to_json(**extra) + "\n")

    def summary_line(self) -> str:
        """One line for a person (or a log grep): counts, time, speed, and how it ended (how
        to finish a stopped run is the caller's to say: see :attr:`resumable`)."""
        n = self.videos
        parts = ", ".join(f"{count} {status}" for status, count in sorted(self.by_status.items()))
        if self.windows is not None and parts:
            parts += f"; {self.windows} window{'s' if self.windows != 1 else ''}"
        if self.skipped:
            parts = f"{parts}; " if parts else ""
            parts += f"{self.skipped} skipped (already in the output)"
        if self.unreadable_folders:
            parts = f"{parts}; " if parts else ""
            n_folders = self.unreadable_folders
            parts += f"{n_folders} folder{'s' if n_folders != 1 else ''} could not be read"
        if self.linked_folders:
            parts = f"{parts}; " if parts else ""
            n_links = self.linked_folders
            parts += (
                f"{n_links} symlinked folder{'s' if n_links != 1 else ''} not followed "
                "(name one as an input to classify it)"
            )
        runtime = f", {self.runtime}" if self.runtime else ""
        took = f"in {self.elapsed_s:.1f} s ({self.videos_per_s or 0.0:.2f} videos/s{runtime})"
        if self.by_node:
            took += f" on {len(self.by_node)} Ray node{'s' if len(self.by_node) != 1 else ''}"
        if self.stopped_by is None:
            plural = "s" if n != 1 else ""
            return f"vmae: {n} video{plural} {took}: {parts or 'none found'}"
        why = (
            "stopped (the output was closed)"
            if self.stopped_by == STOPPED_BY_CLOSED_OUTPUT
            else f"stopped by {self.stopped_by}"
        )
        done = n + self.skipped
        of = f"{done} of {self.found} videos" if self.found is not None else f"{done} videos"
        if self.found is None:
            of += " (while listing the inputs)"
        return f"vmae: {why} after {of} {took}: {parts or 'no rows'}"


def run(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    options: RunOptions | None = None,
    hooks: RunHooks | None = None,
    stop: StopRequest | None = None,
    **kwargs: Any,
) -> RunReport:
    """Classify every video in ``inputs`` into ``output``; return a :class:`RunReport`.

    ``inputs``: a path or an iterable of paths (files, and folders walked recursively); a
    missing one raises :class:`~vmae_cli.discovery.InputNotFoundError` before any work.
    ``output``: a ``.csv``/``.jsonl`` file, ``"-"`` for stdout, or ``None`` for no file
    (rows then reach the caller only through ``hooks.on_row``). Options are keywords
    (``model=``, ``resume=True``, ``retry_failed=True``, ``top_k=5``, ``workers=2``, ...: the
    fields of :class:`RunOptions` and :class:`~vmae_cli.pipeline.ClassifyOptions`) or one
    ``options`` object. With ``resume`` the rows already in ``output`` are kept and their
    videos skipped when unchanged; a video never gets two rows.

    Raises before any work for bad arguments (:class:`TypeError`, ``InputNotFoundError``,
    :class:`~vmae_cli.formats.UnknownFormatError`, :class:`~vmae_cli.formats.
    OutputMismatchError`), a busy output (:class:`~vmae_cli.output.OutputBusyError`), a
    model that cannot be loaded (:class:`~vmae_cli.model.ModelLoadError`,
    :class:`~vmae_cli.model.DeviceError`) and an output that cannot be written
    (:class:`OSError`). Bad videos never raise: each gets a row with its status.
    """
    opts = _with_overrides(options, kwargs) if options else RunOptions.of(**kwargs)
    return _Run(as_inputs(inputs), output, opts, hooks or RunHooks(), stop).execute()


def _with_overrides(options: RunOptions, overrides: dict[str, Any]) -> RunOptions:
    """``options`` with flat keyword overrides applied (see :meth:`RunOptions.of`)."""
    if not overrides:
        return options
    return RunOptions.of(**(options.flat() | overrides))


class _Run:
    """The state of one :func:`run`; :meth:`execute` is the whole story."""

    def __init__(
        self,
        inputs: list[str],
        output: str | os.PathLike[str] | None,
        options: RunOptions,
        hooks: RunHooks,
        stop: StopRequest | None,
    ):
        self.inputs = inputs
        self.output = os.fspath(output) if output is not None else None
        # A copy: the run adjusts it (top-k clamped to the labels), the caller's stays as is.
        self.opts = replace(options, classify=replace(options.classify), ray=replace(options.ray))
        if options.segments_output is not None:
            self.opts.segments_output = os.fspath(options.segments_output)
        if options.embeddings_output is not None:
            self.opts.embeddings_output = os.fspath(options.embeddings_output)
            self.opts.classify.embeddings = True
        self.hooks = hooks
        self.stop = stop or StopRequest()
        self.resume = options.resume or options.retry_failed
        self.listed: list[str] = []  # the paths of files_from, read before any work
        self.unreadable_folders = 0  # folders the walk could not list
        self.linked_folders = 0  # symlinks to folders the walk did not follow

    def execute(self) -> RunReport:
        with url_queries_kept(self.opts.keep_url_query):
            return self._execute()

    def _execute(self) -> RunReport:
        started, t0 = time.time(), time.perf_counter()
        # Objects, listings and connections of the stores as this run finds them, not as an
        # earlier run in this process left them.
        reset_remote()
        check_inputs(self.inputs)
        o = self.opts
        self.listed = (
            read_file_list(o.files_from, null=o.null, path_column=o.path_column)
            if o.files_from is not None
            else []
        )
        check_urls(self.listed)
        _check_engine(self.opts)
        _check_scoring(self.opts)
        outputs = Outputs.plan(
            self.output,
            o.format,
            segments_output=o.segments_output,
            embeddings_output=o.embeddings_output,
            embeddings_dtype=o.embeddings_dtype,
            segmented=o.classify.protocol.segments is not None,
            resume=self.resume,
            overwrite=o.overwrite,
        )
        try:
            # The locks come first, so that a second run is refused at once, before the
            # model's files are read; the files are only truncated (or read, to resume) after.
            outputs.lock()
            model = self._model()
            report = RunReport(self.output, model.spec.name, o.classify.protocol.name)
            report.model_revision = model.spec.revision
            report.labels_from = model.labels_from
            report.started = started
            report.engine = o.engine
            try:
                self._classify(model, outputs, report)
            finally:
                if isinstance(model, Classifier):
                    report.runtime = model.runtime
        finally:
            try:
                outputs.close()
            except BrokenPipeError:
                self.stop.request(STOPPED_BY_CLOSED_OUTPUT)
        report.stopped_by = self.stop.reason if self.stop.is_set() else None
        report.elapsed_s = time.perf_counter() - t0
        return report

    def _model(self) -> Classifier | RunLabels:
        """The model, lazily (weights load while the first videos decode), with warnings
        about settings that work but cost. With the Ray engine only its config is read
        here: the actors load it, on their own devices."""
        o = self.opts
        self._status("reading the model's config")
        model: Classifier | RunLabels
        if o.engine == ENGINE_RAY:
            # Known by its config alone (the actors load the weights); the labels settled
            # here, for the driver's rows.
            model = run_labels(read_model_spec(o.model.name, revision=o.model.revision), o.model)
        else:
            model = Classifier(o.model, lazy=True, on_notice=self._notice, on_warning=self._warn)
            slow = model.backend == BACKEND_TORCH and dtype_warning(
                model.device, resolve_dtype(o.model.dtype, model.device)
            )
            if slow:
                self._warn(slow)
            cores = default_workers()
            if o.classify.workers is not None and o.classify.workers > cores:
                self._warn(
                    f"{o.classify.workers} decoding workers on {cores} cores: workers beyond "
                    "one per core only add overhead"
                )
        # Refused before the output is touched: a checkpoint without a head gets no row at all
        # (its load report is checked when the weights load). With allow_untrained_head a
        # local model's loader says the warning itself.
        if o.engine == ENGINE_RAY or not o.model.allow_untrained_head:
            check_head(model.spec, o.model.allow_untrained_head, self._warn)
        # Segments' defaults (the window: the model's clip) are known now: rows and resume
        # name the windows in frames.
        o.classify.protocol = o.classify.protocol.for_model(model.spec.frames_per_clip)
        given = given_labels(o.model, model.head)
        if o.classify.label_map is not None:
            o.classify.label_map.check(
                given or read_labels(spec=model.spec, revision=o.model.revision).values()
            )
        labels = len(given) if given is not None else model.spec.num_labels
        if labels is not None and o.classify.top_k > labels:
            self._warn(
                f"top_k={o.classify.top_k}, but the model has {labels} labels: using {labels}"
            )
            o.classify.top_k = labels
        return model

    def _rows(self, model: Classifier | RunLabels, todo: Iterable[str]) -> Iterator[Prediction]:
        """The engine's rows for ``todo``, one per path: the local engine takes the paths as
        ``todo`` yields them, Ray once it has yielded them all (Ray Data numbers a list)."""
        o = self.opts
        if isinstance(model, Classifier):
            return model.classify_files(
                todo, o.classify, stop=self.stop, on_windows=self.hooks.on_windows
            )
        from .ray_engine import classify_on_ray

        return classify_on_ray(
            todo,
            model,
            o.model,
            classify=o.classify,
            ray_options=o.ray,
            stop=self.stop,
            on_status=self._status,
            on_warning=self._warn,
        )

    def _classify(self, model: Classifier | RunLabels, outputs: Outputs, report: RunReport) -> None:
        """Start the outputs, walk, skip what they hold, classify the rest into them: the
        first videos while the walk goes on."""
        o = self.opts
        segmented = o.classify.protocol.segments is not None
        layout = Layout(
            top_k=o.classify.top_k,
            # What label groups, thresholds and a multi-label model add, after label and score.
            added=o.classify.scoring.columns(model.spec.multi_label),
            segmented=segmented,
            model=report.model,
            protocol=report.protocol,
            labels_from=report.labels_from,
            runtime=o.model.dtype == INT8,
            escape_formulas=o.escape_formulas,
            model_revision=report.model_revision,
        )
        report.replaced = outputs.start(layout, resume=self.resume, on_notice=self._notice)
        if report.replaced:
            self._warn(
                f"replacing the {report.replaced} rows already in {self.output} "
                "(resume=True keeps them)"
            )
        _refuse_other_model(outputs.videos.video_origins(), report, self.output or "")
        walk = _Walk(self, outputs, report)
        counts: Counter[str] = Counter()
        nodes: Counter[str] = Counter()
        runtimes: set[str] = set()  # of rows classified in other processes (Ray actors)
        windows = 0
        try:
            # What no video needs goes first (window rows or vectors a kill left without their
            # video's row, older rows, a torn tail): the outputs are then ready to write.
            outputs.drop(set())
            # The walk streams (issue 25): a video no output holds anything of is classified
            # as soon as the walk finds it, its row written while the walk goes on. A video
            # whose old rows must go (changed, failed with retry_failed, not held whole) is
            # held back until the walk ends (they are few: what changed since the last cron
            # run) and its old rows are dropped just before the first of them is written,
            # here, in the thread that writes rows: no drop races a write, and the output
            # never holds a video twice. A kill before that drop leaves the old rows (a resume
            # redoes those videos again), during it the old file or the new one whole (written
            # aside, then renamed), after it the videos without rows (a resume does them as
            # new ones). Writing first and dropping at the end would leave a redone video in
            # the file twice until the end, and after a kill until a resume.
            redone_dropped = False
            with closing(self._rows(model, walk)) as rows:
                for p in rows:
                    if not redone_dropped and p.path in walk.redone:
                        outputs.drop(set(walk.redone.values()))
                        redone_dropped = True
                    if segmented and p.windows is None:
                        p.windows = []  # a failure made outside the pipeline (Ray)
                    outputs.write(p)
                    counts[p.status] += 1
                    windows += len(p.windows or ())
                    if p.node:
                        nodes[p.node] += 1
                        runtimes.add(p.runtime)
                        if self.hooks.on_windows and p.windows:
                            self.hooks.on_windows(len(p.windows))
                    if self.hooks.on_row:
                        self.hooks.on_row(p)
            report.embeddings = outputs.finish().get(o.embeddings_output or "")
        except BrokenPipeError:
            # The reader went away (`| head`, `| true`): stop quietly, as Unix tools do.
            self.stop.request(STOPPED_BY_CLOSED_OUTPUT)
        finally:
            report.unreadable_folders = self.unreadable_folders
            report.linked_folders = self.linked_folders
        report.by_status = dict(counts)
        report.by_node = dict(nodes)
        # The model ran in the actors, not here: say what they ran it with.
        if runtimes - {""}:
            report.runtime = ", ".join(sorted(runtimes - {""}))
        report.windows = windows if segmented else None

    def _walked(self) -> Iterator[str]:
        """Every video path in the inputs, then in ``files_from``, as its identity (absolute
        and normalised: :func:`~vmae_cli.identity.video_path`), as the walk finds it; a
        video named twice comes twice."""
        o = self.opts
        keep = path_filter(o.include, o.exclude) if o.include or o.exclude else None

        def warn(path: str, why: str) -> None:
            self.unreadable_folders += 1
            self._warn(f"cannot read {path}: {why}")

        def link(path: str) -> None:
            self.linked_folders += 1

        walked = iter_video_paths(self.inputs, warn, keep, link)
        # A listed folder is walked; a listed file is taken as it is, even when missing.
        listed = (
            p
            for entry in self.listed
            for p in (
                iter_video_paths([entry], warn, keep, link)
                if is_url(entry) or os.path.isdir(entry)
                else [entry]
            )
        )
        for path in itertools.chain(walked, listed):
            yield video_path(path)

    def _warn(self, message: str) -> None:
        if self.hooks.on_warning:
            self.hooks.on_warning(message)

    def _notice(self, message: str) -> None:
        if self.hooks.on_notice:
            self.hooks.on_notice(message)

    def _status(self, message: str) -> None:
        if self.hooks.on_status:
            self.hooks.on_status(message)


class _Walk:
    """The videos a run classifies, as its engine takes them: those no output holds anything
    of as the walk finds them, then, once it ended, those to redo (:attr:`redone`); those an
    output holds whole are skipped. See :meth:`_Run._classify` for why the ones to redo wait.

    A video is skipped when its row is there with the same size and modification time, every
    output holds all of it (window rows, vector), and it is ``ok`` or failed ones are not
    retried. Memory grows with the videos (a 16-byte digest each, to give a video named twice
    one row; the paths found and not yet taken), not with the other files the walk passes.
    """

    def __init__(self, run: _Run, outputs: Outputs, report: RunReport):
        self.run = run
        self.outputs = outputs
        self.report = report
        #: The videos to redo, by path, with their keys (``path`` cells): held back until the
        #: walk ends, complete once the first of them is yielded.
        self.redone: dict[str, str] = {}
        self.complete = False  # the walk ended (not stopped): found, on_total told
        self._given = False

    def __iter__(self) -> Iterator[str]:
        run = self.run
        run._status("listing the videos")
        held = self.outputs.videos is not None and len(self.outputs.videos) > 0
        walked = self._unique()
        pending: deque[str] = deque()  # found without a row, not taken yet
        block: list[tuple[str, str]] = []  # walked, not looked up yet
        size = 1
        walking = True
        while walking or pending:
            if run.stop.is_set():
                return  # the engine takes no more
            # Walk until a video to give is found, then on for WALK_AHEAD_S more (this runs
            # in the engine's thread, between two of its rows).
            deadline = time.perf_counter() + WALK_AHEAD_S if pending else math.inf
            while walking and time.perf_counter() < deadline:
                video = next(walked, None)
                if video is None:
                    walking = False
                elif not held:  # a fresh run, or an output without rows: nothing to look up
                    pending.append(video[0])
                else:
                    if not block:
                        since = time.perf_counter()
                    block.append(video)
                    full = len(block) >= size
                    if full or time.perf_counter() - since >= WALK_AHEAD_S:
                        pending.extend(self._look_up(block))
                        block, size = [], min(2 * size, LOOKUP_PATHS) if full else size
                if pending:
                    deadline = min(deadline, time.perf_counter() + WALK_AHEAD_S)
            if block:  # the time is up, or the walk ended: what it found so far is looked up
                pending.extend(self._look_up(block))
                block = []
            if not walking and not self.complete:
                if self.report.found is None:
                    return  # stopped while listing the inputs
                self._complete()
            if pending:
                yield self._give(pending.popleft())
        yield from map(self._give, list(self.redone))

    def _unique(self) -> Iterator[tuple[str, str]]:
        """Each video of the walk once, as (path, key), as the walk finds it; the report's
        ``found`` at the walk's end. Ends early (``found`` None) when the run stops."""
        from .rowindex import digest_key

        run = self.run
        seen: set[bytes] = set()  # a video named twice (walked and listed) gets one row
        for path in run._walked():
            if run.stop.is_set():
                return
            key = path_cell(path)  # the video's identity: one row however it was named
            digest = digest_key(key)
            if digest not in seen:
                seen.add(digest)
                yield path, key
        self.report.found = len(seen)

    def _complete(self) -> None:
        """The walk ended and every video it found is looked up."""
        self.complete = True
        self.outputs.forget()  # the rows read back can go
        if self.run.hooks.on_total:
            self.run.hooks.on_total(self.report.found or 0)

    def _give(self, path: str) -> str:
        if not self._given:
            self._given = True
            self.run._status("loading the model and decoding the first videos")
        return path

    def _look_up(self, block: list[tuple[str, str]]) -> list[str]:
        """The paths of ``block`` without a row in the output (to do now); the others are
        skipped or held back in :attr:`redone`."""
        run, outputs = self.run, self.outputs
        assert outputs.videos is not None
        rows = outputs.videos.find_many([key for _, key in block])
        new = []
        for (path, key), row in zip(block, rows, strict=True):
            if row is None:
                new.append(path)
            elif (
                row.stamp == file_stamp(path)
                and (row.status == STATUS_OK or not run.opts.retry_failed)
                and outputs.holds(key, row)
            ):
                self.report.skipped += 1
                if run.hooks.on_skip:
                    run.hooks.on_skip(path)
            else:
                self.redone[path] = key
        return new


class RunOptionsError(VmaeError, ValueError):
    """Options that cannot go together (``actors=`` without ``engine="ray"``, ...)."""


def _check_engine(o: RunOptions) -> None:
    """Refuse an unknown engine, Ray options without the Ray engine, and the Ray engine
    without its extra, before any work."""
    if o.engine not in ENGINES:
        raise RunOptionsError(
            f"unknown engine {o.engine!r}: use one of {', '.join(ENGINES)}",
            options=("engine",),
            value=o.engine,
        )
    if o.engine == ENGINE_RAY:
        if (o.ray.ray_address or "").startswith("ray://"):
            # Ray Data's executor needs a real driver: over Ray Client it fails with
            # "'Worker' object has no attribute 'core_worker'" (ray 2.60).
            raise RunOptionsError(
                "ray_address='ray://...' (Ray Client) cannot run Ray Data: run on a node of "
                "the cluster with ray_address='auto' or 'HEAD:PORT', or as a Ray job "
                "(`ray job submit`) with ray_address='auto'",
                options=("ray_address",),
                value=o.ray.ray_address,
            )
        require("ray", EXTRA_RAY, engine=ENGINE_RAY)
        return
    given = [
        f.name
        for f in fields(RayOptions)
        if getattr(o.ray, f.name) != getattr(RayOptions(), f.name)
    ]
    if given:
        settings = ", ".join(f"{name}={getattr(o.ray, name)!r}" for name in given)
        raise RunOptionsError(
            f"{settings} {'apply' if len(given) > 1 else 'applies'} only with "
            f"engine={ENGINE_RAY!r}",
            options=(*given, "engine"),
            value=o.engine,
        )


def _labels_source(labels_from: str) -> str:
    """A ``labels_from`` cell in words, for a refusal."""
    return labels_from or "the model's own head"


def _check_scoring(o: RunOptions) -> None:
    """Read a label map given as a path, and refuse a threshold outside [0, 1] and an
    unknown embeddings dtype, before any work."""
    c = o.classify
    if isinstance(c.label_map, (str, os.PathLike)):
        c.label_map = read_label_map(c.label_map)
    if c.min_score is not None and not 0.0 <= c.min_score <= 1.0:
        raise RunOptionsError(
            f"min_score must be within 0..1, not {c.min_score}",
            options=("min_score",),
            value=c.min_score,
        )
    if o.embeddings_dtype not in EMBEDDING_DTYPES:
        raise RunOptionsError(
            f"unknown embeddings dtype {o.embeddings_dtype!r}: use {' or '.join(EMBEDDING_DTYPES)}",
            options=("embeddings_dtype",),
            value=o.embeddings_dtype,
        )


def _refuse_other_model(origins: set[Origin], report: RunReport, path: str) -> None:
    """Rows of another model, protocol or labels must not be mixed with this run's in one
    file (``origins``: who made the file's video rows, :data:`~vmae_cli.rowindex.Origin`)."""
    for model, protocol, revision, source in sorted(origins):
        revised = revision and revision != report.model_revision
        if revised and model == report.model:
            raise OutputMismatchError(
                f"{path} holds rows of model {model!r} at revision {revision}, "
                f"this run's is at {report.model_revision or 'an unknown revision'}: resuming "
                "would mix two versions of the model in one file; use another output file, "
                "or start afresh without resume=True",
                options=("resume",),
                value=revision,
                path=path,
            )
        if source != report.labels_from:
            raise OutputMismatchError(
                f"{path} holds rows labelled by {_labels_source(source)}, this run's are "
                f"labelled by {_labels_source(report.labels_from)}: resuming would mix two "
                "sets of labels in one file; use another output file, or start afresh without "
                "resume=True",
                options=("text_labels", "head", "resume"),
                value=source,
                path=path,
            )
        # The same checkpoint's files (its sha256 revision) named another way, as a
        # relative --model from another folder is: the same model.
        same_files = revision.startswith(FOLDER_REVISION_PREFIX) and (
            revision == report.model_revision
        )
        if (model and model != report.model and not same_files) or (
            protocol and protocol != report.protocol
        ):
            raise OutputMismatchError(
                f"{path} holds rows of model {model!r} with protocol {protocol}, "
                f"this run uses {report.model!r} with protocol {report.protocol}: resuming "
                "would mix them in one file; use the same model, protocol and sampling, "
                "or another output file",
                options=("model", "protocol", "sampling"),
                value=(model, protocol),
                path=path,
            )
