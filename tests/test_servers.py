"""The servers of tests/servers.py, checked with the clients vmae will use on them: fsspec's
HTTPFileSystem and s3fs, configured by the environment alone. The exceptions asserted here
are the ones the table in tests/servers.py lists; a new fsspec, s3fs or aiohttp that changes
one fails here first."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = bytes(range(256)) * 1200  # 307,200 bytes, every offset's value known


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(DATA)
    return path


def _raw(server, method: str, path: str, headers: dict | None = None):
    """One request with http.client: status, headers, body."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, f"/{path}", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# -- the HTTP server -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_", "status", "content_range", "body"),
    [
        (None, 200, None, DATA),
        ("bytes=10-19", 206, "bytes 10-19/307200", DATA[10:20]),
        ("bytes=307190-", 206, "bytes 307190-307199/307200", DATA[-10:]),
        ("bytes=-5", 206, "bytes 307195-307199/307200", DATA[-5:]),
        ("bytes=307195-999999", 206, "bytes 307195-307199/307200", DATA[-5:]),
        ("bytes=-999999", 206, "bytes 0-307199/307200", DATA),
        ("bytes=307200-", 416, "bytes */307200", b""),
        ("bytes=-0", 416, "bytes */307200", b""),
        ("bytes=0-1,5-6", 200, None, DATA),  # several ranges: the whole file, as RFC 9110 allows
    ],
)
def test_http_ranges(http_server, clip: Path, range_, status, content_range, body) -> None:
    http_server.put("clip.mp4", clip)
    headers = {"Range": range_} if range_ else {}
    got_status, headers, got = _raw(http_server, "GET", "clip.mp4", headers)
    assert (got_status, headers.get("Content-Range"), got) == (status, content_range, body)
    assert int(headers["Content-Length"]) == len(body)
    assert http_server.traffic("clip.mp4").bytes_sent == len(body)


def test_http_head_says_size_etag_and_last_modified(http_server, clip: Path) -> None:
    http_server.put("sub dir/clip.mp4", clip)
    status, headers, body = _raw(http_server, "HEAD", "sub%20dir/clip.mp4")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(DATA)))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"].startswith('"') and headers["Last-Modified"].endswith("GMT")
    assert http_server.traffic("sub dir/clip.mp4").requests == 1


def test_http_outside_the_folder_is_not_served(http_server, clip: Path) -> None:
    http_server.put("clip.mp4", clip)
    assert _raw(http_server, "GET", "../clip.mp4")[0] == 404
    assert _raw(http_server, "GET", "")[0] == 404  # no listings


def test_httpfilesystem_reads_a_range_and_the_counter_counts(http_server, clip: Path) -> None:
    import fsspec

    url = http_server.put("clip.mp4", clip)
    fs = fsspec.filesystem("http")
    info = fs.info(url)
    assert info["size"] == len(DATA)
    assert info["ETag"] == _raw(http_server, "HEAD", "clip.mp4")[1]["ETag"]
    assert "Last-Modified" in info
    assert fs.cat_file(url, start=1000, end=1010) == DATA[1000:1010]
    with fs.open(url, block_size=10_000) as f:
        f.seek(200_000)
        assert f.read(100) == DATA[200_000:200_100]
    traffic = http_server.traffic(url)
    assert traffic.bytes_sent <= len(DATA) // 3
    assert [(m, r) for m, r, _ in traffic.log if m == "GET"] == [
        ("GET", "bytes=1000-1009"),
        ("GET", "bytes=200000-210099"),  # fsspec reads a block past the 100 bytes asked for
    ]


def test_httpfilesystem_missing_and_forbidden(http_server, clip: Path) -> None:
    import aiohttp
    import fsspec

    url = http_server.put("clip.mp4", clip)
    fs = fsspec.filesystem("http")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(http_server.url_of("nope.mp4"), start=0, end=10)
    http_server.fail(url, 403)
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        fs.cat_file(url, start=0, end=10)
    assert caught.value.status == 403
    # info() (and so open()) calls every failure FileNotFoundError; the cause says which.
    with pytest.raises(FileNotFoundError) as caught:
        fs.open(url)
    assert caught.value.__cause__.status == 403


