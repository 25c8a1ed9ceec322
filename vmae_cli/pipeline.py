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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .discovery import OnWalkError, as_inputs, check_inputs, iter_video_paths
from .model import (
    BACKEND_AUTO,
    DEFAULT_MODEL,
    LoadedModel,
    ModelSpec,
    Say,
    backend_device,
    load_model,
    read_model_spec,
    resolve_backend,
    resolve_device,
    resolve_dtype,
)
from .protocol import Protocol
from .results import STATUS_OK, DecodeOutcome, LabelScore, Prediction, VideoViews
from .views import ViewMaker, iter_decoded

#: Views per model call when --batch-size is not given. On a CPU a larger batch gains little
#: throughput and delays rows; a GPU needs several views to keep busy.
DEFAULT_BATCH_SIZE_CPU = 2
DEFAULT_BATCH_SIZE_GPU = 16


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


class Classifier:
    """A model plus the pipeline around it. Load once, classify many folders."""

    def __init__(
        self,
        model: str | LoadedModel = DEFAULT_MODEL,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        backend: str = BACKEND_AUTO,
        lazy: bool = False,
        on_notice: Say | None = None,
        on_warning: Say | None = None,
    ):
        """Load ``model`` (a Hub id, a local folder, or an already :class:`LoadedModel`).

        With ``lazy=True`` only the model's config files are read now (what decoding needs)
        and the weights load when the first classification starts, while the decoding
        workers already work. ``backend`` picks the runtime (``auto``, ``torch``,
        ``openvino``: :func:`~vmae_cli.model.load_model` says what ``on_notice`` and
        ``on_warning`` get, called from the thread that loads). Raises
        :class:`~vmae_cli.model.ModelLoadError`, :class:`~vmae_cli.model.DeviceError` (with
        ``lazy``, possibly from the first classification) or
        :class:`~vmae_cli.extras.MissingExtraError` (``openvino`` not installed).
        """
        self._loaded: LoadedModel | None = None
        self._loading = threading.Lock()  # classify_files may run in several threads
        if isinstance(model, LoadedModel):
            self._loaded = model
            self.spec = ModelSpec(
                model.name,
                model.frames_per_clip,
                model.preprocess,
                True,
                len(model.id2label) or None,
            )
            self.device = model.device
            self.backend = model.backend
            return
        self._load_args = {
            "revision": revision,
            "device": device,
            "dtype": dtype,
            "backend": backend,
            "on_notice": on_notice,
            "on_warning": on_warning,
        }
        self.device = resolve_device(backend_device(backend, device))
        # Refuse a bad dtype or backend now, not after decoding began.
        resolve_dtype(dtype, self.device)
        self.backend = resolve_backend(backend, self.device)
        self.spec = read_model_spec(model, revision=revision)
        if not lazy:
            self._loaded = self.loaded

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
                    self._loaded = load_model(self.spec.name, spec=self.spec, **self._load_args)
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
    ) -> Iterator[Prediction]:
        """Like :meth:`classify`, for an iterable of video file paths: no directory walk, and
        a path that does not exist gets a ``not_found`` prediction.

        The weights of a lazy classifier are not loaded when ``paths`` is empty.
        """
        opts = options or ClassifyOptions()
        batch_size = opts.batch_size or (
            DEFAULT_BATCH_SIZE_CPU if self.device.type == "cpu" else DEFAULT_BATCH_SIZE_GPU
        )
        workers = default_workers() if opts.workers is None else opts.workers
        pending = iter(paths)
        first = next(pending, None)
        if first is None:
            return  # nothing to do: no workers, no weights (a --resume with all done)
        paths = itertools.chain([first], pending)
        job = ViewMaker(self.spec.frames_per_clip, self.spec.preprocess, opts.protocol)
        # The workers start first, then the weights load (if not yet) while they decode.
        outcomes = iter_decoded(
            paths,
            job,
            workers=workers,
            timeout_s=opts.timeout_s,
            stop=stop,
            on_start=lambda: self.loaded,
        )
        for videos, failures in iter_batches(outcomes, batch_size):
            for outcome in failures:
                yield self._failed(outcome, opts.protocol)
            if stop is not None and stop.is_set():
                # Stopping (SIGTERM/SIGINT) must take seconds, not a model call per queued
                # clip: clips decoded but not classified get no row and are redone on resume.
                return
            if videos:
                yield from self._predict(videos, opts.top_k, opts.protocol, batch_size)

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
        )

    def _predict(
        self, videos: list[VideoViews], top_k: int, protocol: Protocol, batch_size: int
    ) -> Iterator[Prediction]:
        import torch

        lm = self.loaded
        views = torch.cat([v.frames for v in videos])
        if lm.device.type == "cuda":
            views = views.pin_memory()
        # At most batch_size views per model call; a video's views are averaged afterwards
        # (softmax per view, then the mean: the VideoMAE test protocol).
        probs = torch.cat([lm.predict(chunk) for chunk in views.split(batch_size)])
        per_video = probs.split([v.num_views for v in videos])
        probs = torch.stack([p.mean(dim=0) for p in per_video])
        k = max(1, min(top_k, probs.shape[-1]))
        scores, idx = probs.topk(k, dim=-1)
        for video, s_row, i_row in zip(videos, scores.tolist(), idx.tolist(), strict=True):
            yield Prediction(
                path=video.path,
                status=STATUS_OK,
                top_k=[
                    LabelScore(lm.id2label.get(i, f"LABEL_{i}"), float(s))
                    for s, i in zip(s_row, i_row, strict=True)
                ],
                meta=video.meta,
                frame_indices=video.frame_indices,
                notes=video.notes,
                model=lm.name,
                protocol=protocol.name,
                stamp=video.stamp,
            )


def classify_paths(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    model: str = DEFAULT_MODEL,
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

    A convenience wrapper around :class:`Classifier` (same rules for ``inputs``: a missing
    input raises :class:`~vmae_cli.discovery.InputNotFoundError` here, before the model
    loads). Use :class:`Classifier` to load once and classify several times, and
    :func:`vmae_cli.run` for a whole run into an output file.
    """
    paths = as_inputs(inputs)
    check_inputs(paths)
    clf = Classifier(model, revision=revision, device=device, dtype=dtype, lazy=True)
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
