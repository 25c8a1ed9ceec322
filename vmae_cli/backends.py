"""The model runtimes (``backend``): their names, and where the optional ones live.

A registry that :mod:`vmae_cli.model` (which picks a runtime and loads the model with it) and
:mod:`vmae_cli.openvino_backend` (one runtime) both read, so that neither imports the other:
a runtime's loader is named here and imported only when the runtime is chosen.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The model runtimes' names, and INT8, live in `choices` (what `vmae --help` imports); this
# module re-exports them (`X as X`) for the modules that pick or run a runtime.
from .choices import BACKEND_AUTO as BACKEND_AUTO
from .choices import BACKEND_CHOICES as BACKEND_CHOICES
from .choices import BACKEND_OPENVINO
from .choices import BACKEND_TORCH as BACKEND_TORCH
from .choices import INT8 as INT8
from .errors import VmaeError

#: The extra that installs OpenVINO, and the module it provides; NNCF, which quantizes for
#: OpenVINO (``dtype="int8"``), comes with the same extra.
OPENVINO_EXTRA = "openvino"
OPENVINO_MODULE = "openvino"
NNCF_MODULE = "nncf"


class ConversionError(VmaeError, RuntimeError):
    """The model could not be converted to (or compiled by) an optional runtime; the message
    says why (the model then runs on torch)."""


@dataclass(frozen=True)
class Calibration:
    """What a model is quantized on (``dtype="int8"``): clips made as the run makes them.

    ``identity`` (JSON-ready) joins the cache key of the quantized model: what it was
    calibrated on, not the clips themselves. ``clips()``, called only when the model must
    be quantized, gives the clips (each a normalised float32 ``(1, T, 3, H, W)`` numpy
    array, what the model takes) and the videos they came from; ``describe`` says where
    they come from, for messages.
    """

    identity: dict[str, Any]
    clips: Callable[[], tuple[list[Any], list[str]]]
    describe: str


@dataclass(frozen=True)
class Runtime:
    """An optional runtime: the module it needs, the extra that installs that module, and the
    function that loads a model with it (``module:function`` under this package)."""

    name: str
    module: str
    extra: str
    loader: str

    def available(self) -> bool:
        """True when its module is installed (checked without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def load_function(self) -> Callable[..., Any]:
        """Its loading function, imported now."""
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(f".{module}", __package__), function)


#: The runtimes besides torch, by backend name.
OPTIONAL_RUNTIMES = {
    BACKEND_OPENVINO: Runtime(
        BACKEND_OPENVINO, OPENVINO_MODULE, OPENVINO_EXTRA, "openvino_backend:load_openvino"
    ),
}


def available(name: str) -> bool:
    """True when the optional runtime ``name`` is installed."""
    return OPTIONAL_RUNTIMES[name].available()


def available_module(module: str) -> bool:
    """True when ``module`` is installed (checked without importing it)."""
    return importlib.util.find_spec(module) is not None
