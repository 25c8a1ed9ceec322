"""The one table from library errors to exit codes and one-line messages, and the one table
from the library's keywords to the command line's flags.

The library's errors (:class:`vmae_cli.errors.VmaeError`) speak Python: they name the run
options they concern by keyword (``exc.options``) and write them in their message as
``keyword=value`` or, for a keyword with an underscore (which no English word has), bare.
:func:`flagged` turns those into the flags a user of ``vmae`` typed (``min_score`` ->
``--min-score``, ``engine='ray'`` -> ``--engine ray``); warnings and notices go through it too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import typer

from .common import EXIT_BUSY, EXIT_FATAL, EXIT_USAGE, say, stderr_console

#: Library keywords whose command-line option has another name; every other keyword is the
#: name of an option of some command, whose flag :func:`flag_table` reads from the app.
RENAMED = {
    "name": "model",  # ModelRef.name
    "format": "fmt",
    "segments_output": "segments_out",
    "embeddings_output": "embeddings",
    "timeout_s": "timeout",
    "text_labels": "labels",
}


@functools.cache
def flag_table() -> dict[str, str]:
    """Keyword -> flag, for every option of every command (its longest ``--`` name; the first
    command that has an option of that name wins) and the keywords of :data:`RENAMED`."""
    from .common import app

    flags: dict[str, str] = {}
    group: Any = typer.main.get_command(app)
    for command in group.commands.values():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            if param.param_type_name == "option" and longs and param.name:
                flags.setdefault(param.name, max(longs, key=len))
    for keyword, option in RENAMED.items():
        if option in flags:
            flags[keyword] = flags[option]
    return flags


def flagged(text: str, keywords: Iterable[str] | None = None) -> str:
    """``text`` with the ``keywords`` it names (all known ones when None) written as flags:
    ``keyword=value`` -> ``--flag value`` (``--flag`` for True), and a bare keyword with an
    underscore -> ``--flag``."""
    table = flag_table()
    chosen = table if keywords is None else [k for k in keywords if k in table]
    for keyword in sorted(set(chosen), key=len, reverse=True):
        flag = table[keyword]

        def with_value(match: re.Match[str], flag: str = flag) -> str:
            value = match.group(1)
            if value == "True":
                return flag
            if value[0] in "'\"":
                value = value[1:-1]
            return f"{flag} {value}"

        name = re.escape(keyword)
        text = re.sub(rf"(?<![\w./-]){name}=('[^']*'|\"[^\"]*\"|[^\s,;:)]+)", with_value, text)
        if "_" in keyword:
            text = re.sub(rf"(?<![\w./-]){name}(?![\w/=-])", flag, text)
    return text


def exit_for(exc: BaseException) -> tuple[int, str]:
    """The one table from library errors to exit codes, with the line to print."""
    from ..discovery import FileListError, InputNotFoundError
    from ..extras import MissingExtraError
    from ..formats import UnknownFormatError
    from ..labelsource import LabelsOptionError
    from ..model import DeviceError, DtypeOptionError, ModelLoadError
    from ..output import OutputBusyError, OutputMismatchError
    from ..protocol import ProtocolError
    from ..ray_engine import EngineError
    from ..remote import RemoteInputError
    from ..report import ReportError
    from ..runner import RunOptionsError
    from ..scoring import LabelMapError
    from ..segments import SegmentsError
    from ..summary import SummaryError

    usage = (
        DtypeOptionError,
        UnknownFormatError,
        OutputMismatchError,
        ProtocolError,
        RunOptionsError,
        SegmentsError,
        FileListError,
        RemoteInputError,
        SummaryError,
        ReportError,
        LabelMapError,
        LabelsOptionError,
        typer.BadParameter,
    )
    table: tuple[tuple[Any, int, Any], ...] = (
        (InputNotFoundError, EXIT_USAGE, str),
        (usage + (MissingExtraError,), EXIT_USAGE, str),
        (OutputBusyError, EXIT_BUSY, str),
        ((ModelLoadError, DeviceError, EngineError), EXIT_FATAL, str),
        (OSError, EXIT_FATAL, os_error),
    )
    for kinds, code, message in table:
        if isinstance(exc, kinds):
            return code, flagged(message(exc), getattr(exc, "options", ()))
    return EXIT_FATAL, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


def os_error(exc: OSError) -> str:
    """``cannot write FILE: reason`` for an error naming its file, else its type and text."""
    if exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def fail(exc: BaseException, debug: bool) -> typer.Exit:
    """Print ``exc``'s line and give the exit to raise (with ``debug``, re-raise ``exc``)."""
    if debug:
        raise exc
    code, message = exit_for(exc)
    say(stderr_console(), f"vmae: {message}")
    return typer.Exit(code)
