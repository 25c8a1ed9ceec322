from __future__ import annotations

import csv
import io
import json
import os

import pandas as pd
import pytest

from vmae_cli.formats import (
    FORMATS,
    SEGMENTED_VIDEO_ROWS,
    WINDOW_ROWS,
    CsvFormat,
    JsonlFormat,
    UnknownFormatError,
    format_of_file,
    is_stream_path,
    neutralize_formula,
    read_frame,
    read_rows,
    resolve_format,
    unescape,
)
from vmae_cli.results import LabelScore, Prediction, VideoMeta, WindowPrediction, WindowRow
from vmae_cli.rowindex import RowIndex
from vmae_cli.sinks import Layout, RowSink

META = VideoMeta("opencv", 100, 98, 25.0, 3.92, 320, 240, 0)
NASTY_PATHS = [
    "/videos/plain.mp4",
    "/videos/with, comma.mp4",
    '/videos/with "quotes".mp4',
    "/videos/new\nline.mp4",
    "/videos/tab\there.mp4",
    "/vidéos/日本語.mp4",
    "/videos/=x.mp4",
    "/videos/back\\slash.mp4",
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
        ("'=x", "''=x"),
        ("'a", "''a"),
        ("", ""),
    ],
)
def test_neutralize_formula_is_undone_exactly(value: str, expected: str) -> None:
    assert neutralize_formula(value) == expected
    assert unescape(expected) == value


def test_csv_round_trips_through_pandas_with_nasty_paths_and_labels() -> None:
    buf = io.StringIO()
    w = CsvFormat(buf, top_k=2)
    for p in NASTY_PATHS:
        w.write(_ok(p, labels=(('say "hi", ok', 0.7), ("çà", 0.2))))
    w.write(_failed("/videos/bad.mp4"))
    df = pd.read_csv(io.StringIO(buf.getvalue()), keep_default_na=False)
    assert list(df["path"]) == [
        *NASTY_PATHS[:-1],
        "/videos/back\\\\slash.mp4",  # a backslash doubled: see vmae_cli.identity
        "/videos/bad.mp4",
    ]
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
    assert df.loc[8, "status"] == "not_video"
    assert df.loc[8, "label"] == ""
    assert df.loc[8, "error"] == "not a video, or damaged"


def test_csv_escapes_formulas_by_default_and_not_when_asked() -> None:
    label = "=cmd|' /C calc'!A0"
    for escape, expected in ((True, "'" + label), (False, label)):
        buf = io.StringIO()
        CsvFormat(buf, escape_formulas=escape).write(_ok("/v/a.mp4", labels=((label, 0.9),)))
        df = pd.read_csv(io.StringIO(buf.getvalue()), keep_default_na=False)
        assert df.loc[0, "label"] == expected


def _write_through_a_sink(path, predictions, top_k: int = 2) -> None:
    """Rows written as a run writes them: through a RowSink's whole life."""
    fmt = resolve_format(str(path))
    sink = RowSink(str(path), fmt, windows=False, stdout=None)
    sink.lock()
    sink.start(Layout(top_k, (), False, "m", "uniform"), resume=False)
    sink.drop(set(), RowIndex.empty())
    for p in predictions:
        sink.write(p)
    sink.finish()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_reads_back_what_it_wrote(fmt: str, tmp_path) -> None:
    """The one home of a format: its rows read back as they were, escapes undone."""
    labels = (("=SUM(1)", 0.6), ("'quoted", 0.3))
    path = tmp_path / f"rows{FORMATS[fmt].extension}"
    _write_through_a_sink(
        path, [*(_ok(p, labels=labels) for p in NASTY_PATHS), _failed("/videos/bad.mp4")]
    )
    rows = list(read_rows(path))
    assert [r["path"] for r in rows] == [
        *NASTY_PATHS[:-1],
        "/videos/back\\\\slash.mp4",
        "/videos/bad.mp4",
    ]
    assert [r["label"] for r in rows[:2]] == ["=SUM(1)", "=SUM(1)"]
    frame = read_frame(path, ["path", "label", "status"])
    assert list(frame["path"]) == [r["path"] for r in rows]
    assert list(frame["label"])[:1] == ["=SUM(1)"]
    assert list(frame["status"])[-1] == "not_video"


