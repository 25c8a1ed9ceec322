"""A process pool that survives its workers: items in, exactly one result per item out.

Built on a torch ``DataLoader`` (its worker processes, pinned-memory transport and shutdown)
but fed from a task queue: workers pull items (work sharing, so one slow item does not hold
up the others) and send back one result per item, in completion order. A plain ``DataLoader``
iteration dies with its workers; here every worker publishes the task it is working on in
shared memory, so when a worker dies (a crash in native code) or is killed (it ran past
``timeout_s``), the pool knows which item to blame, gives it a "lost" result made by the
caller (``on_lost``), and starts a fresh loader for the rest. Nothing is lost: tasks that were
queued or in flight in the dead loader are dispatched again. A loader whose workers cannot
start (an exception while a worker sets itself up, or workers that die before taking an item)
is tried again a few times; if it still cannot start, every remaining item is lost as
"not started".

The pool knows nothing of videos: what a worker does, how it is set up and what a lost item
becomes are the caller's (:mod:`vmae_cli.views` for decoding).
"""

from __future__ import annotations

import functools
import math
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
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Why an item got no result from a worker (``on_lost``'s second argument).
LOST_CRASHED = "crashed"  # its worker died while working on it
LOST_TIMEOUT = "timeout"  # its worker was killed after ``timeout_s``
LOST_NOT_STARTED = "not_started"  # the workers could not start (the detail says why)

#: Results waiting in each worker's output, beyond the one being worked on.
PREFETCH_PER_WORKER = 2
#: How often the watchdog looks for items that ran past timeout_s (seconds).
WATCHDOG_INTERVAL_S = 0.25
#: How often an idle worker checks that the main process is still alive (seconds).
PARENT_CHECK_INTERVAL_S = 2.0
#: How long the pool waits, when it ends, for a worker that torch's loader told to stop (or
#: terminated after its own join timed out) to be gone (seconds).
WORKER_EXIT_WAIT_S = 10.0
#: Loaders in a row whose workers fail without finishing an item (they die before taking one,
#: or raise while they start) before the remaining items are given up as not started.
MAX_UNEXPLAINED_RESTARTS = 3


#: What a worker sends back: ``(task id, kind, value)``. A job returning an iterator sends
#: its elements as parts, the last one as the result; any other job sends one result.
_RESULT = 0
_PART = 1


def _identity(x: Any) -> Any:
    return x


def _worker_init(_worker_id: int, prepare: Callable[[], None] | None = None) -> None:
    import torch

    # One thread per worker: parallelism comes from running several workers.
    torch.set_num_threads(1)
    if prepare is not None:
        prepare()
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


def _make_dataset(task_queue: Any, slots: Any, job: Callable[[Any], Any]) -> Any:
    from torch.utils.data import IterableDataset, get_worker_info

    class _TaskStream(IterableDataset):
        """Each worker pulls ``(task_id, item)`` from the queue until it gets ``None``."""

        def __iter__(self) -> Iterator[tuple[int, Any]]:
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
                task_id, item = task
                slots[3 * wid + 1] = time.monotonic()
                slots[3 * wid] = task_id
                result = job(item)
                if isinstance(result, Iterator):
                    # One element ahead, so that the last one goes out as the item's result
                    # (with the task done in the same message: a task still in flight after
                    # its result would be redone, or lost, when a worker dies).
                    pending = next(result)
                    for following in result:
                        # Waiting for the main process to ask for more is not the job's
                        # time: the clock restarts when the next part is wanted.
                        slots[3 * wid + 1] = math.inf
                        yield task_id, _PART, pending
                        slots[3 * wid + 1] = time.monotonic()
                        pending = following
                    result = pending
                slots[3 * wid] = -1
                yield task_id, _RESULT, result

    return _TaskStream()


def _mp_context() -> Any:
    import multiprocessing as mp

    # fork starts workers in milliseconds and shares the imported modules; elsewhere (macOS,
    # Windows) spawn is the only safe choice.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def forks_workers() -> bool:
    """Whether workers are forked from this process (Linux) rather than spawned."""
    return _mp_context().get_start_method() == "fork"


def iter_pool(
    items: Iterable[Item],
    job: Callable[[Item], Result],
    *,
    on_lost: Callable[[Item, str, str], Result],
    workers: int,
    timeout_s: float | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[], Any] | None = None,
    worker_init: Callable[[], None] | None = None,
) -> Iterator[Result]:
    """Run ``job`` on every item in ``workers`` processes; yield results as they finish.

    Exactly one result is yielded per item, whatever happens to the workers: an item whose
    worker dies gets ``on_lost(item, LOST_CRASHED, "")`` (``LOST_TIMEOUT`` when it ran past
    ``timeout_s`` and was killed); when the workers cannot start
    (:data:`MAX_UNEXPLAINED_RESTARTS` loaders in a row) every remaining item gets
    ``on_lost(item, LOST_NOT_STARTED, why)``. Exceptions raised by ``items``, ``on_start``
    or ``job`` itself propagate (a job should turn its failures into results). ``job`` and
    ``worker_init`` (run once in each worker) must be picklable where workers are spawned.
    ``workers=0`` runs the jobs in this process (no isolation, no timeout: for debugging).

    A job may return an iterator instead: its elements are yielded as the worker makes them
    (it makes one more only as the previous ones are taken, so a long item's parts do not
    pile up), the last one being its result (it must yield at least one). ``timeout_s`` then
    applies to each element, not the whole item; an item that dies after some parts gets
    ``on_lost`` as its result, and an item dispatched again (another worker of its loader
    died) yields its parts again from the first.
    Setting ``stop`` ends dispatching; the items already being worked on are finished and
    yielded. ``on_start`` is called once the workers have their first tasks (e.g. loading a
    model in parallel with the first jobs, and forking the workers without its memory).
    """
    if workers <= 0:
        if on_start is not None:
            on_start()
        for item in items:
            if stop is not None and stop.is_set():
                return
            result = job(item)
            if isinstance(result, Iterator):
                yield from result
            else:
                yield result
        return
    import torch.utils.data._utils.signal_handling as torch_signals
    from torch.utils.data import DataLoader

    # torch installs a SIGCHLD handler that raises in the main thread at an arbitrary point
    # (in the middle of a model call or a row write) when a worker dies. Worker deaths are
    # handled below instead, where the loader notices them.
    torch_signals._SIGCHLD_handler_set = True

    source = iter(enumerate(items))
    redo: deque[tuple[int, Any]] = deque()
    unexplained = 0
    while True:
        ctx = _mp_context()
        task_queue = ctx.Queue()
        # Per worker: current task id (-1 idle), its start time (monotonic s), worker pid.
        slots = ctx.Array("d", [-1.0, 0.0, 0.0] * workers, lock=False)
        in_flight: dict[int, Any] = {}
        timed_out: set[int] = set()
        sentinels_sent = False
        capacity = workers * (PREFETCH_PER_WORKER + 1)

        def feed(
            in_flight: dict[int, Any] = in_flight,
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
                worker_init_fn=functools.partial(_worker_init, prepare=worker_init),
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
                        task_id, kind, result = next(it)
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
                    if kind == _RESULT:
                        in_flight.pop(task_id, None)
                    yield result
                    if not sentinels_sent and not feed():
                        sentinels_sent = _send_sentinels(task_queue, workers)
        finally:
            watchdog_stop.set()
            if not sentinels_sent:
                _send_sentinels(task_queue, workers)
            workers_started = list(getattr(it, "_workers", None) or ())
            del it  # joins this loader's workers
            # torch terminates a worker its join timed out on and returns without waiting for
            # it: the pool ends when its workers are gone, with what they inherited (a forked
            # worker holds the caller's open files: an output's lock, which a run started
            # right after this one must get).
            _join_all(workers_started)
            # The queue's pipe and its feeder thread go now, not when the queue is collected:
            # an exception leaving here (a model that failed to load in ``on_start``) holds
            # this frame, and a caller that keeps it (a notebook's last error) kept both.
            task_queue.close()
            task_queue.join_thread()
        # A worker died: the item it was working on is lost, the others are dispatched again.
        for task_id in failed:
            item = in_flight.pop(task_id)
            yield on_lost(item, LOST_TIMEOUT if task_id in timed_out else LOST_CRASHED, "")
        unexplained = 0 if (failed or progressed) else unexplained + 1
        redo.extendleft(sorted(in_flight.items(), reverse=True))
        if unexplained >= MAX_UNEXPLAINED_RESTARTS:
            why = start_error or "no reason given"
            while not (stop is not None and stop.is_set()):  # dispatching as usual
                task = redo.popleft() if redo else next(source, None)
                if task is None:
                    return
                yield on_lost(task[1], LOST_NOT_STARTED, why)
            return


def _join_all(processes: list[Any]) -> None:
    """Wait for each of ``processes`` to be gone (at most :data:`WORKER_EXIT_WAIT_S` each),
    then forget them: their pipes are closed now, even where an exception keeps the caller's
    frame."""
    for proc in processes:
        proc.join(WORKER_EXIT_WAIT_S)
    processes.clear()


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
    """Whether ``exc`` was raised by the job while a worker worked on an item (the worker's slot
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
    """Kill a worker whose current item has run longer than ``timeout_s``.

    Killing the process is the only reliable way out: a FIFO or a stuck network mount blocks
    inside FFmpeg, where neither SIGALRM nor a thread can interrupt it.
    """
    while not stop.wait(WATCHDOG_INTERVAL_S):
        now = time.monotonic()
        for wid in range(workers):
            task_id, started, pid = slots[3 * wid], slots[3 * wid + 1], int(slots[3 * wid + 2])
            # A dead worker crashed (the loader notices within seconds); only a live one that
            # took too long timed out.
            if task_id >= 0 and pid > 0 and now - started > timeout_s and _alive(pid):
                timed_out.add(int(task_id))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