def test_httpfilesystem_throttled_then_served(http_server, clip: Path) -> None:
    import aiohttp
    import fsspec

    url = http_server.put("clip.mp4", clip)
    http_server.throttle(url, times=2, retry_after=7)
    fs = fsspec.filesystem("http")
    for _ in range(2):  # HTTPFileSystem does not retry
        with pytest.raises(aiohttp.ClientResponseError) as caught:
            fs.cat_file(url, start=0, end=10)
        assert (caught.value.status, caught.value.headers["Retry-After"]) == (503, "7")
    assert fs.cat_file(url, start=0, end=10) == DATA[:10]
    assert [s for _, _, s in http_server.traffic(url).log] == [503, 503, 206]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_httpfilesystem_connection_cut_mid_body(http_server, clip: Path, reset: bool) -> None:
    import aiohttp
    import fsspec

    url = http_server.put("clip.mp4", clip)
    fs = fsspec.filesystem("http")
    f = fs.open(url, block_size=100_000)  # its HEAD is not cut: a cut waits for a GET
    http_server.cut(url, 1000, reset=reset)
    with pytest.raises(aiohttp.ClientPayloadError, match="received 1000 of"):
        f.read(50_000)
    assert http_server.traffic(url).bytes_sent == 1000
    assert f.read(10) == DATA[:10]  # the next request is served again
    f.close()


def test_httpfilesystem_timeout(http_server, clip: Path) -> None:
    import aiohttp
    import fsspec
    from fsspec.exceptions import FSTimeoutError

    url = http_server.put("clip.mp4", clip)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=0.2)
    fs = fsspec.filesystem("http", client_kwargs={"timeout": timeout})
    http_server.delay(url, 30)  # stop() ends the wait at teardown
    t0 = time.monotonic()
    with pytest.raises(FSTimeoutError):
        fs.cat_file(url, start=0, end=10)
    assert time.monotonic() - t0 < 5
    assert isinstance(FSTimeoutError(), TimeoutError)


def test_http_stop_closes_kept_alive_connections(tmp_path: Path, clip: Path) -> None:
    from servers import RangeHTTPServer

    with RangeHTTPServer(clip.parent) as server:
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/clip.mp4", headers={"Range": "bytes=0-0"})
        assert conn.getresponse().read() == DATA[:1]
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        conn.request("GET", "/clip.mp4", headers={"Range": "bytes=0-0"})
        conn.getresponse()
    conn.close()


# -- S3 (moto behind the counting proxy) -----------------------------------------------------


def test_s3fs_from_the_environment_alone(s3, clip: Path) -> None:
    import s3fs

    urls = s3.upload("videos", [clip], prefix="batch/one")
    s3.upload("videos", {"other.mp4": clip}, prefix="elsewhere")
    assert urls == ["s3://videos/batch/one/clip.mp4"]
    fs = s3fs.S3FileSystem()  # no argument: endpoint and keys come from the environment
    assert fs.ls("videos/batch/one") == ["videos/batch/one/clip.mp4"]
    assert fs.cat_file(urls[0], start=5000, end=5010) == DATA[5000:5010]
    info = s3fs.S3FileSystem(skip_instance_cache=True).info(urls[0])  # a HEAD, not the listing
    assert (info["size"], info["type"]) == (len(DATA), "file")
    assert info["ETag"].startswith('"') and info["LastModified"].year >= 2024
    log = s3.proxy.traffic(urls[0]).log
    assert [m for m, _, _ in log] == ["GET", "HEAD"]
    assert s3.proxy.traffic(urls[0]).bytes_sent == 10


