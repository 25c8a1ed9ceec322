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

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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

_EXPORTS = {
    "classify_paths": "pipeline",
    "Classifier": "pipeline",
    "ClassifyOptions": "pipeline",
    "load_model": "model",
    "LoadedModel": "model",
    "ModelRef": "model",
    "VmaeError": "errors",
    "ModelLoadError": "model",
    "DeviceError": "model",
    "DEFAULT_MODEL": "model",
    "Protocol": "protocol",
    "PROTOCOLS": "protocol",
    "Prediction": "results",
    "LabelScore": "results",
    "VideoMeta": "results",
    "WindowPrediction": "results",
    "read_embeddings": "embeddings",
    "LabelMap": "scoring",
    "read_label_map": "scoring",
    "Segments": "segments",
    "Span": "segments",
    "run": "runner",
    "RunOptions": "runner",
    "RunReport": "runner",
    "RunHooks": "runner",
    "StopRequest": "runner",
}

__all__ = [
    "DEFAULT_MODEL",
    "Classifier",
    "ClassifyOptions",
    "DeviceError",
    "LabelMap",
    "LabelScore",
    "LoadedModel",
    "ModelLoadError",
    "ModelRef",
    "PROTOCOLS",
    "Prediction",
    "Protocol",
    "RunHooks",
    "RunOptions",
    "RunReport",
    "Segments",
    "Span",
    "StopRequest",
    "VideoMeta",
    "VmaeError",
    "WindowPrediction",
    "__version__",
    "classify_paths",
    "load_model",
    "read_embeddings",
    "read_label_map",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
