"""Stage 4: decode videos in parallel worker processes (a torch ``DataLoader``) and group the
clips into model batches.

Workers pull paths from a task queue (work sharing, so one long video does not hold up the
others) and send back one :class:`~vmae_cli.results.DecodeOutcome` per path, in completion
order. A plain ``DataLoader`` iteration dies with its workers; here every worker publishes the
task it is working on in shared memory, so when a worker dies (a decoder crash) or is killed
(``--timeout``), the run knows which video to blame, gives it a ``crashed`` / ``timeout``
outcome, and starts a fresh loader for the rest. Nothing is lost: tasks that were queued or
in flight in the dead loader are dispatched again. A loader whose workers cannot start (an
exception while a worker sets itself up, or workers that die before taking a video) is tried
again a few times; if it still cannot start, every remaining path gets an ``error`` outcome.
"""

from __future__ import annotations

import importlib
import os
import queue
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .decoding import decode_video, truncation_note
from .preprocessing import PreprocessConfig, resize_and_crop, resize_to_cover, spatial_crops
from .protocol import Protocol
from .results import (
    STATUS_CRASHED,
    STATUS_ERROR,
    STATUS_TIMEOUT,
    Clip,
    DecodeOutcome,
    Failure,
    file_stamp,
)

#: Decoded clips waiting in each worker's output, beyond the one being worked on.
PREFETCH_PER_WORKER = 2
#: How often the watchdog looks for videos that exceeded --timeout (seconds).
WATCHDOG_INTERVAL_S = 0.25
#: How often an idle worker checks that the main process is still alive (seconds).
PARENT_CHECK_INTERVAL_S = 2.0
#: Loaders in a row whose workers fail without finishing a video (they die before taking one,
#: or raise while they start) before the remaining videos are given up as ``error`` rows.
MAX_UNEXPLAINED_RESTARTS = 3
#: Extension modules every decoding worker loads, imported in the main process before forking
#: (see :func:`_preload_decoding_libraries`); torch seeds ``numpy.random`` in each worker.
PRELOADED_MODULES = ("cv2", "av", "numpy.random")


class WorkerPoolError(RuntimeError):
    """Decoding workers keep dying without working on any video (a broken environment).

    No longer raised by :func:`iter_decoded`, which gives every remaining path an ``error``
    outcome instead; kept for code that catches it.
    """


