"""The classifier: paths -> views (decoded in the worker pool) -> batches -> model ->
predictions.

>>> from vmae_cli import Classifier
>>> clf = Classifier(model="path/to/videomae", device="cpu")        # doctest: +SKIP
>>> for p in clf.classify(["videos/"]):                              # doctest: +SKIP
...     print(p.path, p.status, p.label, p.score)

Predictions are yielded lazily, one per video, as soon as their batch is classified.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backends import INT8, Calibration
from .discovery import OnWalkError, as_inputs, check_inputs, iter_video_paths
from .heap import HeapTrimmer
from .model import (
    DEFAULT_MODEL,
    DtypeOptionError,
    LoadedModel,
    ModelRef,
    ModelSpec,
    Say,
    backend_device,
    check_dtype,
    known_cpu,
    load_model,
    read_model_spec,
    resolve_backend,
    resolve_device,
    run_labels,
    zero_shot_runtime,
)
from .preprocessing import normalize
from .protocol import Protocol
from .results import (
    STATUS_ERROR,
    STATUS_NO_FRAMES,
    STATUS_OK,
    DecodeOutcome,
    Prediction,
    VideoViews,
    WindowChunk,
    WindowPrediction,
)
from .scoring import LabelMap, Scorer, Scoring
from .views import ViewMaker, WindowMaker, iter_decoded

if TYPE_CHECKING:
    import torch

#: Views per model call when --batch-size is not given. On a CPU a larger batch gains little
#: throughput and delays rows; a GPU needs several views to keep busy.
DEFAULT_BATCH_SIZE_CPU = 2
DEFAULT_BATCH_SIZE_GPU = 16
#: Videos whose clips calibrate an int8 quantization (``dtype="int8"``): the first of the run
#: that quantizes, or the first of the ``calibration`` folder's sorted walk ...
CALIBRATION_VIDEOS = 8
#: ... giving at most this many clips (a protocol with several views gives several a video).
CALIBRATION_CLIPS = 16


def default_workers() -> int:
    """Decoding processes when --workers is not given: one per core available to us."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ClassifyOptions:
    """How videos are classified (everything but the model itself)."""

    top_k: int = 1
    batch_size: int | None = None
    workers: int | None = None
    timeout_s: float | None = None
    protocol: Protocol = field(default_factory=Protocol)
    label_map: LabelMap | None = None  # adds each row's label group (vmae_cli.scoring)
    min_score: float | None = None  # a top-1 score below it leaves the label empty
    embeddings: bool = False  # each prediction carries the vector its head received

    @property
    def scoring(self) -> Scoring:
        """How probabilities become rows (top-k, groups, threshold)."""
        return Scoring(self.top_k, self.label_map, self.min_score)


