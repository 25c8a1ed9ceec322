"""A head of the user's own: a linear classifier over a backbone's video vectors, in a folder.

``vmae fit-head`` (:mod:`vmae_cli.fitting`) trains one on the vectors ``classify`` wrote with
``embeddings_output`` and a few labelled examples; ``classify`` with ``head=FOLDER`` runs the
backbone and this head instead of the backbone's own classifier. The folder holds two files
and nothing else:

* ``head.safetensors``: ``weight`` ``(labels, dim)`` and ``bias`` ``(labels,)``, float32,
  applied to the raw vectors (``logits = vector @ weight.T + bias``; scores are their
  softmax). Safetensors, not a pickle: reading a head runs no code of whoever wrote it.
* ``head.json``: the labels in the weight's row order, ``dim``, the backbone's identity
  (``model``, and ``model_revision``: a head means nothing on another checkpoint's vectors),
  and how it was made (what the vectors are, the training counts, the cross-validated
  accuracy, the regularisation, vmae's version).

:func:`read_head` checks everything a damaged or foreign folder could get wrong (files
missing, sizes, keys, dtypes, shapes, values that are not finite, labels) and refuses it in
one line (:class:`HeadError`); :meth:`Head.check_backbone` refuses a head on a backbone it
was not trained on (:class:`HeadMismatchError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import VmaeError

if TYPE_CHECKING:
    import numpy
    import torch

#: The head's weights and bias.
WEIGHTS_FILE = "head.safetensors"
#: The head's labels, backbone and record of how it was made.
CONFIG_FILE = "head.json"
#: The files of a head folder, and all of them (``labelsource.head_id`` hashes every file
#: the folder holds, these and any other).
HEAD_FILES = (CONFIG_FILE, WEIGHTS_FILE)
#: ``format`` of head.json: what this version writes and reads.
HEAD_FORMAT = "vmae-head/1"
#: Largest head.json read (bytes): labels and counts of a few thousand classes fit in far
#: less; a larger file is damaged or not ours, and is not parsed.
MAX_CONFIG_BYTES = 16 << 20
#: Largest head.safetensors read (bytes): 100,000 labels x 4,096 values in float32 is 1.6 GB.
MAX_WEIGHTS_BYTES = 2 << 30
#: The tensors of head.safetensors, with their dimensions.
WEIGHT_KEY, BIAS_KEY = "weight", "bias"


class HeadError(VmaeError, ValueError):
    """A head folder that cannot be used: missing, damaged, not a vmae head, or asked for
    where it cannot go (text labels as well)."""


class HeadMismatchError(HeadError):
    """A head trained on another backbone (another revision of it), or on vectors of another
    length than the backbone's."""


