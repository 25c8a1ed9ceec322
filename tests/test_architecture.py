"""ARCHITECTURE.md's table of modules, held against the imports the code really makes.

The rules (each its own test below, so a failure names the rule, the row and the names):

1. Every module of the package has a row, except the package's plumbing
   (:data:`PLUMBING`: ``__init__``, ``__main__``) and the shared vocabulary
   (:data:`SHARED`: ``results``, ``errors``), which any module may import and which the
   paragraph below the table names in backticks. Every row names a module that exists.
2. Every vmae_cli module a module imports (at module level, inside a function, or under
   ``if TYPE_CHECKING:``: all of them are things it knows about) is named in backticks in
   its row's "knows about" cell, or covered by one of the phrases of :data:`PHRASES`
   ("all of the above", "the stages above": any module whose row is above this one).
   Shared modules need no mention; plumbing never counts (``from . import __version__``).
3. Every module named in backticks in a "knows about" cell is really imported: no stale
   claims. (A phrase allows; it claims nothing.) Other backticked words (`/proc`) are not
   module names and are not checked.
4. "X only inside functions" (X a third-party package: openvino, ray, pyarrow...) holds:
   the module imports X, and only inside functions (or for type checking), never when it is
   itself imported.
5. A clause of the cell (the cell split at ";") that says "inside functions" names modules
   imported only inside functions; one that says "for type checking" names modules imported
   only under ``if TYPE_CHECKING:``. (Clauses that say neither may name either kind.)
6. Module-level imports among vmae_cli modules form no cycle (imports inside functions and
   under ``if TYPE_CHECKING:`` are not made when a module is imported, so they may point
   back).

Subpackages: a file ``vmae_cli/a/b.py`` belongs to the row ``a.b`` when the table has one,
else to the row ``a`` (``vmae_cli/a/__init__.py`` too); imports among the files of one row
are that row's own business.

To add a row: ``| `name` | its job | `what`, `it`, `imports`; torch only inside functions |``,
placed where data meets it; then run ``pytest tests/test_architecture.py``, which names any
import left out and any name the code does not import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vmae_cli"
DOC = ROOT / "ARCHITECTURE.md"

#: Modules that are the package's plumbing, not a stage: no row, never counted as imports.
PLUMBING = {"__init__", "__main__"}
#: Modules any module may import without saying so; the paragraph below the table names them.
SHARED = {"results", "errors"}
#: Phrases of a "knows about" cell that allow importing every module whose row is above.
PHRASES = ("all of the above", "the stages above")

#: "openvino only inside functions", "torch and transformers only inside functions".
_ONLY_INSIDE = re.compile(
    r"\b((?:[A-Za-z_][\w.]*(?:, | and ))*[A-Za-z_][\w.]*) only inside functions"
)
_TYPE_CHECKING = ("TYPE_CHECKING", "typing.TYPE_CHECKING")
_BACKTICKED = re.compile(r"`([^`]+)`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass
class Imports:
    """What the files of one module (a row) import, as dotted names below ``vmae_cli``."""

    top: set[str] = field(default_factory=set)  # made when the module is imported
    lazy: set[str] = field(default_factory=set)  # inside functions
    typing: set[str] = field(default_factory=set)  # under `if TYPE_CHECKING:`
    third_top: set[str] = field(default_factory=set)  # top-level packages, module level
    third_lazy: set[str] = field(default_factory=set)  # top-level packages, in functions


def _module_files() -> dict[str, Path]:
    """Every module of the package by dotted name below it: ``cli``, ``cli.classify``, and
    ``cli`` for ``cli/__init__.py``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) > 1 and parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _module_files()


def _is_package(name: str) -> bool:
    path = MODULES.get(name)
    return path is not None and path.name == "__init__.py" and name != "__init__"


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The vmae_cli modules (dotted names below the package) that ``node`` in ``module``
    imports; ``__init__`` for a name the package itself defines."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [n.split(".", 1)[1] if "." in n else "__init__" for n in names if _ours(n)]
    if node.level:
        here = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = here[: len(here) - (node.level - 1)]
        target = ".".join([*base, *(node.module.split(".") if node.module else [])])
    elif node.module and _ours(node.module):
        target = node.module.partition(".")[2]
    else:
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}" if target else alias.name
        if sub in MODULES:  # `from . import views`, `from .cli import classify`
            found.append(sub)
        else:  # a name defined in `target` (the package's own __init__ when empty)
            found.append(target or "__init__")
    return found


def _ours(dotted: str) -> bool:
    return dotted == "vmae_cli" or dotted.startswith("vmae_cli.")


