"""One path -> the views of one video (:class:`ViewMaker`), and decoding many paths in the
crash- and timeout-proof worker pool (:func:`iter_decoded`).

Everything a decoding worker needs to know about videos is here; the pool itself
(:mod:`vmae_cli.workerpool`) knows nothing of them.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from . import remote
from .decoding import DecodedWindow, decode_video, decode_windows, truncation_note
from .heap import HeapTrimmer
from .preprocessing import PreprocessConfig, resize_and_crop, resize_to_cover, spatial_crops
from .protocol import Protocol
from .results import (
    STATUS_CRASHED,
    STATUS_ERROR,
    STATUS_NO_FRAMES,
    STATUS_OK,
    STATUS_TIMEOUT,
    DecodeOutcome,
    Failure,
    FileStamp,
    VideoViews,
    WindowChunk,
    WindowPrediction,
    file_stamp,
)
from .workerpool import LOST_CRASHED, LOST_NOT_STARTED, LOST_TIMEOUT, forks_workers, iter_pool

#: Extension modules every decoding worker loads, imported in the main process before forking
#: (see :func:`_preload_decoding_libraries`); torch seeds ``numpy.random`` in each worker.
PRELOADED_MODULES = ("cv2", "av", "numpy.random")


@dataclass(frozen=True)
class ViewMaker:
    """One path -> all its views: what a decoding worker does for each video (decode the
    sampled frames, resize and crop them, stack them into views).

    A plain picklable object, so that it also works with the ``spawn`` start method.
    """

    frames_per_clip: int  # T
    preprocess: PreprocessConfig
    protocol: Protocol = field(default_factory=Protocol)

    def sample(self, frame_count: int) -> list[int]:
        """The frame indices to decode for a video of ``frame_count`` frames, clip after clip."""
        return self.protocol.flat_indices(frame_count, self.frames_per_clip)

    def transform(self, rgb: Any) -> Any:
        """One decoded RGB frame -> the uint8 ``(3, h, w)`` tensor kept for it."""
        if self.protocol.crops == 1:
            return resize_and_crop(rgb, self.preprocess)[0]
        # Several crops are cut later, per clip, from the frame resized to cover the crop.
        return resize_to_cover(rgb, self.preprocess)[0]

    def views(self, frames: list[Any]) -> Any:
        """The kept frames (clip after clip) -> uint8 views ``(clips * crops, T, 3, h, w)``."""
        import torch

        x = torch.stack(frames).view(self.protocol.clips, self.frames_per_clip, *frames[0].shape)
        if self.protocol.crops == 1:
            return x
        crops = [
            view
            for clip in x
            for view in spatial_crops(clip, self.preprocess.crop_hw, self.protocol.crops)
        ]
        return torch.stack(crops)

    def __call__(self, path: str) -> DecodeOutcome:
        """Decode ``path`` into a :class:`DecodeOutcome`; never raises for a bad file."""
        start = time.perf_counter()
        # Stamped before decoding: a file that changes meanwhile is redone by --resume.
        stamp = file_stamp(path)
        decoded, failure, meta = decode_video(
            path, self.sample, self.transform, sampling=self.protocol.sampling
        )
        fetched, stamp = fetch_note(path, stamp)
        if decoded is None:
            return DecodeOutcome(
                path, failure=failure, meta=meta, seconds=_since(start), stamp=stamp
            )
        notes = list(decoded.notes)
        truncated = truncation_note(meta)
        if truncated:
            notes.append(truncated)
        if fetched:
            notes.append(fetched)
        clips = self.protocol.clip_indices(meta.frames_decoded, self.frames_per_clip)
        if any(len(set(c)) < len(c) for c in clips):
            stride = self.protocol.frame_stride
            available = -(-meta.frames_decoded // stride) if stride else meta.frames_decoded
            at = f" at stride {stride}" if stride else ""
            notes.append(
                f"short video: {available} frames{at} for {self.frames_per_clip} per clip, "
                "frames repeated"
            )
        frames = self.views(decoded.frames)
        views = VideoViews(path, meta, decoded.frame_indices, frames, notes, stamp)
        return DecodeOutcome(path, views=views, meta=meta, seconds=_since(start), stamp=stamp)


#: Windows a decoding worker sends together: a chunk of 4 default windows is ~10 MB of uint8
#: frames at 224 px, and each worker has at most a few chunks in flight.
WINDOWS_PER_CHUNK = 4


@dataclass(frozen=True)
class WindowMaker:
    """One path -> its windows (``--segments``), sent a few at a time as they are decoded: what
    a decoding worker does for each video when the protocol has segments.

    Calling it returns an iterator of :class:`~vmae_cli.results.WindowChunk` objects, then one
    :class:`~vmae_cli.results.DecodeOutcome` (``windows`` set, or a failure); never raises
    for a bad file. ``protocol.segments`` must be resolved
    (:meth:`~vmae_cli.protocol.Protocol.for_model`).
    """

    frames_per_clip: int  # T
    preprocess: PreprocessConfig
    protocol: Protocol
    windows_per_chunk: int = WINDOWS_PER_CHUNK

    def __call__(self, path: str) -> Iterator[WindowChunk | DecodeOutcome]:
        start = time.perf_counter()
        stamp = file_stamp(path)  # before decoding, as ViewMaker does
        segments = self.protocol.segments
        assert segments is not None and segments.window is not None
        # One clip of T frames per window: its frames are made exactly as ViewMaker makes a
        # clip's (resize, crops).
        one_clip = replace(self.protocol, segments=None)
        clip = ViewMaker(self.frames_per_clip, self.preprocess, one_clip)
        heap = HeapTrimmer()
        pending: list[DecodedWindow] = []
        sent = 0
        for item in decode_windows(
            path, lambda fps: segments.geometry(self.frames_per_clip, fps), clip.transform
        ):
            if isinstance(item, DecodedWindow):
                pending.append(item)
                if len(pending) >= self.windows_per_chunk:
                    yield self._chunk(path, pending, clip)
                    sent += len(pending)
                    pending = []
                    heap.trim()  # each chunk's tensor is copied out to shared memory
                continue
            if pending:
                yield self._chunk(path, pending, clip)
                sent += len(pending)
            fetched, stamp = fetch_note(path, stamp)
            if item.failure is not None:
                yield DecodeOutcome(
                    path, failure=item.failure, meta=item.meta, seconds=_since(start), stamp=stamp
                )
                return
            notes = list(item.notes)
            truncated = truncation_note(item.meta)
            if truncated:
                notes.append(truncated)
            if fetched:
                notes.append(fetched)
            yield DecodeOutcome(
                path,
                meta=item.meta,
                seconds=_since(start),
                stamp=stamp,
                windows=sent,
                notes=notes,
            )
            return

    @staticmethod
    def _chunk(path: str, decoded: list[DecodedWindow], clip: ViewMaker) -> WindowChunk:
        import torch

        windows = []
        views = []
        for d in decoded:
            w = d.window
            status, error = STATUS_OK, ""
            if d.frames is None:
                status, error = STATUS_NO_FRAMES, "a frame of this window did not decode"
            else:
                views.append(clip.views(d.frames))
            windows.append(
                WindowPrediction(
                    w.index,
                    w.start_frame,
                    w.end_frame,
                    d.start_s,
                    d.end_s,
                    list(w.frame_indices),
                    status,
                    error,
                )
            )
        return WindowChunk(path, windows, torch.cat(views) if views else None)


def fetch_note(path: str, stamp: FileStamp | None) -> tuple[str | None, FileStamp | None]:
    """For a URL, what reading it cost (``fetched 3.1 MiB of 12.0 MiB (26%) in 7
    requests``), the object then forgotten by this process, and the stamp the row gets:
    none when a request failed for good (the store or the network failed, not the video:
    ``--resume`` tries it again). For a local file ``(None, stamp)``."""
    if not remote.is_url(path):
        return None, stamp
    fetched = remote.take_fetched(path)
    if fetched is None:
        return None, stamp
    note = fetched.note(stamp.size_bytes if stamp is not None else 0)
    return note, None if fetched.failed else stamp


def _since(start: float) -> float:
    return time.perf_counter() - start


def iter_decoded(
    paths: Iterable[str],
    job: Callable[[str], DecodeOutcome | Iterator[WindowChunk | DecodeOutcome]],
    *,
    workers: int,
    timeout_s: float | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[], Any] | None = None,
) -> Iterator[DecodeOutcome | WindowChunk]:
    """Decode every path with ``job`` in ``workers`` processes; yield one outcome per path as
    they finish (with a :class:`WindowMaker`, each path's window chunks as they come, then
    its outcome): a video whose worker dies is ``crashed`` (``timeout`` when it ran past
    ``timeout_s``, or for a :class:`WindowMaker`, when it went that long without sending a
    chunk), and when the workers cannot start every remaining path is an ``error`` saying
    why; a path whose worker restarts is sent again from its first chunk. See
    :func:`~vmae_cli.workerpool.iter_pool` for ``workers=0``, ``stop`` and ``on_start``.
    """

    def lost(path: str, why: str, detail: str) -> DecodeOutcome:
        if why == LOST_TIMEOUT:
            if isinstance(job, WindowMaker):  # the limit applies to each chunk of windows
                failure = Failure(STATUS_TIMEOUT, f"no window decoded in {timeout_s:g} s")
            else:
                failure = Failure(STATUS_TIMEOUT, f"decoding took longer than {timeout_s:g} s")
        elif why == LOST_CRASHED:
            failure = Failure(STATUS_CRASHED, "the decoder crashed on this file")
        else:
            assert why == LOST_NOT_STARTED
            failure = Failure(STATUS_ERROR, f"decoding worker could not start: {detail}")
        return DecodeOutcome(path, failure=failure, stamp=file_stamp(path))

    if workers > 0:
        _quiesce_opencv_threads()
        _preload_decoding_libraries()
    yield from iter_pool(
        paths,
        job,
        on_lost=lost,
        workers=workers,
        timeout_s=timeout_s,
        stop=stop,
        on_start=on_start,
        worker_init=prepare_worker,
    )


def prepare_worker() -> None:
    """Set up a decoding worker process (the pool already limits torch to one thread):
    OpenCV single-threaded too, and its own logging silenced."""
    import cv2

    # One thread per worker: parallelism comes from running several workers.
    cv2.setNumThreads(1)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass


def _preload_decoding_libraries() -> None:
    """Import OpenCV and PyAV here, before the workers are forked, so that no worker loads
    them, and the dozens of native libraries their wheels bundle (FFmpeg, OpenBLAS,
    libgfortran, libquadmath...), after the fork.

    A worker is forked from a process that has other threads (OpenBLAS, OpenMP, whatever the
    caller runs), and glibc's ``fork`` does not wait for the dynamic loader's lock: the child
    re-initialises it. A library that another thread was loading at that moment is "loaded"
    in the child in whatever state it had reached (shown with glibc 2.36: a ``dlopen`` whose
    constructor was still running in another thread at the fork is found by the child, its
    constructor never finished). Every worker then ran ``import cv2``, ~25 ``dlopen``-ed
    libraries, in such a child. The user report of "ImportError: ...libgfortran-....so.5.0.0:
    undefined symbol: __floatunditf" in DataLoader worker 0 (``_worker_init``), which ended
    the whole run, is that symptom; it was not reproduced here. See python/cpython#100228
    (os.fork warns when threads exist) and python/cpython#84559. Imported here, the workers
    inherit these libraries loaded and relocated, and their ``import cv2`` is a dictionary
    look-up (it also saves each worker the loading: ~0.07 s of CPU). Only with fork: spawned
    workers start from an empty process anyway. A decoder that cannot be imported is left to
    the decoding stage, which reports it per video.
    """
    if not forks_workers():
        return
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _quiesce_opencv_threads() -> None:
    """Stop OpenCV's thread pool in this process before workers are forked from it.

    A forked child inherits the pool's state but not its threads, and hangs for ever the
    next time it touches the pool (even in ``cv2.setNumThreads``): opencv/opencv#5150. The
    pool only exists when this process already used OpenCV (a library caller decoding
    in-process, or ``workers=0`` earlier).
    """
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and forks_workers():
        cv2.setNumThreads(1)
