"""What the commands of ``vmae`` share: the Typer app, exit codes, help panels, the option
types offered by the library's registries, the options several commands take, and the
stderr console (stdout carries data only).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

# Only the options' choices and defaults (`choices`, which imports nothing) at import time:
# the library's modules that own them import most of the package, and `vmae --help` must
# print in 0.2 s (issue 26). Each command imports what does the work inside its function.
from ..choices import CROP_CHOICES, DEVICE_CHOICES, PROTOCOL_NAMES, SAMPLING_CHOICES
from .helppage import HelpCommand, HelpGroup

# Exit codes (documented in the README).
EXIT_OK = 0  # every video classified
EXIT_FATAL = 1  # nothing useful happened: model not loadable, output not writable, ...
EXIT_USAGE = 2  # bad options or arguments (Typer/Click use 2 as well)
EXIT_SOME_FAILED = 3  # the run completed, but some videos could not be classified
EXIT_BUSY = 75  # another run is writing the same output file (EX_TEMPFAIL: try again later)
EXIT_SIGNAL_BASE = 128  # + signal number when stopped by SIGINT / SIGTERM / SIGPIPE

#: Help panels of `vmae classify`, in the order they are shown.
PANEL_IO = "Inputs and outputs"
PANEL_MODEL = "Model"
PANEL_SAMPLING = "Sampling"
PANEL_SEGMENTS = "Segments: what happens when, in long videos"
PANEL_SPEED = "Speed"
PANEL_CURATION = "Curation: embeddings, label groups, thresholds"
PANEL_CRON = "Cron and reliability"
PANEL_RAY = "Many machines (--engine ray)"


class App(typer.Typer):
    """The Typer app whose commands have plain-text help (:mod:`.helppage`): every
    ``@app.command()`` gets :class:`~.helppage.HelpCommand` unless it names a class."""

    def command(self, name: str | None = None, *, cls: Any = None, **settings: Any) -> Any:
        return super().command(name, cls=cls or HelpCommand, **settings)


app = App(
    name="vmae",
    cls=HelpGroup,
    help="Classify folders of videos with a VideoMAE model; one CSV/JSONL/Parquet row per video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help, in a terminal too: see .helppage for why not Typer's Rich help.
    rich_markup_mode=None,
)


def one_of(choices: Iterable[str]) -> Callable[[str | None], str | None]:
    """A callback that accepts ``choices`` only (and None, an option not given); anything else
    is a usage error (exit 2) listing them, as for --device. Typer's own check of a choice
    (an Enum) says pydantic's "Value error, 'xml' is not one of 'csv', ...".
    """
    allowed = tuple(choices)

    def check(value: str | None) -> str | None:
        if value is None or value in allowed:
            return value
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")

    return check


def choice(choices: Iterable[str], *flags: str, **settings: Any) -> Any:
    """A ``typer.Option`` whose value is one of ``choices``, shown as ``a|b|c`` in the help;
    the choices come from the library's registries, so a new format or protocol needs no CLI
    change."""
    names = tuple(choices)
    return typer.Option(*flags, metavar="|".join(names), callback=one_of(names), **settings)


def device_name(value: str) -> str:
    """Accept the device names vmae knows; anything else is a usage error (exit 2)."""
    name, _, index = value.partition(":")
    if name in DEVICE_CHOICES and (not index or (name == "cuda" and index.isdigit())):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(DEVICE_CHOICES)}, cuda:N")


# Options shared by `classify` and `inspect`.
ProtocolOpt = Annotated[
    str,
    choice(
        PROTOCOL_NAMES,
        help="uniform: T frames spread over the video, centre crop. videomae: the paper's "
        "test (stride 4, 5 clips x 3 crops, softmax averaged).",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
ClipsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Clips per video.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
CropsOpt = Annotated[
    int | None,
    typer.Option(
        metavar="|".join(map(str, CROP_CHOICES)),
        help="Crops per clip.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
StrideOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="S",
        help="Take clip frames every S frames; 0 = spread over the whole video.",
        show_default="from --protocol",
        rich_help_panel=PANEL_SAMPLING,
    ),
]
SamplingOpt = Annotated[
    str,
    choice(
        SAMPLING_CHOICES,
        help="exact: decode the protocol's frames. keyframes: the keyframe nearest each one "
        "instead; faster, not frame-exact (AVI and MPEG-TS stay exact, with a note).",
        rich_help_panel=PANEL_SAMPLING,
    ),
]


def span(value: str | None) -> str | None:
    """Check a --window/--hop length now (a usage error, exit 2)."""
    from ..segments import SegmentsError, Span

    if value is not None:
        try:
            Span.parse(value)
        except SegmentsError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


SegmentsOpt = Annotated[
    bool,
    typer.Option(
        "--segments",
        help="Classify consecutive windows of each video, not one clip spread over it; "
        "the row's label is their mean.",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        metavar="64f|2s",
        callback=span,
        help="Window length in frames or seconds (implies --segments).",
        show_default="the model's clip: T frames every --frame-stride (4), 64 for VideoMAE",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]
HopOpt = Annotated[
    str | None,
    typer.Option(
        metavar="64f|2s",
        callback=span,
        help="Start a window every this many frames or seconds (implies --segments).",
        show_default="the window: no overlap",
        rich_help_panel=PANEL_SEGMENTS,
    ),
]


#: Decoding processes (`classify`, `report`).
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="N",
        help="Decoding processes; 0 = in this process.",
        show_default="one per core",
        rich_help_panel=PANEL_SPEED,
    ),
]
#: `--escape-formulas/--no-escape-formulas`: the one rule of every CSV vmae writes.
EscapeFormulasOpt = Annotated[
    bool,
    typer.Option(
        help="In CSV, prefix ' to cells starting with = + - @ so spreadsheets do not run them.",
        rich_help_panel=PANEL_IO,
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="ID|DIR",
        help="Hugging Face model id or local folder.",
        rich_help_panel=PANEL_MODEL,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        metavar="REV",
        help="Model revision on the Hub (branch, tag or commit).",
        rich_help_panel=PANEL_MODEL,
    ),
]


def protocol_of(
    name: str,
    clips: int | None,
    crops: int | None,
    stride: int | None,
    sampling: str,
    segments: Any = None,
) -> Any:
    """The protocol named by --protocol, with --clips/--crops/--frame-stride/--sampling and
    the segments (``vmae_cli.segments.Segments`` or None) applied."""
    from dataclasses import replace

    from ..protocol import PROTOCOLS

    changes = {"clips": clips, "crops": crops, "frame_stride": stride, "sampling": sampling}
    changes["segments"] = segments
    return replace(PROTOCOLS[name], **{k: v for k, v in changes.items() if v is not None})


def segments_of(on: bool, window: str | None, hop: str | None, out: Any = None) -> Any:
    """The ``Segments`` asked for: by --segments, or implied by --window, --hop or
    --segments-out; None when none of them is given."""
    from ..segments import Segments, Span

    if not (on or window or hop or out is not None):
        return None
    return Segments(Span.parse(window) if window else None, Span.parse(hop) if hop else None)


#: The distributions `vmae --version` reports besides vmae's own: what makes a row, and the
#: optional engines (``not installed`` when absent).
VERSIONED = ("torch", "transformers", "opencv-python-headless", "av", "openvino", "ray")


def versions() -> str:
    """vmae's version and those of :data:`VERSIONED`, one per line (read from the installed
    distributions' metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    lines = [f"vmae-cli {__version__}"]
    for name in VERSIONED:
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} not installed")
    return "\n".join(lines)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(versions())  # data asked for: stdout
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print vmae's version and those of torch, transformers, OpenCV, PyAV and "
            "the optional engines, and exit.",
        ),
    ] = False,
) -> None:
    """Classify folders of videos with a VideoMAE model; one CSV/JSONL/Parquet row per video."""


def stderr_console() -> Any:
    from rich.console import Console

    # rich's default console writes to stdout, which carries only data here.
    return Console(stderr=True, highlight=False)


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: ``"1 window"``, ``"3 windows"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def say(console: Any, line: str) -> None:
    """One line on stderr, never wrapped (a cron log is grepped line by line)."""
    console.print(line, markup=False, soft_wrap=True)


def log_to_stderr() -> None:
    """--debug: the library's debug messages on stderr (stdout carries data only)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vmae: debug: %(message)s"))
    logger = logging.getLogger("vmae_cli")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
