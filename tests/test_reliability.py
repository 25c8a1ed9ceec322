"""Cron-grade reliability: the output lock, --resume / --retry-failed, torn records, kill -9,
SIGTERM and --summary, through the library, the CLI runner and real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows, read_vectors
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_BUSY, app
from vmae_cli.formats import CsvFormat, JsonlFormat, split_csv_records
from vmae_cli.output import OutputBusyError, OutputFile, OutputMismatchError
from vmae_cli.rowindex import RowIndex

# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------


def test_csv_records_keep_quoted_newlines_and_leave_a_torn_tail() -> None:
    data = b'path,status\r\n"a\nb.mp4",ok\r\nc.mp4,ok\r\n"d\nhalf'
    records, tail = split_csv_records(data)
    assert records == [b"path,status\r\n", b'"a\nb.mp4",ok\r\n', b"c.mp4,ok\r\n"]
    assert tail == b'"d\nhalf'


def _resume(path: Path, data: bytes, fmt, redone=frozenset()) -> RowIndex:
    """Resume into a file holding ``data``: its index, then the file as a run leaves it
    (rows of ``redone`` dropped) before it writes."""
    path.write_bytes(data)
    out = OutputFile(path, fmt).lock()
    index = out.start(resume=True)
    out.drop(set(redone), None)
    out.close()
    return index


def test_resume_reads_rows_and_drops_torn_or_broken_records(tmp_path: Path) -> None:
    header = b"\xef\xbb\xbfpath,status,size_bytes,mtime_ns\r\n"
    rows = b"/v/a.mp4,ok,10,20\r\n/v/b.mp4,not_video,5,6\r\n"
    path = tmp_path / "rows.csv"
    index = _resume(path, header + rows + b"/v/c.mp4,o", CsvFormat)
    assert [
        (r.key, r.status, r.stamp.size_bytes) for r in map(index.find, ("/v/a.mp4", "/v/b.mp4"))
    ] == [
        ("/v/a.mp4", "ok", 10),
        ("/v/b.mp4", "not_video", 5),
    ]
    assert index.find("/v/c.mp4") is None and index.rows == 2 and not index.legacy
    assert path.read_bytes() == header + rows  # the torn record cut
    jsonl = b'{"path": "/a", "status": "ok"}\nnot json\n{"path": "/b", "status": "ok"}\n{"pa'
    path = tmp_path / "rows.jsonl"
    index = _resume(path, jsonl, JsonlFormat)
    assert index.rows == 2 and index.find("/a").stamp is None and index.find("/b") is not None
    assert path.read_bytes() == b'{"path": "/a", "status": "ok"}\n{"path": "/b", "status": "ok"}\n'


def test_rows_of_an_older_vmae_get_absolute_paths_and_new_records(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "rows.csv"
    data = b"path,status\r\nclips/a.mp4,ok\r\n'=b.mp4,ok\r\n/abs/c.mp4,ok\r\n"
    index = _resume(path, data, CsvFormat)
    assert index.legacy
    keys = [f"{tmp_path}/clips/a.mp4", f"{tmp_path}/=b.mp4", "/abs/c.mp4"]
    assert all(index.find(k) is not None for k in keys)
    assert path.read_bytes() == (
        b"\xef\xbb\xbfpath,status\r\n"
        + f"{tmp_path}/clips/a.mp4,ok\r\n{tmp_path}/=b.mp4,ok\r\n".encode()
        + b"/abs/c.mp4,ok\r\n"  # already an identity: its bytes kept
    )


def test_newest_row_per_path_wins(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    index = _resume(
        path,
        b'{"path": "/a", "status": "timeout"}\n{"path": "/b", "status": "ok"}\n'
        b'{"path": "/a", "status": "ok"}\n',
        JsonlFormat,
    )
    assert (len(index), index.superseded, index.find("/a").status) == (2, 1, "ok")
    assert path.read_bytes() == b'{"path": "/b", "status": "ok"}\n{"path": "/a", "status": "ok"}\n'


def test_a_second_lock_on_the_same_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    first = OutputFile(out, CsvFormat).lock()
    with pytest.raises(OutputBusyError, match="another vmae run"):
        OutputFile(out, CsvFormat).lock()
    first.close()
    OutputFile(out, CsvFormat).lock().close()  # released: a later run may write


def test_a_pipe_as_output_is_written_but_neither_locked_nor_resumed(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    out = OutputFile(fifo, CsvFormat).lock()  # O_RDWR: opening a FIFO does not wait for a reader
    assert not out.regular
    with pytest.raises(OutputMismatchError, match="not a regular file"):
        out.start(resume=True)
    out.start(resume=False)  # no truncation of a pipe
    out.close()


# ---------------------------------------------------------------------------------------
# Through the CLI runner
# ---------------------------------------------------------------------------------------


@pytest.fixture()
def folder(tmp_path: Path, test_videos, bad_files) -> Path:
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    for name in ("h264", "vp9", "mjpeg"):
        shutil.copy(test_videos[name], root / test_videos[name].name)
    shutil.copy(test_videos["hevc"], root / "sub" / "=hevc,1.mp4")
    shutil.copy(bad_files["random_bytes"], root / "sub" / "broken.mp4")
    return root


def _classify(model: Path, *args: str) -> object:
    return CliRunner().invoke(
        app,
        ["classify", "--model", str(model), "--device", "cpu", "--workers", "1", "-q", *args],
        catch_exceptions=False,
    )


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_resume_skips_done_videos_and_redoes_changed_ones(
    ext: str, folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"labels{ext}"
    summary = tmp_path / "summary.json"
    assert _classify(tiny_model_dir, str(folder), "-o", str(out)).exit_code == 3
    first = read_rows(out)
    assert len(first) == 5
    # Unchanged: nothing to do, nothing doubled.
    result = _classify(tiny_model_dir, str(folder), "-o", str(out), "--resume")
    assert result.exit_code == 0
    assert read_rows(out) == first
    # One video changed, one new: those two are done, the rest kept.
    changed = folder / "vp9.webm"
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    shutil.copy(folder / "h264.mp4", folder / "sub" / "new.mp4")
    result = _classify(
        tiny_model_dir, str(folder), "-o", str(out), "--resume", "--summary", str(summary)
    )
    assert result.exit_code == 0
    rows = read_rows(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 6
    facts = json.loads(summary.read_text())
    assert facts["videos"] == 2
    assert facts["skipped"] == 4
    assert facts["by_status"] == {"ok": 2}
    assert facts["exit_code"] == 0
    by_path = {r["path"]: r for r in rows}
    assert str(by_path[str(changed)]["mtime_ns"]) == str(changed.stat().st_mtime_ns)


def test_retry_failed_redoes_only_failedread_rows(
    folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, summary = tmp_path / "labels.jsonl", tmp_path / "summary.json"
    _classify(tiny_model_dir, str(folder), "-o", str(out))
    first = read_rows(out)
    result = _classify(tiny_model_dir, str(folder), "-o", str(out), "--resume")
    assert result.exit_code == 0  # the failed row is kept: nothing was done
    result = _classify(
        tiny_model_dir, str(folder), "-o", str(out), "--retry-failed", "--summary", str(summary)
    )
    assert result.exit_code == 3  # the broken file is still broken
    facts = json.loads(summary.read_text())
    assert (facts["videos"], facts["skipped"], facts["by_status"]) == (1, 4, {"not_video": 1})
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(r["path"] for r in first)
    assert rows[-1]["path"].endswith("broken.mp4")  # redone last, its old row removed


def test_a_torn_last_record_is_cut_and_redone(
    folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    _classify(tiny_model_dir, str(folder), "-o", str(out))
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 25])  # a kill in the middle of the last row
    result = _classify(tiny_model_dir, str(folder), "-o", str(out), "--resume")
    assert result.exit_code in (0, 3)  # this run's one video decides
    rows = read_rows(out)
    assert len(rows) == 5
    assert len({r["path"] for r in rows}) == 5


def test_resume_needs_a_file_and_the_same_columns(
    folder: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    result = _classify(tiny_model_dir, str(folder), "--resume")
    assert result.exit_code == 2
    assert "--resume and --retry-failed need an output file (--output FILE)" in result.stderr
    out = tmp_path / "labels.csv"
    _classify(tiny_model_dir, str(folder), "-o", str(out))
    result = _classify(tiny_model_dir, str(folder), "-o", str(out), "--resume", "--top-k", "3")
    assert result.exit_code == 2
    assert "other columns" in result.stderr
    assert "this run writes label_1, score_1, label_2, score_2, label_3, score_3" in result.stderr
    assert len(read_rows(out)) == 5  # untouched
    # Issue 24, 21: the message names what differs, not options that did not change.
    result = _classify(tiny_model_dir, str(folder), "-o", str(out), "--resume", "--segments")
    assert result.exit_code == 2
    assert "this run writes windows, timeline, which the file lacks" in result.stderr
    assert len(read_rows(out)) == 5


# ---------------------------------------------------------------------------------------
# Real processes: kill -9, SIGTERM, two runs at once
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory, test_videos) -> Path:
    """60 small videos (hard links of a few clips under distinct names)."""
    root = tmp_path_factory.mktemp("many")
    sources = [test_videos[k] for k in ("h264", "h264_bframes", "vp9", "mjpeg", "hevc")]
    for i in range(60):
        src = sources[i % len(sources)]
        os.link(src, root / f"v{i:03d}{src.suffix}")
    return root


def _start(model: Path, folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vmae_cli.cli", "classify", str(folder), "-o", str(out)]
    cmd += ["--model", str(model), "--device", "cpu", "--workers", "1", "--batch-size", "1"]
    return subprocess.Popen(
        [*cmd, "-q", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_forread_rows(out: Path, n: int, proc: subprocess.Popen, limit_s: float = 60) -> None:
    # A Parquet output's rows go to its journal until the run ends.
    written = Path(f"{out}.partial") if out.suffix == ".parquet" else out
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if written.exists() and written.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.02)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            alive = fields[0] not in ("Z", "X")
            if alive and (int(fields[1]) == pid or int(fields[3]) == pid):  # ppid or group
                found.append(int(entry))
    return found


def _no_orphans(pid: int, limit_s: float = 10) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if not [p for p in _children_of(pid) if p != pid]:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_kill_9_twice_then_resume_gives_every_video_exactly_once(
    ext: str, many: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, emb = tmp_path / f"labels{ext}", tmp_path / "emb.parquet"
    for at_rows in (8, 25):
        proc = _start(tiny_model_dir, many, out, "--resume", "--embeddings", str(emb))
        _wait_forread_rows(out, at_rows, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # Decoding workers die with the main process instead of holding the lock.
        assert _no_orphans(proc.pid)
    proc = _start(tiny_model_dir, many, out, "--resume", "--embeddings", str(emb))
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    rows = read_rows(out)
    paths = sorted(r["path"] for r in rows)
    assert paths == sorted(str(p) for p in many.iterdir())
    assert all(r["status"] == "ok" for r in rows)
    # Exactly one vector per video, and no journal left.
    assert sorted(read_vectors(emb)) == [(p, None) for p in paths]
    assert not Path(f"{emb}.partial").exists()


@pytest.mark.slow
def test_kill_9_on_the_int8_path_then_resume_gives_every_video_exactly_once(
    many: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --dtype int8: the first run quantizes (on its first videos) and is killed once rows
    # are written; the second reuses the entry and is killed too; the third finishes.
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("VMAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VMAE_FORCE_INT8", "1")  # int8 on any CPU, VNNI or not
    out = tmp_path / "labels.csv"
    args = ("--resume", "--dtype", "int8", "--backend", "openvino")
    for at_rows in (8, 25):
        proc = _start(tiny_model_dir, many, out, *args)
        _wait_forread_rows(out, at_rows, proc, limit_s=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert _no_orphans(proc.pid)
    summary = tmp_path / "summary.json"
    proc = _start(tiny_model_dir, many, out, *args, "--summary", str(summary))
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in many.iterdir())
    assert all(r["status"] == "ok" for r in rows)
    assert json.loads(summary.read_text())["runtime"] == "openvino int8"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rows_ext", "windows_ext"), [(".csv", ".jsonl"), (".parquet", ".parquet")]
)
def test_kill_9_twice_during_segments_then_resume_gives_each_video_its_windows_once(
    rows_ext: str, windows_ext: str, many: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out, windows = tmp_path / f"videos{rows_ext}", tmp_path / f"windows{windows_ext}"
    # 24-frame clips: windows of 8 frames every 3, 7 per video.
    emb = tmp_path / "emb.parquet"
    args = ("--resume", "--window", "8f", "--hop", "3f", "--segments-out", str(windows))
    args += ("--embeddings", str(emb))
    for at_windows in (40, 200):
        proc = _start(tiny_model_dir, many, out, *args)
        _wait_forread_rows(windows, at_windows, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert _no_orphans(proc.pid)
    proc = _start(tiny_model_dir, many, out, *args)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in many.iterdir())
    found: dict[str, list[int]] = {}
    for w in read_rows(windows):
        found.setdefault(w["path"], []).append(w["window"])
    assert {r["path"]: found.get(r["path"]) for r in rows} == {
        r["path"]: list(range(7)) for r in rows
    }
    assert all(r["status"] == "ok" and str(r["windows"]) == "7" for r in rows)
    # One vector per window and per video, the video's the mean of its windows'.
    vectors = read_vectors(emb)
    assert set(vectors) == {(r["path"], w) for r in rows for w in [None, *range(7)]}
    for r in rows:
        mean = np.mean([vectors[(r["path"], w)] for w in range(7)], axis=0)
        assert np.abs(vectors[(r["path"], None)] - mean).max() < 1e-2


def _wait_for(path: Path, needle: bytes, n: int, proc: subprocess.Popen, limit_s=60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(needle) >= n:
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_while_a_resume_redoes_changed_videos_then_resume_gives_each_once(
    tmp_path: Path, test_videos, tiny_model_dir: Path
) -> None:
    """Issue 25: a resume classifies the new videos as its walk finds them and holds back
    the changed ones until the walk ends, then drops their old rows (and vectors) and redoes
    them. Killed among the new ones, then among the redone ones (after the drop), then
    resumed: every video once, the changed ones' rows and vectors new."""
    folder = tmp_path / "videos"
    folder.mkdir()
    sources = [test_videos[k] for k in ("h264", "vp9", "mjpeg")]
    names = [f"v{i:03d}{sources[i % 3].suffix}" for i in range(40)]
    for i, name in enumerate(names[:20]):
        shutil.copy(sources[i % 3], folder / name)  # copies: their stamps change below
    out, emb = tmp_path / "labels.csv", tmp_path / "emb.parquet"
    proc = _start(tiny_model_dir, folder, out, "--embeddings", str(emb))
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    changed = [folder / name for name in names[:10]]
    stamp = time.time_ns() + 5_000_000_000
    for path in changed:
        os.utime(path, ns=(stamp, stamp))
    for i, name in enumerate(names[20:], start=20):
        shutil.copy(sources[i % 3], folder / name)
    args = ("--resume", "--embeddings", str(emb))
    proc = _start(tiny_model_dir, folder, out, *args)
    _wait_forread_rows(out, 1 + 20 + 5, proc)  # five new videos' rows: the walk goes on
    assert proc.poll() is None, "the run ended before its kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _no_orphans(proc.pid)
    proc = _start(tiny_model_dir, folder, out, *args)
    _wait_for(out, str(stamp).encode(), 3, proc)  # three changed videos redone
    assert proc.poll() is None, "the run ended before its kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _no_orphans(proc.pid)
    proc = _start(tiny_model_dir, folder, out, *args)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    rows = read_rows(out)
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows) == 40
    assert set(by_path) == {str(folder / name) for name in names}
    assert all(r["status"] == "ok" for r in rows)
    assert {by_path[str(p)]["mtime_ns"] for p in changed} == {str(stamp)}
    assert sorted(read_vectors(emb)) == [(p, None) for p in sorted(by_path)]