class Classifier:
    """A model plus the pipeline around it. Load once, classify many folders."""

    def __init__(
        self,
        model: ModelRef | str | os.PathLike[str] | LoadedModel = DEFAULT_MODEL,
        *,
        lazy: bool = False,
        on_notice: Say | None = None,
        on_warning: Say | None = None,
        **flat: Any,
    ):
        """Load ``model``: a :class:`~vmae_cli.model.ModelRef`, or a Hub id or local folder
        with the ref's other fields as keywords (``Classifier("m", device="cpu")``), or an
        already :class:`LoadedModel`.

        With ``lazy=True`` only the model's config files are read now (what decoding needs)
        and the weights load when the first classification starts, while the decoding
        workers already work. The ref's ``backend`` picks the runtime (``auto``, ``torch``,
        ``openvino``: :func:`~vmae_cli.model.load_model` says what ``on_notice`` and
        ``on_warning`` get, called from the thread that loads, and what
        ``allow_untrained_head`` lets through). Raises
        :class:`~vmae_cli.model.ModelLoadError`, :class:`~vmae_cli.model.DeviceError` (with
        ``lazy``, possibly from the first classification) or
        :class:`~vmae_cli.extras.MissingExtraError` (``openvino`` not installed).

        With ``dtype="int8"`` and no ``calibration`` folder the model is always loaded lazily:
        a quantization (once per model) is calibrated on the first videos it classifies.
        """
        self._loaded: LoadedModel | None = None
        self._calibration: Calibration | None = None
        self._loading = threading.Lock()  # classify_files may run in several threads
        self._heap = HeapTrimmer()
        if isinstance(model, LoadedModel):
            if flat:
                raise TypeError(f"a loaded model takes no model options: {', '.join(flat)}")
            self._loaded = model
            self.ref = ModelRef(model.name, device=str(model.device), backend=model.backend)
            self.spec = ModelSpec(
                model.name,
                model.frames_per_clip,
                model.preprocess,
                True,
                len(model.id2label) or None,
                model.multi_label,
                input_name=model.input_name,
                revision=model.revision,
            )
            self._device = model.device
            self.device_type = model.device.type
            self.backend = model.backend
            self.head, self.labels_from = model.head, model.labels_from
            return
        self.ref = ref = ModelRef.of(model, **flat)
        self._say = {"on_notice": on_notice, "on_warning": on_warning}
        # Refuse a bad device, dtype or backend now, not after decoding began; on the CPU
        # without importing torch (a run with nothing to do never needs it).
        device = backend_device(ref.backend, ref.device, ref.dtype)
        self._device = None if known_cpu(device) else resolve_device(device)
        self.device_type = "cpu" if self._device is None else self._device.type
        check_dtype(ref.dtype)
        self.backend = resolve_backend(ref.backend, self.device_type, ref.dtype, ref.calibration)
        # The labels are settled now, before decoding starts (a fitted head read and checked;
        # the run then sees its labels). labels_from: what rows record ("": the checkpoint's).
        self._settled = run_labels(read_model_spec(ref.name, revision=ref.revision), ref)
        self.spec, self.head = self._settled.spec, self._settled.head
        self.labels_from = self._settled.labels_from
        self.backend = zero_shot_runtime(self.spec, self.backend)
        if ref.calibration is not None:
            self._calibration = folder_calibration(ref.calibration, self.spec)
        if not lazy and (ref.dtype != INT8 or self._calibration is not None):
            self._loaded = self.loaded

    @property
    def device(self) -> torch.device:
        """The device the model runs on (``device_type`` names it without importing torch)."""
        if self._device is None:
            self._device = resolve_device(self.device_type)
        return self._device

    @property
    def runtime(self) -> str | None:
        """The loaded model's backend and precision (``"openvino bfloat16"``, ``"torch
        float32"``); ``None`` while a lazy model is not loaded yet."""
        lm = self._loaded
        return f"{lm.backend} {lm.precision}" if lm is not None else None

    @property
    def loaded(self) -> LoadedModel:
        """The model with its weights, loaded on first use."""
        if self._loaded is None:
            with self._loading:
                if self._loaded is None:
                    self._loaded = load_model(
                        self.ref,
                        settled=self._settled,
                        calibration=self._calibration,
                        **self._say,
                    )
        return self._loaded

    def classify(
        self,
        inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        options: ClassifyOptions | None = None,
        *,
        on_walk_error: OnWalkError | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Prediction]:
        """Yield one :class:`Prediction` per video found in ``inputs`` (files or folders).

        ``inputs`` is one path (``str`` or ``os.PathLike``) or an iterable of paths. Every
        named input must exist: :class:`~vmae_cli.discovery.InputNotFoundError` is raised by
        this call, before any work starts, as the CLI refuses them with exit code 2. Bad
        files become predictions with a non-ok status; nothing is raised for them. ``stop``
        ends the run early (used for SIGINT/SIGTERM): videos already decoded are still
        classified and yielded.
        """
        paths = as_inputs(inputs)
        check_inputs(paths)
        found = iter_video_paths(paths, on_walk_error or (lambda p, r: None))
        return self.classify_files(found, options, stop=stop)

    def classify_files(
        self,
        paths: Iterable[str],
        options: ClassifyOptions | None = None,
        *,
        stop: threading.Event | None = None,
        on_windows: Callable[[int], None] | None = None,
    ) -> Iterator[Prediction]:
        """Like :meth:`classify`, for an iterable of video file paths: no directory walk, and
        a path that does not exist gets a ``not_found`` prediction. ``paths`` is read only as
        the decoding workers need more (a few per worker ahead, in this thread, between two
        predictions): a generator, such as a walk, goes on while the first videos are
        classified.

        With segments in the protocol, each prediction carries its windows and
        ``on_windows(n)`` is told each time ``n`` more windows are classified (progress).
        The weights of a lazy classifier are not loaded when ``paths`` is empty.
        """
        opts = options or ClassifyOptions()
        batch_size = opts.batch_size or (
            DEFAULT_BATCH_SIZE_CPU if self.device_type == "cpu" else DEFAULT_BATCH_SIZE_GPU
        )
        workers = default_workers() if opts.workers is None else opts.workers
        pending = iter(paths)
        first = next(pending, None)
        if first is None:
            return  # nothing to do: no workers, no weights (a --resume with all done)
        protocol = opts.protocol.for_model(self.spec.frames_per_clip)
        T, preprocess = self.spec.frames_per_clip, self.spec.preprocess
        if self._loaded is None and self.ref.dtype == INT8 and self._calibration is None:
            # Calibrated on this run's first videos, should the model need quantizing.
            ahead = [first, *itertools.islice(pending, CALIBRATION_VIDEOS - 1)]
            self._calibration = run_calibration(ahead, self.spec, protocol, opts.timeout_s)
            pending = itertools.chain(ahead[1:], pending)
        paths = itertools.chain([first], pending)
        segmented = protocol.segments is not None
        job = (WindowMaker if segmented else ViewMaker)(T, preprocess, protocol)
        # The workers start first, then the weights load (if not yet) while they decode.
        outcomes = iter_decoded(
            paths,
            job,
            workers=workers,
            timeout_s=opts.timeout_s,
            stop=stop,
            on_start=lambda: self.loaded,
        )
        batches = _Batches(self, opts.scoring, batch_size, opts.embeddings, self._heap)
        for prediction in self._predictions(outcomes, batches, protocol, stop, on_windows):
            prediction.model_revision = self.spec.revision
            prediction.labels_from = self.labels_from
            if prediction.status == STATUS_OK:
                prediction.runtime = self.runtime or ""
            yield prediction

    def _predictions(
        self,
        outcomes: Iterable[Any],
        batches: _Batches,
        protocol: Protocol,
        stop: threading.Event | None,
        on_windows: Callable[[int], None] | None,
    ) -> Iterator[Prediction]:
        """One prediction per decoded (or failed) video, in batches."""
        if protocol.segments is not None:
            yield from self._segmented(outcomes, batches, protocol, stop, on_windows)
            return
        for videos, failures in iter_batches(outcomes, batches.batch_size):
            for outcome in failures:
                yield self._failed(outcome, protocol)
            if stop is not None and stop.is_set():
                # Stopping (SIGTERM/SIGINT) must take seconds, not a model call per queued
                # clip: clips decoded but not classified get no row and are redone on resume.
                return
            if videos:
                yield from self._predict(videos, batches, protocol)

    def _segmented(
        self,
        outcomes: Iterable[DecodeOutcome | WindowChunk],
        batches: _Batches,
        protocol: Protocol,
        stop: threading.Event | None,
        on_windows: Callable[[int], None] | None,
    ) -> Iterator[Prediction]:
        """Window chunks -> model batches of about ``batch_size`` views -> one prediction per
        video, with its windows, once its last chunk is classified."""
        import torch

        videos: dict[str, _WindowTally] = {}
        queue: list[tuple[_WindowTally, WindowPrediction, torch.Tensor]] = []
        crops = protocol.crops

        def classify_queue() -> None:
            if not queue:
                return
            probs, embeddings = batches.infer(torch.cat([v for _, _, v in queue]), crops)
            for i, (tally, window, _) in enumerate(queue):
                tally.add(window, probs[i], embeddings[i] if embeddings is not None else None)
                _rank(batches, probs[i], window)
            if on_windows is not None:
                on_windows(len(queue))
            queue.clear()

        for item in outcomes:
            if stop is not None and stop.is_set():
                return  # as above: seconds, not minutes; unfinished videos get no row
            if isinstance(item, WindowChunk):
                tally = videos.get(item.path)
                if tally is None or item.windows[0].index <= tally.last_index:
                    # First chunk, or the video sent again from its start (its worker's
                    # loader restarted): start afresh, the earlier windows are the same.
                    tally = videos[item.path] = _WindowTally()
                tally.last_index = item.windows[-1].index
                views = item.frames.split(crops) if item.frames is not None else ()
                ok = [w for w in item.windows if w.ok]
                for window in item.windows:
                    if not window.ok:
                        tally.windows[window.index] = window
                queue.extend(zip([tally] * len(ok), ok, views, strict=True))
                if len(queue) * crops >= batches.batch_size:
                    classify_queue()
                continue
            tally = videos.pop(item.path, None)
            if item.failure is not None:
                yield self._failed(item, protocol)
                continue
            if tally is not None and any(t is tally for t, _, _ in queue):
                classify_queue()
            yield (tally or _WindowTally()).prediction(item, self.spec.name, protocol, batches)

    def _failed(self, outcome: DecodeOutcome, protocol: Protocol) -> Prediction:
        assert outcome.failure is not None
        return Prediction(
            path=outcome.path,
            status=outcome.failure.status,
            error=outcome.failure.error,
            meta=outcome.meta,
            model=self.spec.name,
            protocol=protocol.name,
            stamp=outcome.stamp,
            # A segmented run's failed video has no windows (a count of 0 in its row).
            windows=[] if protocol.segments is not None else None,
        )

    def _predict(
        self, videos: list[VideoViews], batches: _Batches, protocol: Protocol
    ) -> Iterator[Prediction]:
        import torch

        lm = self.loaded
        views = torch.cat([v.frames for v in videos])
        if lm.device.type == "cuda":
            views = views.pin_memory()
        probs, embeddings = batches.infer(views, [v.num_views for v in videos])
        for i, video in enumerate(videos):
            prediction = Prediction(
                path=video.path,
                status=STATUS_OK,
                meta=video.meta,
                frame_indices=video.frame_indices,
                notes=video.notes,
                model=lm.name,
                protocol=protocol.name,
                stamp=video.stamp,
                embedding=_vector(embeddings[i]) if embeddings is not None else None,
            )
            yield _rank(batches, probs[i], prediction)


