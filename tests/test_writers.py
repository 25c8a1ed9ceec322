from __future__ import annotations

import csv
import io
import json
import os

import pandas as pd
import pytest

from vmae_cli.results import LabelScore, Prediction, VideoMeta, WindowPrediction, WindowRow
from vmae_cli.writers import (
    SEGMENTED_VIDEO_ROWS,
    WINDOW_ROWS,
    CsvWriter,
    JsonlWriter,
    UnknownFormatError,
    display_path,
    format_for_path,
    get_writer,
    neutralize_formula,
)

META = VideoMeta("opencv", 100, 98, 25.0, 3.92, 320, 240, 0)
NASTY_PATHS = [
    "videos/plain.mp4",
    "videos/with, comma.mp4",
    'videos/with "quotes".mp4',
    "videos/new\nline.mp4",
    "videos/tab\there.mp4",
    "vidéos/日本語.mp4",
]


def _ok(path: str, labels=(("arm wrestling", 0.9), ("dancing", 0.05))) -> Prediction:
    return Prediction(
        path=path,
        status="ok",
        top_k=[LabelScore(label, score) for label, score in labels],
        meta=META,
        frame_indices=[1, 5, 9],
        model="m",
    )


def _failed(path: str) -> Prediction:
    return Prediction(path=path, status="not_video", error="not a video, or damaged", model="m")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralize_formula(value: str, expected: str) -> None:
    assert neutralize_formula(value) == expected


def test_csv_round_trips_through_pandas_with_nasty_paths_and_labels() -> None:
    buf = io.StringIO()
    w = CsvWriter(buf, top_k=2)
    for p in NASTY_PATHS:
        w.write(_ok(p, labels=(('say "hi", ok', 0.7), ("çà", 0.2))))
    w.write(_failed("videos/bad.mp4"))
    df = pd.read_csv(io.StringIO(buf.getvalue()), keep_default_na=False)
    assert list(df["path"]) == [*NASTY_PATHS, "videos/bad.mp4"]
    assert list(df.columns[:9]) == [
        "path",
        "status",
        "error",
        "label",
        "score",
        "label_1",
        "score_1",
        "label_2",
        "score_2",
    ]
    assert set(df.columns) >= {"frames_decoded", "duration_s", "fps", "width", "height", "model"}
    assert df.loc[0, "label"] == 'say "hi", ok'
    assert df.loc[0, "label_2"] == "çà"
    assert float(df.loc[0, "score"]) == pytest.approx(0.7)
    assert df.loc[6, "status"] == "not_video"
    assert df.loc[6, "label"] == ""
    assert df.loc[6, "error"] == "not a video, or damaged"


def test_csv_escapes_formulas_by_default_and_not_when_asked() -> None:
    for escape, expected in ((True, "'=cmd|' /C calc'!A0.mp4"), (False, "=cmd|' /C calc'!A0.mp4")):
        buf = io.StringIO()
        CsvWriter(buf, escape_formulas=escape).write(_ok("=cmd|' /C calc'!A0.mp4"))
        df = pd.read_csv(io.StringIO(buf.getvalue()), keep_default_na=False)
        assert df.loc[0, "path"] == expected


def test_csv_without_top_k_has_no_rank_columns() -> None:
    buf = io.StringIO()
    CsvWriter(buf, top_k=1).write(_ok("a.mp4"))
    header = buf.getvalue().splitlines()[0].split(",")
    assert "label_1" not in header
    assert header[:5] == ["path", "status", "error", "label", "score"]


def test_jsonl_lines_parse_and_carry_top_k_and_indices() -> None:
    buf = io.StringIO()
    w = JsonlWriter(buf, top_k=2)
    for p in NASTY_PATHS:
        w.write(_ok(p))
    w.write(_failed("=bad.mp4"))
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["path"] for r in rows] == [*NASTY_PATHS, "=bad.mp4"]  # JSONL stays raw
    assert rows[0]["top_k"] == [
        {"label": "arm wrestling", "score": 0.9},
        {"label": "dancing", "score": 0.05},
    ]
    assert rows[0]["frame_indices"] == [1, 5, 9]
    assert rows[0]["label"] == "arm wrestling"
    assert rows[-1]["status"] == "not_video"
    assert rows[-1]["score"] is None
    assert rows[-1]["top_k"] == []


def test_non_utf8_paths_are_written_as_escapes() -> None:
    path = os.fsdecode(b"videos/caf\xe9.mp4")
    assert display_path(path) == "videos/caf\\xe9.mp4"
    buf = io.StringIO()
    JsonlWriter(buf).write(_ok(path))
    assert json.loads(buf.getvalue())["path"] == "videos/caf\\xe9.mp4"
    buf.getvalue().encode("utf-8")  # writable as UTF-8


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("out.csv", "csv"), ("OUT.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl")],
)
def test_format_for_path(name: str, fmt: str) -> None:
    assert format_for_path(name) == fmt


def test_unknown_formats_raise() -> None:
    with pytest.raises(UnknownFormatError):
        format_for_path("out.xlsx")
    with pytest.raises(UnknownFormatError):
        get_writer("parquet", io.StringIO())
    assert isinstance(get_writer("jsonl", io.StringIO()), JsonlWriter)


def _window(index: int, label: str, score: float) -> WindowPrediction:
    return WindowPrediction(
        index,
        64 * index,
        64 * index + 63,
        2.1 * index,
        2.1 * index + 2.07,
        list(range(64 * index, 64 * index + 64, 4)),
        top_k=[LabelScore(label, score)],
    )


def test_window_rows_and_segmented_video_rows_in_both_formats() -> None:
    windows = [_window(0, "=cmd", 0.5), _window(1, "=cmd", 0.7), _window(2, "b", 0.9)]
    video = Prediction("v.mp4", "ok", top_k=[LabelScore("=cmd", 0.6)], windows=windows)
    assert video.timeline() == "0.0-4.2 =cmd 0.60; 4.2-6.3 b 0.90"
    out = io.StringIO()
    w = CsvWriter(out, top_k=2, table=WINDOW_ROWS)
    for window in windows:
        w.write(WindowRow("v.mp4", window))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [
        *("path", "window", "status", "error", "label", "score"),
        *("label_1", "score_1", "label_2", "score_2"),
        *("start_frame", "end_frame", "start_s", "end_s", "frame_indices"),
    ]
    assert (rows[1]["label"], rows[1]["start_frame"], rows[1]["end_s"]) == ("'=cmd", "64", "4.17")
    out = io.StringIO()
    CsvWriter(out, table=SEGMENTED_VIDEO_ROWS).write(video)
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["windows"], row["timeline"]) == ("3", "0.0-4.2 =cmd 0.60; 4.2-6.3 b 0.90")
    out = io.StringIO()
    JsonlWriter(out, table=WINDOW_ROWS).write(WindowRow("v.mp4", windows[2]))
    line = json.loads(out.getvalue())
    assert list(line) == list(WINDOW_ROWS.keys)
    assert line["frame_indices"][:3] == [128, 132, 136] and line["label"] == "b"
    out = io.StringIO()
    JsonlWriter(out, table=SEGMENTED_VIDEO_ROWS).write(video)
    assert json.loads(out.getvalue())["windows"] == 3
