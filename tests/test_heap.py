"""vmae_cli.heap: freed memory handed back to the system, not too often."""

from __future__ import annotations

from vmae_cli.heap import HeapTrimmer


def test_trims_at_most_once_per_interval(monkeypatch) -> None:
    calls = []
    clock = [100.0]
    monkeypatch.setattr("vmae_cli.heap.time.monotonic", lambda: clock[0])
    heap = HeapTrimmer(interval_s=1.0)
    heap._trim = calls.append
    for step in (0.0, 0.4, 0.4, 0.3, 0.1, 1.5):
        clock[0] += step
        heap.trim()
    # At 100.0 and 101.1 (not 100.4 or 100.8), then 102.7; each call asks for all (pad 0).
    assert calls == [0, 0, 0]


def test_trimming_is_real_on_this_c_library() -> None:
    heap = HeapTrimmer()
    heap.trim()  # glibc here: must not raise; elsewhere a no-op
