"""Help pages as plain text, the same in a terminal and in a pipe: Click's layout (the usage
line, the command's text, then a definition list per section) with the options in the
sections their ``rich_help_panel`` names, lines broken at spaces only, and each command's
one-line summary whole in `vmae --help`.

Typer's Rich help cannot be made to read well at 80 columns: its table gives an option's
name, its negative form, its type and its help a column each, shortens what does not fit
with '…' (the default model id, ``--no-escape-formulas``), breaks choice lists mid-word,
shows ``<bool>`` for every flag and reads help text as Rich markup (``vmae-cli[ray]`` loses
``[ray]``); none of that has a setting. The app sets ``rich_markup_mode=None``, Typer's own
switch to Click's plain help, and these classes fill in what Click's lacks.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from typer.core import TyperCommand, TyperGroup

#: The widest the names column gets; a longer name puts its help on the next line (Click's
#: rule).
NAMES_MAX = 30
#: Where help text goes, from the section's indent, when it would be too narrow beside the
#: names (a narrow terminal) or its longest word would not fit there: under the name.
HANGING = 6
#: The narrowest help text beside the names; narrower, it goes under them.
BESIDE_MIN = 30


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines at most ``width`` wide, broken at spaces only: a flag, a model id, a
    choice list or a default is never cut (a word wider than ``width`` gets a line of its
    own)."""
    wrapper = textwrap.TextWrapper(
        width=max(width, 1), break_long_words=False, break_on_hyphens=False
    )
    return wrapper.wrap(text) or [""]


def one_line(text: str) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(inspect.cleandoc(text).partition("\f")[0].split("\n\n")[0].split())


def write_text(formatter: Any, text: str) -> None:
    """A docstring's paragraphs, each rewrapped to the formatter's width at its indent."""
    indent = formatter.current_indent
    for i, paragraph in enumerate(inspect.cleandoc(text).partition("\f")[0].split("\n\n")):
        if i:
            formatter.write("\n")
        for line in wrap(" ".join(paragraph.split()), formatter.width - indent):
            formatter.write(f"{'':{indent}}{line}\n")


def names_column(rows: list[tuple[str, str]]) -> int:
    """How wide the names column of ``rows`` is, with the gap before the help."""
    return min(max(len(name) for name, _ in rows), NAMES_MAX) + 2


def write_rows(formatter: Any, rows: list[tuple[str, str]], names: int) -> None:
    """A definition list: each name, and its help beside it, ``names`` from the indent (under
    the name when the name is wider), wrapped at spaces."""
    indent = formatter.current_indent
    beside = formatter.width - indent - names
    for name, text in rows:
        longest = max((len(word) for word in text.split()), default=0)
        column = names if beside >= max(BESIDE_MIN, longest) else min(names, HANGING)
        lines = wrap(text, formatter.width - indent - column) if text else []
        if lines and column == names and len(name) <= names - 2:
            formatter.write(f"{'':{indent}}{name:{names}}{lines.pop(0)}\n")
        else:
            formatter.write(f"{'':{indent}}{name}\n")
        for line in lines:
            formatter.write(f"{'':{indent + column}}{line}\n")


def argument_name(param: Any) -> str:
    """An argument as the usage line and the Arguments section name it: its metavar, or its
    name in capitals."""
    return param.metavar or (param.name or "").upper()


def write_params(command: Any, ctx: Any, formatter: Any) -> None:
    """The Arguments section, the Options section (options without a panel), then a section
    per panel, in the order their first option comes; one names column for all of them."""
    sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            several = "..." if param.nargs != 1 else ""
            sections["Arguments"].append((argument_name(param) + several, record[1]))
        else:
            panel = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(panel, []).append(record)
    names = names_column([row for rows in sections.values() for row in rows])
    for title, rows in sections.items():
        if rows:
            with formatter.section(title):
                write_rows(formatter, rows, names)


class _PlainText:
    """The command's own text, rewrapped at spaces."""

    help: str | None

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        if self.help:
            formatter.write_paragraph()
            with formatter.indentation():
                write_text(formatter, self.help)


class _HelpFlag:
    """A help option that reads False when it is not given, as every other flag does.

    Typer leaves it None then, and a value that is not a bool goes through Typer's coercion,
    whose first use imports pydantic: 0.06 s of `vmae classify --help` (issue 26), spent on
    the group's own --help, which that command line does not give.
    """

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.default is None:
            option.default = False
        return option


class HelpCommand(_HelpFlag, _PlainText, TyperCommand):
    """A command whose help is plain text, its options in sections by panel."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Click's convention, as for the options: VIDEO (required), [INPUTS]... (optional,
        # several); Typer's own would write {video}.
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = argument_name(param)
                piece = name if param.required else f"[{name}]"
                pieces.append(piece + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        write_params(self, ctx, formatter)


class HelpGroup(_HelpFlag, _PlainText, TyperGroup):
    """`vmae` itself: its options, then its commands, each with the first paragraph of its
    help on one line (Click would cut it to fit, with '...')."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        write_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, one_line(command.short_help or command.help or "")))
        if rows:
            with formatter.section("Commands"):
                write_rows(formatter, rows, names_column(rows))
