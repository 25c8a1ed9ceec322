"""Where a run's labels come from: the checkpoint's own classifier head, text labels a
zero-shot model scores a video against (``text_labels``), or a head fitted on a run's
embeddings (``head``, see :mod:`vmae_cli.heads`).

Rows record which (the ``labels_from`` column, :func:`labels_from`): empty for the
checkpoint's head (the ``model`` and ``model_revision`` columns say it all), else
``text:sha256:`` or ``head:sha256:`` and 16 hex digits of a hash over the labels and their
prompts, or over the head folder's files. A change of either is a change of what the
labels mean: a resumed output refuses it as it refuses another model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import VmaeError

if TYPE_CHECKING:
    from .heads import Head
    from .model import ModelRef

#: How a ``labels_from`` cell starts for text labels and for a fitted head.
TEXT_PREFIX = "text:sha256:"
HEAD_PREFIX = "head:sha256:"
#: Hex digits of the hash kept (64 bits, as a folder's ``model_revision``).
ID_HEX_DIGITS = 16
#: What separates labels in ``text_labels`` given as one string (``--labels``).
LABEL_SEPARATOR = ","
#: What separates a label from its prompt on a line of a labels file.
PROMPT_SEPARATOR = "\t"
#: A line of a labels file starting with this is a comment.
COMMENT = "#"
#: Fewer labels than this cannot be told apart by a softmax (one label always scores 1).
MIN_TEXT_LABELS = 2
#: A labels file larger than this is not a list of labels (bytes).
MAX_LABELS_FILE_BYTES = 1 << 20


class LabelsOptionError(VmaeError, ValueError):
    """Text labels or a head that cannot be used: too few or repeated labels, an unreadable
    labels file, text labels with a model that has its own head, a zero-shot model without
    them, or text labels and a head together."""


@dataclass(frozen=True)
class TextLabel:
    """One label of a zero-shot run: the name rows show and the text the model reads."""

    label: str
    prompt: str

    @classmethod
    def of(cls, label: str, prompt: str | None = None) -> TextLabel:
        """A label whose prompt is itself unless one is given."""
        return cls(label, prompt if prompt else label)


def parse_text_labels(text: str) -> tuple[TextLabel, ...]:
    """Labels given as one string, ``"cooking,skateboarding,a dog playing"``: split on
    commas, stripped, empty ones dropped; each its own prompt. Raises
    :class:`LabelsOptionError` for fewer than :data:`MIN_TEXT_LABELS` or a repeated label."""
    labels = [part.strip() for part in text.split(LABEL_SEPARATOR)]
    return checked_text_labels(tuple(TextLabel.of(label) for label in labels if label))


def read_labels_file(path: str | os.PathLike[str]) -> tuple[TextLabel, ...]:
    """Labels from a UTF-8 text file, one per line, ``label`` or ``label<TAB>prompt``; blank
    lines and lines starting with ``#`` are skipped, a BOM is allowed. Raises
    :class:`LabelsOptionError` for a file that cannot be read, is not UTF-8 text or holds too
    few or repeated labels."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            data = f.read(MAX_LABELS_FILE_BYTES + 1)
    except OSError as exc:
        raise LabelsOptionError(
            f"cannot read the labels file {where}: {exc.strerror or exc}",
            options=("text_labels",),
            value=where,
            path=where,
        ) from None
    if len(data) > MAX_LABELS_FILE_BYTES:
        raise LabelsOptionError(
            f"{where} is over {MAX_LABELS_FILE_BYTES >> 20} MiB: not a list of labels",
            options=("text_labels",),
            value=where,
            path=where,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelsOptionError(
            f"{where} is not UTF-8 text (byte {exc.start}): a labels file has one label a line",
            options=("text_labels",),
            value=where,
            path=where,
        ) from None
    labels = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(COMMENT):
            continue
        label, _, prompt = line.partition(PROMPT_SEPARATOR)
        if label.strip():
            labels.append(TextLabel.of(label.strip(), prompt.strip()))
    return checked_text_labels(tuple(labels), where)


def checked_text_labels(
    labels: tuple[TextLabel, ...], source: str | None = None
) -> tuple[TextLabel, ...]:
    """``labels`` when there are at least :data:`MIN_TEXT_LABELS` and none repeats, else
    :class:`LabelsOptionError` (``source``: the file they came from, for the message)."""
    where = f" in {source}" if source else ""
    if len(labels) < MIN_TEXT_LABELS:
        raise LabelsOptionError(
            f"text_labels needs at least {MIN_TEXT_LABELS} labels{where}, not {len(labels)}: "
            "the scores are a softmax over them",
            options=("text_labels",),
            value=[t.label for t in labels],
        )
    seen: set[str] = set()
    for t in labels:
        if t.label in seen:
            raise LabelsOptionError(
                f"text_labels names {t.label!r} twice{where}",
                options=("text_labels",),
                value=t.label,
            )
        seen.add(t.label)
    return labels


def text_labels_id(labels: tuple[TextLabel, ...]) -> str:
    """The ``labels_from`` cell of a zero-shot run: a hash of the labels and their prompts, in
    order (the order is the order of the scores)."""
    canonical = json.dumps([[t.label, t.prompt] for t in labels], ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return TEXT_PREFIX + digest[:ID_HEX_DIGITS]


def head_id(folder: str | os.PathLike[str]) -> str:
    """The ``labels_from`` cell of a run with a fitted head: a hash over the names and
    contents of the head folder's files (its weights and its description)."""
    from .provenance import file_digest

    root = Path(folder)
    try:
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise LabelsOptionError(
            f"cannot read the head folder {root}: {exc.strerror or exc}",
            options=("head",),
            value=os.fspath(folder),
            path=os.fspath(folder),
        ) from None
    combined = hashlib.sha256()
    for path in files:
        combined.update(f"{path.name}\0{file_digest(path)}\n".encode())
    return HEAD_PREFIX + combined.hexdigest()[:ID_HEX_DIGITS]


def labels_from(ref: ModelRef) -> str:
    """What produced a run's labels, as rows record it (see the module's docstring)."""
    if ref.head is not None:
        return head_id(ref.head)
    if ref.text_labels:
        return text_labels_id(ref.text_labels)
    return ""


def given_labels(ref: ModelRef, head: Head | None = None) -> list[str] | None:
    """The labels a run's rows use when they are not the checkpoint's own (in the order of
    the scores): ``ref``'s text labels, or those of ``head``, the fitted head of ``ref.head``
    already read; else ``None``."""
    if ref.text_labels:
        return [t.label for t in ref.text_labels]
    if head is not None:
        return list(head.labels)
    return None


def check_sources(ref: ModelRef) -> None:
    """Refuse text labels and a head together (:class:`LabelsOptionError`): each replaces the
    checkpoint's labels, and one run has one set of labels."""
    if ref.head is not None and ref.text_labels:
        raise LabelsOptionError(
            "text_labels and head each give the run its labels: use one of them",
            options=("text_labels", "head"),
            value=ref.head,
        )
