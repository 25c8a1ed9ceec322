"""Videos named by URL (vmae_cli.remote): identities without credentials, stamps from what a
store says, a seekable reader whose frames are a local copy's, failures as rows.

These tests read through fsspec's in-memory filesystem (``memory://``: the same fsspec calls
as a store, in this process and the workers it forks); tests/test_remote_servers.py runs the
same paths against a real S3-compatible server and an HTTP server.
"""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import numpy as np
import pytest

from vmae_cli import remote
from vmae_cli.decoding import decode_video, decode_windows
from vmae_cli.identity import is_legacy_cell, key_of_cell, path_cell, url_queries_kept, video_path
from vmae_cli.results import (
    STATUS_EMPTY,
    STATUS_NOT_FOUND,
    STATUS_OK,
    STATUS_TIMEOUT,
    STATUS_UNREADABLE,
    FileStamp,
    file_stamp,
)

SIGNED = (
    "https://alice:s3cret@Bucket.S3.amazonaws.com/clips/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261207&X-Amz-Signature=abcdef0123#t=3"
)


@pytest.fixture
def memfs():
    """fsspec's memory filesystem, emptied after the test."""
    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    remote.reset()


def put(fs, key: str, data: bytes) -> str:
    fs.pipe_file(f"/{key}", data)
    return f"memory://{key}"


# --- identity and what a URL shows ---------------------------------------------------------


def test_a_url_is_its_own_identity_without_credentials_or_signature():
    assert video_path(SIGNED) == SIGNED  # the name to open it by, signature included
    cell = path_cell(SIGNED)
    assert cell == "https://bucket.s3.amazonaws.com/clips/a.mp4"
    with url_queries_kept():
        kept = path_cell("https://host/v?id=42&X-Amz-Signature=x")
    assert kept == "https://host/v?id=42&X-Amz-Signature=x"
    assert path_cell("https://host/v?id=42") == "https://host/v"
    # A URL cell is this version's spelling: read back as it is.
    assert not is_legacy_cell(cell) and key_of_cell(cell) == cell
    assert path_cell("s3://bucket/a b/ü.mp4") == "s3://bucket/a b/ü.mp4"


def test_credentials_in_a_store_librarys_message_are_redacted():
    said = remote.redact(f"403 Forbidden for url: {SIGNED} (token=abc, sig=zz)")
    assert "s3cret" not in said and "alice" not in said
    assert "abcdef0123" not in said and "AKIAEXAMPLE" not in said
    assert "abc," not in said and "zz)" not in said
    assert "https://bucket.s3.amazonaws.com/clips/a.mp4" in said


# --- stamps ----------------------------------------------------------------------------------


def test_a_stamp_is_the_same_from_a_listing_and_from_the_object():
    listed = {
        "name": "b/k.mp4",
        "size": 10,
        "ETag": '"e1"',
        "LastModified": "2026-12-07T10:00:00.000Z",
    }
    head = {
        "name": "b/k.mp4",
        "size": 10,
        "ETag": '"e1"',
        "LastModified": "Mon, 07 Dec 2026 10:00:00 GMT",
        "VersionId": "v-only-in-head",
    }
    a, b = remote.object_info(listed).stamp(), remote.object_info(head).stamp()
    assert a == b
    assert a.size_bytes == 10
    assert a.mtime_ns // 1_000_000_000 == 1796637600  # Last-Modified, to the second
    changed = remote.object_info(listed | {"ETag": '"e2"'}).stamp()
    assert changed != a and changed.mtime_ns // 1_000_000_000 == 1796637600
    assert remote.object_info({"size": 3}).stamp() == FileStamp(3, 0)


def test_file_stamp_of_a_url_asks_its_store(memfs):
    url = put(memfs, "b/x.mp4", b"12345")
    assert file_stamp(url) == FileStamp(5, 0)  # the memory store gives no time nor version
    assert file_stamp("memory://b/missing.mp4") is None


# --- the reader ------------------------------------------------------------------------------


