"""vmae_cli.rowindex and the readers that feed it: what a resume knows of an output, compact,
and the same whichever way a file is read (Arrow's CSV reader or record by record)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vmae_cli.formats import CsvFormat, JsonlFormat, read_rows
from vmae_cli.output import BOM, OutputFile, exact_scan
from vmae_cli.results import FileStamp
from vmae_cli.rowindex import RowBlock, RowIndex, RowIndexBuilder, digest_keys
from vmae_cli.sinks import Layout, RowSink


def _index(*rows: dict) -> RowIndex:
    return RowIndex.of([RowBlock.of_values(list(rows))])


def test_the_newest_row_of_each_video_and_window_wins() -> None:
    index = _index(
        {"path": "/a", "status": "timeout", "size_bytes": "1", "mtime_ns": "2"},
        {"path": "/b", "status": "ok", "size_bytes": 3, "mtime_ns": 4, "model": "m"},
        {"path": "/a", "status": "ok", "size_bytes": "5", "mtime_ns": "6", "windows": "2"},
        {"path": "/a", "window": 0, "status": "ok"},
        {"path": "/a", "window": 1, "status": "ok"},
        {"path": "/a", "window": 0, "status": "failed"},
    )
    assert (index.rows, len(index), index.superseded) == (6, 4, 2)
    a = index.find("/a")
    assert (a.status, a.stamp, a.windows, a.window) == ("ok", FileStamp(5, 6), 2, None)
    assert index.find("/b").model == "m" and index.find("/c") is None
    assert index.windows_of("/a") == [0, 1] and index.windows_of("/b") == []
    # The rows a rewrite keeps, by their place in the file: the newest of each.
    assert index.rows_kept(()).tolist() == [False, True, True, False, True, True]
    assert index.rows_kept({"/a"}).tolist() == [False, True] + [False] * 4
    assert index.video_origins() == {("", "", "", ""), ("m", "", "", "")}


def test_cells_without_a_number_are_no_stamp_or_count() -> None:
    index = _index(
        {"path": "/a", "size_bytes": "", "mtime_ns": "2"},
        {"path": "/b", "size_bytes": "x", "mtime_ns": None, "windows": "", "window": "1.5"},
        {"path": "/c", "size_bytes": 10**30, "mtime_ns": " 7 ", "windows": "3"},
    )
    assert [index.find(k).stamp for k in ("/a", "/b", "/c")] == [None, None, None]
    assert index.find("/b").windows is None and index.find("/c").windows == 3


def test_many_keys_are_looked_up_at_once() -> None:
    keys = [f"/videos/{i:06d}.mp4" for i in range(5000)]
    index = _index(*({"path": k, "status": "ok", "windows": i} for i, k in enumerate(keys)))
    asked = keys[::7] + ["/videos/missing.mp4"]
    found = index.find_many(asked)
    assert [r.key for r in found[:-1]] == asked[:-1] and found[-1] is None
    assert [r.windows for r in found[:-1]] == list(range(0, 5000, 7))
    hi, lo = digest_keys(asked)
    assert index.holds(hi, lo).tolist() == [True] * (len(asked) - 1) + [False]
    assert RowIndex.empty().find_many(asked) == [None] * len(asked)


def test_window_rows_of_videos_without_a_row_go(tmp_path: Path) -> None:
    """A kill between a video's window rows and its row leaves orphans: dropped with the
    redone videos' rows, all others kept."""
    windows = _index(*({"path": p, "window": w} for p in ("/a", "/b", "/c") for w in (0, 1)))
    videos = _index({"path": "/a"}, {"path": "/b"})
    assert windows.rows_kept({"/b"}, videos).tolist() == [True, True] + [False] * 4