def run_calibration(
    paths: list[str], spec: ModelSpec, protocol: Protocol, timeout_s: float | None = None
) -> Calibration:
    """The calibration of a quantization on ``paths``, the first videos of a run, decoded as
    the run decodes them (``protocol``, ``timeout_s``; for a segmented run one clip spread
    over each video). Its identity says only that: later runs reuse the quantized model
    whatever their first videos are."""
    identity = {"run's first videos": CALIBRATION_VIDEOS}
    describe = f"the first {len(paths)} video(s) of the run"
    return Calibration(identity, _clip_maker(paths, spec, protocol, timeout_s), describe)


def folder_calibration(folder: str, spec: ModelSpec) -> Calibration:
    """The calibration of a quantization on the first :data:`CALIBRATION_VIDEOS` videos of
    ``folder`` (its sorted walk), clips as the default protocol makes them. Its identity is
    their names (under ``folder``), sizes and modification times: other videos, another
    entry. Raises :class:`~vmae_cli.model.DtypeOptionError` for a folder that does not exist
    or holds no video."""
    if not os.path.isdir(folder):
        raise DtypeOptionError(
            f"calibration={folder!r}: no such folder", options=("calibration",), value=folder
        )
    paths = list(itertools.islice(iter_video_paths([folder]), CALIBRATION_VIDEOS))
    if not paths:
        raise DtypeOptionError(
            f"calibration={folder!r}: the folder holds no video",
            options=("calibration",),
            value=folder,
        )
    videos = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:  # a broken link: no clip either
            continue
        videos.append([os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns])
    describe = f"{len(paths)} video(s) of {folder}"
    protocol = Protocol().for_model(spec.frames_per_clip)
    return Calibration({"videos": videos}, _clip_maker(paths, spec, protocol), describe)