def test_fsspec_open_s3_url(s3, clip: Path) -> None:
    import fsspec

    (url,) = s3.upload("videos", [clip])
    # fsspec.open's keywords go to S3FileSystem(), which hands those it does not know to
    # botocore's session (block_size: TypeError): its own spelling is default_block_size.
    with fsspec.open(url, "rb", default_block_size=5000) as f:
        f.seek(100_000)
        assert f.read(10) == DATA[100_000:100_010]
    assert s3.proxy.traffic(url).bytes_sent < len(DATA) // 3
    with fsspec.open(url, "rb", **s3.storage_options) as f:
        assert f.read(3) == DATA[:3]


@pytest.mark.parametrize("round", [1, 2])
def test_s3_starts_empty(s3, clip: Path, round: int) -> None:
    """Run twice: the second round sees nothing of the first."""
    assert s3.client().list_buckets()["Buckets"] == []
    s3.upload(f"round-{round}", [clip])


def test_s3fs_missing(s3, clip: Path) -> None:
    import s3fs

    s3.upload("videos", [clip])
    fs = s3fs.S3FileSystem()
    with pytest.raises(FileNotFoundError):
        fs.info("videos/nope.mp4")
    with pytest.raises(FileNotFoundError, match="specified key does not exist"):
        fs.cat_file("videos/nope.mp4", start=0, end=10)
    with pytest.raises(FileNotFoundError, match="specified bucket does not exist"):
        fs.open("no-such-bucket/x.mp4")


def test_s3fs_denied_object_is_permission_error(s3, clip: Path) -> None:
    import botocore.exceptions
    import s3fs

    readable, denied = s3.upload("videos", {"ok.mp4": clip, "denied.mp4": clip})
    s3.deny(denied)
    fs = s3fs.S3FileSystem()
    for call in (lambda: fs.info(denied), lambda: fs.open(denied), lambda: fs.cat_file(denied)):
        with pytest.raises(PermissionError, match="Forbidden") as caught:
            call()
        assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    assert fs.cat_file(readable, start=0, end=3) == DATA[:3]
    # S3's own 403 carries an AccessDenied body (moto's has none): the message differs.
    s3.proxy.fail(readable, 403)
    with pytest.raises(PermissionError, match="Access Denied"):
        fs.cat_file(readable, start=0, end=3)


def test_s3fs_connection_cut_without_retries(s3, clip: Path, monkeypatch) -> None:
    import aiohttp
    import s3fs

    (url,) = s3.upload("videos", [clip])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fs = s3fs.S3FileSystem()
    fs.retries = 1  # a class attribute (5), not an argument
    s3.proxy.cut(url, 1000, times=None)
    with pytest.raises(aiohttp.ClientPayloadError, match="received 1000 of"):
        fs.cat_file(url, start=0, end=200_000)
    assert s3.proxy.traffic(url).requests == 1


def test_s3fs_throttling_without_retries(s3, clip: Path, monkeypatch) -> None:
    import errno

    import s3fs

    (url,) = s3.upload("videos", [clip])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fs = s3fs.S3FileSystem()
    fs.retries = 1
    s3.proxy.throttle(url, times=1)
    with pytest.raises(OSError, match="reduce your request rate") as caught:
        fs.cat_file(url, start=0, end=10)
    assert caught.value.errno == errno.EBUSY
    assert fs.cat_file(url, start=0, end=10) == DATA[:10]


@pytest.mark.slow
def test_s3fs_retries_throttling_and_cuts_by_itself(s3, clip: Path) -> None:
    """With its defaults (botocore's legacy retries: 5 attempts; s3fs: 5 tries) s3fs rides
    out a few 503s and a cut connection. It ignores Retry-After."""
    import s3fs

    (url,) = s3.upload("videos", [clip])
    fs = s3fs.S3FileSystem()
    s3.proxy.throttle(url, times=2, retry_after=60)
    s3.proxy.cut(url, 1000, times=1)
    t0 = time.monotonic()
    assert fs.cat_file(url, start=0, end=200_000) == DATA[:200_000]
    assert time.monotonic() - t0 < 30
    assert [s for _, _, s in s3.proxy.traffic(url).log] == [503, 503, 206, 206]


