"""Real servers for the tests of remote inputs (``s3://`` and ``http(s)://`` read through
fsspec with range requests), started by the tests on 127.0.0.1 and stopped after them: no
test needs the internet. Measured with fsspec and s3fs 2026.9.0, aiohttp 3.14.5, aiobotocore
3.10.0, botocore 1.43.117, moto 5.2.6, Python 3.11, on a shared 2-core machine.

The fixtures (tests/conftest.py)
--------------------------------
``http_server`` (per test): a :class:`RangeHTTPServer` over an empty folder of the test::

    url = http_server.put("clips/a.mp4", video)   # copies it under .root; its URL
    http_server.fail(url, 403)                      # or 404, 500...; times=N: the next N only
    http_server.throttle(url, times=2, retry_after=1)  # 503 + Retry-After, then normal
    http_server.cut(url, after_bytes=4096)          # next GET: 4 KiB of the body, then closed
    http_server.delay(url, 30)                      # next request waits 30 s (stop() wakes it)
    http_server.traffic(url).bytes_sent <= size // 3  # also .requests and .log

It answers GET and HEAD with ``Accept-Ranges: bytes``, ``ETag`` (size and mtime),
``Last-Modified``, ``Content-Length``; ``Range: bytes=a-b``, ``a-`` and ``-n`` give 206 with
``Content-Range``, a start past the end (or ``-0``) 416 with ``Content-Range: bytes */size``;
several ranges or a malformed header get the whole file (200), as RFC 9110 allows. No
listings. Faults are kept per path and used up in the order they were added; a cut waits for a
GET (fsspec's HEAD does not use it up).

``s3`` (per test): moto, emptied, behind a fresh :class:`RangeHTTPServer` proxy that counts
and injects faults the same way (paths are ``bucket/key``; the errors it makes up carry S3's
XML: ``AccessDenied``, ``NoSuchKey``, ``SlowDown``, ``InternalError``). Code under test finds
it through the environment alone (monkeypatched for the test): ``AWS_ENDPOINT_URL_S3`` and
``AWS_ENDPOINT_URL`` = the proxy, dummy ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION=us-east-1``, ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE`` pointing
at nothing, ``AWS_EC2_METADATA_DISABLED=true``; ``AWS_PROFILE``, session tokens,
``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE`` and ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` unset::

    urls = s3.upload("videos", [a, b], prefix="batch")  # ["s3://videos/batch/a.mp4", ...]
    urls = s3.upload("videos", {"x.mp4": a})            # key names of your choosing
    s3.deny(urls[0])             # GetObject and HeadObject answer 403
    s3.proxy.throttle(urls[1], times=2); s3.proxy.traffic(urls[1]).bytes_sent
    s3.client()                  # boto3, straight to moto: setup never meets the faults
    s3.endpoint_url, s3.credentials, s3.env, s3.storage_options  # for explicit configuration

``moto_server`` (session) is the moto process behind ``s3``; tests need not name it. Both
fixtures drop fsspec's cached S3/HTTP filesystem instances before and after the test:
fsspec returns the instance made earlier with the same arguments, the environment is not one
of them, so an ``S3FileSystem()`` of an earlier test would talk to that test's stopped proxy.
Code under test that keeps its own filesystem objects across tests must do the same.

The endpoint through the environment
------------------------------------
s3fs 2026.9 passes ``endpoint_url=None`` through to botocore, which then honours
``AWS_ENDPOINT_URL_S3``, and ``AWS_ENDPOINT_URL`` alone too: ``s3fs.S3FileSystem()``,
``fsspec.filesystem("s3")`` and ``fsspec.open("s3://...")`` with no arguments all reach the
server (checked one variable at a time, in fresh processes). They are read when a filesystem
instance makes its client, hence the cache clearing above. Also working:
``FSSPEC_S3_ENDPOINT_URL`` (but fsspec reads ``FSSPEC_*`` once, when fsspec is imported: too
late for a monkeypatch), ``fsspec.config.conf["s3"] = {"endpoint_url": url}`` or
``{"client_kwargs": {"endpoint_url": url}}``. ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``
makes botocore ignore the variables and go to AWS, so the fixture unsets it. Keywords of
``fsspec.open(url, ...)`` go to ``S3FileSystem()``, which hands those it does not know to
botocore's session: ``block_size=`` is a TypeError there, the spelling is
``default_block_size=`` (50 MiB by default: one read of a small file fetches all of it).

Denied objects
--------------
moto 5.2.6 enforces an explicit Deny in a bucket policy on object requests without its IAM
emulation (no ``INITIAL_NO_AUTH_ACTION_COUNT``, no registered users): :meth:`S3.deny` adds one
for the key. moto answers 403 with an empty body (AWS sends ``AccessDenied`` XML), and names
HEAD's action ``s3:HeadObject`` where AWS checks ``s3:GetObject`` for both, so the statement
names both. For S3's own body on a GET, ``s3.proxy.fail(url, 403)``.

Start-up times
--------------
moto in a process of its own (``python -c`` with ``ThreadedMotoServer(port=0)``: the OS picks
the port, the child prints it): 0.6 to 1.0 s to the first answer, paid once per session;
``/moto-api/reset`` 2 ms; stop 10 ms. In this process it would cost as much (``import
moto.server`` 0.6 to 0.8 s, start 2 ms, stop 0.5 s), shares the GIL with the code under test
and would be copied into forked children, so it runs apart; it exits when its stdin closes,
which :meth:`MotoServer.stop` does and the death of the test process does too (even by
SIGKILL, which runs no teardown). A :class:`RangeHTTPServer` starts and answers in ~10 ms
and stops in ~50 ms. Per test, ``s3`` costs ~50 ms; the quick tests of test_servers.py run in
~10 s, most of it s3fs and boto3 themselves (a boto3 client takes 0.1 s to make).

What the clients raise
----------------------
fsspec's ``HTTPFileSystem`` (``fsspec.filesystem("http")``; ``info`` and ``open``, which calls
it, against ``cat_file``/``cat_ranges``/reads of an open file):

================  ======================================  ======================================
failure           info() / open()                         cat_file() / f.read()
================  ======================================  ======================================
404               ``FileNotFoundError(url)``              ``FileNotFoundError(url)``
403               ``FileNotFoundError(url)``, __cause__   ``aiohttp.ClientResponseError``
                  a ``ClientResponseError`` with .status  (.status 403, .message "Forbidden")
                  403: every HTTP error and refused
                  connection looks like a missing file
503 + Retry-After same, cause .status 503                 ``ClientResponseError`` .status 503,
                                                          .headers["Retry-After"]; no retry
other 4xx/5xx     same                                    ``ClientResponseError`` (416 too)
refused           ``FileNotFoundError``, cause            ``aiohttp.ClientConnectorError``, an
                  ``ClientConnectorError``                OSError, errno 111: "Cannot connect
                                                          to host 127.0.0.1:P ssl:default..."
cut mid-body      (HEAD has no body)                      ``aiohttp.ClientPayloadError`` (not an
(FIN or RST)                                              OSError): "Response payload is not
                                                          completed: <ContentLengthError: 400,
                                                          message='Not enough data to satisfy
                                                          content length header (received K of
                                                          N bytes)'>"; no retry
stall             a HEAD that times out falls back to a   ``fsspec.exceptions.FSTimeoutError``
                  GET (below); both fail:                 (a TimeoutError on Python 3.11+; on
                  ``FileNotFoundError``                   3.10 asyncio's, not an OSError), empty
                                                          message, cause aiohttp's
                                                          ``SocketTimeoutError``
================  ======================================  ======================================

HTTPFileSystem never retries. Its timeouts are aiohttp's defaults unless
``client_kwargs={"timeout": aiohttp.ClientTimeout(sock_read=..., sock_connect=...)}``: 300 s
in all, so a stalled server holds a read for five minutes. When HEAD fails in any way,
``info()`` tries a GET of the whole file without a Range and reads only its headers: the
server still sends (and counts) up to the whole body, so tests that bound ``bytes_sent`` must
not fault the HEAD.

s3fs (``S3FileSystem()`` from the environment; botocore's legacy retry mode, 5 attempts, and
s3fs's own ``retries = 5``, a class attribute, not an argument):

==================  ==========================================================================
failure             what is raised (after how long against this server, with the defaults)
==================  ==========================================================================
no such key         ``FileNotFoundError``: from info()/open() the path ("videos/x.mp4"), no
                    cause; from cat_file() "The specified key does not exist.", __cause__
                    botocore's ``NoSuchKey`` (a ``ClientError``)
no such bucket      ``FileNotFoundError("The specified bucket does not exist")``
403                 ``PermissionError("Forbidden")`` (HEAD, or moto's empty body), cause a
                    ``ClientError`` with code "403"; S3's GET body gives
                    ``PermissionError("Access Denied")``, cause ``AccessDenied``
503 SlowDown        retried by botocore (exponential backoff, Retry-After ignored) inside
                    s3fs's retries: 25 requests, ~40 s, then ``OSError(errno.EBUSY,
                    "Please reduce your request rate.")``, cause ``ClientError`` "(SlowDown)
                    ... (reached max retries: 4)". Two 503s are ridden out (~1.4 s).
500 InternalError   botocore's 5 attempts (~5 s), s3fs does not retry: ``OSError(EREMOTEIO
                    = 121, "We encountered an internal error. Please try again.")``
416                 ``OSError(errno.EINVAL, "The requested range is not satisfiable")``
cut mid-body        botocore does not retry a body; s3fs does, 5 times (~2 s), then raises
(FIN or RST)        aiohttp's ``ClientPayloadError`` as is (untranslated, not an OSError),
                    message as for HTTP. One cut is ridden out.
stall               ``botocore.exceptions.ReadTimeoutError("Read timeout on endpoint URL:
                    ...")``: an OSError but not a TimeoutError; cause aiohttp's
                    ``SocketTimeoutError``. Retried 125 times: botocore's 5 attempts inside
                    s3fs's retries around get_object inside s3fs's retries around the read.
                    With ``config_kwargs={"read_timeout": 1}``: 342 s; with the default
                    read_timeout of 60 s, two hours.
refused             ``botocore.exceptions.EndpointConnectionError("Could not connect to the
                    endpoint URL: ...")``, not an OSError, cause aiohttp's
                    ``ClientConnectorError``; retried, ~7 s
==================  ==========================================================================

So code that classifies must look at more than OSError subclasses: aiohttp's
``ClientPayloadError``/``ClientResponseError`` and botocore's ``BotoCoreError`` come through
untranslated. Bound the retries for tests and for batch runs: ``AWS_MAX_ATTEMPTS=1`` (or
``config_kwargs={"retries": {"total_max_attempts": 1}}``: in the legacy mode
``max_attempts`` counts retries, 1 makes two requests) and ``fs.retries = 1`` on the instance
make each failure above one request (tests/test_servers.py does that), and keep a deadline of
one's own around a read.

Fork (DataLoader workers)
-------------------------
Checked with ``multiprocessing`` fork children after the parent had read through the same
filesystems: a filesystem instance made in the parent raises ``RuntimeError("This class is
not fork-safe")`` in the child (S3 and HTTP), and so does an S3 file the parent opened. An
HTTP file the parent opened is worse: it keeps the parent's event loop, which no thread runs in
the child, and its next read that needs the network waits for ever. What works in the child:
``fsspec.open(url)``, ``fsspec.filesystem("s3")``, ``s3fs.S3FileSystem()``, or unpickling the
parent's instance: fsspec clears its instance cache and its loop thread after a fork, so these
make fresh ones (first read 0.3 s for S3, with its client). The parent's instances keep working.
So pass URLs (or pickled filesystems) to workers and open files in the worker.

This is not a test file (no ``test_`` prefix): pytest does not collect it.
"""