@dataclass(frozen=True)
class DecodeJob:
    """The work a decoding worker does for one path: decode, resize and crop into views.

    A plain picklable object, so that it also works with the ``spawn`` start method.
    """

    num_frames: int
    preprocess: PreprocessConfig
    protocol: Protocol = field(default_factory=Protocol)

    def sample(self, frame_count: int) -> list[int]:
        """The frame indices to decode for a video of ``frame_count`` frames, clip after clip."""
        return self.protocol.flat_indices(frame_count, self.num_frames)

    def transform(self, rgb: Any) -> Any:
        """One decoded RGB frame -> the uint8 ``(3, h, w)`` tensor kept for it."""
        if self.protocol.crops == 1:
            return resize_and_crop(rgb, self.preprocess)[0]
        # Several crops are cut later, per clip, from the frame resized to cover the crop.
        return resize_to_cover(rgb, self.preprocess)[0]

    def views(self, frames: list[Any]) -> Any:
        """The kept frames (clip after clip) -> uint8 views ``(clips * crops, T, 3, h, w)``."""
        import torch

        x = torch.stack(frames).view(self.protocol.clips, self.num_frames, *frames[0].shape)
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
        decoded, failure, meta = decode_video(path, self.sample, self.transform)
        if decoded is None:
            return DecodeOutcome(
                path, failure=failure, meta=meta, seconds=_since(start), stamp=stamp
            )
        notes = []
        truncated = truncation_note(meta)
        if truncated:
            notes.append(truncated)
        clips = self.protocol.clip_indices(meta.frames_decoded, self.num_frames)
        if any(len(set(c)) < len(c) for c in clips):
            stride = self.protocol.frame_stride
            available = -(-meta.frames_decoded // stride) if stride else meta.frames_decoded
            at = f" at stride {stride}" if stride else ""
            notes.append(
                f"short video: {available} frames{at} for {self.num_frames} per clip, "
                "frames repeated"
            )
        clip = Clip(path, meta, decoded.frame_indices, self.views(decoded.frames), notes, stamp)
        return DecodeOutcome(path, clip=clip, meta=meta, seconds=_since(start), stamp=stamp)


def _since(start: float) -> float:
    return time.perf_counter() - start


def _identity(x: Any) -> Any:
    return x


def _worker_init(_worker_id: int) -> None:
    import cv2
    import torch

    # One thread per worker: parallelism comes from running several workers.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:
        pass
    # Ctrl-C is the main process's business: it stops dispatching and flushes the rows.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


#: prctl option that sends the calling process a signal when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Make this worker exit when the main process is killed (even with SIGKILL).

    An orphaned worker would otherwise wait for tasks forever and keep the output file's
    lock (inherited through fork) alive.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _make_dataset(task_queue: Any, slots: Any, job: Callable[[str], DecodeOutcome]) -> Any:
    from torch.utils.data import IterableDataset, get_worker_info

    class _TaskStream(IterableDataset):
        """Each worker pulls ``(task_id, path)`` from the queue until it gets ``None``."""

        def __iter__(self) -> Iterator[tuple[int, DecodeOutcome]]:
            info = get_worker_info()
            wid = info.id if info is not None else 0
            slots[3 * wid + 2] = os.getpid()
            parent = os.getppid()
            while True:
                try:
                    task = task_queue.get(timeout=PARENT_CHECK_INTERVAL_S)
                except queue.Empty:
                    if os.getppid() != parent:
                        return  # orphaned (where prctl is not available)
                    continue
                if task is None:
                    return
                task_id, path = task
                slots[3 * wid + 1] = time.monotonic()
                slots[3 * wid] = task_id
                outcome = job(path)
                slots[3 * wid] = -1
                yield task_id, outcome

    return _TaskStream()


def _mp_context() -> Any:
    import multiprocessing as mp

    # fork starts workers in milliseconds and shares the imported modules; elsewhere (macOS,
    # Windows) spawn is the only safe choice.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def iter_decoded(
    paths: Iterable[str],
    job: Callable[[str], DecodeOutcome],
    *,
    workers: int,
    timeout_s: float | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[], Any] | None = None,
) -> Iterator[DecodeOutcome]:
    """Decode every path with ``job`` in ``workers`` processes; yield outcomes as they finish.

    Exactly one outcome is yielded per path, whatever happens to the workers: a video whose
    worker dies is ``crashed`` (``timeout`` when the watchdog killed it); when the workers
    cannot start (:data:`MAX_UNEXPLAINED_RESTARTS` loaders in a row), every remaining path is
    an ``error`` saying why. Exceptions raised by ``paths``, ``on_start`` or ``job`` itself
    propagate (the decoding job turns bad files into failures; it never raises). ``workers=0``
    decodes in this process (no isolation, no timeout: for debugging). Setting ``stop`` ends
    dispatching; the videos already being decoded are finished and yielded. ``on_start`` is
    called once the workers have their first tasks (the model loads then, in parallel with
    the first decodes, and the workers are forked without the model's memory).
    """
    if workers <= 0:
        if on_start is not None:
            on_start()
        for path in paths:
            if stop is not None and stop.is_set():
                return
            yield job(path)
        return
    import torch.utils.data._utils.signal_handling as torch_signals
    from torch.utils.data import DataLoader

    _quiesce_opencv_threads()
    _preload_decoding_libraries()
    # torch installs a SIGCHLD handler that raises in the main thread at an arbitrary point
    # (in the middle of a model call or a row write) when a worker dies. Worker deaths are
    # handled below instead, where the loader notices them.
    torch_signals._SIGCHLD_handler_set = True

    source = iter(enumerate(paths))
    redo: deque[tuple[int, str]] = deque()
    unexplained = 0
    while True:
        ctx = _mp_context()
        task_queue = ctx.Queue()
        # Per worker: current task id (-1 idle), its start time (monotonic s), worker pid.
        slots = ctx.Array("d", [-1.0, 0.0, 0.0] * workers, lock=False)
        in_flight: dict[int, str] = {}
        timed_out: set[int] = set()
        sentinels_sent = False
        capacity = workers * (PREFETCH_PER_WORKER + 1)

        def feed(
            in_flight: dict[int, str] = in_flight,
            task_queue: Any = task_queue,
            capacity: int = capacity,
        ) -> bool:
            """Top up the task queue; False once there is nothing left to dispatch."""
            while len(in_flight) < capacity:
                if stop is not None and stop.is_set():
                    return False
                task = redo.popleft() if redo else next(source, None)
                if task is None:
                    return False
                in_flight[task[0]] = task[1]
                task_queue.put(task)
            return True

        with _quiet_worker_count_warning():
            loader = DataLoader(
                _make_dataset(task_queue, slots, job),
                batch_size=None,
                num_workers=workers,
                collate_fn=_identity,
                worker_init_fn=_worker_init,
                multiprocessing_context=ctx,
                prefetch_factor=PREFETCH_PER_WORKER,
                in_order=False,
            )
        watchdog_stop = threading.Event()
        watchdog = None
        if timeout_s:
            watchdog = threading.Thread(
                target=_watchdog,
                args=(slots, workers, timeout_s, timed_out, watchdog_stop),
                daemon=True,
            )
            watchdog.start()
        progressed = False
        failed: list[int] = []
        # Why this loader's workers stopped working (told in the rows if they cannot start).
        start_error: str | None = None
        it = None
        try:
            try:
                with _quiet_worker_count_warning():
                    it = iter(loader)  # forks the workers
            except Exception as exc:  # noqa: BLE001 - fork or pipe failure: retried below
                start_error = _describe(exc)
                _release_frames(exc)
            else:
                if not feed():
                    sentinels_sent = _send_sentinels(task_queue, workers)
                if on_start is not None:
                    on_start()
                    on_start = None
                while True:
                    try:
                        task_id, outcome = next(it)
                    except StopIteration:
                        return  # every worker got its sentinel and finished
                    except Exception as exc:
                        if _is_worker_death(exc):
                            failed = _blame(slots, workers, in_flight)
                        elif _raised_in_job(exc, slots, workers, in_flight):
                            _release_frames(exc)
                            raise  # the job's own bug: not a worker that cannot start
                        # Else raised while a worker set itself up (worker_init_fn) or outside
                        # any job: this loader's workers cannot work.
                        start_error = _describe(exc)
                        _release_frames(exc)
                        break
                    progressed = True
                    in_flight.pop(task_id, None)
                    yield outcome
                    if not sentinels_sent and not feed():
                        sentinels_sent = _send_sentinels(task_queue, workers)
        finally:
            watchdog_stop.set()
            if not sentinels_sent:
                _send_sentinels(task_queue, workers)
            del it
        # A worker died: fail the video it was decoding, dispatch the others again.
        for task_id in failed:
            path = in_flight.pop(task_id)
            if task_id in timed_out:
                failure = Failure(STATUS_TIMEOUT, f"decoding took longer than {timeout_s:g} s")
            else:
                failure = Failure(STATUS_CRASHED, "the decoder crashed on this file")
            yield DecodeOutcome(path, failure=failure, stamp=file_stamp(path))
        unexplained = 0 if (failed or progressed) else unexplained + 1
        redo.extendleft(sorted(in_flight.items(), reverse=True))
        if unexplained >= MAX_UNEXPLAINED_RESTARTS:
            error = f"decoding worker could not start: {start_error or 'no reason given'}"
            yield from _fail_remaining(redo, source, error, stop)
            return