def test_rows_of_an_older_vmae_read_as_identities(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    index = _index({"path": "clips/a.mp4"}, {"path": "/abs/./b.mp4"}, {"path": "/abs/c.mp4"})
    assert index.legacy_rows.tolist() == [0, 1]
    assert index.find(f"{tmp_path}/clips/a.mp4") is not None
    assert index.find("/abs/b.mp4") is not None and index.find("/abs/c.mp4") is not None


def test_a_builder_forgets_what_a_reader_gave_up_on() -> None:
    builder = RowIndexBuilder()
    builder.add(RowBlock.of_values([{"path": "/a"}]))
    mark = builder.mark()
    builder.add(RowBlock.of_values([{"path": "/b"}, {"path": "/c"}]))
    builder.rollback(mark)
    builder.add(RowBlock.of_values([{"path": "/d"}]))
    index = builder.seal()
    assert index.rows == 2 and [index.find(k) is not None for k in ["/a", "/b", "/d"]] == [
        True,
        False,
        True,
    ]


HEADER = "path,status,label,model,protocol,model_revision,size_bytes,mtime_ns,windows"


def _csv(*records: str) -> bytes:
    return BOM + "\r\n".join([HEADER, *records, ""]).encode()


#: Rows Arrow's reader and the record-by-record one must read the same.
NASTY = _csv(
    '"/v/new\nline.mp4",ok,"say ""hi"", ok",m,uniform,r1,10,20,',
    '/v/comma.mp4,ok,"a,b",m,uniform,r1,11,21,3',
    "/v/formula.mp4,'=x,'=SUM(1),m,uniform,r1,12,22,",
    "/v/back\\\\slash\\xff.mp4,not_video,,m,uniform,r1,,,",
    "/v/comma.mp4,timeout,,m,uniform,r1,13,23,",  # newer: wins
    "/v/ünï.mp4,ok,çà,'-m,videomae,,14,24,2",
    "relative/x.mp4,ok,,m,uniform,r1,15,25,",
)


@pytest.fixture(autouse=True)
def _arrow_for_any_size(monkeypatch) -> None:
    """These files are small: read them with Arrow as a large output would be."""
    monkeypatch.setattr("vmae_cli.formats.ARROW_MIN_BYTES", 0)


def test_a_small_csv_is_read_back_without_arrow(tmp_path: Path, monkeypatch) -> None:
    """Below ARROW_MIN_BYTES of rows, resume reads the CSV record by record: what importing
    pyarrow (and pandas) costs is more than reading the rows (issue 26). The rows read are
    the same."""
    monkeypatch.chdir(tmp_path)
    arrow, fast = _scan(tmp_path / "rows.csv", NASTY)
    monkeypatch.setattr("vmae_cli.formats.ARROW_MIN_BYTES", len(NASTY))
    small, small_fast = _scan(tmp_path / "rows.csv", NASTY)
    assert (fast, small_fast) == (True, False)
    _same(small, arrow)


def _scan(path: Path, data: bytes, *, exact: bool = False) -> tuple[RowIndex, bool]:
    path.write_bytes(data)
    builder = RowIndexBuilder()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if exact:
            header = CsvFormat.scan(f.fileno(), size, RowIndexBuilder())
            scan = exact_scan(
                CsvFormat,
                f.fileno(),
                size,
                builder,
                header=header.header,
                columns=header.columns,
                body=header.body,
            )
        else:
            scan = CsvFormat.scan(f.fileno(), size, builder)
    return builder.seal(), scan.fast


def _same(a: RowIndex, b: RowIndex) -> None:
    for name in ("hi", "lo", "window", "windows", "size_bytes", "mtime_ns", "ordinal"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert [a.statuses[c] for c in a.status] == [b.statuses[c] for c in b.status]
    assert [a.origins[c] for c in a.origin] == [b.origins[c] for c in b.origin]
    assert (a.rows, a.legacy_rows.tolist()) == (b.rows, b.legacy_rows.tolist())


@pytest.mark.parametrize(
    ("data", "fast"),
    [
        (NASTY, True),
        (NASTY[len(BOM) :], True),  # no BOM
        (NASTY + b"/v/torn.mp4,o", True),  # torn after a whole record
        (NASTY + b'"/v/torn\nin quotes', False),  # torn inside a quoted cell, after a newline
        (NASTY.replace(b"slash", b"sl\xffash"), False),  # bytes that are not UTF-8
        (NASTY + b"/v/short.mp4,ok\r\n/v/after.mp4,ok,,m,uniform,r1,1,2,\r\n", False),
        (NASTY.replace(b",12,22,", b",0x12,22,"), True),  # not int()'s: no stamp either way
    ],
)
def test_arrow_and_the_record_by_record_reading_agree(
    data: bytes, fast: bool, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    index, used_fast = _scan(tmp_path / "rows.csv", data)
    exact, _ = _scan(tmp_path / "rows.csv", data, exact=True)
    assert used_fast is fast
    _same(index, exact)
    assert index.find("/v/new\nline.mp4").stamp == FileStamp(10, 20)
    assert index.find("/v/comma.mp4").status == "timeout"
    assert index.find("/v/formula.mp4").status == "=x"
    assert index.find(f"{tmp_path}/relative/x.mp4") is not None
    assert index.find("/v/ünï.mp4").model == "-m"


@pytest.mark.parametrize("fast", [True, False])
def test_a_resume_rewrites_only_what_goes(fast: bool, tmp_path: Path, monkeypatch) -> None:
    """Nothing to drop: the file stays as it is (a torn tail cut). Rows to drop: the file is
    copied record by record without them (older rows too), an older vmae's relative path
    written again as the identity."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rows.csv"
    data = NASTY if fast else NASTY.replace(b"slash", b"sl\xffash")
    header, *rows = CsvFormat.records([data[len(BOM) :]])
    relative = f"{tmp_path}/relative/x.mp4,ok,,m,uniform,r1,15,25,\r\n".encode()

    def resume(data: bytes, redone: set[str]) -> tuple[bool, bool]:
        path.write_bytes(data)
        out = OutputFile(path, CsvFormat).lock()
        out.start(resume=True)
        inode = os.stat(path).st_ino
        used_fast = out._scan.fast
        out.drop(redone, None)
        out.close()
        return used_fast, os.stat(path).st_ino == inode

    def kept(*at: int) -> bytes:
        return BOM + header + b"".join(rows[i] for i in at)

    assert resume(data + b"/v/torn", set()) == (fast, False)
    assert path.read_bytes() == kept(0, 2, 3, 4, 5) + relative
    assert resume(kept(0, 2, 3, 4, 5) + b"/v/torn", set()) == (fast, True)  # only cut
    assert path.read_bytes() == kept(0, 2, 3, 4, 5)
    resume(kept(0, 2, 3, 4, 5), {"/v/comma.mp4"})
    assert path.read_bytes() == kept(0, 2, 3, 5)


def test_records_arrow_splits_otherwise_are_rewritten_as_read_one_by_one(tmp_path) -> None:
    """A hand-edited record with a stray quote: Arrow reads two rows where the record-by-
    record reading sees one record; the rewrite notices and reads the file that way."""
    path = tmp_path / "rows.csv"
    data = b'path,status\r\n/a"x,ok\r\n/b"y,ok\r\n/c,ok\r\n/d,ok\r\n'
    path.write_bytes(data)
    out = OutputFile(path, CsvFormat).lock()
    out.start(resume=True)
    out.drop({"/d"}, None)
    out.close()
    assert path.read_bytes() == BOM + b'path,status\r\n/a"x,ok\r\n/b"y,ok\r\n/c,ok\r\n'


def _sink(path: Path) -> RowSink:
    sink = RowSink(str(path), "parquet", windows=False, stdout=None)
    sink.lock()
    return sink


def test_a_parquet_resume_leaves_the_file_and_merges_at_the_end(tmp_path: Path) -> None:
    from test_formats import _ok

    path = tmp_path / "rows.parquet"
    layout = Layout(2, (), False, "m", "uniform")
    sink = _sink(path)
    sink.start(layout, resume=False)
    sink.drop(set(), RowIndex.empty())
    for i in range(5):
        sink.write(_ok(f"/v/{i}.mp4"))
    sink.finish()
    stamp = os.stat(path)
    # Resume, nothing redone: the Parquet file is not touched, new rows go to the journal.
    sink = _sink(path)
    held = sink.start(layout, resume=True).rows
    assert len(held) == 5
    sink.drop(set(), held)
    assert os.stat(path).st_mtime_ns == stamp.st_mtime_ns
    sink.write(_ok("/v/new.mp4"))
    sink.close()  # killed: the journal stays beside the file
    assert sorted(r["path"] for r in read_rows(path)) == [
        *(f"/v/{i}.mp4" for i in range(5)),
        "/v/new.mp4",
    ]
    # Resume redoing 1 and 4: they go from the file (rewritten by row group), the journal's
    # row stays; the end makes one file of the two.
    sink = _sink(path)
    held = sink.start(layout, resume=True).rows
    assert len(held) == 6
    sink.drop({"/v/1.mp4", "/v/4.mp4"}, held)
    assert pq.read_table(path).num_rows == 3
    sink.write(_ok("/v/1.mp4"))
    sink.finish()
    assert not Path(f"{path}.partial").exists()
    paths = [r["path"] for r in read_rows(path)]
    assert paths == ["/v/0.mp4", "/v/2.mp4", "/v/3.mp4", "/v/new.mp4", "/v/1.mp4"]


def test_a_jsonl_journal_row_replaces_the_parquet_files_at_the_end(tmp_path: Path) -> None:
    from test_formats import _failed, _ok

    path = tmp_path / "rows.parquet"
    layout = Layout(2, (), False, "m", "uniform")
    sink = _sink(path)
    sink.start(layout, resume=False)
    sink.drop(set(), RowIndex.empty())
    sink.write(_ok("/v/a.mp4"))
    sink.write(_failed("/v/b.mp4"))
    sink.finish()
    journal = JsonlFormat(io.StringIO(), top_k=2)
    Path(f"{path}.partial").write_text(json.dumps(journal.row(_ok("/v/b.mp4"))) + "\n")
    sink = _sink(path)
    held = sink.start(layout, resume=True).rows
    assert held.find("/v/b.mp4").status == "ok" and held.superseded == 1
    sink.drop(set(), held)
    sink.finish()
    rows = list(read_rows(path))
    assert [(r["path"], r["status"]) for r in rows] == [("/v/a.mp4", "ok"), ("/v/b.mp4", "ok")]


def test_the_index_is_small(tmp_path: Path) -> None:
    """However long the paths: digest, stamp and ordinal, 40 bytes a row; a column of one
    value (the window of video rows, one status, one model) costs nothing."""
    rows = [
        {"path": f"/data/{'x' * 200}/{i}.mp4", "status": "ok", "size_bytes": i, "mtime_ns": i}
        for i in range(1000)
    ]
    index = _index(*rows)
    assert index.bytes_held() == 40 * 1000
    assert np.all(np.diff(index.hi.astype(np.float64)) >= 0)  # sorted for lookups
    assert index.find(rows[7]["path"]).stamp == FileStamp(7, 7)
    assert index.find(rows[7]["path"]).windows is None and index.windows_of(rows[7]["path"]) == []


def test_keys_sharing_the_high_half_of_their_digest_stay_apart() -> None:
    """All but impossible with real paths (64 bits shared), but the sort and the lookups
    must not mix two such keys up: made here by hand."""
    from vmae_cli.rowindex import _newest_sorted

    hi = np.array([5, 5, 5, 3, 5], np.uint64)
    lo = np.array([1, 2, 1, 0, 2], np.uint64)
    window = np.array([-1, -1, -1, -1, 0], np.int32)
    order = _newest_sorted(hi, lo, window)
    assert order.tolist() == [3, 2, 1, 4]  # by (hi, lo, window), the newest of each
    n = len(order)
    index = RowIndex(
        hi=hi[order],
        lo=lo[order],
        window=window[order],
        windows=np.full(n, -1, np.int32),
        size_bytes=np.zeros(n, np.int64),
        mtime_ns=np.zeros(n, np.int64),
        status=np.zeros(n, np.int32),
        origin=np.zeros(n, np.int32),
        ordinal=order,
        statuses=[""],
        origins=[("", "", "", "")],
        rows=5,
        legacy_rows=np.zeros(0, np.int64),
    )
    asked_hi = np.array([5, 5, 5, 5, 3, 4], np.uint64)
    asked_lo = np.array([2, 1, 2, 3, 0, 0], np.uint64)
    assert index.holds(asked_hi, asked_lo).tolist() == [True, True, True, False, True, False]
    assert index.holds(asked_hi, asked_lo, 0).tolist() == [True, False, True] + [False] * 3
