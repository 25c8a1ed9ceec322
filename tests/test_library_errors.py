"""The library speaks Python: its errors, warnings and notices name keywords (``min_score``),
never the command line's flags (``--min-score``); the CLI adds the flags (vmae_cli.cli.errors).
"""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

from vmae_cli.errors import VmaeError

PACKAGE = Path(__file__).resolve().parent.parent / "vmae_cli"

#: Modules whose findings are skipped (none: every module speaks Python).
PENDING: set[str] = set()

#: Calls whose text reaches a Python caller: the run's hooks and the loaders' callbacks.
SAYING = {"warn", "_warn", "on_warning", "on_notice", "_notice", "notice", "on_status"}

#: A flag of a command line.
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
#: Text in backticks is another program's command line (`hf download ... --local-dir DIR`).
BACKTICKED = re.compile(r"`[^`]*`")


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _spoken(tree: ast.AST) -> list[ast.AST]:
    """The parts of ``tree`` whose strings reach a caller: raise statements, errors made
    (a call of a name ending in ``Error``) and the arguments of :data:`SAYING` calls."""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            found.append(node.exc)
        elif isinstance(node, ast.Call):
            name = _callee(node)
            if name.endswith("Error") or name in SAYING:
                found.extend([*node.args, *(k.value for k in node.keywords)])
    return found


def flags_spoken(source: str) -> list[tuple[int, str]]:
    """``(line, flag)`` for each ``--flag`` in the strings the code in ``source`` says."""
    hits = set()
    for part in _spoken(ast.parse(source)):
        for node in ast.walk(part):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = BACKTICKED.sub("", node.value)
                hits.update((node.lineno, flag) for flag in FLAG.findall(text))
    return sorted(hits)


def test_the_finder_sees_raises_errors_and_warnings() -> None:
    source = (
        "def f(warn):\n"
        "    warn(f'use --top-k {k}')\n"
        "    e = OtherError('x', '--resume')\n"
        "    raise ValueError('--min-score ' 'bad')\n"
        "    raise ValueError('`hf download m --local-dir DIR` then model=DIR')\n"
        "    log.debug('--debug is fine here')\n"
    )
    assert flags_spoken(source) == [(2, "--top-k"), (3, "--resume"), (4, "--min-score")]


def test_library_messages_name_no_flags() -> None:
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in PENDING:
            continue
        found += [
            f"{path.name}:{line}: {flag}" for line, flag in flags_spoken(path.read_text("utf-8"))
        ]
    assert not found, "the library names command-line flags (name the keyword):\n" + "\n".join(
        found
    )


def test_the_library_errors_are_vmae_errors() -> None:
    from vmae_cli.discovery import FileListError, InputNotFoundError
    from vmae_cli.extras import MissingExtraError
    from vmae_cli.model import DeviceError, ModelLoadError
    from vmae_cli.preprocessing import PreprocessConfigError
    from vmae_cli.protocol import ProtocolError
    from vmae_cli.ray_engine import EngineError
    from vmae_cli.report import ReportError
    from vmae_cli.runner import RunOptionsError
    from vmae_cli.scoring import LabelMapError
    from vmae_cli.segments import SegmentsError

    for kind in (
        FileListError,
        InputNotFoundError,
        MissingExtraError,
        DeviceError,
        ModelLoadError,
        PreprocessConfigError,
        ProtocolError,
        EngineError,
        ReportError,
        RunOptionsError,
        LabelMapError,
        SegmentsError,
    ):
        assert issubclass(kind, VmaeError), kind


def test_an_error_names_its_options_and_keeps_them_through_pickle() -> None:
    """Ray sends an actor's error back pickled: its data must survive."""
    from vmae_cli.runner import RunOptions, RunOptionsError, run

    with pytest.raises(RunOptionsError) as caught:
        run([], None, options=RunOptions.of(min_score=1.5))
    assert str(caught.value) == "min_score must be within 0..1, not 1.5"
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.options, again.value, str(again)) == (("min_score",), 1.5, str(caught.value))
