"""The ``vmae`` command: one module per command (:mod:`.classify`, :mod:`.inspect`,
:mod:`.summarize`, :mod:`.report`, :mod:`.fithead`, :mod:`.labels`), each parsing its options
into a library call; :mod:`.common` holds the app and what they share, :mod:`.errors` the
one table from library errors to exit codes and from the library's keywords to flags,
:mod:`.progress` the progress bar. Everything else lives in the library.

stdout carries data only; progress, warnings and errors go to stderr. Nothing heavy (torch,
transformers, cv2) is imported here: `vmae --help` must stay fast.
"""

from __future__ import annotations

# Each command module registers its command on the app when imported, in the order of
# `vmae --help`.
# isort: off
from . import classify, inspect, summarize, report, fithead, labels  # noqa: F401

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
    "main",
]


def main() -> None:
    """The ``vmae`` command (its console script): the app, with a usage error (an unknown
    option, a value out of range) in one line ``vmae: error: ...`` when stderr is not a
    terminal, as every other line vmae writes there (a cron log is grepped line by line); a
    terminal gets Typer's box."""
    import atexit
    import gc
    import sys

    import typer

    # Registered first, so run last of the exit handlers: what is left in memory is frozen, so
    # that the interpreter's last garbage collections do not walk it (0.1-0.15 s of CPU at the
    # end of a short run with numpy or torch loaded; issue 26). Files are closed by then.
    atexit.register(gc.freeze)

    # Click's classes, wherever this Typer keeps them (its own copy of click since 0.26).
    click_exception = _base_named(typer.BadParameter, "ClickException")
    usage_error = _base_named(typer.BadParameter, "UsageError")
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            # `vmae` alone: its help is the message, shown whole (on stderr, exit 2).
            exc.show()
        elif sys.stderr.isatty():
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        else:
            ctx = exc.ctx
            # The command's name, however vmae was started (`python -m vmae_cli.cli` too).
            where = f"vmae {ctx.info_name}: " if ctx is not None and ctx.parent else ""
            print(f"vmae: error: {where}{exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click_exception as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _base_named(cls: type, name: str) -> type:
    """The class called ``name`` among ``cls``'s bases."""
    return next(base for base in cls.__mro__ if base.__name__ == name)
