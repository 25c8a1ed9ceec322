"""vmae_cli.output: the output file (lock, start, resume read-back, rewrite) and stdout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmae_cli.formats import FORMATS, CsvFormat, JsonlFormat
from vmae_cli.output import BOM, OutputFile, check_writable
from vmae_cli.rowindex import RowIndex

CSV_FILE = (
    BOM + b"path,status,model,protocol,size_bytes,mtime_ns\r\n"
    b"/v/a.mp4,ok,m,uniform,10,20\r\n"
    b"/v/b.mp4,not_video,m,uniform,5,6\r\n"
)


def read_back(path: Path, data: bytes, fmt=CsvFormat) -> RowIndex:
    """The index a resume reads of a file holding ``data`` (the file is left as it was)."""
    path.write_bytes(data)
    out = OutputFile(path, fmt).lock()
    try:
        return out.start(resume=True)
    finally:
        out.close()


def test_rows_carry_the_model_and_protocol_that_made_them(tmp_path: Path) -> None:
    index = read_back(tmp_path / "rows.csv", CSV_FILE)
    rows = [index.find(k) for k in ("/v/a.mp4", "/v/b.mp4")]
    assert [(r.key, r.model, r.protocol, r.status) for r in rows] == [
        ("/v/a.mp4", "m", "uniform", "ok"),
        ("/v/b.mp4", "m", "uniform", "not_video"),
    ]
    assert index.video_origins() == {("m", "uniform", "", "")}
    line = b'{"path": "/a", "model": "x", "protocol": "videomae"}\n'
    row = read_back(tmp_path / "rows.jsonl", line, JsonlFormat).find("/a")
    assert (row.model, row.protocol) == ("x", "videomae")


def test_a_fresh_start_truncates_and_counts_what_it_replaced(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(CSV_FILE)
    out = OutputFile(path, CsvFormat).lock()
    assert out.count_rows() == 2
    assert len(out.start(resume=False)) == 0
    assert path.read_bytes() == b""
    out.close()
    other = tmp_path / "notes.csv"
    other.write_text("name,size\nx,2\n")
    out = OutputFile(other, CsvFormat).lock()
    assert out.count_rows() == 0  # not vmae's: nothing to count
    out.close()


def test_resume_reads_the_rows_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(CSV_FILE)
    out = OutputFile(path, CsvFormat).lock()
    columns = CsvFormat.columns_for(1)
    index = out.start(resume=True, columns=None)
    assert len(index) == 2 and index.find("/v/a.mp4").stamp.size_bytes == 10
    assert not out.is_empty
    out.close()
    assert path.read_bytes() == CSV_FILE
    out = OutputFile(path, CsvFormat).lock()
    with pytest.raises(ValueError, match="other columns"):
        out.start(resume=True, columns=columns)
    out.close()


@pytest.mark.parametrize(("fmt", "bom"), [("csv", True), ("jsonl", False)])
def test_a_new_file_starts_with_a_bom_only_where_the_format_wants_one(
    fmt: str, bom: bool, tmp_path: Path
) -> None:
    path = tmp_path / f"labels.{fmt}"
    out = OutputFile(path, FORMATS[fmt]).lock()
    out.start(resume=False)
    out.stream().write("x\n")
    out.finish()
    assert path.read_bytes().startswith(BOM) is bom


def test_output_paths_are_checked_without_creating_anything(tmp_path: Path) -> None:
    check_writable(tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()
    with pytest.raises(FileNotFoundError):
        check_writable(tmp_path / "missing" / "s.json")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError):
            check_writable(locked / "s.json")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_copies_a_killed_run_left_half_written_are_removed(fmt: str, tmp_path: Path) -> None:
    """Issue 24, 14: a kill while a file was rewritten aside leaves `.NAME.vmae-PID.tmp`; the
    next run that locks the file removes it (no live run writes one without that lock)."""
    path = tmp_path / f"rows.{fmt}"
    stale = tmp_path / f".rows.{fmt}.vmae-99999999.tmp"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".notes.csv.vmae-1.tmp"  # another file's: not this lock's to remove
    other.write_bytes(b"x")
    store = FORMATS[fmt].store(str(path)).lock()
    store.close()
    assert not stale.exists() and other.exists()


def test_a_forked_child_does_not_keep_the_outputs_lock(tmp_path: Path) -> None:
    """A decoding worker is forked while the output is locked; if it outlives the run (or is
    slow to exit) the next run must still get the lock."""
    from vmae_cli.embeddings import EmbeddingsFile

    path = str(tmp_path / "out.csv")
    out = OutputFile(path, CsvFormat).lock()
    out.start(resume=False)
    stream = out.stream()
    vectors = EmbeddingsFile(str(tmp_path / "vectors.parquet"), model="m", protocol="p").lock()
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # the child (its fork hooks have run): says so, waits for the parent, exits
        os.close(write)
        os.write(ready_write, b"!")
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"!"
    os.close(ready_read)
    try:
        stream.write("path,status\n")
        out.finish()
        vectors.close()
        again = OutputFile(path, CsvFormat).lock()  # not refused as busy
        again.close()
        EmbeddingsFile(str(tmp_path / "vectors.parquet"), model="m", protocol="p").lock().close()
    finally:
        os.close(write)
        os.waitpid(child, 0)
    with open(path, encoding="utf-8-sig") as f:
        assert f.read() == "path,status\n"  # the child wrote nothing into it
