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
