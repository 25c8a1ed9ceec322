"""Handing memory that large temporaries freed back to the system, in a long run.

A model batch allocates large temporaries in the main process (the float32 copies of
``normalize``, the cast, the runtime's input copy: ~20 MB each for 2 clips of 16x224x224),
and a decoding worker one tensor per window chunk (~10 MB). Once a block of such a size has
been freed, glibc serves the next ones from its heap (its mmap threshold rises to the size),
and it does not return free heap memory below the heap's top to the system. Over thousands
of batches (a segmented hour of video) the main process grew by ~1 GB with 224 px inputs
while the memory it used stayed at ~150 MB (benchmarks/RESULTS.md, "Segments").
``malloc_trim(0)`` releases those free pages; :class:`HeapTrimmer` calls it after batches,
at most every :data:`TRIM_INTERVAL_S`.
"""

from __future__ import annotations

import time
from typing import Any

#: Least time between two trims (seconds): a CPU batch takes a second or more and is
#: trimmed after each; fast batches (a GPU, a tiny model) are trimmed a few times a second.
TRIM_INTERVAL_S = 0.25


class HeapTrimmer:
    """Calls glibc's ``malloc_trim(0)`` from :meth:`trim`, at most every
    :data:`TRIM_INTERVAL_S`; does nothing where the C library has no such function."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._trim: Any = None
        self._next = 0.0
        try:
            import ctypes

            self._trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            pass

    def trim(self) -> None:
        """Release free heap memory to the system, unless it was done very recently."""
        now = time.monotonic()
        if self._trim is None or now < self._next:
            return
        self._trim(0)
        self._next = time.monotonic() + self.interval_s