def _clip_maker(
    paths: list[str], spec: ModelSpec, protocol: Protocol, timeout_s: float | None = None
) -> Callable[[], tuple[list[Any], list[str]]]:
    """What :attr:`~vmae_cli.backends.Calibration.clips` calls: ``paths`` decoded by the
    decoding workers' own :class:`ViewMaker`, in a worker process of their pool (a file that
    crashes or hangs its decoder costs the calibration that video, not the run), normalised
    as :meth:`~vmae_cli.model.LoadedModel.infer` does, at most :data:`CALIBRATION_CLIPS`
    clips, in the order of ``paths``."""
    if protocol.segments is not None:  # a segmented run: one clip spread over each video
        protocol = Protocol(sampling=protocol.sampling).for_model(spec.frames_per_clip)
    maker = ViewMaker(spec.frames_per_clip, spec.preprocess, protocol)

    def clips() -> tuple[list[Any], list[str]]:
        import torch

        decoded = {
            outcome.path: outcome.views
            for outcome in iter_decoded(paths, maker, workers=1, timeout_s=timeout_s)
            if isinstance(outcome, DecodeOutcome) and outcome.views is not None
        }
        arrays: list[Any] = []
        used: list[str] = []
        for path in paths:
            views = decoded.get(path)
            if views is None or len(arrays) >= CALIBRATION_CLIPS:
                continue
            used.append(os.path.basename(path.split("?")[0]))  # no URL's query (a signature)
            for view in views.frames[: CALIBRATION_CLIPS - len(arrays)]:
                pixels = normalize(view[None], spec.preprocess, dtype=torch.float32)
                arrays.append(pixels.numpy())
        return arrays, used

    return clips