def test_parquet_rows_hold_the_jsonl_values_typed_for_pandas_duckdb_and_polars(tmp_path) -> None:
    predictions = [_ok(p) for p in NASTY_PATHS] + [_failed("/videos/bad.mp4")]
    _write_through_a_sink(tmp_path / "rows.jsonl", predictions)
    _write_through_a_sink(tmp_path / "rows.parquet", predictions)
    jsonl = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    parquet = tmp_path / "rows.parquet"
    assert not (tmp_path / "rows.parquet.partial").exists()
    frame = pd.read_parquet(parquet)
    assert list(frame.columns) == list(jsonl[0])
    assert frame.to_dict("records")[0]["top_k"].tolist() == jsonl[0]["top_k"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(parquet)
    assert (schema.field("frames_decoded").type, schema.field("score").type) == (
        pa.int64(),
        pa.float64(),
    )
    assert frame["frame_indices"][0].tolist() == [1, 5, 9]
    assert frame["score"].isna().tolist() == [False] * len(NASTY_PATHS) + [True]
    assert pq.read_table(parquet).to_pylist() == jsonl  # the same values, typed
    duckdb = pytest.importorskip("duckdb")
    got = duckdb.sql(
        f"SELECT path, score, top_k[1].label AS best, len(frame_indices) AS n "
        f"FROM read_parquet('{parquet}') WHERE status = 'ok' ORDER BY path"
    ).fetchall()
    assert got == sorted((r["path"], 0.9, "arm wrestling", 3) for r in jsonl[:-1])
    polars = pytest.importorskip("polars")
    table = polars.read_parquet(parquet)
    assert table["path"].to_list() == [r["path"] for r in jsonl]
    assert table.schema["width"] == polars.Int64
    assert table["top_k"][0].to_list() == jsonl[0]["top_k"]


def test_a_parquet_file_and_its_journal_are_read_as_one(tmp_path) -> None:
    """A kill after the file was renamed into place but before its journal was removed, or
    a resumed run killed midway: each row once, the journal's (newer) one where both have
    it, a torn last line left out; a resume makes one file of them again."""
    path = tmp_path / "rows.parquet"
    _write_through_a_sink(path, [_ok("/v/a.mp4"), _ok("/v/b.mp4"), _failed("/v/c.mp4")])
    journal = tmp_path / "rows.parquet.partial"
    newer = JsonlFormat(io.StringIO(), top_k=2)
    lines = [newer.row(_ok("/v/c.mp4")), newer.row(_ok("/v/d.mp4"))]
    journal.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"path": "/v/e.mp')
    rows = list(read_rows(path))
    assert [(r["path"], r["status"]) for r in rows] == [
        ("/v/a.mp4", "ok"),
        ("/v/b.mp4", "ok"),
        ("/v/c.mp4", "ok"),
        ("/v/d.mp4", "ok"),
    ]
    assert list(read_frame(path, ["path"])["path"]) == [r["path"] for r in rows]
    sink = RowSink(str(path), "parquet", windows=False, stdout=None)
    sink.lock()
    held = sink.start(Layout(2, (), False, "m", "uniform"), resume=True).rows
    assert len(held) == 4 and held.superseded == 1  # c's Parquet row: the journal's is newer
    assert [held.find(f"/v/{v}.mp4") is not None for v in "abcde"] == [True] * 4 + [False]
    assert held.find("/v/c.mp4").status == "ok"
    sink.drop({"/v/b.mp4", "/v/d.mp4"}, held)  # b and d are redone
    sink.write(_ok("/v/b.mp4"))
    sink.finish()
    assert not journal.exists()
    assert sorted(r["path"] for r in read_rows(path)) == ["/v/a.mp4", "/v/b.mp4", "/v/c.mp4"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_second_drop_after_writes_takes_only_the_redone_videos_rows(fmt: str, tmp_path) -> None:
    """Issue 25: a resumed run writes the new videos while it walks, then drops the rows of
    the videos it redoes (held back until the walk ended) and writes those: each video once,
    the rows written in between kept, at every step."""
    path = tmp_path / f"rows{FORMATS[fmt].extension}"
    _write_through_a_sink(path, [_ok("/v/a.mp4"), _failed("/v/b.mp4"), _ok("/v/c.mp4")])
    sink = RowSink(str(path), fmt, windows=False, stdout=None)
    sink.lock()
    held = sink.start(Layout(2, (), False, "m", "uniform"), resume=True).rows
    sink.drop(set(), held)
    sink.write(_ok("/v/d.mp4"))  # new: written while the walk goes on
    sink.write(_ok("/v/e.mp4"))
    assert sorted(r["path"] for r in read_rows(path)) == [f"/v/{v}.mp4" for v in "abcde"]
    sink.drop({"/v/b.mp4"}, None)  # the walk ended: b is redone
    assert sorted(r["path"] for r in read_rows(path)) == [f"/v/{v}.mp4" for v in "acde"]
    sink.write(_ok("/v/b.mp4"))
    sink.write(_ok("/v/f.mp4"))
    sink.finish()
    rows = list(read_rows(path))
    assert sorted(r["path"] for r in rows) == [f"/v/{v}.mp4" for v in "abcdef"]
    assert {r["path"]: r["status"] for r in rows}["/v/b.mp4"] == "ok"
    if fmt == "csv":
        assert path.read_bytes().count(b"path,status") == 1  # one header, one BOM
        assert path.read_bytes().count(b"\xef\xbb\xbf") == 1


def test_parquet_is_not_written_to_a_stream() -> None:
    with pytest.raises(UnknownFormatError, match="to a file"):
        resolve_format("-", "parquet")


def test_rows_of_an_older_vmae_are_read_with_absolute_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old.csv"
    old.write_text("path,status,label\nclips/a.mp4,ok,x\n'=b.mp4,ok,y\n/abs/c.mp4,ok,z\n")
    told: list[str] = []
    rows = list(read_rows(old, on_legacy=told.append))
    assert [r["path"] for r in rows] == [
        f"{tmp_path}/clips/a.mp4",
        f"{tmp_path}/=b.mp4",
        "/abs/c.mp4",
    ]
    assert told == [str(old)]
    told.clear()
    assert list(read_frame(old, on_legacy=told.append)["path"]) == [r["path"] for r in rows]
    assert told == [str(old)]


def test_csv_without_top_k_has_no_rank_columns() -> None:
    buf = io.StringIO()
    CsvFormat(buf, top_k=1).write(_ok("a.mp4"))
    header = buf.getvalue().splitlines()[0].split(",")
    assert "label_1" not in header
    assert header[:5] == ["path", "status", "error", "label", "score"]


def test_jsonl_lines_parse_and_carry_top_k_and_indices() -> None:
    buf = io.StringIO()
    w = JsonlFormat(buf, top_k=2)
    for p in NASTY_PATHS:
        w.write(_ok(p))
    w.write(_failed("/=bad.mp4"))
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["path"] for r in rows][:-2] == NASTY_PATHS[:-1]
    assert rows[-1]["path"] == "/=bad.mp4"
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
    path = os.fsdecode(b"/videos/caf\xe9.mp4")
    buf = io.StringIO()
    JsonlFormat(buf).write(_ok(path))
    assert json.loads(buf.getvalue())["path"] == "/videos/caf\\xe9.mp4"
    buf.getvalue().encode("utf-8")  # writable as UTF-8


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("out.csv", "csv"),
        ("OUT.CSV", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("r.parquet", "parquet"),
    ],
)
def test_the_format_comes_from_the_extension(name: str, fmt: str) -> None:
    assert resolve_format(name) == fmt
    assert format_of_file(name).name == fmt