def test_the_reader_gives_the_objects_bytes_at_any_seek(memfs):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 5 * remote.BLOCK_BYTES + 123, dtype=np.uint8).tobytes()
    url = put(memfs, "b/r.bin", data)
    reader = remote.remote_object(url).open()
    local = io.BytesIO(data)
    for _ in range(200):
        where = int(rng.integers(0, len(data) + 10))
        whence = int(rng.integers(0, 3))
        offset = where if whence == 0 else where - len(data) if whence == 2 else 0
        size = int(rng.integers(-1, 3 * remote.BLOCK_BYTES))
        assert reader.seek(offset, whence) == local.seek(max(0, offset), whence) or whence
        reader.seek(local.tell())
        assert reader.read(size) == local.read(size)
    fetched = remote.take_fetched(url)
    assert fetched is not None and fetched.bytes >= len(data) // 2 and fetched.requests > 1


def test_a_sequential_read_is_a_few_growing_requests_and_a_seek_starts_small(memfs):
    data = bytes(range(256)) * (40 * remote.BLOCK_BYTES // 256)
    url = put(memfs, "b/seq.bin", data)
    obj = remote.remote_object(url)
    reader = obj.open()
    while reader.read(32 * 1024):
        pass
    assert obj.fetched.bytes == len(data)
    assert obj.fetched.requests < 14  # 40 blocks, each request half again what came before
    remote.take_fetched(url)
    obj = remote.remote_object(url)
    reader = obj.open()
    reader.seek(20 * remote.BLOCK_BYTES)
    reader.read(100)
    assert obj.fetched.bytes == remote.BLOCK_BYTES  # a seek fetches one block, not ahead


def test_what_overflows_memory_is_read_back_from_disk_not_fetched_again(memfs, monkeypatch):
    # An MKV's index pass reads the file whole, then the seek plan reads parts of it again.
    monkeypatch.setattr(remote, "CACHE_BYTES", 3 * remote.BLOCK_BYTES)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 20 * remote.BLOCK_BYTES + 7, dtype=np.uint8).tobytes()
    url = put(memfs, "b/spill.bin", data)
    obj = remote.remote_object(url)
    reader = obj.open()
    assert reader.read() == data
    for _ in range(50):
        where = int(rng.integers(0, len(data)))
        reader.seek(where)
        assert reader.read(5000) == data[where : where + 5000]
    assert obj.fetched.bytes == len(data)  # each byte once
    assert obj._held <= 3 * remote.BLOCK_BYTES + remote.MAX_READ_AHEAD_BYTES
    remote.forget(url)
    assert obj._spill is None  # the temporary file went with the object


class _FlakyFS:
    """A store whose range reads fail ``failures`` times with ``exc`` before answering."""

    def __init__(self, data: bytes, exc: BaseException, failures: int):
        self.data, self.exc, self.failures = data, exc, failures

    def cat_file(self, path, start=None, end=None):
        if self.failures > 0:
            self.failures -= 1
            raise self.exc
        return self.data[start:end]


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(remote, "FETCH_BACKOFF_S", 0.001)


def _object(data: bytes, fs) -> remote.RemoteObject:
    return remote.RemoteObject("s3://b/k.mp4", fs, "b/k.mp4", remote.ObjectInfo(len(data), 0, ""))


def test_a_failure_that_may_pass_is_tried_again(fast_backoff):
    data = b"x" * 1000
    obj = _object(data, _FlakyFS(data, ConnectionResetError("reset by peer"), 2))
    assert obj.open().read() == data
    assert obj.error is None and obj.fetched.requests == 3


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (ConnectionResetError("reset by peer"), STATUS_UNREADABLE, "could not finish reading"),
        (TimeoutError("read timed out"), STATUS_TIMEOUT, "timed out"),
        (PermissionError("Access Denied"), STATUS_UNREADABLE, "access denied"),
        (FileNotFoundError("gone"), STATUS_NOT_FOUND, "no such object"),
    ],
)
def test_a_failure_that_stays_is_remembered_and_reads_as_the_end(fast_backoff, exc, status, words):
    data = b"x" * 1000
    obj = _object(data, _FlakyFS(data, exc, 99))
    assert obj.open().read() == b""  # never an exception inside a decoder's read
    assert obj.error is not None
    assert obj.error.status == status and words in obj.error.error
    tries = 1 if isinstance(exc, (PermissionError, FileNotFoundError)) else remote.FETCH_TRIES
    assert obj.fetched.requests == tries