@dataclass(frozen=True)
class Head:
    """A linear head: ``weight`` ``(labels, dim)`` and ``bias`` ``(labels,)``, float32,
    applied to a backbone's raw video vectors, with its ``labels`` in row order and the
    backbone it was trained on (``model``, ``model_revision``). ``info`` is the rest of
    head.json (how it was made), written back as it is."""

    weight: numpy.ndarray
    bias: numpy.ndarray
    labels: tuple[str, ...]
    model: str
    model_revision: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Values per vector the head takes."""
        return int(self.weight.shape[1])

    @property
    def id2label(self) -> dict[int, str]:
        """The labels by index, as a model's ``id2label``."""
        return dict(enumerate(self.labels))

    def logits(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(B, labels)`` float32 logits of ``(B, dim)`` vectors (on any device; computed in
        float32 there)."""
        import torch

        weight = torch.from_numpy(self.weight).to(vectors.device)
        bias = torch.from_numpy(self.bias).to(vectors.device)
        return vectors.float() @ weight.T + bias

    def probabilities(self, vectors: numpy.ndarray) -> numpy.ndarray:
        """``(N, labels)`` softmax scores of ``(N, dim)`` vectors (numpy, float64): what
        ``classify`` with this head scores a video whose vector this is."""
        import numpy as np

        logits = np.asarray(vectors, np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def check_backbone(self, name: str, revision: str, dim: int | None, folder: str) -> None:
        """Refuse (:class:`HeadMismatchError`) to run this head on backbone ``name`` at
        ``revision`` whose vectors have ``dim`` values (``None``: not known)."""
        if revision != self.model_revision:
            raise HeadMismatchError(
                f"head={folder!r} was trained on the vectors of {self.model!r} at revision "
                f"{self.model_revision}, not of {name!r} at revision "
                f"{revision or 'unknown'}: a head means nothing on another checkpoint "
                "(fit one on this model's embeddings)",
                options=("head",),
                value=revision,
                path=folder,
            )
        if dim is not None and dim != self.dim:
            raise HeadMismatchError(
                f"head={folder!r} takes vectors of {self.dim} values, {name!r} gives {dim}",
                options=("head",),
                value=dim,
                path=folder,
            )


def write_head(folder: str | os.PathLike[str], head: Head) -> Path:
    """Write ``head`` into ``folder`` (made if needed): each file written aside and renamed
    into place, the weights first, so a reader never sees half a file."""
    import numpy as np
    from safetensors.numpy import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": HEAD_FORMAT,
        "labels": list(head.labels),
        "dim": head.dim,
        "model": head.model,
        "model_revision": head.model_revision,
        **{k: v for k, v in head.info.items() if k not in _OWN_KEYS},
    }
    tensors = {
        WEIGHT_KEY: np.ascontiguousarray(head.weight, np.float32),
        BIAS_KEY: np.ascontiguousarray(head.bias, np.float32),
    }
    weights_tmp = out / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
    config_tmp = out / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    try:
        save_file(tensors, str(weights_tmp), metadata={"format": HEAD_FORMAT})
        config_tmp.write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        os.replace(weights_tmp, out / WEIGHTS_FILE)
        os.replace(config_tmp, out / CONFIG_FILE)
    finally:
        for tmp in (weights_tmp, config_tmp):
            tmp.unlink(missing_ok=True)
    return out


#: head.json keys :func:`write_head` and :func:`read_head` own (the others are ``info``).
_OWN_KEYS = ("format", "labels", "dim", "model", "model_revision")


def read_head(folder: str | os.PathLike[str]) -> Head:
    """The head in ``folder``, checked: raises :class:`HeadError` in one line for a folder
    that is missing or not a vmae head, a file missing, too large or unreadable, head.json
    without its labels, dim or backbone, and weights of another dtype, shape or with values
    that are not finite."""
    import numpy as np

    from .model import safe_label

    where = os.fspath(folder)

    def damaged(why: str) -> HeadError:
        return HeadError(
            f"head={where!r} is not a usable vmae head: {why}", options=("head",), path=where
        )

    if not os.path.isdir(where):
        raise HeadError(f"head={where!r} is not a folder", options=("head",), path=where)
    files = {name: os.path.join(where, name) for name in HEAD_FILES}
    for name, path in files.items():
        if not os.path.isfile(path):
            raise damaged(f"it has no {name}")
    if os.path.getsize(files[CONFIG_FILE]) > MAX_CONFIG_BYTES:
        raise damaged(f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    if os.path.getsize(files[WEIGHTS_FILE]) > MAX_WEIGHTS_BYTES:
        raise damaged(f"{WEIGHTS_FILE} is larger than {MAX_WEIGHTS_BYTES >> 30} GiB")
    try:
        with open(files[CONFIG_FILE], encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise damaged(f"{CONFIG_FILE} cannot be read ({type(exc).__name__})") from None
    if not isinstance(config, dict) or config.get("format") != HEAD_FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise damaged(f"{CONFIG_FILE} is not of format {HEAD_FORMAT} ({found!r})")
    labels, dim = config.get("labels"), config.get("dim")
    model, revision = config.get("model"), config.get("model_revision")
    if not (isinstance(labels, list) and len(labels) >= 2):
        raise damaged(f"{CONFIG_FILE} has no list of two labels or more")
    if not all(isinstance(label, str) and label for label in labels):
        raise damaged(f"{CONFIG_FILE} has a label that is not a non-empty string")
    labels = [safe_label(label) for label in labels]
    if len(set(labels)) != len(labels):
        raise damaged(f"{CONFIG_FILE} names a label twice")
    if type(dim) is not int or dim < 1:
        raise damaged(f"{CONFIG_FILE} has no dim (a positive integer): {dim!r}")
    if not (isinstance(model, str) and isinstance(revision, str) and revision):
        raise damaged(f"{CONFIG_FILE} does not name its backbone (model, model_revision)")
    tensors = _read_tensors(files[WEIGHTS_FILE], damaged)
    weight, bias = tensors[WEIGHT_KEY], tensors[BIAS_KEY]
    if weight.shape != (len(labels), dim) or bias.shape != (len(labels),):
        raise damaged(
            f"{WEIGHTS_FILE} holds a weight of shape {tuple(weight.shape)} and a bias of "
            f"shape {tuple(bias.shape)}; {CONFIG_FILE} says {len(labels)} labels of {dim} values"
        )
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise damaged(f"{WEIGHTS_FILE} holds values that are not finite")
    info = {k: v for k, v in config.items() if k not in _OWN_KEYS}
    return Head(weight, bias, tuple(labels), model, revision, info)


def _read_tensors(path: str, damaged: Any) -> dict[str, numpy.ndarray]:
    """The weight and bias of head.safetensors, float32, or ``damaged(why)`` raised."""
    import numpy as np
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            keys = set(f.keys())
            if keys != {WEIGHT_KEY, BIAS_KEY}:
                raise damaged(
                    f"{WEIGHTS_FILE} holds {', '.join(sorted(keys)) or 'nothing'}, not "
                    f"{WEIGHT_KEY} and {BIAS_KEY}"
                )
            tensors = {key: f.get_tensor(key) for key in (WEIGHT_KEY, BIAS_KEY)}
    except HeadError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own kinds: one line
        raise damaged(f"{WEIGHTS_FILE} cannot be read ({type(exc).__name__})") from None
    for key, tensor in tensors.items():
        if tensor.dtype != np.float32:
            raise damaged(f"{WEIGHTS_FILE}'s {key} is {tensor.dtype}, not float32")
    return tensors
