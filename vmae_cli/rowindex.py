"""What an output holds, compact: one small record per row, for resume to look videos up in.

A resumed run needs, of every row an earlier run wrote, only its key (the ``path`` cell, a
video's identity), window, status, file stamp, window count and the model that made it;
never its text. :class:`RowIndex` keeps those as numpy arrays, 40 to 56 bytes a row however
long the path (a column of one value, such as the windows of video rows, costs nothing), so
that resuming into an output of ten million rows holds a few hundred megabytes, not the
file:

* a key is its 128-bit BLAKE2b digest (:func:`digest_keys`): two uint64 arrays;
* the stamp and counts are int64 / int32 arrays (:data:`MISSING`, :data:`NO_WINDOW` for
  none); status and (model, protocol, model_revision) are small codes into lists of names;
* only the newest row of each (key, window) is kept (the last one written wins, as a redone
  video's row is written after the old one), and each keeps its *ordinal*: its number
  among the rows of the file in the file's order, which is how a rewrite of the file tells
  which records stay (:meth:`RowIndex.rows_kept`).

Formats feed it :class:`RowBlock`\\ s, a few ten thousand rows at a time
(:class:`RowIndexBuilder`), so memory never holds more than a block of text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .identity import key_of_cell
from .results import FileStamp

#: An integer cell that is empty or not a number (a stamp or count the row does not have).
MISSING = np.iinfo(np.int64).min
#: The window of a row that is no window's (a video's row), and the window count of a
#: video that was not segmented.
NO_WINDOW = -1
#: Rows a format hands the index at once: memory holds this many rows' text at most.
BLOCK_ROWS = 65536
#: Bytes of a key's digest: 128 bits, so that two of billions of paths never share one.
DIGEST_BYTES = 16


@dataclass(frozen=True)
class PreviousRow:
    """A row an earlier run wrote, as resume sees it: its video's identity (the ``path``
    cell, see :mod:`vmae_cli.identity`), status, file stamp, the model and protocol that
    made it, and its window count (segmented runs) or window number (window rows)."""

    key: str
    status: str
    stamp: FileStamp | None
    model: str = ""
    protocol: str = ""
    windows: int | None = None  # a segmented video's window count (--segments)
    window: int | None = None  # a window row's number (--segments-out)
    model_revision: str = ""
    labels_from: str = ""  # text labels' or a fitted head's identity (vmae_cli.labelsource)


#: The columns that say who made a row, in the order of an :data:`Origin`.
ORIGIN_COLUMNS = ("model", "protocol", "model_revision", "labels_from")
#: Who made a row: (model, protocol, model_revision, labels_from).
Origin = tuple[str, str, str, str]


def digest_keys(keys: Sequence[str] | Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit digests of ``keys`` (text, or its UTF-8 bytes: the same digest) as two
    uint64 arrays (high and low halves)."""
    blake = hashlib.blake2b
    if len(keys) and isinstance(keys[0], bytes):
        data = keys
    else:
        data = [k.encode("utf-8", "surrogatepass") for k in keys]  # type: ignore[union-attr]
    joined = b"".join([blake(k, digest_size=DIGEST_BYTES).digest() for k in data])
    halves = np.frombuffer(joined, dtype="<u8").reshape(-1, 2)
    return halves[:, 0].copy(), halves[:, 1].copy()


def digest_key(key: str) -> bytes:
    """The 128-bit digest of one key as 16 bytes (the halves :func:`digest_keys` gives, in
    little-endian order): a set of them holds about 80 bytes a key, whatever its length."""
    data = key.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


@dataclass
class Coded:
    """Values of a column as small codes into a list of distinct names (statuses, origins)."""

    codes: np.ndarray  # int32, one per row
    names: list

    @classmethod
    def of(cls, values: Iterable) -> Coded:
        """Code ``values`` in the order each first appears."""
        seen: dict = {}
        codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int32)
        return cls(codes, list(seen))


