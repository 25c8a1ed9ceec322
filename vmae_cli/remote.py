"""Videos in object storage and on the web: URLs as inputs (``s3://``, ``gs://``, ``az://``,
``https://``, any protocol fsspec knows).

A URL is read through fsspec (the optional extra ``vmae-cli[remote]``; ``s3fs``, ``gcsfs`` or
``adlfs`` as the user installs them) with range requests: :class:`RangeFile` is a seekable
file object that the decoders open as they open a local file (PyAV and OpenCV both read
Python file objects), so a seeking decoder fetches only the bytes it needs and the sampled
frames are exactly those of a local copy. What a URL costs is counted per video
(:func:`take_fetched`: bytes and requests), and a failure to fetch is remembered
(:attr:`RemoteObject.error`) so that a cut connection becomes a row saying so, never a
shorter video.

Credentials come from each store's own chain (environment, config files, instance roles):
vmae never reads or passes them. They can still ride in a URL (``https://user:pass@host``, a
signed URL's query), so messages show :func:`public_url` and :func:`redact` every text that
comes from a store's library.

Nothing here runs at import: fsspec is imported when a URL is first opened.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import VmaeError
from .results import (
    STATUS_EMPTY,
    STATUS_NOT_A_FILE,
    STATUS_NOT_FOUND,
    STATUS_TIMEOUT,
    STATUS_UNREADABLE,
    Failure,
    FileStamp,
)

#: ``scheme://`` at the start of an input: a URL, not a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Schemes that name one object and cannot be listed: every such URL is one video.
UNLISTABLE_SCHEMES = frozenset({"http", "https", "ftp"})

#: The least one range request fetches (bytes). Small enough that a seek fetches little past
#: what it decodes (a 2 s stretch of a 1 Mbit/s video is 250 KB), while the read-ahead makes
#: a long sequential read few requests.
BLOCK_BYTES = 16 * 1024
#: The most one request fetches (bytes): the read-ahead grows from BLOCK_BYTES while reads stay
#: sequential, up to this.
MAX_READ_AHEAD_BYTES = 4 * 1024 * 1024
#: The most one object's cache holds in memory (bytes); the stretches used longest ago go
#: first, to a temporary file.
CACHE_BYTES = 32 * 1024 * 1024
#: The most one object's temporary file holds (bytes); past it, old stretches are dropped.
SPILL_BYTES = 8 * 1024 * 1024 * 1024
#: Tries of one range request that failed for a reason that may pass (a timeout, a cut
#: connection, throttling), the first included.
FETCH_TRIES = 4
#: The wait before the second try (seconds), doubled before each further one.
FETCH_BACKOFF_S = 0.5
#: Objects whose bytes a process keeps (its worker decodes one video at a time).
_OBJECTS_KEPT = 2


class RemoteInputError(VmaeError, ValueError):
    """A URL input that cannot be used as asked (a protocol no installed package reads)."""


def is_url(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(path, str) and _URL.match(path) is not None


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case."""
    return url.split("://", 1)[0].lower()