#: The error of a row whose scores are not numbers (what a broken config or checkpoint gives).
NON_FINITE_ERROR = (
    "the model gave scores that are not finite numbers (NaN or infinity): its preprocessor "
    "config may divide by zero (an image_std of 0) or its weights hold NaN"
)


def _rank(batches: _Batches, probs: Any, result: Any) -> Any:
    """``result`` (a prediction or a window) with what ``probs`` say, or an ``error`` with
    :data:`NON_FINITE_ERROR` when they are not all finite: a NaN is never an ok row."""
    import torch

    if not bool(torch.isfinite(probs).all()):
        result.status, result.error, result.top_k = STATUS_ERROR, NON_FINITE_ERROR, []
        result.embedding = None
        return result
    return batches.scorer.rank(probs).apply(result)


class _Batches:
    """Model calls of one classification: at most ``batch_size`` views each, the scores of a
    group of views averaged (softmax per view, then the mean: the VideoMAE test protocol),
    the same for the vectors their head received when ``embeddings`` are asked for."""

    def __init__(
        self,
        clf: Classifier,
        scoring: Scoring,
        batch_size: int,
        embeddings: bool,
        heap: HeapTrimmer,
    ):
        self.clf = clf
        self.heap = heap  # the classifier's: trims at most every so often across its calls
        self.scoring = scoring
        self.batch_size = batch_size
        self.embeddings = embeddings
        self._scorer: Scorer | None = None

    @property
    def scorer(self) -> Scorer:
        """The scoring rules on the model's labels (the model is loaded by then)."""
        if self._scorer is None:
            lm = self.clf.loaded
            self._scorer = Scorer(self.scoring, lm.id2label, lm.multi_label)
        return self._scorer

    def infer(self, views: Any, groups: int | list[int]) -> tuple[Any, Any | None]:
        """Mean scores ``(groups, classes)`` and mean embeddings ``(groups, hidden)`` (or
        ``None``) of ``views`` split into consecutive groups (an int: all of that size)."""
        import torch

        lm = self.clf.loaded
        outputs = [
            lm.infer(chunk, embeddings=self.embeddings) for chunk in views.split(self.batch_size)
        ]
        self.heap.trim()
        probs = _group_means(torch.cat([o.probs for o in outputs]), groups)
        if not self.embeddings:
            return probs, None
        vectors = torch.cat([o.embeddings for o in outputs])
        return probs, _group_means(vectors, groups)


def _group_means(rows: Any, groups: int | list[int]) -> Any:
    """The mean of each consecutive group of ``rows`` (sizes ``groups``), stacked."""
    import torch

    return torch.stack([part.mean(dim=0) for part in rows.split(groups)])


def _vector(row: Any) -> Any:
    """One embedding as the float32 numpy array a prediction carries."""
    return row.float().numpy().copy()