def _collect(module: str, into: Imports, source: str | None = None) -> None:
    """Add the imports of ``module`` (its file's, or ``source``) to ``into``."""
    path = MODULES.get(module)
    if source is None:
        assert path is not None
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path or module))

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            function = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if type_checking:
                    into.typing.update(_resolve(module, child))
                    continue
                (into.lazy if function else into.top).update(_resolve(module, child))
                third = into.third_lazy if function else into.third_top
                if isinstance(child, ast.Import):
                    third.update(a.name.split(".")[0] for a in child.names if not _ours(a.name))
                elif child.level == 0 and child.module and not _ours(child.module):
                    third.add(child.module.split(".")[0])
            elif isinstance(child, ast.If) and ast.unparse(child.test) in _TYPE_CHECKING:
                # Only the body is for type checkers; an `else:` runs.
                visit(ast.Module(body=child.body, type_ignores=[]), function, True)
                visit(ast.Module(body=child.orelse, type_ignores=[]), function, type_checking)
            else:
                visit(child, function, type_checking)

    visit(tree, False, False)


@dataclass
class Row:
    module: str
    knows_about: str
    line: int

    @property
    def named(self) -> set[str]:
        """The module names in backticks in the cell (``/proc`` and the like are not)."""
        return {w for w in _BACKTICKED.findall(self.knows_about) if _IDENTIFIER.fullmatch(w)}

    @property
    def phrases(self) -> list[str]:
        return [p for p in PHRASES if p in self.knows_about.lower()]

    @property
    def only_inside_functions(self) -> list[str]:
        """The packages the cell says are imported only inside functions."""
        found = []
        for words in _ONLY_INSIDE.findall(self.knows_about):
            found += [w for w in re.split(r", | and ", words) if w]
        return found

    def named_in_clauses_saying(self, words: str) -> set[str]:
        """The modules named in the clauses of the cell (split at ";") that say ``words``."""
        return {
            name
            for clause in self.knows_about.split(";")
            if words in clause
            for name in Row(self.module, clause, self.line).named
        }

    def unnamed(self, imported: set[str], rows: list[str]) -> set[str]:
        """The modules of ``imported`` that this row's cell neither names nor allows (by a
        phrase of :data:`PHRASES`, every row above it in ``rows``)."""
        above = set(rows[: rows.index(self.module)]) if self.phrases else set()
        return imported - SHARED - PLUMBING - self.named - above


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _read_doc() -> tuple[list[Row], str]:
    """The rows of the module table, in order, and the text that follows the table."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if _cells(line)[:1] == ["module"]),
        None,
    )
    assert start is not None, f"{DOC.name}: no table with a `module` column"
    header = _cells(lines[start])
    assert "knows about" in header, f"{DOC.name}: the module table has no `knows about` column"
    column = header.index("knows about")
    rows = []
    end = start + 2  # the header, then the |---| line
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        cells = _cells(lines[end])
        name = cells[0].strip("`")
        assert _IDENTIFIER.fullmatch(name), f"{DOC.name}:{end + 1}: a row names {cells[0]!r}"
        rows.append(Row(name, cells[column], end + 1))
        end += 1
    return rows, "\n".join(lines[end:])


ROWS, BELOW = _read_doc()
ROW_NAMES = [r.module for r in ROWS]


def _row_of(module: str) -> str:
    """The row a module belongs to: its own, else its top-level package's (see the docstring)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in ROW_NAMES:
            return ".".join(parts[:n])
    return parts[0]


@cache
def _imports_of(row: str) -> Imports:
    """Everything the files of ``row`` import, as rows (shared and plumbing modules kept)."""
    raw = Imports()
    for module in MODULES:
        if _row_of(module) == row:
            _collect(module, raw)
    out = Imports(third_top=raw.third_top, third_lazy=raw.third_lazy)
    for kind in ("top", "lazy", "typing"):
        getattr(out, kind).update(
            _row_of(m) for m in getattr(raw, kind) if _row_of(m) != row or m == "__init__"
        )
    return out