@dataclass
class RowBlock:
    """A few rows of an output, in the file's order, as a format read them: their keys (the
    identities, :func:`~vmae_cli.identity.key_of_cell` applied), statuses, origins, stamps,
    window counts and window numbers, and which of them (positions in the block) held an
    older vmae's relative path."""

    keys: Sequence[str] | Sequence[bytes]  # text, or its UTF-8 bytes (a fast reader's)
    status: Coded
    origin: Coded  # of Origins
    size_bytes: np.ndarray  # int64, MISSING for none
    mtime_ns: np.ndarray  # int64, MISSING for none
    windows: np.ndarray  # int32, NO_WINDOW for none
    window: np.ndarray  # int32, NO_WINDOW for none
    legacy: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of_values(cls, rows: Sequence[dict[str, Any]]) -> RowBlock:
        """Rows read one by one (each a dict of a record's values, its ``path`` a text
        cell): the exact reading every format's fast reader must agree with."""
        cells = [row["path"] for row in rows]
        keys = [key_of_cell(cell) for cell in cells]
        legacy = [i for i, (k, c) in enumerate(zip(keys, cells, strict=True)) if k != c]
        return cls(
            keys=keys,
            status=Coded.of(_text(row.get("status")) for row in rows),
            origin=Coded.of(
                tuple(_text(row.get(column)) for column in ORIGIN_COLUMNS) for row in rows
            ),
            size_bytes=_ints(rows, "size_bytes", np.int64, MISSING),
            mtime_ns=_ints(rows, "mtime_ns", np.int64, MISSING),
            windows=_ints(rows, "windows", np.int32, NO_WINDOW),
            window=_ints(rows, "window", np.int32, NO_WINDOW),
            legacy=np.array(legacy, np.int64),
        )


def _text(value: object) -> str:
    """A text cell as resume reads it: empty for none."""
    return str(value or "")


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def _ints(rows: Sequence[dict[str, Any]], column: str, dtype: type, none: int) -> np.ndarray:
    return int_column([row.get(column) for row in rows], dtype, none)


def int_column(cells: Iterable[object], dtype: type, none: int) -> np.ndarray:
    """Cells as whole numbers (as ``int()`` reads them), ``none`` where a cell holds none (or
    one out of ``dtype``'s range: no file's stamp or window count is)."""
    info = np.iinfo(dtype)
    values = []
    for cell in cells:
        n = _int(cell)
        values.append(n if n is not None and info.min < n <= info.max else none)
    return np.array(values, dtype)