class _WindowTally:
    """The windows of one segmented video classified so far, and the sum of their scores
    (what its row's label comes from) and of their embeddings: memory does not grow with the
    length of the video beyond one small record per window (and its vector, if asked for)."""

    def __init__(self) -> None:
        self.windows: dict[int, WindowPrediction] = {}
        self.total: Any = None  # sum of the ok windows' scores (a tensor)
        self.total_embedding: Any = None  # and of their embeddings
        self.ok = 0
        self.last_index = -1

    def add(self, window: WindowPrediction, probs: Any, embedding: Any | None) -> None:
        """Record ``window``'s scores and embedding (each averaged over its crops)."""
        probs = probs.float()
        self.total = probs.clone() if self.total is None else self.total + probs
        if embedding is not None:
            window.embedding = _vector(embedding)
            self.total_embedding = (
                embedding.float().clone()
                if self.total_embedding is None
                else self.total_embedding + embedding
            )
        self.ok += 1
        self.windows[window.index] = window

    def prediction(
        self, outcome: DecodeOutcome, model: str, protocol: Protocol, batches: _Batches
    ) -> Prediction:
        """The video's row: the mean of its windows' scores (and embeddings), its windows in
        order."""
        windows = [self.windows[i] for i in sorted(self.windows)]
        status, error = STATUS_OK, ""
        if outcome.windows is not None and len(windows) != outcome.windows:
            # Never expected; a video must not get a row that silently lacks windows.
            status = STATUS_ERROR
            error = f"{len(windows)} of its {outcome.windows} windows reached the model"
        elif self.total is None:
            status, error = STATUS_NO_FRAMES, "no window could be decoded"
        prediction = Prediction(
            path=outcome.path,
            status=status,
            error=error,
            meta=outcome.meta,
            notes=outcome.notes,
            model=model,
            protocol=protocol.name,
            stamp=outcome.stamp,
            windows=windows,
        )
        if status != STATUS_OK:
            return prediction
        if self.total_embedding is not None:
            prediction.embedding = _vector(self.total_embedding / self.ok)
        return _rank(batches, self.total / self.ok, prediction)


def classify_paths(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    model: ModelRef | str = DEFAULT_MODEL,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    top_k: int = 1,
    batch_size: int | None = None,
    workers: int | None = None,
    timeout_s: float | None = None,
    protocol: Protocol | None = None,
) -> Iterator[Prediction]:
    """Load ``model`` and yield one :class:`Prediction` per video in ``inputs``.

    ``model`` is a name (with ``revision``, ``device`` and ``dtype``) or a whole
    :class:`~vmae_cli.model.ModelRef` (whose fields those override where they are not the
    defaults).
    A convenience wrapper around :class:`Classifier` (same rules for ``inputs``: a missing
    input raises :class:`~vmae_cli.discovery.InputNotFoundError` here, before the model
    loads). Use :class:`Classifier` to load once and classify several times, and
    :func:`vmae_cli.run` for a whole run into an output file.
    """
    paths = as_inputs(inputs)
    check_inputs(paths)
    given = {"revision": revision, "device": device, "dtype": dtype}
    defaults = ModelRef()
    changes = {k: v for k, v in given.items() if v != getattr(defaults, k)}
    clf = Classifier(ModelRef.of(model, **changes), lazy=True)
    opts = ClassifyOptions(
        top_k=top_k,
        batch_size=batch_size,
        workers=workers,
        timeout_s=timeout_s,
        protocol=protocol or Protocol(),
    )
    return clf.classify(paths, opts)


def iter_batches(
    outcomes: Iterable[DecodeOutcome], batch_size: int
) -> Iterator[tuple[list[VideoViews], list[DecodeOutcome]]]:
    """Group decoded videos into model batches of about ``batch_size`` views.

    A video with several views (clips x crops) counts as that many; a batch holds at least one
    video. Yields ``(videos, failures)``: failures travel with the next batch so that rows
    keep roughly the order in which videos finished. A partial batch is yielded at the end.
    """
    videos: list[VideoViews] = []
    failures: list[DecodeOutcome] = []
    views = 0
    for outcome in outcomes:
        if outcome.views is None:
            failures.append(outcome)
            if not videos:
                yield [], failures
                failures = []
            continue
        videos.append(outcome.views)
        views += outcome.views.num_views
        if views >= batch_size:
            yield videos, failures
            videos, failures, views = [], [], 0
    if videos or failures:
        yield videos, failures