def public_url(url: str, *, keep_query: bool = False) -> str:
    """``url`` as rows and messages may show it: scheme and host in lower case, no user or
    password, no fragment, and no query string (a signed URL's signature) unless
    ``keep_query``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    elif "@" not in parts.netloc:
        host = parts.netloc.lower()  # a bucket name may hold characters hostname drops
    return urlunsplit(
        (parts.scheme.lower(), host, parts.path, parts.query if keep_query else "", "")
    )


#: A URL inside a text: from its scheme to the first space or quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
#: Query parameters that carry a credential, whatever the URL (AWS, GCS, Azure SAS, tokens).
_SECRET_PARAMS = re.compile(
    r"(?i)\b(x-amz-[a-z-]+|x-goog-[a-z-]+|signature|sig|awsaccesskeyid|googleaccessid|"
    r"access_token|token|key|se|sp|sv|sr|st|skoid|sktid|skt|ske|sks|skv)=[^&\s'\"]*"
)


def redact(text: str) -> str:
    """``text`` with every URL in it shown by :func:`public_url` and any credential-looking
    query parameter left elsewhere blanked: what a store's library says may name the signed
    URL or a user and password."""
    text = _URL_IN_TEXT.sub(lambda m: public_url(m.group(0)), text)
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}=...", text)


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem that reads ``url`` and the path it knows the object by.

    Raises :class:`~vmae_cli.extras.MissingExtraError` without fsspec, and
    :class:`RemoteInputError` naming the package to install when fsspec knows the protocol
    but its package (``s3fs``, ``gcsfs``, ``adlfs``, ``aiohttp``) is missing.
    """
    from .extras import require

    require("fsspec", "remote", inputs=public_url(url))
    import fsspec.core

    scheme = scheme_of(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **_storage_options(scheme))
    except (ImportError, ValueError) as exc:  # a package missing; "Protocol not known"
        raise RemoteInputError(
            f"inputs={public_url(url)!r}: {redact(str(exc))}",
            options=("inputs",),
            value=public_url(url),
        ) from None
    if scheme in ("s3", "s3a"):
        fs.retries = 1  # s3fs's own tries, a class attribute: vmae's tries count instead
    _FILESYSTEM_CLASSES.add(type(fs))
    return fs, path


#: The fsspec filesystem classes this process used. fsspec keeps one instance per class and
#: options for the process's life, with its pooled connections and its listings;
#: :func:`reset` drops them, so that each run connects and lists afresh, as a cron job's new
#: process does (measured: in one test process, a second run's first listing waited the read
#: timeout, 30 s, on a connection the first run had left in the pool, then was tried again).
_FILESYSTEM_CLASSES: set[type] = set()


#: Seconds to connect, and to wait for the next bytes of an answer, before a request fails
#: (and is tried again, up to :data:`FETCH_TRIES`). Without them aiohttp waits 300 s, and
#: s3fs's own retries times botocore's would make a stalled read 125 tries.
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 30


def _storage_options(scheme: str) -> dict[str, Any]:
    """What vmae asks of a store's filesystem: bounded timeouts, and one try per request
    where the library would retry on its own (vmae's tries, :data:`FETCH_TRIES`, back off
    and count). Credentials and endpoints stay the store's own chain."""
    if scheme in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
        )
        return {"client_kwargs": {"timeout": timeout}}
    if scheme in ("s3", "s3a"):
        return {
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
                "retries": {"total_max_attempts": 1},
            }
        }
    return {}


def check_urls(paths: list[str]) -> None:
    """Refuse, before any work, URLs whose protocol cannot be read here (see
    :func:`filesystem`): one of each scheme is tried."""
    seen: set[str] = set()
    for path in paths:
        if is_url(path) and scheme_of(path) not in seen:
            seen.add(scheme_of(path))
            filesystem(path)


# --- what a store says of an object -------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """What a store says of an object without reading it."""

    size: int
    modified_s: int | None  # the last modification, whole seconds since the epoch
    version: str  # the version id, generation or ETag: what changes when the bytes do

    def stamp(self) -> FileStamp:
        """The :class:`~vmae_cli.results.FileStamp` rows and resume compare: the size, and
        as ``mtime_ns`` the last modification to the second with a digest of the version in
        its nanoseconds, so an object rewritten within the same second with the same size is
        still seen as changed (stores give the time to the second, and an ETag or version is
        what really changes)."""
        seconds = self.modified_s or 0
        nanos = 0
        if self.version:
            digest = hashlib.blake2b(self.version.encode(), digest_size=8).digest()
            nanos = int.from_bytes(digest, "big") % 1_000_000_000
        return FileStamp(self.size, seconds * 1_000_000_000 + nanos)


#: Keys stores give an object's version under (s3fs, gcsfs, adlfs, fsspec's HTTP), in order
#: of preference. The ETag first: a listing and a single object's info both give it, where a
#: version id may come only with the latter (a stamp must not differ by who asked).
_VERSION_KEYS = ("ETag", "etag", "generation", "VersionId", "version_id", "md5Hash", "Content-MD5")
_MODIFIED_KEYS = ("LastModified", "last_modified", "updated", "mtime", "Last-Modified", "modified")


