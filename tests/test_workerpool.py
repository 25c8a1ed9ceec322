from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch
from conftest import by_path

from vmae_cli.pipeline import iter_batches
from vmae_cli.results import (
    STATUS_CRASHED,
    STATUS_TIMEOUT,
    DecodeOutcome,
    Failure,
    VideoMeta,
    VideoViews,
)
from vmae_cli.views import iter_decoded
from vmae_cli.workerpool import LOST_CRASHED, LOST_TIMEOUT, iter_pool


class FakeJob:
    """Stands in for decoding: crashes, hangs or succeeds depending on the path's name."""

    def __call__(self, path: str) -> DecodeOutcome:
        if "crash" in path:
            os.kill(os.getpid(), signal.SIGSEGV)
        if "hang" in path:
            time.sleep(600)
        return DecodeOutcome(path, failure=Failure("error", f"done {path}"))


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_one_outcome_per_path_in_any_worker_count(workers: int) -> None:
    paths = [f"v{i:03d}.mp4" for i in range(25)]
    got = by_path(iter_decoded(paths, FakeJob(), workers=workers))
    assert sorted(got) == paths
    assert all(o.failure.error == f"done {p}" for p, o in got.items())


@pytest.mark.slow
def test_a_crashing_decoder_costs_one_row_not_the_run() -> None:
    paths = [f"v{i}.mp4" for i in range(6)] + ["crash.mp4"] + [f"w{i}.mp4" for i in range(6)]
    got = by_path(iter_decoded(paths, FakeJob(), workers=2))
    assert sorted(got) == sorted(paths)
    assert got["crash.mp4"].failure.status == STATUS_CRASHED
    assert all(got[p].failure.status == "error" for p in paths if p != "crash.mp4")


@pytest.mark.slow
def test_a_crash_is_not_called_a_timeout() -> None:
    """A dead worker's item is ``crashed`` even when the watchdog looks after --timeout and
    before the loader noticed the death (one worker: nothing else wakes the loader)."""
    got = by_path(iter_decoded(["crash.mp4", "a.mp4"], FakeJob(), workers=1, timeout_s=0.5))
    assert got["crash.mp4"].failure.status == STATUS_CRASHED
    assert got["a.mp4"].failure.error == "done a.mp4"


@pytest.mark.slow
def test_a_hanging_decoder_is_killed_after_the_timeout() -> None:
    paths = ["a.mp4", "hang.mp4", "b.mp4", "c.mp4"]
    start = time.monotonic()
    got = by_path(iter_decoded(paths, FakeJob(), workers=2, timeout_s=1.0))
    assert time.monotonic() - start < 30
    assert sorted(got) == sorted(paths)
    assert got["hang.mp4"].failure.status == STATUS_TIMEOUT
    assert "1 s" in got["hang.mp4"].failure.error


def test_stop_ends_dispatching_but_finishes_what_started() -> None:
    stop = threading.Event()
    paths = (f"v{i}.mp4" for i in range(10_000))
    seen = []
    for outcome in iter_decoded(paths, FakeJob(), workers=2, stop=stop):
        seen.append(outcome.path)
        if len(seen) == 5:
            stop.set()
    assert 5 <= len(seen) < 100
    assert len(seen) == len(set(seen))


def _clip(path: str, views: int = 1) -> DecodeOutcome:
    frames = torch.zeros((views, 1, 3, 2, 2), dtype=torch.uint8)
    return DecodeOutcome(path, views=VideoViews(path, VideoMeta(), [0], frames=frames))


def _fail(path: str) -> DecodeOutcome:
    return DecodeOutcome(path, failure=Failure("error", "x"))


def test_iter_batches_groups_clips_and_passes_failures_through() -> None:
    outcomes = [_clip("a"), _fail("b"), _clip("c"), _clip("d"), _fail("e"), _clip("f")]
    batches = list(iter_batches(outcomes, batch_size=2))
    assert [([c.path for c in clips], [f.path for f in fails]) for clips, fails in batches] == [
        (["a", "c"], ["b"]),
        (["d", "f"], ["e"]),
    ]


def test_iter_batches_counts_views_and_keeps_a_video_whole() -> None:
    outcomes = [_clip("a", 15), _clip("b", 3), _clip("c", 3), _clip("d", 1)]
    batches = list(iter_batches(outcomes, batch_size=4))
    assert [[c.path for c in clips] for clips, _ in batches] == [["a"], ["b", "c"], ["d"]]


def test_iter_batches_yields_failures_at_once_when_no_clip_waits() -> None:
    batches = list(iter_batches([_fail("a"), _fail("b"), _clip("c")], batch_size=4))
    assert [([c.path for c in cl], [f.path for f in fa]) for cl, fa in batches] == [
        ([], ["a"]),
        ([], ["b"]),
        (["c"], []),
    ]


# --------------------------------------------------------------------------------------
# Jobs that return an iterator: parts as they come, the last one the item's result
# --------------------------------------------------------------------------------------