def _fail_remaining(
    redo: deque[tuple[int, str]],
    source: Iterator[tuple[int, str]],
    error: str,
    stop: threading.Event | None,
) -> Iterator[DecodeOutcome]:
    """One ``error`` outcome for every path not decoded yet (dispatching as usual: not once
    ``stop`` is set)."""
    while True:
        if stop is not None and stop.is_set():
            return
        task = redo.popleft() if redo else next(source, None)
        if task is None:
            return
        path = task[1]
        yield DecodeOutcome(path, failure=Failure(STATUS_ERROR, error), stamp=file_stamp(path))


def _is_worker_death(exc: BaseException) -> bool:
    """Whether the loader raised because a worker process died (crash, --timeout kill)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "exited unexpectedly" in text or "killed by signal" in text
    )


#: Where torch's ``ExceptionWrapper.reraise`` says an exception came from.
_IN_WORKER = re.compile(r"in DataLoader worker process (\d+)")
#: The first line of a re-raised worker exception: "Caught ImportError in DataLoader ...".
_CAUGHT = re.compile(r"Caught (\w+) in DataLoader worker process \d+")


def _raised_in_job(exc: BaseException, slots: Any, workers: int, in_flight: dict) -> bool:
    """Whether ``exc`` was raised by the job while a worker decoded a path (the worker's slot
    still names the task: it is reset to -1 only when the job returns)."""
    match = _IN_WORKER.search(str(exc))
    if match is None or int(match.group(1)) >= workers:
        return False
    task_id = int(slots[3 * int(match.group(1))])
    return task_id >= 0 and task_id in in_flight


def _describe(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, for an exception from a worker or from the loader.

    A worker's exception reaches this process re-raised by torch as "Caught ImportError in
    DataLoader worker process 0. Original Traceback ...": the original last line is kept.
    """
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    caught = _CAUGHT.match(text)
    line = ""
    if caught is not None:
        name = caught.group(1)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        ends = [ln for ln in lines if re.match(rf"([\w.]+\.)?{name}(:|$)", ln)]
        line = (ends or lines)[-1]
    else:
        first = text.strip().splitlines()[0] if text.strip() else ""
        line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _release_frames(exc: BaseException) -> None:
    """Let the dead loader go with ``del it``, not at the next garbage collection.

    torch re-raises a worker's exception from a frame that holds it (``ExceptionWrapper.
    reraise``): a reference cycle through the traceback, whose frames hold the loader
    iterator. It and its worker processes stayed alive until the garbage collector ran, at
    times inside a newly forked worker ("AssertionError: can only test a child process" in
    ``__del__``), at times 10 s into a later loader (joining workers). The frames' locals are
    cleared; the traceback itself stays printable.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if link.__traceback__ is not None:
            traceback.clear_frames(link.__traceback__)  # skips the frames still running
        link = link.__cause__ or link.__context__


@contextmanager
def _quiet_worker_count_warning() -> Iterator[None]:
    """Silence torch's "This DataLoader will create N worker processes in total. Our
    suggested max number of worker ..." UserWarning (given at every loader and iterator made,
    so twice per loader); the command line says it once, in its own words."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"This DataLoader will create \d+ worker processes in total",
            category=UserWarning,
        )
        yield


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
    if _mp_context().get_start_method() != "fork":
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
    if cv2 is not None and _mp_context().get_start_method() == "fork":
        cv2.setNumThreads(1)


