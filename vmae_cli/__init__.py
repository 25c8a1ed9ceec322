"""vmae-cli: classify folders of videos with a VideoMAE model.

The library is usable without the command line::

    from vmae_cli import ModelRef, classify_paths, run
    for prediction in classify_paths("videos/", model="path/to/model"):
        print(prediction.path, prediction.status, prediction.label, prediction.score)

    report = run("videos/", "labels.csv", model="path/to/model", resume=True)
    print(report.by_status, report.skipped)

    # Which model and how, as one value (also what Classifier and load_model take).
    ref = ModelRef("path/to/model", device="cpu", backend="torch")
    run("videos/", "labels.csv", model=ref)

    # Long videos: a row per window too (prediction.windows in the API).
    run("videos/", "videos.csv", segments=True, segments_output="windows.csv")

    # Curators: vectors for similarity search, label groups, a confidence threshold.
    run("videos/", "labels.csv", embeddings_output="emb.parquet", label_map="groups.csv",
        min_score=0.3)
    vectors = read_embeddings("emb.parquet")  # a pandas DataFrame

Heavy dependencies (torch, transformers, OpenCV) are imported on first use, so importing
this package is cheap.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, each name once. Type checkers read these imports; at run time `_exports`
# reads the same lines from this file, and `__getattr__` imports a name's module on first use.
if TYPE_CHECKING:
    from .embeddings import read_embeddings
    from .errors import VmaeError
    from .model import (
        DEFAULT_MODEL,
        DeviceError,
        LoadedModel,
        ModelLoadError,
        ModelRef,
        load_model,
    )
    from .pipeline import Classifier, ClassifyOptions, classify_paths
    from .protocol import PROTOCOLS, Protocol
    from .results import LabelScore, Prediction, VideoMeta, WindowPrediction
    from .runner import RunHooks, RunOptions, RunReport, StopRequest, run
    from .scoring import LabelMap, read_label_map
    from .segments import Segments, Span


@cache
def _exports() -> dict[str, str]:
    """Each name the ``if TYPE_CHECKING:`` imports above export, with its module: read from
    this file's source on first use, so that ``import vmae_cli`` stays cheap."""
    import ast

    block = next(
        node
        for node in ast.parse(__spec__.loader.get_source(__name__)).body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return ["__version__", *_exports()]
    import importlib

    module = _exports().get(name)
    if module is not None:
        return getattr(importlib.import_module(f".{module}", __name__), name)
    # A module of the package, as `import vmae_cli` users write it (`vmae_cli.report.
    # build_report`): imported on first use like the names above.
    from importlib.util import find_spec

    if not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