class PartsJob:
    """An item ``"name:N"`` yields ``name#0`` ... ``name#N-1`` then ``name=done``; the name
    says what else happens: ``plain`` returns one result (no iterator), ``exit``/``kill``
    die after two parts, ``hang`` hangs after two parts, ``slowP`` takes P tenths of a
    second per part. ``seen`` (a file) marks items started before: ``again`` waits 8 s
    before its third part the first time only. A worker sends a part once it has made the
    next (the last element goes out as the result), so of the two parts made before dying
    only the first arrives."""

    def __init__(self, seen: str = ""):
        self.seen = seen

    def __call__(self, item: str):
        name, _, count = item.partition(":")
        if name.startswith("plain"):
            return f"{name}=done"
        return self._parts(name, int(count))

    def _parts(self, name: str, count: int):
        first_time = True
        if name.startswith("again"):
            first_time = not os.path.exists(self.seen)
            with open(self.seen, "a"):
                pass
        for k in range(count):
            if name.startswith("slow"):
                time.sleep(int(name[4:]) / 10)
            if k == 2 and name.startswith("exit"):
                time.sleep(0.5)  # the parts reach the main process before the worker dies
                os._exit(3)
            if k == 2 and name.startswith("kill"):
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGKILL)
            if k == 2 and name.startswith("hang"):
                time.sleep(30)  # killed long before; a pool that fails to kill it fails the test
            if k == 2 and name.startswith("again") and first_time:
                time.sleep(8)
            yield f"{name}#{k}"
        yield f"{name}=done"


def _lost(item: str, why: str, detail: str) -> str:
    return f"{item.partition(':')[0]}=lost:{why}"


def _by_item(results: list[str]) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for r in results:
        name = r.split("#")[0].split("=")[0]
        got.setdefault(name, []).append(r)
    return got


def _expected(name: str, count: int) -> list[str]:
    return [f"{name}#{k}" for k in range(count)] + [f"{name}=done"]


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_iterator_jobs_yield_their_parts_in_order_then_the_result(workers: int) -> None:
    items = [f"item{i}:{i % 5}" for i in range(12)] + ["plain1:", "plain2:"]
    results = list(iter_pool(items, PartsJob(), on_lost=_lost, workers=workers))
    got = _by_item(results)
    assert sorted(got) == sorted(i.partition(":")[0] for i in items)
    for i in range(12):
        assert got[f"item{i}"] == _expected(f"item{i}", i % 5)
    assert got["plain1"] == ["plain1=done"]
    assert len(results) == sum(i % 5 + 1 for i in range(12)) + 2
    if workers == 0:
        # In this process, one item after the other.
        assert results == [r for i in items for r in got[i.partition(":")[0]]]


def test_parts_are_made_only_when_asked_for() -> None:
    """In this process, the job makes its next part only once the previous one is taken."""
    made: list[int] = []

    def job(item: int):
        for k in range(item):
            made.append(k)
            yield k

    results = iter_pool([3], job, on_lost=_lost, workers=0)
    assert next(results) == 0
    assert made == [0]
    assert next(results) == 1
    assert made == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_job_that_dies_after_some_parts_ends_with_the_lost_result(how: str) -> None:
    items = ["a:3", f"{how}:5", "b:4", "c:2"]
    results = list(iter_pool(items, PartsJob(), on_lost=_lost, workers=2))
    got = _by_item(results)
    assert got[how] == [f"{how}#0", f"{how}=lost:{LOST_CRASHED}"]
    assert got["a"] == _expected("a", 3)
    assert got["b"] == _expected("b", 4)
    assert got["c"] == _expected("c", 2)


@pytest.mark.slow
def test_timeout_applies_to_each_part_not_the_whole_item() -> None:
    """Parts of 0.4 s with a 1 s timeout: 2.8 s in all, not killed; a part that hangs is."""
    items = ["slow4:7", "hang:5", "a:2"]
    start = time.monotonic()
    results = list(iter_pool(items, PartsJob(), on_lost=_lost, workers=2, timeout_s=1.0))
    assert time.monotonic() - start < 30
    got = _by_item(results)
    assert got["slow4"] == _expected("slow4", 7)
    assert got["hang"] == ["hang#0", f"hang=lost:{LOST_TIMEOUT}"]
    assert got["a"] == _expected("a", 2)


@pytest.mark.slow
def test_a_slow_consumer_does_not_time_the_worker_out() -> None:
    """Waiting for the main process to take a part is not the job's time: 0.6 s between
    parts, a 0.4 s timeout, more parts than the worker makes ahead."""
    results = []
    for r in iter_pool(["a:6", "b:1"], PartsJob(), on_lost=_lost, workers=1, timeout_s=0.4):
        results.append(r)
        time.sleep(0.6)
    got = _by_item(results)
    assert got["a"] == _expected("a", 6)
    assert got["b"] == _expected("b", 1)


@pytest.mark.slow
def test_an_item_dispatched_again_yields_its_parts_again_from_the_first(tmp_path) -> None:
    """``again`` is in flight when the other worker dies: a fresh loader takes it from its
    first part (it waits 8 s only the first time, so the loader sees the death first)."""
    job = PartsJob(seen=str(tmp_path / "again-started"))
    results = list(iter_pool(["again:3", "exit:4"], job, on_lost=_lost, workers=2))
    got = _by_item(results)
    assert got["exit"] == ["exit#0", f"exit=lost:{LOST_CRASHED}"]
    parts = got["again"]
    assert parts[-4:] == _expected("again", 3)
    assert parts[:-4] == ["again#0"]  # what came before the loader was replaced


def _dies_after_its_result(item: str):
    yield f"{item}#0"
    yield f"{item}=final"
    if item == "x":
        time.sleep(0.5)
        os._exit(1)


@pytest.mark.slow
def test_a_job_that_dies_after_its_last_element_has_one_result_only() -> None:
    """The last element goes out as the result only once the job has finished: a death
    after it makes the item lost, never an item with two results."""
    results = list(iter_pool(["x", "y"], _dies_after_its_result, on_lost=_lost, workers=2))
    assert results.count("y=final") == 1
    assert [r for r in results if r.startswith("x")] == ["x#0", f"x=lost:{LOST_CRASHED}"]