def object_info(info: dict[str, Any]) -> ObjectInfo:
    """An fsspec ``info`` dict as :class:`ObjectInfo` (keys differ between stores)."""
    version = next((str(info[k]) for k in _VERSION_KEYS if info.get(k)), "")
    modified = next((info[k] for k in _MODIFIED_KEYS if info.get(k)), None)
    return ObjectInfo(int(info.get("size") or 0), _seconds(modified), version.strip('"'))


def _seconds(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    with contextlib.suppress(ValueError):
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    from email.utils import parsedate_to_datetime

    with contextlib.suppress(TypeError, ValueError):
        return int(parsedate_to_datetime(text).timestamp())
    return None


def failure_of(exc: BaseException, url: str, doing: str) -> Failure:
    """The row's failure for an exception a store's library raised while ``doing``."""
    said = redact(str(exc)) or type(exc).__name__
    shown = public_url(url)
    code = _status_code(exc)
    if isinstance(exc, IsADirectoryError):
        return Failure(STATUS_NOT_A_FILE, f"not a video file: {shown} is a prefix")
    if isinstance(exc, PermissionError) or code in (401, 403):
        return Failure(STATUS_UNREADABLE, f"access denied {doing}: {said}")
    if code is None and (cause := _passing_cause(exc)) is not None:
        # fsspec's HTTP info() says FileNotFoundError for a stalled or refused connection
        # too, the real failure as its cause.
        said = redact(str(cause)) or type(cause).__name__
        if _is_timeout(cause):
            return Failure(STATUS_TIMEOUT, f"timed out {doing} ({FETCH_TRIES} tries): {said}")
        return Failure(
            STATUS_UNREADABLE,
            f"could not finish {doing} ({FETCH_TRIES} tries): {type(cause).__name__}: {said}",
        )
    if code == 404 or isinstance(exc, FileNotFoundError):
        return Failure(STATUS_NOT_FOUND, f"no such object: {shown}")
    if code is not None:
        return Failure(
            STATUS_UNREADABLE, f"the store answered {code} {doing} ({FETCH_TRIES} tries)"
        )
    return Failure(
        STATUS_UNREADABLE,
        f"could not finish {doing} ({FETCH_TRIES} tries): {type(exc).__name__}: {said}",
    )


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and its causes, nearest first (a few: a loop cannot hold it)."""
    for _ in range(6):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status an exception or its causes carry (aiohttp's ``status``, botocore's
    response): fsspec's HTTP ``info`` raises FileNotFoundError for any status, a 403 or a
    503 among them, with the real one as its cause."""
    for link in _chain(exc):
        # ``status``, not ``code``: a body cut short is aiohttp's ContentLengthError, whose
        # ``code`` 400 is its parser's, not the server's.
        status = getattr(link, "status", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
        response = getattr(link, "response", None)
        if isinstance(response, dict):
            code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(code, int):
                return code
    return None


def _is_timeout(exc: BaseException) -> bool:
    import asyncio

    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return True
    return "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()


#: Failures of a connection (not of the object): they may pass.
_CONNECTION_WORDS = ("timeout", "connect", "payload", "disconnect", "reset", "broken")


def _passing_cause(exc: BaseException) -> BaseException | None:
    """The timeout or connection failure in ``exc``'s chain, if one is there."""
    for link in _chain(exc):
        name = type(link).__name__.lower()
        if (
            _is_timeout(link)
            or isinstance(link, ConnectionError)
            or (any(word in name for word in _CONNECTION_WORDS))
        ):
            return link
    return None


def _may_pass(exc: BaseException) -> bool:
    """Whether trying again may succeed: a timeout, a cut connection, throttling or a
    server's error; not a missing or forbidden object."""
    code = _status_code(exc)
    if code is not None:
        return code in (408, 429) or code >= 500
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return _passing_cause(exc) is not None
    return True


# --- reading an object --------------------------------------------------------------------


@dataclass
class Fetched:
    """What reading one object cost: bytes fetched and range requests made (tries included)."""

    bytes: int = 0
    requests: int = 0
    failed: bool = False  # a request failed for good: the row has no stamp, resume redoes it

    def note(self, size: int) -> str:
        """The row's note: ``fetched 3.1 MiB of 12.0 MiB (26%) in 7 requests``."""
        share = f" ({100 * self.bytes / size:.0f}%)" if size else ""
        return (
            f"fetched {_amount(self.bytes)} of {_amount(size)}{share} in {self.requests} "
            f"request{'s' if self.requests != 1 else ''}"
        )


def _amount(n: float) -> str:
    """Bytes as a person reads them: ``812 B``, ``96.4 KiB``, ``3.1 MiB``, ``1.2 GiB``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


@dataclass
class RemoteObject:
    """One object as this process reads it: its info, a bounded cache of what was fetched, what
    reading it cost and the failure that stopped a read (``error``)."""

    url: str
    fs: Any
    path: str
    info: ObjectInfo
    fetched: Fetched = field(default_factory=Fetched)
    error: Failure | None = None
    #: Where each fetched stretch starts (sorted) and how long it is; its bytes are in memory
    #: (least recently used first, up to :data:`CACHE_BYTES`) or in the spill file.
    _starts: list[int] = field(default_factory=list)
    _lengths: dict[int, int] = field(default_factory=dict)
    _memory: OrderedDict[int, bytes] = field(default_factory=OrderedDict)
    _held: int = 0  # bytes in _memory
    _spilled: dict[int, int] = field(default_factory=dict)  # start -> offset in _spill
    _spill: Any = None  # a temporary file, made when memory first overflows
    _run: int = 0  # bytes fetched in the current sequential run
    _run_end: int = -1  # where the last fetch ended

    @property
    def size(self) -> int:
        return self.info.size

    def bytes_at(self, pos: int, sequential: bool = False) -> tuple[bytes, int]:
        """The cached stretch holding byte ``pos`` and ``pos``'s offset in it, fetched when
        missing: at least :data:`BLOCK_BYTES`, more while a reader goes on where it stopped
        past what was fetched (``sequential``; by half what the run has fetched, up to
        :data:`MAX_READ_AHEAD_BYTES`), so that a seeking decoder's stretches are fetched with
        little past their end and a long sequential read in a dozen requests. Returns
        ``(b"", 0)`` once a fetch failed for good (``error`` says why): a decoder that sees
        the end early is checked against ``error`` afterwards, and OpenCV crashes on an
        exception raised inside ``read``."""
        found = self._find(pos)
        if found is not None:
            return found
        if self.error is not None or pos >= self.size:
            return b"", 0
        self._run = self._run if sequential and pos == self._run_end else 0
        want = min(max(BLOCK_BYTES, self._run // 2), MAX_READ_AHEAD_BYTES)
        end = min(self.size, pos + want, self._next_start(pos))
        if not self._fill(pos, end):
            return b"", 0
        self._run += end - pos
        return self._find(pos) or (b"", 0)

    def prefetch(self, start: int, end: int) -> None:
        """Fetch what of bytes ``start:end`` is not cached, each gap in one request (up to
        :data:`MAX_READ_AHEAD_BYTES`): a reader that knows what it will read (a seek plan's
        stretch) pays one request and nothing past it."""
        pos, end = max(0, start), min(end, self.size)
        while pos < end and self.error is None:
            found = self._find(pos)
            if found is not None:
                data, offset = found
                pos += len(data) - offset
                continue
            stop = min(end, pos + MAX_READ_AHEAD_BYTES, self._next_start(pos))
            if not self._fill(pos, stop):
                return
            pos = stop

    def _find(self, pos: int) -> tuple[bytes, int] | None:
        at = bisect.bisect_right(self._starts, pos) - 1
        if at < 0:
            return None
        first = self._starts[at]
        if pos >= first + self._lengths[first]:
            return None
        data = self._memory.get(first)
        if data is None:  # spilled: read back, and in memory again
            self._spill.seek(self._spilled[first])
            data = self._spill.read(self._lengths[first])
            self._remember(first, data)
        else:
            self._memory.move_to_end(first)
        return data, pos - first

    def _next_start(self, pos: int) -> int:
        """Where the first fetched stretch after ``pos`` begins (the size: none)."""
        at = bisect.bisect_right(self._starts, pos)
        return self._starts[at] if at < len(self._starts) else self.size

    def _fill(self, start: int, end: int) -> bool:
        data = self._fetch(start, end)
        if data is None:
            return False
        bisect.insort(self._starts, start)
        self._lengths[start] = len(data)
        self._run_end = end
        self._remember(start, data)
        return True

    def _remember(self, start: int, data: bytes) -> None:
        """Hold ``data`` in memory; what overflows :data:`CACHE_BYTES` goes to a temporary
        file (up to :data:`SPILL_BYTES`), not away: a decoder that reads a file whole before
        seeking in it (the index pass of MKV or WebM) would fetch it again otherwise."""
        self._memory[start] = data
        self._held += len(data)
        while self._held > CACHE_BYTES and len(self._memory) > 1:
            first, dropped = self._memory.popitem(last=False)
            self._held -= len(dropped)
            if first in self._spilled:
                continue
            if self._spill is None:
                self._spill = tempfile.TemporaryFile(prefix="vmae-remote-")  # noqa: SIM115 - closed by close()
            at = self._spill.seek(0, io.SEEK_END)
            if at + len(dropped) <= SPILL_BYTES:
                self._spill.write(dropped)
                self._spilled[first] = at
            else:  # gone: fetched again if read again
                self._starts.remove(first)
                del self._lengths[first]

    def close(self) -> None:
        """Drop what is held (the spill file included)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._memory.clear()
        self._spilled.clear()
        self._starts.clear()
        self._lengths.clear()
        self._held = 0

    def _fetch(self, start: int, end: int) -> bytes | None:
        """Bytes ``start:end``, tried :data:`FETCH_TRIES` times while the failure may pass
        (backing off: throttling asks for it); ``None`` with ``error`` set when they fail."""
        wait = FETCH_BACKOFF_S
        for attempt in range(FETCH_TRIES):
            self.fetched.requests += 1
            try:
                data = self.fs.cat_file(self.path, start=start, end=end)
            except Exception as exc:  # noqa: BLE001 - every store's library raises its own
                if attempt + 1 < FETCH_TRIES and _may_pass(exc):
                    time.sleep(wait)
                    wait *= 2
                    continue
                self.error = failure_of(exc, self.url, f"reading bytes {start}-{end - 1}")
                self.fetched.failed = True
                return None
            self.fetched.bytes += len(data)
            if len(data) == end - start:
                return data
            # A body cut short (a dropped connection some libraries do not raise for).
            if attempt + 1 < FETCH_TRIES:
                time.sleep(wait)
                wait *= 2
                continue
            self.error = Failure(
                STATUS_UNREADABLE,
                f"the connection kept ending early: bytes {start}-{end - 1} of "
                f"{public_url(self.url)} came {len(data)} bytes long ({FETCH_TRIES} tries)",
            )
            self.fetched.failed = True
        return None

    def open(self, *, payload_free: list[tuple[int, int]] | None = None) -> RangeFile:
        """A new reader at the object's start (see :class:`RangeFile`)."""
        return RangeFile(self, payload_free)


class RangeFile(io.BufferedIOBase):
    """A seekable, read-only file over a :class:`RemoteObject` (OpenCV takes only
    :class:`io.BufferedIOBase` readers). ``payload_free`` byte ranges read as zeros without
    a fetch: a demuxer that only needs an MP4's index reads its samples' bytes so."""

    def __init__(self, obj: RemoteObject, payload_free: list[tuple[int, int]] | None = None):
        super().__init__()
        self.obj = obj
        self.pos = 0
        self.payload_free = payload_free or []
        self._read_end = -1  # where the last read ended

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.obj.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        end = self.obj.size if size is None or size < 0 else min(self.obj.size, self.pos + size)
        sequential = self.pos == self._read_end
        parts = []
        while self.pos < end:
            zero_until = self._payload_end(self.pos)
            if zero_until is not None:
                step = min(end, zero_until) - self.pos
                parts.append(bytes(step))
                self.pos += step
                continue
            data, offset = self.obj.bytes_at(self.pos, sequential)
            if len(data) <= offset:
                break  # a failed fetch: the reader sees the end, ``obj.error`` says why
            piece = data[offset : offset + end - self.pos]
            parts.append(piece)
            self.pos += len(piece)
            sequential = True
        self._read_end = self.pos
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _payload_end(self, pos: int) -> int | None:
        for start, end in self.payload_free:
            if start <= pos < end:
                return end
        return None


#: The objects this process read last, newest last: a video's checks, probes and decoding
#: passes share one info request and one cache.
_OBJECTS: OrderedDict[str, RemoteObject] = OrderedDict()
#: Each object's cost so far, until :func:`take_fetched` takes it.
_FETCHED: dict[str, Fetched] = {}
#: Infos a listing gave, until the run asks for the object's stamp (no request then); the
#: oldest go past :data:`LISTED_KEPT` (a new video's is never asked for: its row is new).
_LISTED: OrderedDict[str, ObjectInfo] = OrderedDict()
#: Listed infos kept (about 300 bytes each): more than a resume looks up at once.
LISTED_KEPT = 200_000


def reset() -> None:
    """Forget every object, cost and listed info this process holds, and the filesystem
    instances fsspec keeps (:data:`_FILESYSTEM_CLASSES`): done in a forked child (the
    parent's filesystem objects are not fork-safe, fsspec says so and an HTTP file the
    parent opened hangs there) and as a run starts (its own connections and listings)."""
    _OBJECTS.clear()
    _FETCHED.clear()
    _LISTED.clear()
    for cls in _FILESYSTEM_CLASSES:
        cls.clear_instance_cache()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset)


def remote_object(url: str) -> RemoteObject:
    """The object ``url`` names, its info asked once per process (raises what the store's
    library raises: :func:`failure_of` words it)."""
    obj = _OBJECTS.get(url)
    if obj is not None:
        _OBJECTS.move_to_end(url)
        return obj
    fs, path = filesystem(url)
    fetched = _FETCHED.setdefault(url, Fetched())
    # A listing of an earlier run in this process must not answer for the object now (s3fs
    # answers info() from its listings, a missing key included).
    fs.invalidate_cache(path)
    info = _info(fs, path, fetched)
    if info.get("type") == "directory":
        raise IsADirectoryError(url)
    obj = RemoteObject(url, fs, path, object_info(info), fetched)
    _OBJECTS[url] = obj
    while len(_OBJECTS) > _OBJECTS_KEPT:
        _OBJECTS.popitem(last=False)[1].close()
    return obj


def _info(fs: Any, path: str, fetched: Fetched) -> dict[str, Any]:
    fetched.requests += 1
    return _tried(lambda: fs.info(path), on_retry=lambda: _count(fetched))


def _count(fetched: Fetched) -> None:
    fetched.requests += 1


def _tried(call: Callable[[], Any], on_retry: Callable[[], None] = lambda: None) -> Any:
    """``call()``, tried :data:`FETCH_TRIES` times while its failure may pass (backing off
    from :data:`FETCH_BACKOFF_S`); the last failure is raised."""
    wait = FETCH_BACKOFF_S
    for attempt in range(FETCH_TRIES):
        try:
            return call()
        except Exception as exc:
            if attempt + 1 == FETCH_TRIES or not _may_pass(exc):
                raise
        time.sleep(wait)
        wait *= 2
        on_retry()
    raise AssertionError("unreachable")


def take_fetched(url: str) -> Fetched | None:
    """What this process fetched of ``url`` since the last call (``None``: nothing), and
    forget the object (a video done: a later try starts afresh)."""
    forget(url)
    return _FETCHED.pop(url, None)


def fetch_error(url: str) -> Failure | None:
    """The failure that stopped a read of ``url`` in this process, if one did."""
    obj = _OBJECTS.get(url)
    return obj.error if obj is not None else None


def forget(url: str) -> None:
    """Drop what this process holds of ``url`` (its bytes, its failure): the next read
    starts afresh (a video tried again)."""
    obj = _OBJECTS.pop(url, None)
    if obj is not None:
        obj.close()


def stamp(url: str) -> FileStamp | None:
    """The object's :class:`~vmae_cli.results.FileStamp` (a listing's, when the walk gave
    one: no request), or ``None`` when the store cannot say."""
    listed = _LISTED.pop(url, None)
    if listed is not None:
        return listed.stamp()
    try:
        return remote_object(url).info.stamp()
    except Exception:  # noqa: BLE001 - no stamp: the row says why it failed
        return None


def check_and_read_head(url: str, sniff_bytes: int) -> tuple[Failure | None, bytes]:
    """The remote twin of :func:`vmae_cli.filegate.check_and_read_head`: a failure if the
    object cannot be read (not found, access denied, a prefix, empty, unreachable), else
    ``None`` and its first ``sniff_bytes`` bytes."""
    try:
        obj = remote_object(url)
    except Exception as exc:  # noqa: BLE001 - every store's library raises its own
        return failure_of(exc, url, "asking for the object's size"), b""
    if obj.size == 0:
        return Failure(STATUS_EMPTY, "empty file (0 bytes)"), b""  # as a local file says
    head = obj.open().read(sniff_bytes)
    if obj.error is not None:
        return obj.error, b""
    return None, head


@contextlib.contextmanager
def opened(url: str) -> Iterator[RangeFile]:
    """A reader of ``url`` for a decoder (raises :class:`OSError` when it cannot be had)."""
    try:
        obj = remote_object(url)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - every store's library raises its own
        raise OSError(failure_of(exc, url, "asking for the object's size").error) from None
    yield obj.open()


# --- listing ------------------------------------------------------------------------------


def iter_urls(
    url: str,
    is_video: Callable[[str], bool],
    on_error: Callable[[str, str], None],
    keep: Callable[[str], bool] | None = None,
) -> Iterator[str]:
    """The videos ``url`` names: itself when it names one object (any URL of a protocol
    that cannot be listed, such as ``https://``, or a name with a video extension), else
    every object under it whose name ``is_video`` (and that ``keep`` keeps), walked as
    :func:`vmae_cli.discovery.iter_video_paths` walks a folder: depth-first, sorted by
    name, level by level (a prefix of millions is never listed whole). Listing failures
    go to ``on_error``; the infos the listing gave are kept for :func:`stamp`."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if scheme_of(url) in UNLISTABLE_SCHEMES or (is_video(name) and not url.endswith("/")):
        yield url
        return
    try:
        fs, path = filesystem(url)
    except VmaeError:
        raise
    base, top = url.rstrip("/"), path.rstrip("/")
    fs.invalidate_cache(top)  # the store now, not a listing an earlier run kept
    found = False
    failed: list[str] = []

    def failing(where: str, why: str) -> None:
        failed.append(where)
        on_error(where, why)

    for entry in _walk(fs, top, failing, url):
        found = True
        # The user's spelling of the prefix, then the rest of the key as the store names it.
        child = base + entry["name"].rstrip("/")[len(top) :]
        if entry.get("type") == "directory" or not is_video(entry["name"].rsplit("/", 1)[-1]):
            continue
        if keep is not None and not keep(child):
            continue
        _LISTED[child] = object_info(entry)
        if len(_LISTED) > LISTED_KEPT:
            _LISTED.popitem(last=False)
        yield child
    if not found and not failed:
        on_error(public_url(url), "no such object or prefix, or an empty one")


def _walk(
    fs: Any, path: str, on_error: Callable[[str, str], None], url: str
) -> Iterator[dict[str, Any]]:
    try:
        entries = _tried(lambda: fs.ls(path, detail=True))
    except FileNotFoundError:
        return
    except Exception as exc:  # noqa: BLE001 - every store's library raises its own
        on_error(public_url(url), redact(str(exc)) or type(exc).__name__)
        return
    for entry in sorted(entries, key=lambda e: e["name"]):
        if entry["name"].rstrip("/") == path:
            continue  # some stores list the prefix itself
        if entry.get("type") == "directory":
            yield {"name": entry["name"], "type": "directory"}
            yield from _walk(fs, entry["name"].rstrip("/"), on_error, url)
        else:
            yield entry