def test_unknown_formats_raise() -> None:
    with pytest.raises(UnknownFormatError):
        resolve_format("out.xlsx")
    with pytest.raises(UnknownFormatError, match="not a vmae output"):
        format_of_file("out.xlsx")
    with pytest.raises(UnknownFormatError, match="unknown format 'xlsx'") as raised:
        resolve_format("out.csv", "xlsx")
    assert (raised.value.options, raised.value.value) == (("format",), "xlsx")


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
    video = Prediction("/v.mp4", "ok", top_k=[LabelScore("=cmd", 0.6)], windows=windows)
    assert video.timeline() == "0.0-4.2 =cmd 0.60; 4.2-6.3 b 0.90"
    out = io.StringIO()
    w = CsvFormat(out, top_k=2, table=WINDOW_ROWS)
    for window in windows:
        w.write(WindowRow("/v.mp4", window))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [
        *("path", "window", "status", "error", "label", "score"),
        *("label_1", "score_1", "label_2", "score_2"),
        *("start_frame", "end_frame", "start_s", "end_s", "frame_indices"),
    ]
    assert (rows[1]["label"], rows[1]["start_frame"], rows[1]["end_s"]) == ("'=cmd", "64", "4.17")
    out = io.StringIO()
    CsvFormat(out, table=SEGMENTED_VIDEO_ROWS).write(video)
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["windows"], row["timeline"]) == ("3", "0.0-4.2 =cmd 0.60; 4.2-6.3 b 0.90")
    out = io.StringIO()
    JsonlFormat(out, table=WINDOW_ROWS).write(WindowRow("/v.mp4", windows[2]))
    line = json.loads(out.getvalue())
    assert list(line) == list(WINDOW_ROWS.keys)
    assert line["frame_indices"][:3] == [128, 132, 136] and line["label"] == "b"
    out = io.StringIO()
    JsonlFormat(out, table=SEGMENTED_VIDEO_ROWS).write(video)
    assert json.loads(out.getvalue())["windows"] == 3