def test_a_body_cut_short_is_tried_again_then_a_failure(fast_backoff):
    class Short(_FlakyFS):
        def cat_file(self, path, start=None, end=None):
            return self.data[start : end - 10]

    obj = _object(b"y" * 1000, Short(b"y" * 1000, OSError(), 0))
    assert obj.open().read() == b""
    assert obj.error.status == STATUS_UNREADABLE and "ending early" in obj.error.error
    assert obj.fetched.requests == remote.FETCH_TRIES


# --- decoding through a URL gives a local copy's frames ---------------------------------------


def test_every_test_video_decodes_from_a_url_as_from_its_file(memfs, test_videos):
    for name, path in sorted(test_videos.items()):
        url = put(memfs, f"v/{path.name}", path.read_bytes())
        local, lfail, lmeta = decode_video(str(path), 8, lambda x: x)
        got, gfail, gmeta = decode_video(url, 8, lambda x: x)
        remote.take_fetched(url)
        assert (gfail is None) == (lfail is None), name
        assert gmeta == lmeta, name  # the decoder too
        if local is not None:
            assert got.frame_indices == local.frame_indices, name
            assert all(
                np.array_equal(a, b) for a, b in zip(got.frames, local.frames, strict=True)
            ), name


@pytest.fixture(scope="module")
def bigger_videos(tmp_path_factory) -> dict[str, Path]:
    """Videos of many blocks (the test videos fit in one): H.264 with B-frames in MP4, and in
    MOV, 4 s of 640x480."""
    from tools.videogen import write_video

    out = tmp_path_factory.mktemp("bigger")
    return {
        name: write_video(out / name, width=640, height=480, num_frames=100, **options)
        for name, options in {
            "gop.mp4": {"codec": "h264", "gop": 12, "bframes": 2},
            "h264.mov": {"codec": "h264", "gop": 25},
        }.items()
    }


def test_a_remote_mp4s_index_is_read_without_its_samples(memfs, bigger_videos):
    import av

    from vmae_cli.decoding import _index, _payload_free
    from vmae_cli.seeking import index_packets

    for name, path in bigger_videos.items():
        data = path.read_bytes()
        url = put(memfs, f"i/{name}", data)
        obj = remote.remote_object(url)
        assert _payload_free(obj.open()) is not None
        with av.open(obj.open()) as c, av.open(str(path)) as whole:
            got = _index(c, c.streams.video[0], obj.open())
            want = index_packets(whole, whole.streams.video[0])
        assert (got.shown, got.keyframes) == (want.shown, want.keyframes), name
        # The index and what FFmpeg reads through rather than seek over (up to 64 KiB), not
        # the samples.
        assert obj.fetched.bytes < 2 * 64 * 1024 < len(data), name


def test_bad_objects_are_rows_as_bad_files_are(memfs, bad_files):
    for name, path in sorted(bad_files.items()):
        if not path.is_file():
            continue  # FIFOs and folders have no object twin
        url = put(memfs, f"bad/{path.name}", path.read_bytes())
        _, lfail, _ = decode_video(str(path), 8, lambda x: x)
        _, gfail, _ = decode_video(url, 8, lambda x: x)
        remote.take_fetched(url)
        assert (gfail.status if gfail else STATUS_OK) == (lfail.status if lfail else STATUS_OK), (
            name
        )
    empty = put(memfs, "bad/zero.mp4", b"")
    assert decode_video(empty, 8, lambda x: x)[1].status == STATUS_EMPTY
    missing = decode_video("memory://bad/none.mp4", 8, lambda x: x)[1]
    assert missing.status == STATUS_NOT_FOUND and "memory://bad/none.mp4" in missing.error


