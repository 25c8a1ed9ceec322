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


def test_a_crashing_decoder_costs_one_row_not_the_run() -> None:
    paths = [f"v{i}.mp4" for i in range(6)] + ["crash.mp4"] + [f"w{i}.mp4" for i in range(6)]
    got = by_path(iter_decoded(paths, FakeJob(), workers=2))
    assert sorted(got) == sorted(paths)
    assert got["crash.mp4"].failure.status == STATUS_CRASHED
    assert all(got[p].failure.status == "error" for p in paths if p != "crash.mp4")


def test_a_crash_is_not_called_a_timeout() -> None:
    """A dead worker's item is ``crashed`` even when the watchdog looks after --timeout and
    before the loader noticed the death (one worker: nothing else wakes the loader)."""
    got = by_path(iter_decoded(["crash.mp4", "a.mp4"], FakeJob(), workers=1, timeout_s=0.5))
    assert got["crash.mp4"].failure.status == STATUS_CRASHED
    assert got["a.mp4"].failure.error == "done a.mp4"


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