@pytest.mark.slow
def test_sigterm_stops_within_seconds_with_whole_lines(
    many: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    proc = _start(tiny_model_dir, many, out)
    _wait_forread_rows(out, 5, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    assert time.monotonic() - sent < 10
    if code == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert code == 128 + signal.SIGTERM
    data = out.read_bytes()
    assert data.endswith(b"\n")
    done = [json.loads(line) for line in data.splitlines()]
    assert 0 < len(done) < 60
    proc = _start(tiny_model_dir, many, out, "--resume")
    assert proc.wait(timeout=120) == 0
    paths = [r["path"] for r in read_rows(out)]
    assert sorted(paths) == sorted(str(p) for p in many.iterdir())


@pytest.mark.slow
def test_a_second_run_on_the_same_output_is_refused_at_once(
    many: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    first = _start(tiny_model_dir, many, out)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    second = _start(tiny_model_dir, many, out)
    assert second.wait(timeout=30) == EXIT_BUSY
    assert time.monotonic() - started < 10
    assert b"another vmae run" in second.stderr.read()
    if first.poll() is not None and first.returncode == 0:
        # The first run had already finished: then the second was refused for nothing.
        pytest.fail("the first run ended before the second one started; use more videos")
    assert first.wait(timeout=120) == 0
    assert len(read_rows(out)) == 60


def test_workers_do_not_hang_after_opencv_ran_in_this_process(tmp_path: Path, test_videos):
    """A forked worker hangs in OpenCV's thread pool unless the parent stopped it first."""
    import cv2
    import numpy as np

    from vmae_cli.preprocessing import PreprocessConfig
    from vmae_cli.views import ViewMaker, iter_decoded

    big = np.zeros((1080, 1920, 3), dtype=np.uint8)
    cv2.setNumThreads(2)
    cv2.cvtColor(big, cv2.COLOR_BGR2RGB)  # starts OpenCV's pool here
    paths = [str(test_videos["h264"])] * 4
    job = ViewMaker(4, PreprocessConfig(shortest_edge=32, crop_hw=(32, 32)))
    outcomes = list(iter_decoded(paths, job, workers=2, timeout_s=30))
    assert [o.views is not None for o in outcomes] == [True] * 4
