"""vmae_cli.scoring: label maps, groups, thresholds and multi-label scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vmae_cli.formats import VIDEO_ROWS, WINDOW_ROWS
from vmae_cli.results import Prediction, WindowPrediction
from vmae_cli.scoring import (
    MULTI_LABEL_THRESHOLD,
    OTHER_GROUP,
    LabelMap,
    LabelMapError,
    Scorer,
    Scoring,
    read_label_map,
)

LABELS = {0: "dancing", 1: "juggling", 2: "running", 3: "swimming", 4: "typing"}
SPORT = LabelMap({"running": "sport", "swimming": "sport", "juggling": "circus"})


def test_a_label_map_is_read_with_a_bom_extra_columns_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text(
        "\ufeffgroup,label,note\r\nsport,running,x\r\n,,\r\nsport, swimming ,\r\n"
        'circus,"juggling",\r\n',
        encoding="utf-8",
    )
    lm = read_label_map(path)
    # Labels are taken as written (a label may start with a space); groups are stripped.
    assert lm.groups == {"running": "sport", " swimming ": "sport", "juggling": "circus"}
    assert lm.group_of("running") == "sport"
    assert lm.group_of("typing") == OTHER_GROUP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,group\nrunning,sport\n", "columns label and group"),
        ("", "columns label and group"),
        ("label,group\nrunning,sport\nrunning,track\n", "in group 'sport' and in 'track'"),
        ("label,group\nrunning,\n", "line 2: a label and a group are needed"),
        ("label,group\n,sport\n", "line 2"),
    ],
)
def test_a_bad_label_map_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelMapError, match=message):
        read_label_map(path)


def test_an_unreadable_label_map_is_a_label_map_error(tmp_path: Path) -> None:
    with pytest.raises(LabelMapError, match="cannot read"):
        read_label_map(tmp_path / "missing.csv")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"label,group\ncaf\xe9,x\n")
    with pytest.raises(LabelMapError, match="cannot read"):
        read_label_map(bad)


def test_labels_the_model_lacks_are_named() -> None:
    lm = LabelMap({"running": "sport", "runing": "sport", "jugling": "circus"}, "map.csv")
    with pytest.raises(LabelMapError, match=r"map.csv names 2 label.*'runing', 'jugling'"):
        lm.check(LABELS.values())
    SPORT.check(LABELS.values())  # all known: no error


def test_the_group_is_the_one_with_the_highest_summed_probability() -> None:
    probs = torch.tensor([0.40, 0.05, 0.30, 0.20, 0.05])
    r = Scorer(Scoring(top_k=5, label_map=SPORT), LABELS).rank(probs)
    # dancing is the top label, but sport (running + swimming) holds 0.5 of the probability.
    assert [ls.label for ls in r.top_k][:3] == ["dancing", "running", "swimming"]
    assert r.group == "sport"
    assert r.group_score == pytest.approx(0.50)
    assert r.low_confidence is None and r.labels is None  # nothing else asked for
    # The group scores of all groups sum to 1: other = dancing + typing.
    r = Scorer(Scoring(label_map=SPORT), LABELS).rank(torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05]))
    assert (r.group, r.group_score) == (OTHER_GROUP, pytest.approx(0.75))


def test_min_score_empties_the_label_and_keeps_the_scores() -> None:
    scorer = Scorer(Scoring(top_k=2, min_score=0.5), LABELS)
    low = scorer.rank(torch.tensor([0.45, 0.40, 0.05, 0.05, 0.05]))
    assert low.low_confidence is True
    p = low.apply(Prediction(path="a.mp4", status="ok"))
    assert p.label == "" and p.score == pytest.approx(0.45)
    assert [ls.label for ls in p.top_k] == ["dancing", "juggling"]
    row = p.to_dict()
    assert row["label"] == "" and row["low_confidence"] is True
    high = scorer.rank(torch.tensor([0.05, 0.80, 0.05, 0.05, 0.05]))
    w = high.apply(WindowPrediction(0, 0, 15, 0.0, 0.5, list(range(16))))
    assert w.label == "juggling" and w.low_confidence is False
    # At the threshold exactly, the label stands.
    assert scorer.rank(torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1])).low_confidence is False


def test_multi_label_lists_every_label_over_the_threshold_and_groups_by_the_best() -> None:
    sig = torch.tensor([0.9, 0.2, 0.7, 0.6, 0.1])
    r = Scorer(Scoring(label_map=SPORT), LABELS, multi_label=True).rank(sig)
    assert r.labels == ["dancing", "running", "swimming"]  # >= 0.5, best first
    assert r.low_confidence is False
    assert (r.group, r.group_score) == (OTHER_GROUP, pytest.approx(0.9))  # max, not a sum
    r = Scorer(Scoring(min_score=0.65), LABELS, multi_label=True).rank(sig)
    assert r.labels == ["dancing", "running"]
    none = Scorer(Scoring(), LABELS, multi_label=True).rank(torch.full((5,), 0.2))
    assert none.labels == [] and none.low_confidence is True


def test_the_columns_follow_the_settings() -> None:
    assert Scoring().columns(multi_label=False) == ()
    assert Scoring(min_score=0.3).columns(False) == ("low_confidence",)
    assert Scoring(label_map=SPORT).columns(False) == ("group", "group_score")
    assert Scoring().columns(True) == ("low_confidence", "labels")
    assert Scoring().threshold(True) == MULTI_LABEL_THRESHOLD
    assert Scoring().threshold(False) is None


def test_tables_put_the_added_columns_after_the_score() -> None:
    table = VIDEO_ROWS.plus(("group", "group_score"))
    assert table.head[-3:] == ("score", "group", "group_score")
    assert table.keys[: table.keys.index("top_k")][-3:] == ("score", "group", "group_score")
    assert VIDEO_ROWS.plus(()) is VIDEO_ROWS
    windows = WINDOW_ROWS.plus(("low_confidence",))
    assert windows.head == ("path", "window", "status", "error", "label", "score", "low_confidence")
