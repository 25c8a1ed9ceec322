"""Optional extras: heavy engines that ``pip install 'vmae-cli[EXTRA]'`` adds.

vmae never imports them unless an option asks for one; :func:`require` imports one then, and
a missing extra is a :class:`MissingExtraError` naming the command that installs it (the CLI
exits 2 with that line).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An option needs an optional extra that is not installed."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature`` (e.g. ``"--engine ray"``), or raise
    :class:`MissingExtraError` saying ``pip install 'vmae-cli[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the optional extra {extra!r}: pip install 'vmae-cli[{extra}]' "
            f"({exc.name or module} cannot be imported)"
        ) from None
