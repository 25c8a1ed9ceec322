"""The ``vmae`` command: one module per command (:mod:`.classify`, :mod:`.inspect`,
:mod:`.summarize`, :mod:`.report`, :mod:`.labels`), each parsing its options into a library
call; :mod:`.common` holds the app and what they share, :mod:`.errors` the one table from
library errors to exit codes and from the library's keywords to flags, :mod:`.progress` the
progress bar. Everything else lives in the library.

stdout carries data only; progress, warnings and errors go to stderr. Nothing heavy (torch,
transformers, cv2) is imported here: `vmae --help` must stay fast.
"""

from __future__ import annotations

# Each command module registers its command on the app when imported, in the order of
# `vmae --help`.
# isort: off
from . import classify, inspect, summarize, report, labels  # noqa: F401

# isort: on
from .common import (
    EXIT_BUSY,
    EXIT_FATAL,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    app,
)

__all__ = [
    "EXIT_BUSY",
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_SIGNAL_BASE",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "app",
]