def _send_sentinels(task_queue: Any, workers: int) -> bool:
    for _ in range(workers):
        task_queue.put(None)
    return True


def _blame(slots: Any, workers: int, in_flight: dict[int, str]) -> list[int]:
    """Task ids held by workers that are no longer alive."""
    blamed = []
    for wid in range(workers):
        task_id, pid = int(slots[3 * wid]), int(slots[3 * wid + 2])
        if task_id < 0 or task_id not in in_flight or pid <= 0:
            continue
        if not _alive(pid):
            blamed.append(task_id)
    return blamed


def _alive(pid: int) -> bool:
    try:
        # A dead child that has not been reaped yet still "exists": check its state too.
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    except IndexError:
        return False


def _watchdog(
    slots: Any, workers: int, timeout_s: float, timed_out: set[int], stop: threading.Event
) -> None:
    """Kill a worker whose current video has run longer than ``timeout_s``.

    Killing the process is the only reliable way out: a FIFO or a stuck network mount blocks
    inside FFmpeg, where neither SIGALRM nor a thread can interrupt it.
    """
    while not stop.wait(WATCHDOG_INTERVAL_S):
        now = time.monotonic()
        for wid in range(workers):
            task_id, started, pid = slots[3 * wid], slots[3 * wid + 1], int(slots[3 * wid + 2])
            if task_id >= 0 and pid > 0 and now - started > timeout_s:
                timed_out.add(int(task_id))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def iter_batches(
    outcomes: Iterable[DecodeOutcome], batch_size: int
) -> Iterator[tuple[list[Clip], list[DecodeOutcome]]]:
    """Group decoded videos into model batches of about ``batch_size`` views.

    A video with several views (clips x crops) counts as that many; a batch holds at least one
    video. Yields ``(clips, failures)``: failures travel with the next batch so that rows keep
    roughly the order in which videos finished. A partial batch is yielded at the end.
    """
    clips: list[Clip] = []
    failures: list[DecodeOutcome] = []
    views = 0
    for outcome in outcomes:
        if outcome.clip is None:
            failures.append(outcome)
            if not clips:
                yield [], failures
                failures = []
            continue
        clips.append(outcome.clip)
        views += outcome.clip.num_views
        if views >= batch_size:
            yield clips, failures
            clips, failures, views = [], [], 0
    if clips or failures:
        yield clips, failures
