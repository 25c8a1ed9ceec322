"""Optional extras: heavy engines that ``pip install 'vmae-cli[EXTRA]'`` adds.

vmae never imports them unless an option asks for one; :func:`require` imports one then, and
a missing extra is a :class:`MissingExtraError` naming the option that asked for it and the
command that installs it (the CLI exits 2 with that line).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .errors import VmaeError


class MissingExtraError(VmaeError, ImportError):
    """An option needs an optional extra that is not installed."""


def require(module: str, extra: str, **option: Any) -> ModuleType:
    """Import ``module`` for the one run option that asks for it (``engine="ray"``), or raise
    :class:`MissingExtraError` saying ``pip install 'vmae-cli[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        ((keyword, value),) = option.items()
        raise MissingExtraError(
            f"{keyword}={value!r} needs the optional extra {extra!r}: "
            f"pip install 'vmae-cli[{extra}]' ({exc.name or module} cannot be imported)",
            options=(keyword,),
            value=value,
        ) from None