from __future__ import annotations

import email.utils
import http.client
import http.server
import json
import mimetypes
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

#: Dummy credentials and region the tests give code under test through the environment.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: How long a server may take to start before the test fails (seconds; moto takes ~0.7 s).
START_TIMEOUT_S = 30.0
#: Body bytes sent per write: a cut or a client that gives up stops the body within this.
CHUNK = 64 * 1024
#: Headers a proxy must not forward (RFC 9110 7.6.1), and those it sets itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
    "date",
    "server",
}
#: The S3 error code of a status the proxy makes up, so that botocore parses it like S3's own.
_S3_CODES = {
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def served_key(path_or_url: str) -> str:
    """The one spelling of a served file in :class:`RangeHTTPServer`'s faults and traffic:
    its URL path without the leading ``/``: ``clips/a.mp4`` for
    ``http://127.0.0.1:PORT/clips/a.mp4``, ``bucket/key`` for ``s3://bucket/key`` (the
    proxy in front of moto sees path-style requests)."""
    parts = urlsplit(path_or_url)
    if parts.scheme in ("http", "https"):
        return unquote(parts.path).lstrip("/")
    if parts.scheme:
        return (parts.netloc + parts.path).lstrip("/")
    return path_or_url.lstrip("/")


@dataclass
class Fault:
    """What the server does instead of answering normally; see the ``fail``/``throttle``/
    ``cut``/``delay`` methods of :class:`RangeHTTPServer`."""

    status: int | None = None
    retry_after: int | None = None
    cut_after: int | None = None
    reset: bool = False
    delay_s: float = 0.0
    #: Requests left that get this fault; None: every request.
    times: int | None = None


@dataclass
class Traffic:
    """What one path was sent: every request (HEAD too), and the body bytes (headers not
    counted) written to its connections, counted before each write so that a client that
    has read them finds them counted (a write that fails, the client gone, counts too)."""

    requests: int = 0
    bytes_sent: int = 0
    #: (method, Range header or None, status) of each request, in the order they came; the
    #: status is None while unanswered (a delay the client did not wait for, or the stop).
    log: list[tuple[str, str | None, int | None]] = field(default_factory=list)


class RangeHTTPServer(http.server.ThreadingHTTPServer):
    """An HTTP/1.1 server on 127.0.0.1 that serves the files under ``root`` with byte ranges,
    or forwards every request to ``upstream`` (moto) when it is given, counting per path what
    it sends and answering with the faults a test asks for.

    Use as a context manager, or :meth:`start` and :meth:`stop`. Paths are spelled as
    :func:`served_key` says; the methods also take full URLs.
    """

    daemon_threads = True

    def __init__(self, root: Path | None = None, upstream: str | None = None) -> None:
        if (root is None) == (upstream is None):
            raise ValueError("give root (serve a folder) or upstream (proxy), not both")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = None if root is None else Path(root).resolve()
        self.upstream = upstream
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}
        self._traffic: dict[str, Traffic] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def url_of(self, path: str) -> str:
        """The URL of a file under ``root``, e.g. ``url_of("clips/a.mp4")``."""
        return f"{self.url}/{urllib.request.pathname2url(served_key(path))}"

    def put(self, name: str, source: Path) -> str:
        """Copy ``source`` to ``root/name`` and return its URL."""
        assert self.root is not None, "a proxy serves no folder"
        target = self.root / served_key(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return self.url_of(name)

    def start(self) -> RangeHTTPServer:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name="range-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake delayed answers, close the listening socket and the connections
        clients keep alive (their handler threads would go on answering on them)."""
        self._stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile

    def __enter__(self) -> RangeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults, each for one path and added after those it already has -------------------

    def fail(
        self, path: str, status: int, *, times: int | None = None, retry_after: int | None = None
    ) -> None:
        """Answer ``status`` (404, 403, 500, 503...) to the next ``times`` requests (None:
        all), with ``Retry-After: retry_after`` when given."""
        self._add(path, Fault(status=status, retry_after=retry_after, times=times))

    def throttle(self, path: str, *, times: int, retry_after: int = 1) -> None:
        """503 with ``Retry-After`` for the next ``times`` requests (S3's ``SlowDown``)."""
        self.fail(path, 503, times=times, retry_after=retry_after)

    def cut(
        self, path: str, after_bytes: int, *, times: int | None = 1, reset: bool = False
    ) -> None:
        """Send the headers (with the full Content-Length) and ``after_bytes`` of the body,
        then close the connection: a FIN, or a TCP RST when ``reset``."""
        self._add(path, Fault(cut_after=after_bytes, reset=reset, times=times))

    def delay(self, path: str, seconds: float, *, times: int | None = 1) -> None:
        """Wait ``seconds`` before answering (the answer is then normal): a timeout for a
        client whose limit is shorter. :meth:`stop` ends the wait."""
        self._add(path, Fault(delay_s=seconds, times=times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, path: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(served_key(path), []).append(fault)

    def _take_fault(self, key: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(key, []):
                if fault.cut_after is not None and method == "HEAD":
                    continue  # no body to cut: the fault waits for a GET
                if fault.times is None or fault.times > 0:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # -- traffic -----------------------------------------------------------------------------

    def traffic(self, path: str) -> Traffic:
        """What was sent for ``path`` so far (a copy; zeros when never asked for)."""
        with self._lock:
            t = self._traffic.get(served_key(path), Traffic())
            return Traffic(t.requests, t.bytes_sent, list(t.log))

    def _arrived(self, key: str, method: str, rng: str | None) -> int:
        """Count a request; the index of its entry in the path's log."""
        with self._lock:
            t = self._traffic.setdefault(key, Traffic())
            t.requests += 1
            t.log.append((method, rng, None))
            return len(t.log) - 1

    def _answered(self, key: str, index: int, status: int) -> None:
        with self._lock:
            method, rng, _ = self._traffic[key].log[index]
            self._traffic[key].log[index] = (method, rng, status)

    def _sent(self, key: str, n: int) -> None:
        with self._lock:
            self._traffic[key].bytes_sent += n

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (its timeout, a cut it caused) is part of the tests.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeHTTPServer
    # Headers and body go out in separate writes: with Nagle's algorithm each answer waited
    # for the client's delayed ACK, 40 ms a request (measured: 44 ms a 16 KiB range).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        body = self._request_body()
        key = unquote(urlsplit(self.path).path).lstrip("/")
        self._entry = self.server._arrived(key, self.command, self.headers.get("Range"))
        fault = self.server._take_fault(key, self.command)
        if fault is not None and fault.delay_s and self.server._stopping.wait(fault.delay_s):
            self.close_connection = True
            return
        if fault is not None and fault.status is not None:
            self._error(key, fault.status, retry_after=fault.retry_after)
        elif self.server.upstream is not None:
            self._forward(key, body, fault)
        elif self.command in ("GET", "HEAD"):
            self._file(key, fault)
        else:
            self._error(key, 405)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

    def _request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _error(self, key: str, status: int, *, retry_after: int | None = None) -> None:
        if self.server.upstream is not None:
            code, message = _S3_CODES.get(status, (str(status), http.client.responses[status]))
            text = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<Key>{key}</Key><RequestId>test</RequestId></Error>"
            )
            body, ctype = text.encode(), "application/xml"
        else:
            body, ctype = f"{status} {http.client.responses[status]}\n".encode(), "text/plain"
        headers = {"Content-Type": ctype}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self._send(key, status, headers, body)

    def _file(self, key: str, fault: Fault | None) -> None:
        root = self.server.root
        assert root is not None
        path = (root / key).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            self._error(key, 404)
            return
        st = path.stat()
        size = st.st_size
        headers = {
            "Content-Type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{size:x}-{st.st_mtime_ns:x}"',
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        span = _byte_range(self.headers.get("Range"), size)
        if span is None:
            status, start, end = 200, 0, size
        elif span[0] >= size:
            headers["Content-Range"] = f"bytes */{size}"
            self._send(key, 416, headers, b"")
            return
        else:
            status, (start, end) = 206, span
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        self._head(key, status, headers)
        if self.command == "GET":
            with path.open("rb") as f:
                f.seek(start)
                self._body(key, iter(lambda: f.read(min(CHUNK, end - f.tell())), b""), fault)

    def _forward(self, key: str, body: bytes, fault: Fault | None) -> None:
        upstream = urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        try:
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
            }  # Host included: the signature covers it
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
        if self.command == "HEAD":
            out["Content-Length"] = resp.getheader("Content-Length", "0")
        else:
            out["Content-Length"] = str(len(data))
        self._head(key, resp.status, out)
        if self.command != "HEAD":
            self._body(key, (data[i : i + CHUNK] for i in range(0, len(data), CHUNK)), fault)

    def _send(self, key: str, status: int, headers: dict[str, str], body: bytes) -> None:
        headers["Content-Length"] = str(len(body))
        self._head(key, status, headers)
        if self.command != "HEAD":
            self._body(key, [body], None)

    def _head(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        self.server._answered(key, self._entry, status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _body(self, key: str, chunks: Iterable[bytes], fault: Fault | None) -> None:
        left = None if fault is None else fault.cut_after
        for chunk in chunks:
            if left is not None:
                chunk = chunk[:left]
                left -= len(chunk)
            self.server._sent(key, len(chunk))
            self.wfile.write(chunk)
            if left == 0:
                break
        if left is not None:  # the cut
            self.wfile.flush()
            if fault is not None and fault.reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``Range: bytes=...`` header, clamped to ``size``; None
    to send the whole file (no header, several ranges, or one we do not understand, as RFC
    9110 allows); a start at or past ``size`` means 416."""
    m = _RANGE.fullmatch((header or "").strip())
    if m is None or m.groups() == ("", ""):
        return None
    first, last = m.groups()
    if first == "":  # bytes=-n: the last n bytes
        n = int(last)
        return (size, size) if n == 0 else (max(size - n, 0), size)
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None
    return start, end


_MOTO_MAIN = """
import logging, os, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
sys.stdin.read()  # until the test process closes the pipe, or dies
os._exit(0)
"""


class MotoServer:
    """moto's S3 (all of moto's services, in fact) in a process of its own on 127.0.0.1.

    The OS picks the port (the child prints it); the child exits when its stdin reaches EOF,
    which :meth:`stop` causes and so does the death of the test process, however it dies:
    no moto is ever left behind.
    """

    def __init__(self) -> None:
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes]

    def start(self) -> MotoServer:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self._proc.stdout is not None
        timer = threading.Timer(START_TIMEOUT_S, self._proc.kill)
        timer.start()
        try:
            port = self._proc.stdout.readline().strip()
        finally:
            timer.cancel()
        if not port.isdigit():
            self.stop()
            self._log.seek(0)
            raise RuntimeError(f"moto did not start:\n{self._log.read().decode(errors='replace')}")
        self.url = f"http://127.0.0.1:{int(port)}"
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._log.close()

    def reset(self) -> None:
        """Forget every bucket and object (moto's ``/moto-api/reset``)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3:
    """An S3 endpoint for one test: moto behind a :class:`RangeHTTPServer` proxy.

    Code under test finds it through :attr:`env` alone (the fixture sets it); the helpers
    here talk to moto directly, so faults set on :attr:`proxy` never hit them.
    """

    def __init__(self, moto: MotoServer, proxy: RangeHTTPServer, config_dir: Path) -> None:
        self.moto = moto
        #: Between code under test and moto: its traffic per ``bucket/key``, and its faults.
        self.proxy = proxy
        self.endpoint_url = proxy.url
        self._client = None
        #: The dummy AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
        self.credentials = dict(AWS_ENV)
        #: What the fixture sets (None: unsets) so that boto3, aiobotocore and s3fs find the
        #: dummy credentials and this endpoint, and nothing of the user's own AWS
        #: configuration (``config_dir`` holds no files: the config paths point into it).
        self.env: dict[str, str | None] = {
            **AWS_ENV,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": str(config_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_SECURITY_TOKEN": None,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": None,  # "true" would send s3fs to AWS
            "AWS_MAX_ATTEMPTS": None,
            "AWS_RETRY_MODE": None,
        }

    @property
    def storage_options(self) -> dict:
        """The same endpoint and credentials as s3fs arguments, for code that takes them
        explicitly (``fsspec.open(url, **s3.storage_options)``)."""
        return {
            "key": AWS_ENV["AWS_ACCESS_KEY_ID"],
            "secret": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": AWS_ENV["AWS_DEFAULT_REGION"]},
        }

    def client(self):
        """A boto3 S3 client straight to moto (no proxy, no faults), made once (0.1 s)."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.moto.url,
                aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                region_name=AWS_ENV["AWS_DEFAULT_REGION"],
            )
        return self._client

    def upload(
        self, bucket: str, files: Iterable[Path] | Mapping[str, Path], prefix: str = ""
    ) -> list[str]:
        """Create ``bucket`` (if need be) and put each file under ``prefix`` (its name, or the
        key a mapping gives it); returns their ``s3://bucket/prefix/name`` URLs in order."""
        client = self.client()
        if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=bucket)
        items = files.items() if isinstance(files, Mapping) else ((p.name, p) for p in files)
        urls = []
        for name, path in items:
            key = f"{prefix.strip('/')}/{name}".lstrip("/")
            client.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())
            urls.append(f"s3://{bucket}/{key}")
        return urls

    def deny(self, url: str) -> None:
        """Make one object unreadable: a bucket policy with an explicit Deny of GetObject and
        HeadObject on its ARN (moto enforces that without IAM emulation: 403, empty body).
        Each call adds its statement to those the bucket already has."""
        from botocore.exceptions import ClientError

        bucket, _, key = served_key(url).partition("/")
        client = self.client()
        try:
            policy = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError:  # NoSuchBucketPolicy
            policy = {"Version": "2012-10-17", "Statement": []}
        policy["Statement"].append(
            {
                "Effect": "Deny",
                "Principal": "*",
                # moto names HEAD's action s3:HeadObject; AWS checks s3:GetObject for both.
                "Action": ["s3:GetObject", "s3:HeadObject"],
                "Resource": f"arn:aws:s3:::{bucket}/{key}",
            }
        )
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def forget_filesystems() -> None:
    """Drop fsspec's cached S3 and HTTP filesystem instances.

    fsspec hands back the instance made earlier with the same arguments, and the
    environment is not one of them: an ``S3FileSystem()`` made in an earlier test would still
    talk to that test's proxy, stopped since, and keep its listings cache.
    """
    for module, name in (
        ("s3fs", "S3FileSystem"),
        ("fsspec.implementations.http", "HTTPFileSystem"),
    ):
        if module in sys.modules:
            getattr(sys.modules[module], name).clear_instance_cache()