class RowIndexBuilder:
    """Collects :class:`RowBlock`\\ s, then :meth:`seal` makes the :class:`RowIndex`."""

    def __init__(self) -> None:
        self._parts: dict[str, list] = {
            name: [] for name in ("hi", "lo", "size", "mtime", "windows", "window")
        }
        self._status: list = []
        self._origin: list = []
        self._legacy: list[np.ndarray] = []
        self.statuses: dict[str, int] = {}
        self.origins: dict[Origin, int] = {}
        self.rows = 0

    def add(self, block: RowBlock) -> None:
        """Append a block's rows (after those added before: later rows are newer)."""
        if not len(block):
            return
        hi, lo = digest_keys(block.keys)
        self._parts["hi"].append(hi)
        self._parts["lo"].append(lo)
        for name, values in (
            ("size", block.size_bytes),
            ("mtime", block.mtime_ns),
            ("windows", block.windows),
            ("window", block.window),
        ):
            self._parts[name].append(_compact(values))
        self._status.append(_compact(_recode(block.status, self.statuses)))
        self._origin.append(_compact(_recode(block.origin, self.origins)))
        if len(block.legacy):
            self._legacy.append(block.legacy.astype(np.int64) + self.rows)
        self.rows += len(block)

    def mark(self) -> tuple[int, int, int, int]:
        """Where the builder stands, for :meth:`rollback`."""
        return self.rows, len(self._status), len(self._legacy), len(self._origin)

    def rollback(self, mark: tuple[int, int, int, int]) -> None:
        """Forget the blocks added since ``mark`` (a reader that gave up midway)."""
        self.rows, blocks, legacy, _ = mark
        for parts in (*self._parts.values(), self._status, self._origin):
            del parts[blocks:]
        del self._legacy[legacy:]

    def seal(self) -> RowIndex:
        """The index: the newest row of each (key, window), sorted by key for lookups."""
        parts = self._parts
        hi = _concat(parts.pop("hi"), np.uint64)
        lo = _concat(parts.pop("lo"), np.uint64)
        window = _concat(parts.pop("window"), np.int32)
        order = _newest_sorted(hi, lo, window)  # ordinals of the rows kept, in key order
        # One array at a time: each old one is freed before the next is gathered.
        hi = hi[order]
        lo = lo[order]
        window = _take(window, order)
        columns = {}
        for name, dtype in (("size", np.int64), ("mtime", np.int64), ("windows", np.int32)):
            columns[name] = _take(_concat(parts.pop(name), dtype), order)
        status = _take(_concat(self._status, np.int32), order)
        origin = _take(_concat(self._origin, np.int32), order)
        self._status, self._origin = [], []
        return RowIndex(
            hi=hi,
            lo=lo,
            window=window,
            windows=columns["windows"],
            size_bytes=columns["size"],
            mtime_ns=columns["mtime"],
            status=status,
            origin=origin,
            ordinal=order,
            statuses=list(self.statuses),
            origins=list(self.origins),
            rows=self.rows,
            legacy_rows=_concat(self._legacy, np.int64),
        )


def _recode(coded: Coded, names: dict) -> np.ndarray:
    """A block's codes as codes into the builder's names (which grow as needed)."""
    table = np.array([names.setdefault(n, len(names)) for n in coded.names], dtype=np.int32)
    return table[coded.codes] if len(table) else coded.codes.astype(np.int32)


@dataclass(frozen=True)
class _Same:
    """A block's column that holds one value (a video row's window, an output of one status
    and one model): kept as that value, not an array."""

    value: int
    rows: int


def _compact(values: np.ndarray) -> np.ndarray | _Same:
    if len(values) and (values == values[0]).all():
        return _Same(values[0].item(), len(values))
    return values


def _concat(parts: list, dtype: type) -> np.ndarray:
    """The parts as one array; one that holds a single value takes no memory (a read-only
    view of that value: a column of video rows' windows costs nothing)."""
    total = sum(p.rows if isinstance(p, _Same) else len(p) for p in parts)
    values = {p.value for p in parts if isinstance(p, _Same)}
    if len(values) == 1 and all(isinstance(p, _Same) for p in parts):
        whole = np.broadcast_to(np.asarray(values.pop(), dtype), (total,))
    elif not parts:
        whole = np.zeros(0, dtype)
    else:
        whole = np.concatenate(
            [np.full(p.rows, p.value, dtype) if isinstance(p, _Same) else p for p in parts]
        ).astype(dtype, copy=False)
    parts.clear()
    return whole


