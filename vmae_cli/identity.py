"""A video's identity: the one spelling of its path that every output holds in ``path``.

The ``path`` cell is the join key of everything vmae writes and reads back (resume, window
rows, embeddings, ``summarize``, ``report``), so it has exactly one value per file, however
the file was listed (walked, ``files_from`` a file or stdin, an argument; relative or absolute;
with ``..`` or ``./``) and from whatever folder the command ran:

* **absolute and normalised** (:func:`os.path.abspath`: ``..``, ``.`` and doubled slashes
  folded), with symlinks **not** resolved: the user's own name for the file stays;
* **text, and one-to-one**: a file name is bytes, an output cell is UTF-8 text. Bytes that are
  not UTF-8 (and a NUL, which only a hand-made list can hold) are written ``\\xNN``, and so
  that a name holding those four characters literally cannot collide with it, a literal
  backslash is written ``\\\\``. :func:`cell_path` undoes both, giving back the name to open.

A URL (``s3://bucket/key.mp4``, ``https://host/clip.mp4``: :mod:`vmae_cli.remote`) is its own
identity, as :func:`~vmae_cli.remote.public_url` shows it: no user or password, and no query
string (a signed URL's signature changes every time it is signed) unless the run keeps them
(:func:`url_queries_kept`).

Outputs of vmae before this rule held the path as it was given (often relative, a backslash
not doubled). :func:`key_of_cell` reads those too: a relative cell is resolved against the
current folder (:func:`is_legacy_cell` tells a caller to say so once).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar

from .remote import is_url, public_url

#: One escape in a cell: ``\\`` (a backslash) or ``\xNN`` (a byte that is not UTF-8).
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


#: Whether the ``path`` cells of URLs keep their query strings (see :func:`url_queries_kept`).
_KEEP_URL_QUERY: ContextVar[bool] = ContextVar("keep_url_query", default=False)


@contextlib.contextmanager
def url_queries_kept(keep: bool = True) -> Iterator[None]:
    """Within the block, the ``path`` cell of a URL keeps its query string (where the query
    names the video, ``?id=42``, rather than signing the request)."""
    token = _KEEP_URL_QUERY.set(keep)
    try:
        yield
    finally:
        _KEEP_URL_QUERY.reset(token)


def video_path(path: str | os.PathLike[str]) -> str:
    """The absolute, normalised path of a video, as the OS names it (symlinks kept); a URL
    as it was given (the name to open it by, signature included)."""
    path = os.fspath(path)
    if is_url(path):
        return path
    return os.path.abspath(path)


def path_cell(path: str | os.PathLike[str]) -> str:
    """The ``path`` cell of a video: :func:`video_path` as one-to-one UTF-8 text (a URL as
    :func:`~vmae_cli.remote.public_url` shows it)."""
    text = video_path(path)
    if is_url(text):
        text = public_url(text, keep_query=_KEEP_URL_QUERY.get())
    if "\\" not in text and "\0" not in text:
        try:
            text.encode("utf-8")
            return text  # the common case: valid UTF-8, no backslash
        except UnicodeEncodeError:
            pass
    # Python holds a byte that is not UTF-8 as a lone surrogate (surrogateescape).
    text = os.fsencode(text).decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\0":  # no file has it, but a listed name may: never raw in a file
            out.append("\\x00")
        elif "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8 (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def cell_path(cell: str) -> str:
    """The OS path a ``path`` cell names (the inverse of :func:`path_cell`); a backslash that
    starts no escape stays as it is (cells of older vmae versions)."""

    def undo(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "\\":
            return "\\"
        byte = int(code[1:], 16)
        # An escaped byte below 0x80 is a plain ASCII character (only hand-made cells hold one).
        return chr(byte) if byte < 0x80 else chr(0xDC00 + byte)

    return os.fsdecode(_ESCAPE.sub(undo, cell).encode("utf-8", "surrogateescape"))


def key_of_cell(cell: str) -> str:
    """The identity a ``path`` cell read from an output stands for: the cell itself for this
    version's outputs, an older output's relative path resolved against the current folder."""
    if is_legacy_cell(cell):
        return path_cell(cell_path(cell))
    return cell


def is_legacy_cell(cell: str) -> bool:
    """True for a cell that is not this version's spelling (a relative or unnormalised
    path, written by an older vmae)."""
    if is_url(cell):
        return False
    return not cell.startswith("/") or os.path.normpath(cell) != cell


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as text for a message (not an identity: see :func:`path_cell`): bytes that
    are not UTF-8 appear as ``\\xNN``; a URL as :func:`~vmae_cli.remote.public_url` shows it."""
    if isinstance(path, str) and is_url(path):
        return public_url(path)
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
