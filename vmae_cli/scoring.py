"""From a probability vector to what a row says: the top-k labels, the label group
(``--label-map``), and whether the top-1 label clears a threshold (``--min-score``, and the
multi-label threshold).

* **Groups.** A label map is a CSV file with the columns ``label`` and ``group``. Every label
  of the model belongs to one group; those the file does not name go to :data:`OTHER_GROUP`.
  A label the model does not have is a usage error that names it (a typo would otherwise
  quietly empty a group). A row's ``group`` is the group with the highest ``group_score``,
  the sum of its members' probabilities: the group the video most likely belongs to, which
  can differ from the group of its top-1 label when a group's probability is spread over
  many labels.
* **Thresholds.** With ``min_score``, a result whose top-1 score is below it keeps its
  scores, but its ``label`` is empty and ``low_confidence`` is true.
* **Multi-label models** (``problem_type: multi_label_classification``) score each class with
  a sigmoid: the classes are not exclusive. Every label at or above the threshold
  (``min_score``, else :data:`MULTI_LABEL_THRESHOLD`) is listed in ``labels``, best first;
  a group's score is its best member's score (a sum of independent sigmoids is not a
  probability). Softmax models are unchanged by all of this unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import VmaeError
from .formats import read_small_csv
from .results import LabelScore

#: The group of every label a label map does not name.
OTHER_GROUP = "other"
#: The score at which a multi-label model's class counts as present, when ``min_score`` is
#: not given (a sigmoid of 0: the logit's own decision boundary).
MULTI_LABEL_THRESHOLD = 0.5
#: Columns a label map must have.
LABEL_MAP_COLUMNS = ("label", "group")


class LabelMapError(VmaeError, ValueError):
    """A label map that cannot be used: unreadable, without ``label``/``group`` columns, a
    label given two groups, or labels the model does not have (named)."""


@dataclass(frozen=True)
class LabelMap:
    """Which group each label belongs to (``--label-map``)."""

    groups: dict[str, str]  # label -> group, as the file gives them
    source: str = ""  # where it was read from, for messages

    def group_of(self, label: str) -> str:
        """The group of ``label`` (:data:`OTHER_GROUP` when the map does not name it)."""
        return self.groups.get(label, OTHER_GROUP)

    def check(self, labels: Iterable[str]) -> None:
        """Raise :class:`LabelMapError` naming the labels of the map the model lacks."""
        known = set(labels)
        unknown = [label for label in self.groups if label not in known]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            where = f" in {self.source}" if self.source else ""
            raise LabelMapError(
                f"the label map{where} names {len(unknown)} label(s) the model does not have: "
                f"{shown}{more} (`vmae labels` lists the model's labels)",
                options=("label_map",),
                value=unknown,
                path=self.source or None,
            )


def read_label_map(path: str | os.PathLike[str]) -> LabelMap:
    """Read a ``label,group`` CSV file (UTF-8, with or without a byte-order mark; other
    columns are ignored). Raises :class:`LabelMapError` with a one-line reason."""
    source = os.fspath(path)
    try:
        # A file started from `vmae labels` holds its formula escapes: undone as vmae reads
        # any CSV of its own.
        records = read_small_csv(source, LABEL_MAP_COLUMNS, "the label map")
    except ValueError as exc:
        raise LabelMapError(str(exc), options=("label_map",), path=source) from None
    groups: dict[str, str] = {}
    for line, (label, group) in records:
        if not label and not group:
            continue  # a blank line
        if not label or not group.strip():
            raise LabelMapError(
                f"{source}, line {line}: a label and a group are needed",
                options=("label_map",),
                path=source,
            )
        group = group.strip()
        if groups.get(label, group) != group:
            raise LabelMapError(
                f"{source}, line {line}: label {label!r} is in group {groups[label]!r} "
                f"and in {group!r}",
                options=("label_map",),
                value=label,
                path=source,
            )
        groups[label] = group
    return LabelMap(groups, source)


@dataclass(frozen=True)
class Scoring:
    """How probabilities become a row: how many labels it lists, the label groups, the
    threshold of its top-1 label."""

    top_k: int = 1
    label_map: LabelMap | None = None
    min_score: float | None = None

    def threshold(self, multi_label: bool) -> float | None:
        """The top-1 (and multi-label) threshold in force, or ``None``."""
        if self.min_score is not None:
            return self.min_score
        return MULTI_LABEL_THRESHOLD if multi_label else None

    def columns(self, multi_label: bool) -> tuple[str, ...]:
        """The columns these settings add to a row, after its label and score."""
        columns: tuple[str, ...] = ()
        if self.label_map is not None:
            columns += ("group", "group_score")
        if self.threshold(multi_label) is not None:
            columns += ("low_confidence",)
        if multi_label:
            columns += ("labels",)
        return columns


@dataclass
class Ranking:
    """What a row says about one probability vector (see the module's docstring)."""

    top_k: list[LabelScore]
    group: str = ""
    group_score: float | None = None
    low_confidence: bool | None = None  # None: no threshold in force
    labels: list[str] | None = None  # multi-label: every label at or above the threshold

    def apply(self, result: Any) -> Any:
        """Set these fields on ``result`` (a prediction or a window); returns it."""
        for name, value in vars(self).items():
            setattr(result, name, value)
        return result


class Scorer:
    """:class:`Scoring` applied to one model's labels."""

    def __init__(self, scoring: Scoring, id2label: dict[int, str], multi_label: bool = False):
        self.scoring = scoring
        self.id2label = id2label
        self.multi_label = multi_label
        self.threshold = scoring.threshold(multi_label)
        self._groups: list[str] = []
        self._members: Any = None  # (groups, classes) 0/1 float matrix
        if scoring.label_map is not None:
            import torch

            names = [id2label.get(i, f"LABEL_{i}") for i in range(len(id2label))]
            of = [scoring.label_map.group_of(name) for name in names]
            self._groups = sorted(set(of))
            index = {g: i for i, g in enumerate(self._groups)}
            self._members = torch.zeros(len(self._groups), len(names))
            for cls, group in enumerate(of):
                self._members[index[group], cls] = 1.0

    def rank(self, probs: Any) -> Ranking:
        """The :class:`Ranking` of one probability vector (a 1-D float tensor)."""
        probs = probs.float()
        k = max(1, min(self.scoring.top_k, probs.shape[-1]))
        ranking = Ranking(self._top(probs, k))
        if self._members is not None and probs.shape[-1] == self._members.shape[1]:
            if self.multi_label:
                per_group = (self._members * probs).amax(dim=1)
            else:
                per_group = self._members @ probs
            best = int(per_group.argmax())
            ranking.group, ranking.group_score = self._groups[best], float(per_group[best])
        if self.threshold is not None:
            ranking.low_confidence = ranking.top_k[0].score < self.threshold
        if self.multi_label:
            above = (probs >= (self.threshold or 0.0)).nonzero().flatten().tolist()
            above.sort(key=lambda i: -float(probs[i]))
            ranking.labels = [self._name(i) for i in above]
        return ranking

    def _top(self, probs: Any, k: int) -> list[LabelScore]:
        scores, idx = probs.topk(k)
        return [
            LabelScore(self._name(i), float(s))
            for s, i in zip(scores.tolist(), idx.tolist(), strict=True)
        ]

    def _name(self, index: int) -> str:
        return self.id2label.get(index, f"LABEL_{index}")
