"""The library's errors carry data; the words for a person (and the flags) are the CLI's.

Every error that concerns an option of a run is a :class:`VmaeError` naming it by its Python
keyword (``options``: ``("min_score",)``), with the ``value`` and the ``path`` involved. Its
message speaks Python too (``min_score must be within 0..1, not 1.5``), so a caller of
:func:`vmae_cli.run` reads about the keywords it passed; the CLI's one error table
(:mod:`vmae_cli.cli.errors`) turns the keywords into the flags its user typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class VmaeError(Exception):
    """An error of the library: a one-line message, the options (Python keywords) it
    concerns, the value at fault and the file involved, each ``None``/empty when not known."""

    def __init__(
        self,
        message: str,
        *,
        options: Iterable[str] = (),
        value: Any = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.options: tuple[str, ...] = tuple(options)
        self.value = value
        self.path = path
