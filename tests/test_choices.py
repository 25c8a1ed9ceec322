"""`choices`: the one home of the options' choices and defaults, held to the registries keyed
by them and re-exported as the same values by the modules that use them (issue 26: `vmae
--help` imports `choices` and no other module of the library)."""

from __future__ import annotations

import importlib

import pytest

from vmae_cli import choices
from vmae_cli.formats import FORMATS
from vmae_cli.protocol import PROTOCOLS


def test_the_formats_are_the_ones_named() -> None:
    """A format added to `formats.FORMATS` is offered by `--format` once its name is in
    `choices.FORMAT_NAMES`; neither goes without the other."""
    assert tuple(FORMATS) == choices.FORMAT_NAMES
    assert all(cls.name == name for name, cls in FORMATS.items())


def test_the_protocols_are_the_ones_named() -> None:
    assert tuple(PROTOCOLS) == choices.PROTOCOL_NAMES
    assert choices.PROTOCOL_NAMES[0] == choices.PROTOCOL_UNIFORM  # the default


#: What each library module re-exports from `choices`: (module, its name, choices' name).
REEXPORTED = [
    ("backends", "BACKEND_CHOICES", "BACKEND_CHOICES"),
    ("backends", "INT8", "INT8"),
    ("model", "DEFAULT_MODEL", "DEFAULT_MODEL"),
    ("model", "DEVICE_CHOICES", "DEVICE_CHOICES"),
    ("model", "DTYPE_CHOICES", "DTYPE_CHOICES"),
    ("model", "BACKEND_CHOICES", "BACKEND_CHOICES"),
    ("protocol", "CROP_CHOICES", "CROP_CHOICES"),
    ("protocol", "SAMPLING_CHOICES", "SAMPLING_CHOICES"),
    ("protocol", "SAMPLING_KEYFRAMES", "SAMPLING_KEYFRAMES"),
    ("embeddings", "EMBEDDING_DTYPES", "EMBEDDING_DTYPES"),
    ("embeddings", "DEFAULT_EMBEDDING_DTYPE", "DEFAULT_EMBEDDING_DTYPE"),
    ("runner", "ENGINES", "ENGINES"),
    ("runner", "DEFAULT_TIMEOUT_S", "DEFAULT_TIMEOUT_S"),
    ("ray_engine", "DEFAULT_VIDEOS_PER_TASK", "DEFAULT_VIDEOS_PER_TASK"),
    ("report", "DEFAULT_PER_LABEL", "DEFAULT_REPORT_PER_LABEL"),
    ("report", "DEFAULT_MAX_BYTES", "DEFAULT_REPORT_MAX_BYTES"),
    ("report", "DEFAULT_TIMEOUT_S", "DEFAULT_REPORT_TIMEOUT_S"),
    ("inspection", "SHEET_WINDOWS", "SHEET_WINDOWS"),
]


@pytest.mark.parametrize(("module", "name", "home"), REEXPORTED, ids=lambda x: str(x))
def test_a_module_re_exports_its_choices(module: str, name: str, home: str) -> None:
    """The library's modules name these values where they use them, as before; the value is
    the one in `choices`, not a copy."""
    assert getattr(importlib.import_module(f"vmae_cli.{module}"), name) is getattr(choices, home)


def test_choices_imports_nothing() -> None:
    """The point of the module: importing it costs nothing (no import statement but
    `__future__`'s)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(choices.__file__).read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