def test_a_cut_connection_is_a_failure_not_a_shorter_video(memfs, bigger_videos, monkeypatch):
    path = bigger_videos["gop.mp4"]
    assert path.stat().st_size > 4 * remote.BLOCK_BYTES
    url = put(memfs, "cut/h264.mp4", path.read_bytes())
    real = remote.RemoteObject._fetch
    monkeypatch.setattr(remote, "FETCH_BACKOFF_S", 0.001)

    def cut(self, start, end):
        if start > 2 * remote.BLOCK_BYTES:
            self.fetched.requests += 1
            self.error = remote.failure_of(ConnectionResetError("reset"), self.url, "reading")
            return None
        return real(self, start, end)

    monkeypatch.setattr(remote.RemoteObject, "_fetch", cut)
    _, failure, _ = decode_video(url, 8, lambda x: x)
    assert failure.status == STATUS_UNREADABLE and "reset" in failure.error
    remote.take_fetched(url)
    *_, done = decode_windows(url, lambda fps: _geometry(), lambda x: x)
    assert done.failure is not None and done.failure.status == STATUS_UNREADABLE


def _geometry():
    from vmae_cli.segments import Segments

    return Segments().geometry(8, 25.0)


# --- listing ---------------------------------------------------------------------------------


def test_a_prefix_is_listed_as_a_folder_is_walked(memfs):
    for key in [
        "p/b.mp4",
        "p/a.MOV",
        "p/notes.txt",
        "p/sub/c.mkv",
        "p/sub/deeper/d.webm",
        "q/e.mp4",
    ]:
        put(memfs, key, b"data")
    errors = []
    got = list(
        remote.iter_urls(
            "memory://p",
            lambda n: n.rsplit(".")[-1].lower() in {"mp4", "mov", "mkv", "webm"},
            lambda p, why: errors.append((p, why)),
        )
    )
    assert got == [
        "memory://p/a.MOV",
        "memory://p/b.mp4",
        "memory://p/sub/c.mkv",
        "memory://p/sub/deeper/d.webm",
    ]
    assert not errors
    kept = list(
        remote.iter_urls(
            "memory://p/", lambda n: True, errors.append, keep=lambda u: "/sub/" not in u
        )
    )
    assert "memory://p/notes.txt" in kept and all("/sub/" not in u for u in kept)
    # A URL with a video's name is one object, listed or not; a prefix with nothing is said.
    assert list(remote.iter_urls("memory://p/none.mp4", lambda n: True, errors.append)) == [
        "memory://p/none.mp4"
    ]
    list(remote.iter_urls("memory://empty/", lambda n: True, lambda p, why: errors.append(p)))
    assert errors == ["memory://empty/"]


def test_a_protocol_without_its_package_is_refused_before_any_work(monkeypatch):
    import importlib

    monkeypatch.setitem(
        importlib.import_module("fsspec.registry").known_implementations,
        "nostore",
        {"class": "nostore_pkg.NoStoreFileSystem", "err": "Install nostore_pkg to read nostore://"},
    )
    with pytest.raises(remote.RemoteInputError, match="Install nostore_pkg"):
        remote.check_urls(["nostore://b/k.mp4"])


def test_files_from_takes_urls_as_they_are(tmp_path: Path):
    from vmae_cli.discovery import read_file_list

    listed = tmp_path / "list.txt"
    listed.write_text("s3://b/k.mp4\nrel.mp4\nhttps://h/v.mp4?sig=1\n")
    assert read_file_list(listed) == [
        "s3://b/k.mp4",
        str(tmp_path / "rel.mp4"),
        "https://h/v.mp4?sig=1",
    ]


# --- a run over URLs -------------------------------------------------------------------------


def _comparable(row: dict) -> dict:
    """A row less what differs between a local file and its copy in a store: the path, the
    stamp's time, and the note saying what the fetch cost."""
    notes = "; ".join(n for n in row["notes"].split("; ") if not n.startswith("fetched "))
    return {k: v for k, v in row.items() if k not in ("path", "mtime_ns", "notes")} | {
        "notes": notes
    }


