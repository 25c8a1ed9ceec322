"""``vmae fit-head``: a linear head trained on a backbone's video vectors and a few labelled
examples, with its cross-validated accuracy.

The examples are a ``path,label`` CSV (a few dozen videos per label); each path is looked up
among the video vectors (window null) of an embeddings file ``classify`` wrote with
``embeddings_output``, by its identity (:func:`~vmae_cli.identity.key_of_cell`: a relative
path resolves against the current folder, as older outputs' cells do). The head is a
multinomial logistic regression: the convex L2-regularised softmax cross-entropy

    mean over examples of -log softmax(W z + b)[label]  +  l2 / 2 * |W|^2

over the vectors standardised (``z = (x - mean) / std``, per value, on the training
examples), minimised to its one optimum by full-batch L-BFGS in float64, deterministic from
a zero start; the standardisation is then folded into the weights (``W / std``, ``b - W
mean / std``) so that the head applies to raw vectors (:class:`~vmae_cli.heads.Head`).

Why torch and not scikit-learn's ``LogisticRegression``: torch already runs the model, and
the problem is convex, so any good solver reaches the same solution (the tests check the
predictions against scikit-learn's where it is installed); scikit-learn would add it and
SciPy, about 150 MB, for the same numbers.

Accuracy is measured by stratified k-fold cross-validation (k = min(:data:`MAX_FOLDS`, the
smallest label's count); each fold's head standardised and trained on the other folds only),
per label and as a confusion table; the head written is then trained on every example.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The default penalty lives in `choices` (what `vmae --help` imports): ``l2 / 2 * |W|^2``
# beside the mean loss, on the standardised weights.
from .choices import DEFAULT_HEAD_L2 as DEFAULT_L2
from .errors import VmaeError
from .heads import HEAD_FILES, Head, write_head

if TYPE_CHECKING:
    import numpy

    from .embeddings import EmbeddingsInfo

#: Gets one line meant for a person (a notice).
Say = Callable[[str], None]

#: The columns EXAMPLES must have (others are ignored).
EXAMPLE_COLUMNS = ("path", "label")
#: At most this many folds of cross-validation (fewer where the smallest label has fewer
#: examples: every fold holds one of each label at least).
MAX_FOLDS = 5
#: Fewest examples of a label: one to train on and one to test on, in cross-validation.
MIN_EXAMPLES_PER_LABEL = 2
#: L-BFGS: iterations at most, the gradient's largest value that ends it (the loss is a
#: mean, so its gradient is of order 1; 1e-7 moves the weights by about 1e-6 of themselves
#: from the optimum, while 1e-9 is below what float64 sums of a few hundred terms reach and
#: runs to the iteration limit), and the change of the loss or the weights that ends it.
MAX_ITERATIONS = 1000
GRADIENT_TOLERANCE = 1e-7
CHANGE_TOLERANCE = 1e-12
#: Past iterations L-BFGS keeps to model the curvature.
LBFGS_HISTORY = 20
#: A value's standard deviation below this (a value constant over the examples) is taken
#: as 1: standardising it would divide by zero, and it carries nothing to learn from.
MIN_STD = 1e-8
#: Seed of the shuffle that deals each label's examples to the folds (deterministic).
FOLD_SEED = 0
#: Example paths named in a message (the first few).
SHOWN = 3
#: What a head's vectors are, recorded in head.json.
VECTORS_ARE = (
    "the backbone's video vectors: the classifier head's input (pooled, as the model pools "
    "it), the mean over a video's views, as classify writes them with embeddings_output"
)


class FitError(VmaeError, ValueError):
    """Examples or an embeddings file a head cannot be trained from; the message says why."""


@dataclass(frozen=True)
class LabelAccuracy:
    """One label's cross-validated result."""

    label: str
    examples: int  # examples with a vector
    correct: int  # of them, predicted right by the fold that held them out

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit_head` did: the head and where it went, and how well it classifies
    examples it was not trained on."""

    head: Head
    folder: str
    labels: tuple[str, ...]
    folds: int  # of cross-validation
    per_label: tuple[LabelAccuracy, ...]  # in the order of ``labels``
    #: ``confusion[i][j]``: examples of label i the held-out fold predicted as label j.
    confusion: tuple[tuple[int, ...], ...]
    examples: int  # used: with a label and a vector
    missing: tuple[str, ...]  # example paths without a vector in the embeddings file
    unlabelled: int  # rows of EXAMPLES with an empty label, skipped
    l2: float

    @property
    def accuracy(self) -> float:
        """Cross-validated accuracy over all examples."""
        return sum(s.correct for s in self.per_label) / max(self.examples, 1)

    @property
    def chance(self) -> float:
        """The accuracy of always answering the most common label."""
        return max(s.examples for s in self.per_label) / max(self.examples, 1)


@dataclass(frozen=True)
class Examples:
    """The labelled examples of EXAMPLES: identities and labels, in file order, one each."""

    keys: tuple[str, ...]
    labels: tuple[str, ...]
    unlabelled: int


def fit_head(
    embeddings: str | os.PathLike[str],
    examples: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    l2: float = DEFAULT_L2,
    overwrite: bool = False,
    on_notice: Say | None = None,
) -> FitReport:
    """Train a head on the video vectors of ``embeddings`` (a finished file ``classify``
    wrote with ``embeddings_output``) and the ``path,label`` rows of ``examples`` (CSV),
    cross-validate it and write it to the folder ``output`` (:mod:`vmae_cli.heads`).

    ``output`` must not exist or be empty (with ``overwrite``, it may hold a head, which is
    replaced). Examples whose path has no vector are skipped and reported
    (:attr:`FitReport.missing`); the backbone's revision comes from the file, or for a file
    written before vmae recorded it, from the model's folder (``on_notice`` says so). Raises
    :class:`FitError` for examples a head cannot be learnt from (a label with fewer than
    :data:`MIN_EXAMPLES_PER_LABEL`, one label only, a path labelled twice differently, none
    with a vector) and for a backbone that cannot be known.
    """
    import numpy as np

    from .embeddings import read_video_vectors
    from .model import safe_label

    notice = on_notice or (lambda line: None)
    if not (l2 > 0 and np.isfinite(l2)):
        raise FitError(f"l2 must be a positive number, not {l2}", options=("l2",), value=l2)
    out = os.fspath(output)
    _check_output(out, overwrite)
    info = _describe(embeddings)
    revision = _revision(info.model, info.model_revision, info.path, notice)
    if info.journal:
        notice(
            f"{info.path} has a journal beside it (a run writes it, or was stopped): only the "
            "vectors of the finished file are used"
        )
    chosen = read_examples(examples)
    vectors = read_video_vectors(info.path, set(chosen.keys))
    missing = tuple(k for k in chosen.keys if k not in vectors)
    pairs = zip(chosen.keys, chosen.labels, strict=True)
    kept = [(key, safe_label(label)) for key, label in pairs if key in vectors]
    if not kept:
        raise FitError(
            f"none of the {len(chosen.keys)} examples of {os.fspath(examples)} has a vector in "
            f"{info.path} (first: {', '.join(chosen.keys[:SHOWN])}): were they classified with "
            "embeddings_output, and are the paths the same files?",
            options=("examples",),
            path=os.fspath(examples),
        )
    labels = tuple(sorted({label for _, label in kept}))
    counts = Counter(label for _, label in kept)
    _check_counts(labels, counts, missing)
    x = np.stack([vectors[k] for k, _ in kept]).astype(np.float64)
    y = np.array([labels.index(label) for _, label in kept])
    folds = min(MAX_FOLDS, min(counts.values()))
    predicted = cross_validate(x, y, len(labels), folds, l2)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_label = tuple(
        LabelAccuracy(label, int(confusion[i].sum()), int(confusion[i, i]))
        for i, label in enumerate(labels)
    )
    weight, bias = fit_linear(x, y, len(labels), l2)
    accuracy = float(np.trace(confusion)) / len(y)
    head = Head(
        weight=weight.astype(np.float32),
        bias=bias.astype(np.float32),
        labels=labels,
        model=info.model,
        model_revision=revision,
        info={
            "vectors": {
                "what": VECTORS_ARE,
                "protocol": info.protocol,
                "dtype": info.dtype,
                "embeddings": os.path.basename(info.path),
            },
            "training": {
                "examples": len(y),
                "per_label": {label: counts[label] for label in labels},
                "without_vector": len(missing),
            },
            "cross_validation": {
                "folds": folds,
                "accuracy": round(accuracy, 6),
                "per_label": {s.label: round(s.accuracy, 6) for s in per_label},
            },
            "regularisation": {
                "l2": l2,
                "objective": "mean softmax cross-entropy + l2/2 * |W|^2 on standardised "
                "vectors, bias not penalised; standardisation folded into weight and bias",
                "solver": "torch L-BFGS, full batch, float64",
            },
            "vmae_version": _version(),
        },
    )
    write_head(out, head)
    return FitReport(
        head=head,
        folder=out,
        labels=labels,
        folds=folds,
        per_label=per_label,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        examples=len(y),
        missing=missing,
        unlabelled=chosen.unlabelled,
        l2=l2,
    )


def read_examples(path: str | os.PathLike[str]) -> Examples:
    """The ``path,label`` rows of a CSV file (UTF-8, with or without a byte-order mark; other
    columns ignored; formula escapes undone as vmae reads its own CSVs), each path made an
    identity (:func:`~vmae_cli.identity.key_of_cell`). Rows with an empty label are skipped
    (counted); a path labelled twice alike counts once, twice differently is a
    :class:`FitError` naming it."""
    from .formats import read_small_csv
    from .identity import key_of_cell

    source = os.fspath(path)
    try:
        records = read_small_csv(source, EXAMPLE_COLUMNS, "the examples file")
    except ValueError as exc:
        raise FitError(str(exc), options=("examples",), path=source) from None
    chosen: dict[str, str] = {}
    conflicts: dict[str, set[str]] = {}
    unlabelled = 0
    for _, (cell, label) in records:
        label = label.strip()
        if not cell.strip():
            if label:
                raise FitError(
                    f"the examples {source} label {label!r} without a path",
                    options=("examples",),
                    path=source,
                )
            continue  # a blank line
        if not label:
            unlabelled += 1
            continue
        key = key_of_cell(cell)
        if chosen.setdefault(key, label) != label:
            conflicts.setdefault(key, {chosen[key]}).add(label)
    if conflicts:
        named = "; ".join(
            f"{key}: {', '.join(map(repr, sorted(labels)))}"
            for key, labels in list(conflicts.items())[:SHOWN]
        )
        more = f" and {len(conflicts) - SHOWN} more" if len(conflicts) > SHOWN else ""
        raise FitError(
            f"the examples {source} give {len(conflicts)} video(s) two labels: {named}{more}",
            options=("examples",),
            path=source,
        )
    return Examples(tuple(chosen), tuple(chosen.values()), unlabelled)


def fit_linear(
    x: numpy.ndarray, y: numpy.ndarray, classes: int, l2: float = DEFAULT_L2
) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The multinomial logistic regression of labels ``y`` (``0..classes-1``) on vectors
    ``x`` ``(N, dim)``: ``(weight (classes, dim), bias (classes,))`` in float64, applying to
    raw vectors (the standardisation it fits in is folded in). See the module's docstring."""
    import numpy as np
    import torch

    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    z = torch.from_numpy((x - mean) / std)
    target = torch.from_numpy(np.asarray(y, np.int64))
    weight = torch.zeros((classes, x.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=MAX_ITERATIONS,
        tolerance_grad=GRADIENT_TOLERANCE,
        tolerance_change=CHANGE_TOLERANCE,
        history_size=LBFGS_HISTORY,
        line_search_fn="strong_wolfe",
    )

    def loss() -> torch.Tensor:
        solver.zero_grad()
        value = torch.nn.functional.cross_entropy(z @ weight.T + bias, target)
        value = value + l2 / 2 * (weight * weight).sum()
        value.backward()
        return value

    # The model's run may have turned gradients off for the process (model.load_model).
    with torch.enable_grad():
        solver.step(loss)
    w = weight.detach().numpy() / std
    b = bias.detach().numpy() - w @ mean
    return w, b


def stratified_folds(y: numpy.ndarray, folds: int) -> numpy.ndarray:
    """The fold (``0..folds-1``) of each example: each label's examples, shuffled with
    :data:`FOLD_SEED`, dealt to the folds in turn (so every fold holds every label when no
    label has fewer than ``folds`` examples)."""
    import numpy as np

    rng = np.random.default_rng(FOLD_SEED)
    fold = np.empty(len(y), dtype=np.int64)
    start = 0  # where a label's dealing starts: folds stay even in size
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        fold[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return fold


def cross_validate(
    x: numpy.ndarray, y: numpy.ndarray, classes: int, folds: int, l2: float = DEFAULT_L2
) -> numpy.ndarray:
    """Each example's label as predicted by a head trained on the other folds
    (:func:`stratified_folds`, :func:`fit_linear`)."""
    import numpy as np

    fold = stratified_folds(y, folds)
    predicted = np.empty(len(y), dtype=np.int64)
    for k in range(folds):
        held = fold == k
        weight, bias = fit_linear(x[~held], y[~held], classes, l2)
        predicted[held] = np.argmax(x[held] @ weight.T + bias, axis=1)
    return predicted


def _check_output(out: str, overwrite: bool) -> None:
    """Refuse an output that is a file, or a folder holding anything but (with ``overwrite``)
    a head: a head folder is the head's files and nothing else (``labelsource.head_id``
    hashes them all)."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise FitError(f"output={out!r} is not a folder", options=("output",), path=out)
    held = sorted(os.listdir(out)) if os.path.isdir(out) else []
    others = [name for name in held if name not in HEAD_FILES]
    if others:
        raise FitError(
            f"output={out!r} holds other files ({', '.join(others[:SHOWN])}): a head goes "
            "into a folder of its own",
            options=("output",),
            path=out,
        )
    if held and not overwrite:
        raise FitError(
            f"output={out!r} holds a head already (overwrite=True replaces it)",
            options=("overwrite",),
            path=out,
        )


def _describe(embeddings: str | os.PathLike[str]) -> EmbeddingsInfo:
    """The embeddings file's settings (:func:`~vmae_cli.embeddings.describe`), or a
    FitError saying why there are none."""
    from .embeddings import describe
    from .output import OutputMismatchError

    path = os.fspath(embeddings)
    try:
        info = describe(path)
    except FileNotFoundError:
        raise FitError(
            f"no embeddings file {path} (a finished classify run with embeddings_output "
            "writes one)",
            options=("embeddings",),
            path=path,
        ) from None
    except OutputMismatchError as exc:
        raise FitError(str(exc), options=("embeddings",), path=path) from None
    if not info.rows:
        raise FitError(f"{path} holds no vectors", options=("embeddings",), path=path)
    return info


def _revision(model: str, recorded: str, path: str, notice: Say) -> str:
    """The backbone's revision: the embeddings file's, or for a file written before vmae
    recorded it, the model folder's as it is now (a Hub id's cannot be known afterwards)."""
    if recorded:
        return recorded
    if model and os.path.isdir(model):
        from .provenance import model_revision

        revision = model_revision(model)
        if revision:
            notice(
                f"{path} does not record its model's revision (an older vmae wrote it): "
                f"taking {model}'s as it is now, {revision}"
            )
            return revision
    raise FitError(
        f"{path} does not record which revision of {model!r} made its vectors (an older vmae "
        "wrote it), and it cannot be known now: classify again with embeddings_output",
        options=("embeddings",),
        path=path,
    )


def _check_counts(labels: Sequence[str], counts: Counter[str], missing: Sequence[str]) -> None:
    """Refuse examples a head cannot be cross-validated on."""
    if len(labels) < 2:
        raise FitError(
            f"the examples with a vector have one label ({labels[0]!r}): a head needs two or more",
            options=("examples",),
        )
    few = [label for label in labels if counts[label] < MIN_EXAMPLES_PER_LABEL]
    if few:
        named = ", ".join(f"{label!r} ({counts[label]})" for label in few[:SHOWN])
        lost = f"; {len(missing)} example(s) had no vector" if missing else ""
        raise FitError(
            f"each label needs {MIN_EXAMPLES_PER_LABEL} examples with a vector or more: "
            f"{named}{lost}",
            options=("examples",),
        )


def _version() -> str:
    from . import __version__

    return __version__
