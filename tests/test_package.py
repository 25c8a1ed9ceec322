"""The package's public names: each importable from ``vmae_cli``, lazily, as before."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import vmae_cli

#: The public API, by the module that defines each name.
PUBLIC = {
    "embeddings": ["read_embeddings"],
    "errors": ["VmaeError"],
    "model": [
        "DEFAULT_MODEL",
        "DeviceError",
        "LoadedModel",
        "ModelLoadError",
        "ModelRef",
        "load_model",
    ],
    "pipeline": ["Classifier", "ClassifyOptions", "classify_paths"],
    "protocol": ["PROTOCOLS", "Protocol"],
    "results": ["LabelScore", "Prediction", "VideoMeta", "WindowPrediction"],
    "runner": ["RunHooks", "RunOptions", "RunReport", "StopRequest", "run"],
    "scoring": ["LabelMap", "read_label_map"],
    "segments": ["Segments", "Span"],
}


def test_all_lists_the_public_api_once() -> None:
    names = [name for names in PUBLIC.values() for name in names]
    assert sorted(vmae_cli.__all__) == sorted(["__version__", *names])
    assert len(vmae_cli.__all__) == len(set(vmae_cli.__all__))


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in PUBLIC.items() for n in names])
def test_each_name_is_its_modules_own(module: str, name: str) -> None:
    assert getattr(vmae_cli, name) is getattr(importlib.import_module(f"vmae_cli.{module}"), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'classify'"):
        vmae_cli.classify  # noqa: B018


def test_importing_the_package_loads_no_heavy_library() -> None:
    script = (
        "import sys, vmae_cli\n"
        "from vmae_cli import __version__\n"
        "heavy = ('torch', 'transformers', 'cv2', 'av', 'numpy', 'pandas', 'vmae_cli.model')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from vmae_cli import *\n"
        "print(run.__module__, Span.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "vmae_cli.runner vmae_cli.segments"]


def test_the_modules_are_reached_from_the_package() -> None:
    """Issue 24, 22: `import vmae_cli` then `vmae_cli.report.build_report` works, as the
    README writes it."""
    code = (
        "import vmae_cli; "
        "print(vmae_cli.report.build_report.__name__, vmae_cli.embeddings.read_embeddings.__name__,"
        " vmae_cli.discovery.InputNotFoundError.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["build_report", "read_embeddings", "InputNotFoundError"]


def _readme_commands() -> list[str]:
    """The one-line commands of the README's fenced bash blocks."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    return [line for block in blocks for line in block.splitlines()]


def test_the_two_set_up_commands_install_the_cpu_torch_build_anywhere() -> None:
    """Issue 24, 22: the quick start installed ``torch==2.13.0`` from PyPI, which on an
    ordinary machine is the CUDA build (GBs). Both set-up commands install torch first, from
    PyTorch's CPU index, and CI runs the README's test command itself."""
    from pathlib import Path

    commands = [c for c in _readme_commands() if c.startswith("python3 -m venv")]
    assert len(commands) == 2, commands  # install and run; install and test
    for command in commands:
        steps = command.split(" && ")
        torch_step = next(s for s in steps if " torch" in s)
        assert steps.index(torch_step) < next(
            i for i, s in enumerate(steps) if "pip install" in s and " -e " in s
        )
        assert "--extra-index-url https://download.pytorch.org/whl/cpu" in torch_step
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()


#: Libraries a command that does not classify must not import (issue 26: start-up).
HEAVY = ("torch", "transformers", "openvino", "pandas", "pyarrow")


def _modules_after(script: str, *args: str) -> list[str]:
    """The :data:`HEAVY` libraries imported once ``script`` has run (in a new interpreter)."""
    probe = (
        "import atexit, sys\n"
        f"heavy = {HEAVY!r}\n"
        "atexit.register(lambda: print('HEAVY', *sorted(m for m in heavy if m in sys.modules),"
        " file=sys.stderr))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe + script, *args], capture_output=True, text=True
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY")]
    assert line, proc.stderr
    return line[-1].split()[1:]


@pytest.mark.parametrize("command", [["--help"], ["classify", "--help"]])
def test_help_imports_no_heavy_library(command: list[str]) -> None:
    script = "sys.argv = ['vmae', *sys.argv[1:]]\nfrom vmae_cli.cli import main\nmain()\n"
    assert _modules_after(script, *command) == []


#: `vmae` and each of its commands: every help page there is.
HELP_COMMANDS = [[], ["classify"], ["inspect"], ["summarize"], ["report"], ["labels"]]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "vmae")
def test_help_imports_no_library_module_but_the_choices(command: list[str]) -> None:
    """Issue 26: `vmae --help` within 0.2 s. The commands' options take their choices and
    defaults from `choices`, which imports nothing, and each command imports the library
    inside its function: a help page imports no other module of the library (`runner`,
    `pipeline`, `ray_engine`, `formats`, `model`, `report`, `inspection`: 0.09 s of a 2-core
    machine), nor pydantic (Typer's coercion of a flag not given: 0.06 s)."""
    script = (
        "import atexit, sys\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] in "
        "('vmae_cli', 'pydantic') and not m.startswith('vmae_cli.cli'))\n"
        "atexit.register(lambda: print('LOADED', *loaded(), file=sys.stderr))\n"
        "sys.argv = ['vmae', *sys.argv[1:]]\nfrom vmae_cli.cli import main\nmain()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: ")
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("LOADED")]
    assert line.split()[1:] == ["vmae_cli", "vmae_cli.choices"]


def test_a_lazy_classifier_on_the_cpu_imports_no_torch(tiny_model_dir) -> None:
    """What a --resume with nothing left to do builds: the model's config read, its device,
    dtype and backend checked, and no torch (its import is seconds of a cron job's run)."""
    script = (
        "from vmae_cli import Classifier\n"
        "clf = Classifier(sys.argv[1], device='cpu', lazy=True)\n"
        "assert clf.device_type == 'cpu' and clf.spec.frames_per_clip > 0, clf.device_type\n"
    )
    assert _modules_after(script, str(tiny_model_dir)) == []
