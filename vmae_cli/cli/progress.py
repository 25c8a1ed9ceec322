"""The progress bar of ``vmae classify`` and ``vmae report``, on stderr."""

from __future__ import annotations

import time
from typing import Any

#: What the bar says in place of an ETA while the run still lists its inputs.
LISTING = "still listing"


class Progress:
    """A rich progress bar on stderr, or nothing when it must not be drawn (not a terminal,
    ``--quiet``). Until the first video is done it says what the run is busy with; its ETA
    divides the time since the run started by the videos done, start-up included. Videos
    are classified while the inputs are still listed: until :meth:`set_total` the bar counts
    them (``12/?``) and says so instead of an ETA."""

    def __init__(self, console: Any, enabled: bool, verb: str = "classifying"):
        self.console, self.enabled, self.verb = console, enabled, verb
        self._bar: Any = None
        self._task: Any = None
        self._started = time.perf_counter()
        self._done = 0
        self._total: int | None = None
        self._windows = 0

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task("starting", total=None, rate="", eta="")
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def set_total(self, total: int) -> None:
        self._total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def set_status(self, text: str) -> None:
        if self._bar is not None and self._done == 0:
            self._bar.update(self._task, description=text)

    def add_windows(self, count: int) -> None:
        """``count`` more windows classified (--segments): a long video shows progress
        before its row is done."""
        self._windows += count
        if self._bar is not None:
            self._bar.update(self._task, description=self._description())

    def _description(self) -> str:
        from .common import counted

        return f"{self.verb}, {counted(self._windows, 'window')}" if self._windows else self.verb

    def advance(self) -> None:
        self._done += 1
        if self._bar is None:
            return
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        rate = self._done / elapsed
        eta = LISTING if self._total is None else ""
        if self._total:
            left = max(self._total - self._done, 0) / rate
            eta = f"ETA {int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}"
        self._bar.update(
            self._task,
            advance=1,
            description=self._description(),
            rate=f"{rate:.2f} videos/s",
            eta=eta,
        )