def test_a_run_over_a_prefix_gives_the_rows_of_the_local_folder(
    memfs, test_videos, bad_files, tiny_model_dir, tmp_path
):
    from conftest import read_rows

    from vmae_cli.runner import run

    folder = tmp_path / "local"
    folder.mkdir()
    names = ["h264", "hevc", "vp9", "h264_bframes", "mpegts", "edit_list"]
    for name in names:
        data = test_videos[name].read_bytes()
        (folder / test_videos[name].name).write_bytes(data)
        put(memfs, f"bucket/in/{test_videos[name].name}", data)
    for name in ("text", "truncated_h264", "empty"):
        data = bad_files[name].read_bytes()
        (folder / bad_files[name].name).write_bytes(data)
        put(memfs, f"bucket/in/{bad_files[name].name}", data)
    put(memfs, "bucket/in/readme.txt", b"not walked")
    options = {"model": str(tiny_model_dir), "workers": 1, "device": "cpu", "backend": "torch"}
    local, there = tmp_path / "local.csv", tmp_path / "remote.csv"
    run([str(folder)], local, **options)
    report = run(["memory://bucket/in/"], there, **options)
    assert report.found == len(names) + 3
    want = {Path(r["path"]).name: r for r in read_rows(local)}
    got = {r["path"].rsplit("/", 1)[1]: r for r in read_rows(there)}
    assert set(got) == set(want)
    for name, row in got.items():
        assert row["path"] == f"memory://bucket/in/{name}"
        assert _comparable(row) == _comparable(want[name]), name
        if row["status"] == STATUS_OK:
            assert "fetched " in row["notes"], name
    # Resume asks nothing again: the stamps the listing gave are those the rows hold.
    again = run(["memory://bucket/in/"], there, resume=True, **options)
    assert again.skipped == len(names) + 3 and not again.by_status
    # A changed object is redone, the others kept.
    put(memfs, "bucket/in/notes.mp4", test_videos["h264"].read_bytes())
    changed = run(["memory://bucket/in/"], there, resume=True, **options)
    assert changed.by_status == {STATUS_OK: 1}
    rows = read_rows(there)
    assert len(rows) == len(names) + 3
    assert {r["path"]: r["status"] for r in rows}["memory://bucket/in/notes.mp4"] == STATUS_OK


# --- the command line ------------------------------------------------------------------------


def test_the_cli_takes_urls_and_keeps_their_query_only_when_asked(memfs, tiny_model_dir, tmp_path):
    from conftest import read_rows
    from typer.testing import CliRunner

    from vmae_cli.cli import EXIT_SOME_FAILED, app

    signed = "memory://bucket/none.mp4?X-Amz-Signature=deadbeef&id=7"
    out = tmp_path / "rows.csv"
    model = ["--model", str(tiny_model_dir), "--device", "cpu", "--backend", "torch"]
    result = CliRunner().invoke(app, ["classify", signed, "-o", str(out), *model])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    (row,) = read_rows(out)
    assert row["path"] == "memory://bucket/none.mp4" and row["status"] == STATUS_NOT_FOUND
    assert "deadbeef" not in out.read_text() + result.stderr
    kept = CliRunner().invoke(
        app, ["classify", signed, "-o", str(out), "--overwrite", "--keep-url-query", *model]
    )
    assert kept.exit_code == EXIT_SOME_FAILED, kept.output
    assert read_rows(out)[0]["path"] == signed


def test_the_cli_refuses_a_protocol_it_cannot_read_in_one_line(monkeypatch, tmp_path):
    import importlib

    from typer.testing import CliRunner

    from vmae_cli.cli import EXIT_USAGE, app

    monkeypatch.setitem(
        importlib.import_module("fsspec.registry").known_implementations,
        "nostore",
        {"class": "nostore_pkg.NoStoreFileSystem", "err": "Install nostore_pkg to read it"},
    )
    out = tmp_path / "rows.csv"
    result = CliRunner().invoke(app, ["classify", "nostore://b/k/", "-o", str(out)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip().splitlines() == [
        "vmae: inputs='nostore://b/k/': Install nostore_pkg to read it"
    ]
    assert not out.exists()