def test_only_real_streams_are_streams(tmp_path) -> None:
    """Issue 24, 15: a file under /dev/shm is a file (its format from its extension)."""
    assert is_stream_path("-") and is_stream_path("/dev/stdout") and is_stream_path("/dev/null")
    assert is_stream_path("/dev/fd/1")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert is_stream_path(str(fifo))
    assert not is_stream_path(str(tmp_path / "rows.jsonl"))
    if os.path.isdir("/dev/shm"):
        assert not is_stream_path("/dev/shm/vmae-test-rows.jsonl")
        assert resolve_format("/dev/shm/vmae-test-rows.jsonl") == "jsonl"
        assert resolve_format("/dev/shm/vmae-test-rows.parquet") == "parquet"


def test_the_readme_documents_every_column_of_a_window_row() -> None:
    """Issue 24, 22: the window rows' `frame_indices` (in CSV too) was documented for JSONL
    only. Every key of a window row is in the README's window table or its note on the
    keys CSV lacks (`top_k`)."""
    import re
    from pathlib import Path

    from vmae_cli.formats import WINDOW_ROWS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("gets one row per window:")
    table = readme[start : readme.index("\n\n", readme.index("| column |", start))]
    after = readme[start + len(table) : start + len(table) + 300]
    documented = set(re.findall(r"^\| ([^|]+) \|", table, flags=re.M))
    names = {n for cell in documented for n in re.findall(r"`([a-z_]+)`", cell)}
    assert set(WINDOW_ROWS.head + WINDOW_ROWS.tail) <= names
    assert set(WINDOW_ROWS.keys) - names == {"top_k"} and "`top_k`" in after


def test_arrow_reads_a_csv_output_as_pandas_did(tmp_path) -> None:
    """Issue 25: summarize and report read CSV outputs through Arrow (a 10,000,000-row file
    in a fraction of pandas' time and memory): BOM, quoted newlines and commas, empty cells
    as "" and the columns asked for only, as pandas' reader gave them."""
    from vmae_cli.formats import CsvFormat

    path = tmp_path / "rows.csv"
    path.write_bytes(
        '\ufeffpath,status,label,score\r\n/a/1.mp4,ok,"x,\ny",0.5\r\n/a/2.mp4,empty,,\r\n'
        "/a/3.mp4,ok,'=SUM(A1),0.25\r\n".encode()
    )
    got = CsvFormat.frame(str(path), ["path", "label", "score"])
    want = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    want = want[["path", "label", "score"]]
    want.loc[2, "label"] = "=SUM(A1)"  # the formula escape undone, as CsvFormat.frame does
    assert got.astype(object).to_dict("list") == want.astype(object).to_dict("list")


def _many_rows(n: int) -> list[dict]:
    """Rows of many kinds for the block readers: formula escapes, quoted newlines and
    commas, empty cells, an older vmae's relative paths."""
    labels = ["x", "=SUM(A1)", 'a "b", c', "two\nlines", ""]
    return [
        {
            "path": f"rel/{i}.mp4" if i % 17 == 0 else f"/v/{i % 7}/{i}.mp4",
            "status": "ok" if i % 5 else "damaged",
            "label": labels[i % len(labels)],
            "score": "" if i % 5 == 0 else f"{(i % 100) / 100:.2f}",
            "frames_decoded": str(16 + i % 3),
        }
        for i in range(n)
    ]