def test_s3fs_read_timeout(s3, clip: Path, monkeypatch) -> None:
    import botocore.exceptions
    import s3fs

    (url,) = s3.upload("videos", [clip])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fs = s3fs.S3FileSystem(config_kwargs={"read_timeout": 0.5})
    fs.retries = 1
    s3.proxy.delay(url, 30, times=None)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        fs.cat_file(url, start=0, end=10)
    # s3fs wraps a read in two layers of its retries, botocore adds its own: each a factor.
    assert s3.proxy.traffic(url).requests == 1


# -- fork: DataLoader workers inherit what the parent made ---------------------------------


def _in_fork_child(job) -> str:
    """Run ``job()`` in a forked child; its repr, or the exception's type and message."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def target() -> None:
        try:
            queue.put(repr(job()))
        except Exception as e:  # noqa: BLE001 (whatever it is, the parent asserts on it)
            queue.put(f"{type(e).__name__}: {e}")

    child = ctx.Process(target=target)
    child.start()
    try:
        return queue.get(timeout=30)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()


def test_fork_child_needs_its_own_filesystem(s3, http_server, clip: Path) -> None:
    import fsspec

    (s3_url,) = s3.upload("videos", [clip])
    http_url = http_server.put("clip.mp4", clip)
    s3fs_ = fsspec.filesystem("s3")
    httpfs = fsspec.filesystem("http")
    assert s3fs_.cat_file(s3_url, start=0, end=3) == httpfs.cat_file(http_url, start=0, end=3)
    pickled = pickle.dumps(s3fs_)

    def fresh(url: str) -> bytes:
        with fsspec.open(url, "rb") as f:
            f.seek(100)
            return f.read(5)

    assert _in_fork_child(lambda: fresh(s3_url)) == repr(DATA[100:105])
    assert _in_fork_child(lambda: fresh(http_url)) == repr(DATA[100:105])
    assert _in_fork_child(lambda: pickle.loads(pickled).cat_file(s3_url, start=0, end=2)) == repr(
        DATA[:2]
    )
    for fs, url in ((s3fs_, s3_url), (httpfs, http_url)):
        got = _in_fork_child(lambda fs=fs, url=url: fs.cat_file(url, start=0, end=2))
        assert got == "RuntimeError: This class is not fork-safe"
    assert s3fs_.cat_file(s3_url, start=0, end=3) == DATA[:3]  # the parent's still works


@pytest.mark.slow
def test_fork_child_hangs_on_an_http_file_opened_in_the_parent(http_server, clip: Path) -> None:
    """An HTTPFile keeps the parent's event loop, which no thread runs in the child: its next
    read waits for ever (an S3File asks its filesystem, which raises instead)."""
    import fsspec

    url = http_server.put("clip.mp4", clip)
    f = fsspec.filesystem("http").open(url, block_size=1000)
    f.read(10)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=lambda: (f.seek(100_000), f.read(10)))
    child.start()
    child.join(3)
    hung = child.is_alive()
    child.kill()
    child.join()
    f.close()
    assert hung


# -- moto's process ----------------------------------------------------------------------------


def test_moto_server_stop_leaves_no_process(moto_server) -> None:
    from servers import MotoServer

    server = MotoServer().start()
    proc = server._proc
    server.stop()
    assert proc.poll() is not None


@pytest.mark.slow
def test_moto_dies_with_the_test_process(moto_server, tmp_path: Path) -> None:
    """A test process killed with SIGKILL runs no teardown; moto sees its stdin close."""
    tests = Path(__file__).resolve().parent
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from servers import MotoServer;"
            "s = MotoServer().start(); print(s._proc.pid, flush=True); time.sleep(60)",
            str(tests),
        ],
        stdout=subprocess.PIPE,
    )
    moto_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{moto_pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return  # gone, reaped by its new parent
        if state == "Z":
            return  # exited; a container's init may be slow to reap
        time.sleep(0.1)
    os.kill(moto_pid, signal.SIGKILL)
    pytest.fail("moto outlived the process that started it")