def _fmt(names: set[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    rowed = {_row_of(m) for m in MODULES} - PLUMBING - SHARED
    missing = rowed - set(ROW_NAMES)
    assert not missing, (
        f"{DOC.name}: no row in the module table for {_fmt(missing)} (add one where data "
        "meets it: | `name` | job | knows about |)"
    )
    gone = set(ROW_NAMES) - set(MODULES)
    assert not gone, f"{DOC.name}: rows for {_fmt(gone)}, which vmae_cli does not have"
    twice = {n for n in ROW_NAMES if ROW_NAMES.count(n) > 1}
    assert not twice, f"{DOC.name}: two rows for {_fmt(twice)}"
    tabled = (PLUMBING | SHARED) & set(ROW_NAMES)
    assert not tabled, f"{DOC.name}: {_fmt(tabled)} get no row (see this test's docstring)"


@pytest.mark.parametrize("module", sorted(SHARED & set(MODULES)))
def test_shared_modules_are_named_below_the_table(module: str) -> None:
    assert f"`{module}`" in BELOW, (
        f"{DOC.name}: `{module}` may be imported by any module without a mention in its row, "
        "so the text below the table must say what it holds (name it in backticks)"
    )


@pytest.mark.parametrize("row", ROWS, ids=ROW_NAMES)
def test_knows_about_names_every_import(row: Row) -> None:
    imports = _imports_of(row.module)
    missing = row.unnamed(imports.top | imports.lazy | imports.typing, ROW_NAMES)
    assert not missing, (
        f"{DOC.name}:{row.line}: `{row.module}` imports {_fmt(missing)}, which its "
        f"'knows about' cell does not name (cell: {row.knows_about!r})"
    )


@pytest.mark.parametrize("row", ROWS, ids=ROW_NAMES)
def test_knows_about_names_nothing_stale(row: Row) -> None:
    imports = _imports_of(row.module)
    unknown = row.named - set(ROW_NAMES) - SHARED
    assert not unknown, (
        f"{DOC.name}:{row.line}: `{row.module}`'s 'knows about' cell names {_fmt(unknown)}, "
        "which are not modules of vmae_cli (write third-party packages without backticks)"
    )
    stale = row.named - imports.top - imports.lazy - imports.typing
    assert not stale, (
        f"{DOC.name}:{row.line}: `{row.module}`'s 'knows about' cell names {_fmt(stale)}, "
        "which it does not import"
    )


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r.only_inside_functions], ids=lambda r: r.module
)
def test_only_inside_functions_holds(row: Row) -> None:
    imports = _imports_of(row.module)
    for package in row.only_inside_functions:
        top = package.split(".")[0]
        assert top not in imports.third_top, (
            f"{DOC.name}:{row.line}: `{row.module}` imports {top} at module level, but its "
            f"row says '{package} only inside functions'"
        )
        assert top in imports.third_lazy, (
            f"{DOC.name}:{row.line}: `{row.module}`'s row says '{package} only inside "
            f"functions', but it does not import {top} at all"
        )


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r.named_in_clauses_saying("inside functions")],
    ids=lambda r: r.module,
)
def test_modules_said_to_be_imported_inside_functions_are(row: Row) -> None:
    imports = _imports_of(row.module)
    said = row.named_in_clauses_saying("inside functions")
    eager = said & imports.top
    assert not eager, (
        f"{DOC.name}:{row.line}: `{row.module}` imports {_fmt(eager)} at module level, but "
        "its row says inside functions"
    )
    absent = said - imports.lazy
    assert not absent, (
        f"{DOC.name}:{row.line}: `{row.module}`'s row says it imports {_fmt(absent)} inside "
        "functions, but no function does"
    )


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r.named_in_clauses_saying("for type checking")],
    ids=lambda r: r.module,
)
def test_modules_said_to_be_for_type_checking_are(row: Row) -> None:
    imports = _imports_of(row.module)
    said = row.named_in_clauses_saying("for type checking")
    wrong = said - (imports.typing - imports.top - imports.lazy)
    assert not wrong, (
        f"{DOC.name}:{row.line}: `{row.module}`'s row says {_fmt(wrong)} for type checking "
        "only, but it imports them when it runs (or not at all)"
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of ``graph`` (module -> the modules it imports) meets,
    each as ``[a, b, ..., a]``."""
    cycles = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    return cycles


def test_module_level_imports_form_no_cycle() -> None:
    graph = {}
    for module in MODULES:
        found = Imports()
        _collect(module, found)
        graph[module] = {m for m in found.top if m != module}
    cycles = _cycles(graph)
    assert not cycles, "module-level import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_import_reader_sees_every_kind_of_import() -> None:
    """The reader itself, on the shapes of import the package uses."""
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "from . import views, __version__\n"
        "from .decoding import decode_video\n"
        "from vmae_cli.scoring import Scorer\n"
        "if TYPE_CHECKING:\n"
        "    import torch\n"
        "    from .summary import Summary\n"
        "def f():\n"
        "    import openvino\n"
        "    from .heap import trim\n"
    )
    got = Imports()
    _collect("_probe", got, source)
    assert got.top == {"views", "__init__", "decoding", "scoring"}
    assert got.typing == {"summary"}
    assert got.lazy == {"heap"}
    assert got.third_top == {"__future__", "typing", "numpy"}
    assert got.third_lazy == {"openvino"}


def test_the_rules_read_cells_as_the_docstring_says() -> None:
    rows = ["discovery", "views", "pipeline", "heap"]
    stages = Row("pipeline", "the stages above, `heap`; torch only inside functions", 1)
    assert stages.named == {"heap"}
    assert stages.unnamed({"discovery", "views", "heap", "results", "__init__"}, rows) == set()
    assert stages.unnamed({"views", "report"}, rows) == {"report"}
    listed = Row("pipeline", "`views`, `/proc`; torch and transformers only inside functions", 1)
    assert listed.named == {"views"}
    assert listed.unnamed({"discovery", "views"}, rows) == {"discovery"}
    assert listed.only_inside_functions == ["torch", "transformers"]
    lazy = Row("x", "`a`, `b`; `c`, `d` inside functions; `e` (for type checking)", 1)
    assert lazy.named_in_clauses_saying("inside functions") == {"c", "d"}
    assert lazy.named_in_clauses_saying("for type checking") == {"e"}
    assert Row(
        "x", "`a`; openvino, ray and pyarrow only inside functions", 1
    ).only_inside_functions == [
        "openvino",
        "ray",
        "pyarrow",
    ]


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