def _write_csv(path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(rows[0])
        writer.writerows([neutralize_formula(v) for v in r.values()] for r in rows)


def test_block_readers_give_the_rows_the_whole_reader_gives(tmp_path, monkeypatch) -> None:
    """Issue 25: summarize and report read an output a block of rows at a time
    (``frames``), the blocks together what pandas reads of the whole file; where Arrow
    gives up midway (a ragged row, a record torn by a kill), pandas reads the rest."""
    import vmae_cli.formats as formats
    from vmae_cli.formats import read_frames

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(formats, "FRAME_ROWS", 50)
    monkeypatch.setattr(formats, "ARROW_BLOCK_BYTES", 1024)
    rows = _many_rows(700)
    good, torn, ragged = (tmp_path / f"{name}.csv" for name in ("good", "torn", "ragged"))
    _write_csv(good, rows)
    data = good.read_bytes()
    torn.write_bytes(data + b"/v/torn.mp4,ok")
    lines = data.split(b"\r\n")
    ragged.write_bytes(b"\r\n".join([*lines[:400], b"/v/short.mp4,ok,x", *lines[400:]]))
    for source in (good, torn, ragged):
        whole = pd.read_csv(source, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        for column in whole:
            whole[column] = whole[column].map(unescape)
        blocks = list(CsvFormat.frames(str(source)))
        assert len(blocks) > 5 and max(map(len, blocks)) < 200
        got = pd.concat(blocks, ignore_index=True)
        assert got.astype(object).to_dict("list") == whole.astype(object).to_dict("list")
        told: list[str] = []
        paths = pd.concat(read_frames(source, ["path"], on_legacy=told.append))["path"]
        assert list(paths) == [r["path"] for r in read_rows(source)]
        assert paths.iloc[0] == str(tmp_path / "rel/0.mp4") and told == [str(source)]
    header_only = tmp_path / "header.csv"
    header_only.write_text("path,status\n")
    assert [list(t.columns) for t in CsvFormat.frames(str(header_only))] == [["path", "status"]]
    with pytest.raises(ValueError, match="row 3: score 'high'"):
        bad = tmp_path / "bad.csv"
        bad.write_text("path,status,score\n/v/a.mp4,ok,0.5\n/v/b.mp4,ok,0.5\n/v/c.mp4,ok,high\n")
        monkeypatch.setattr(formats, "FRAME_ROWS", 1)
        list(read_frames(bad))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_rows_of_some_videos_are_picked_as_all_rows_would_give_them(
    fmt: str, tmp_path, monkeypatch
) -> None:
    """Issue 25: ``vmae report`` reads again the rows of the videos it shows only: the rows
    ``read_rows(paths=...)`` picks are those of a whole read, escapes undone and older
    relative paths read as identities (they are picked by their identity)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import vmae_cli.formats as formats

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(formats, "FRAME_ROWS", 40)
    monkeypatch.setattr(formats, "PARQUET_ROW_GROUP_ROWS", 40)
    rows = _many_rows(300)
    source = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        _write_csv(source, rows)
    elif fmt == "jsonl":
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=64)
    every = list(read_rows(source))
    wanted = {every[i]["path"] for i in (0, 3, 17, 150, 299)} | {"/v/none.mp4"}
    picked = list(read_rows(source, paths=wanted))
    assert picked == [r for r in every if r["path"] in wanted] and len(picked) == 5
    assert str(tmp_path / "rel/0.mp4") in {r["path"] for r in picked}


def test_numbers_are_read_as_pandas_reads_them() -> None:
    """Issue 25: text cells read as numbers by Arrow where it can, by pandas where it
    cannot: the same values as ``pd.to_numeric(errors="coerce")``."""
    from vmae_cli.formats import numbers

    cases = [
        ["0.5", "", "1e-3", "-0.25", "0.6971765"],
        ["16", "32", "8"],  # whole numbers: pandas makes them integers
        ["0.5", " 2", "+3", "0x1f", "high", "inf", "NaN"],  # pandas' reading
        [],
    ]
    for cells in cases:
        text = pd.Series(cells, dtype=pd.StringDtype("pyarrow", na_value=float("nan")))
        want = pd.to_numeric(text, errors="coerce")
        got = numbers(text)
        assert got.dtype == want.dtype and got.equals(want), cells