def _take(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values[order]``, without making a column of one value an array."""
    if len(values) and values.strides == (0,):
        return np.broadcast_to(values[:1], (len(order),))
    return values[order]


def _held(values: np.ndarray) -> int:
    return 0 if values.strides == (0,) else values.nbytes


def _newest_sorted(hi: np.ndarray, lo: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The ordinals of the last row of each (hi, lo, window), sorted by (hi, lo, window).

    One unstable sort by ``hi`` (fast), then the runs of equal ``hi`` (a key's duplicates
    and windows; a true 64-bit collision of two keys is all but impossible but handled)
    sorted exactly by (lo, window, ordinal): then each group's last member is its newest.
    """
    order = np.argsort(hi)
    sorted_hi = hi[order]
    same_next = sorted_hi[1:] == sorted_hi[:-1]
    del sorted_hi
    if not same_next.any():
        return order  # every row its own key (a video-row file without duplicates)
    last = np.ones(len(order), bool)
    in_run = np.zeros(len(order), bool)
    in_run[:-1] |= same_next
    in_run[1:] |= same_next
    at = np.flatnonzero(in_run)
    del in_run
    members = order[at]
    resorted = np.lexsort((members, window[members], lo[members], hi[members]))
    members = members[resorted]
    order[at] = members
    # Within the runs (only there: elsewhere each hi is one row's), a row is the last of its
    # (hi, lo, window) when the next one differs.
    h, lw, w = hi[members], lo[members], window[members]
    differs = (h[1:] != h[:-1]) | (lw[1:] != lw[:-1]) | (w[1:] != w[:-1])
    next_in_run = at[1:] == at[:-1] + 1
    last[at[:-1]] = ~next_in_run | differs
    return order[last]


def _int_or_none(value: int) -> int | None:
    return None if value == MISSING else int(value)


def _count_or_none(value: int) -> int | None:
    return None if value == NO_WINDOW else int(value)


@dataclass
class RowIndex:
    """The newest row of each (key, window) an output holds (see the module's docstring),
    sorted by (key digest, window). ``rows`` counts every row read, older duplicates
    included; ``legacy_rows`` are the ordinals of rows that held an older vmae's relative
    path (their records are to be written again with the identity)."""

    hi: np.ndarray
    lo: np.ndarray
    window: np.ndarray
    windows: np.ndarray
    size_bytes: np.ndarray
    mtime_ns: np.ndarray
    status: np.ndarray
    origin: np.ndarray
    ordinal: np.ndarray
    statuses: list[str]
    origins: list[Origin]
    rows: int
    legacy_rows: np.ndarray

    @classmethod
    def empty(cls) -> RowIndex:
        """An index of no rows (a fresh run's, or an output that holds none)."""
        return RowIndexBuilder().seal()

    @classmethod
    def of(cls, blocks: Iterable[RowBlock]) -> RowIndex:
        """The index of ``blocks``, in the file's order."""
        builder = RowIndexBuilder()
        for block in blocks:
            builder.add(block)
        return builder.seal()

    def __len__(self) -> int:
        """The rows kept: one per (key, window)."""
        return len(self.hi)

    @property
    def superseded(self) -> int:
        """Rows read that a newer row of the same (key, window) replaces."""
        return self.rows - len(self)

    @property
    def legacy(self) -> bool:
        """Some rows held an older vmae's relative paths."""
        return bool(len(self.legacy_rows))

    def bytes_held(self) -> int:
        """Memory the index's arrays hold."""
        arrays = (self.hi, self.lo, self.window, self.windows, self.size_bytes, self.mtime_ns)
        return sum(_held(a) for a in (*arrays, self.status, self.origin, self.ordinal))

    def _positions(self, hi: np.ndarray, lo: np.ndarray, window: np.ndarray | int) -> np.ndarray:
        """Where each (hi, lo, window) sits in the index, -1 where it has none."""
        if not len(self) or not len(hi):
            return np.full(len(hi), -1, np.int64)
        window = np.broadcast_to(np.asarray(window, np.int32), hi.shape)
        order = np.argsort(hi)  # sorted queries: searchsorted walks memory in order
        at = np.empty(len(hi), np.int64)
        at[order] = np.searchsorted(self.hi, hi[order])
        inside = np.minimum(at, len(self) - 1)
        same_hi = (at < len(self)) & (self.hi[inside] == hi)
        found = same_hi & (self.lo[inside] == lo) & (self.window[inside] == window)
        # The first entry of a key's run is not the one asked for: another window of the key
        # comes first, or (all but never) another key shares the high half. Look further.
        for q in np.flatnonzero(~found & same_hi):
            found[q], at[q] = self._scan(int(at[q]), hi[q], lo[q], int(window[q]))
        return np.where(found, at, -1)

    def _scan(self, start: int, hi: np.uint64, lo: np.uint64, window: int) -> tuple[bool, int]:
        i = start
        while i < len(self) and self.hi[i] == hi:
            if self.lo[i] == lo and self.window[i] == window:
                return True, i
            i += 1
        return False, -1

    def _row(self, key: str, i: int) -> PreviousRow:
        size, mtime = int(self.size_bytes[i]), int(self.mtime_ns[i])
        stamp = FileStamp(size, mtime) if MISSING not in (size, mtime) else None
        model, protocol, revision, labels_from = self.origins[self.origin[i]]
        return PreviousRow(
            key,
            self.statuses[self.status[i]],
            stamp,
            model,
            protocol,
            _count_or_none(self.windows[i]),
            _count_or_none(self.window[i]),
            revision,
            labels_from,
        )

    def find_many(self, keys: Sequence[str]) -> list[PreviousRow | None]:
        """The video row (no window) of each of ``keys``, ``None`` where there is none."""
        hi, lo = digest_keys(keys)
        at = self._positions(hi, lo, NO_WINDOW)
        return [self._row(k, int(i)) if i >= 0 else None for k, i in zip(keys, at, strict=True)]

    def find(self, key: str) -> PreviousRow | None:
        """The video row (no window) of ``key``, or ``None``."""
        return self.find_many([key])[0]

    def holds(
        self, hi: np.ndarray, lo: np.ndarray, window: np.ndarray | int = NO_WINDOW
    ) -> np.ndarray:
        """Which of the (key digest, window) pairs have a row here (``window``
        :data:`NO_WINDOW`: a video's row)."""
        return self._positions(hi, lo, window) >= 0

    def windows_of(self, key: str) -> list[int]:
        """The window numbers of ``key``'s window rows, ascending."""
        (hi,), (lo,) = digest_keys([key])
        i = int(np.searchsorted(self.hi, hi))
        found = []
        while i < len(self) and self.hi[i] == hi:
            if self.lo[i] == lo and self.window[i] != NO_WINDOW:
                found.append(int(self.window[i]))
            i += 1
        return found

    def video_origins(self) -> set[Origin]:
        """Who made the video rows (no window): each an :data:`Origin`."""
        used = np.bincount(self.origin[self.window == NO_WINDOW], minlength=len(self.origins))
        return {self.origins[c] for c in np.flatnonzero(used)}

    def rows_kept(self, redone: Iterable[str], videos: RowIndex | None = None) -> np.ndarray:
        """Which rows of the file stay (a bool per ordinal): the newest of each (key,
        window), less those of the ``redone`` keys, and, given ``videos`` (the video rows'
        index), less those whose key has no video row there (window rows or vectors written
        before a kill took their video's row)."""
        keep = np.ones(len(self), bool)
        redone = list(redone)
        if redone:
            again = RowIndex.of([_keys_block(redone)])
            keep &= ~again.holds(self.hi, self.lo)
        if videos is not None:
            keep &= videos.holds(self.hi, self.lo)
        rows = np.zeros(self.rows, bool)
        rows[self.ordinal[keep]] = True
        return rows


def _keys_block(keys: Sequence[str]) -> RowBlock:
    """Bare keys as a block of video rows (no stamp, status or origin)."""
    n = len(keys)
    return RowBlock(
        keys=keys,
        status=Coded(np.zeros(n, np.int32), [""]),
        origin=Coded(np.zeros(n, np.int32), [("", "", "")]),
        size_bytes=np.full(n, MISSING, np.int64),
        mtime_ns=np.full(n, MISSING, np.int64),
        windows=np.full(n, NO_WINDOW, np.int32),
        window=np.full(n, NO_WINDOW, np.int32),
    )
