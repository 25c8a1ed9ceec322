"""Stage 1: turn the user's arguments (directories and files) into a stream of video paths.

The walk is streaming (a generator: of a folder it holds, to sort them, only the names of its
subfolders and of its files named like videos, so a folder of millions of other files never
sits in memory), deterministic (entries sorted by name at every level) and safe: symlinked
directories are not followed, so a symlink loop cannot hang it, and an unreadable directory
is reported through a callback instead of stopping the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import VmaeError
from .remote import check_urls, is_url, iter_urls

#: File extensions treated as videos, compared case-insensitively.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3g2",
        ".3gp",
        ".asf",
        ".avi",
        ".divx",
        ".f4v",
        ".flv",
        ".h264",
        ".hevc",
        ".m2ts",
        ".m2v",
        ".m4v",
        ".mjpeg",
        ".mjpg",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".mxf",
        ".ogg",
        ".ogv",
        ".qt",
        ".ts",
        ".vob",
        ".webm",
        ".wmv",
    }
)

#: Called with (path, reason) for every directory or argument that cannot be walked.
OnWalkError = Callable[[str, str], None]

#: Called with the path of every symlink to a directory that the walk did not follow.
OnLink = Callable[[str], None]


class InputNotFoundError(VmaeError, FileNotFoundError):
    """An argument given by the user does not exist (``path``: the first one missing)."""


def is_video_name(name: str) -> bool:
    """Return True if ``name`` has one of :data:`VIDEO_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def as_inputs(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The user's inputs as a list of path strings.

    A ``str`` (or ``os.PathLike``) is one input, not an iterable of one-character paths (a
    string iterated character by character once walked ``/``). Anything else must be an
    iterable of such paths; raises :class:`TypeError` otherwise.
    """
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    if isinstance(inputs, bytes) or not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be a path or an iterable of paths, not {type(inputs).__name__}"
        )
    paths = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"each input must be a path (str or os.PathLike), not {item!r}")
        paths.append(os.fspath(item))
    return paths


def check_inputs(inputs: Iterable[str]) -> None:
    """Raise :class:`InputNotFoundError` naming every argument that does not exist.

    ``os.path.lexists`` is used so that a dangling symlink given on purpose still counts as
    present (it becomes an error row later instead of a usage error).
    """
    inputs = list(inputs)
    missing = [p for p in inputs if not is_url(p) and not os.path.lexists(p)]
    check_urls(inputs)  # a URL's objects are asked for when walked
    if missing:
        raise InputNotFoundError(
            f"no such file or directory: {', '.join(missing)}", options=("inputs",), path=missing[0]
        )


def _ignore(path: str, reason: str) -> None:
    del path, reason


def _ignore_link(path: str) -> None:
    del path


def iter_video_paths(
    inputs: Iterable[str],
    on_error: OnWalkError = _ignore,
    keep: Callable[[str], bool] | None = None,
    on_link: OnLink = _ignore_link,
) -> Iterator[str]:
    """Yield the video files named by ``inputs``, walking directories recursively.

    Paths are yielded as ``find`` prints them: the argument joined with the path relative to
    it. A file argument is yielded as given, whatever its extension (the user asked for it).
    Inside directories only names with a video extension are yielded; directories are walked
    depth-first with entries sorted by name, symlinks to directories are not followed.
    Anything that is not a directory (regular files, FIFOs, broken symlinks) is yielded when
    its name looks like a video, so that a later stage can give it an error row. ``keep``
    (see :func:`path_filter`) filters the paths found inside directories. Each symlink to a
    directory found inside them is given to ``on_link``: not followed, so that a link loop
    cannot hang the walk and a folder linked twice does not give its videos twice.
    """
    for arg in inputs:
        if is_url(arg):
            # A prefix is listed as a folder is walked; a URL of one object is yielded.
            yield from iter_urls(arg, is_video_name, on_error, keep)
        elif os.path.isdir(arg):
            # Followed even when the argument itself is a symlink: the user named it.
            walked = _walk(arg, on_error, on_link)
            yield from (walked if keep is None else filter(keep, walked))
        elif os.path.lexists(arg):
            yield arg
        else:
            on_error(arg, "no such file or directory")


#: What :func:`_listing` keeps of a folder's entry: a folder (walked), a symlink to a folder
#: (told, not followed), a file named like a video (yielded).
_FOLDER, _LINKED_FOLDER, _VIDEO = 0, 1, 2


def _walk(top: str, on_error: OnWalkError, on_link: OnLink) -> Iterator[str]:
    entries = _listing(top, on_error)
    for name, kind in entries:
        path = os.path.join(top, name)
        if kind == _FOLDER:
            yield from _walk(path, on_error, on_link)
        elif kind == _LINKED_FOLDER:
            on_link(path)  # a symlink to a directory: never followed, but counted
        else:
            yield path


def _listing(top: str, on_error: OnWalkError) -> list[tuple[str, int]]:
    """The entries of ``top`` the walk needs, sorted by name: its folders, its symlinks to
    folders and its files named like videos, as (name, kind). Only their names are kept
    while the folder is read: a folder of a million other files (frames, sidecars) costs a
    million ``readdir`` entries passing by, not a million ``DirEntry`` objects held for the
    sort. An empty list (after ``on_error``) when it cannot be read."""
    kept: list[tuple[str, int]] = []
    try:
        with os.scandir(top) as it:
            for entry in it:
                name = entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    kept.append((name, _FOLDER))
                    continue
                try:
                    # is_symlink() comes with the listing (d_type); only a link costs a stat.
                    if entry.is_symlink() and os.path.isdir(entry.path):
                        kept.append((name, _LINKED_FOLDER))
                        continue
                except OSError:
                    pass
                if is_video_name(name):
                    kept.append((name, _VIDEO))
    except OSError as exc:
        on_error(top, exc.strerror or str(exc))
        return []
    kept.sort()  # by name: names are unique within a folder
    return kept


#: ``files_from`` value meaning "read the list from stdin".
STDIN = "-"


class FileListError(VmaeError, ValueError):
    """A file list that cannot be read as asked (no such column, a Parquet reader missing)."""


def read_file_list(
    source: str | os.PathLike[str],
    *,
    null: bool = False,
    path_column: str | None = None,
    stdin: Any = None,
) -> list[str]:
    """The paths listed in ``source`` (``"-"``: ``stdin``, by default the process's).

    One path per line, or separated by NUL bytes with ``null`` (what ``find -print0``
    writes, so that names holding newlines survive); empty entries are skipped and a line's
    trailing ``\\r`` is dropped. With ``path_column`` the list is a CSV file (a UTF-8 BOM is
    read as such) or, by its ``.parquet`` extension, a Parquet file, and the paths are that
    column. Names are read as bytes and decoded as the file system does, so names that are
    not UTF-8 still name their files. A relative path is taken relative to the list's folder
    (to the current folder for stdin), so a list can travel with its videos; a URL
    (``s3://...``, ``https://...``) is taken as it is.
    """
    import sys

    source = os.fspath(source)
    if source == STDIN:
        stream = stdin if stdin is not None else sys.stdin
        data = getattr(stream, "buffer", stream).read()
        if isinstance(data, str):
            data = os.fsencode(data)
        base = ""
    else:
        if not os.path.exists(source):
            raise InputNotFoundError(
                f"no such file or directory: {source}", options=("files_from",), path=source
            )
        with open(source, "rb") as f:
            data = f.read()
        base = os.path.dirname(os.path.abspath(source))
    if path_column is not None:
        names = _column(data, source, path_column)
    elif null:
        names = [os.fsdecode(p) for p in data.split(b"\0")]
    else:
        names = [os.fsdecode(line.removesuffix(b"\r")) for line in data.split(b"\n")]
    return [
        os.path.join(base, n) if base and not os.path.isabs(n) and not is_url(n) else n
        for n in names
        if n
    ]


def _column(data: bytes, source: str, column: str) -> list[str]:
    """Column ``column`` of a CSV (or, by its extension, Parquet) list."""
    if source.lower().endswith(".parquet"):
        import io

        import pandas as pd

        try:
            frame = pd.read_parquet(io.BytesIO(data), columns=[column])
        except (KeyError, ValueError) as exc:
            raise FileListError(
                f"{source}: no column {column!r} ({exc})",
                options=("path_column",),
                value=column,
                path=source,
            ) from None
        return [str(v) for v in frame[column] if isinstance(v, str) and v]
    import csv
    import io

    text = data.decode("utf-8-sig", "surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if column not in (reader.fieldnames or []):
        found = ", ".join(reader.fieldnames or []) or "none"
        raise FileListError(
            f"{source} has no column {column!r} (columns: {found})",
            options=("path_column",),
            value=column,
            path=source,
        )
    return [row[column] for row in reader if row.get(column)]


def path_filter(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> Callable[[str], bool]:
    """Whether a walked path is kept: it matches one of ``include`` (when any is given) and
    none of ``exclude``. Shell patterns (``fnmatch``): one without a ``/`` is matched
    against the file's name (``*.mp4``, ``GX*``), one with a ``/`` against the whole path
    (``*/raw/*``). Case is ignored, as the walk ignores it in video extensions: ``*.mp4``
    keeps the ``CLIP.MP4`` a phone or a camera names."""
    import fnmatch

    include = tuple(p.casefold() for p in include)
    exclude = tuple(p.casefold() for p in exclude)

    def matches(path: str, pattern: str) -> bool:
        target = path if "/" in pattern else os.path.basename(path)
        return fnmatch.fnmatchcase(target.casefold(), pattern)

    def keep(path: str) -> bool:
        if include and not any(matches(path, p) for p in include):
            return False
        return not any(matches(path, p) for p in exclude)

    return keep
