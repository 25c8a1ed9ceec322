"""Stage 1: turn the user's arguments (directories and files) into a stream of video paths.

The walk is streaming (a generator, so a folder of millions of files never sits in memory),
deterministic (entries sorted by name at every level) and safe: symlinked directories are not
followed, so a symlink loop cannot hang it, and an unreadable directory is reported through a
callback instead of stopping the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

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


class InputNotFoundError(FileNotFoundError):
    """An argument given by the user does not exist."""


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
    missing = [p for p in inputs if not os.path.lexists(p)]
    if missing:
        raise InputNotFoundError(", ".join(missing))


def _ignore(path: str, reason: str) -> None:
    del path, reason


def iter_video_paths(inputs: Iterable[str], on_error: OnWalkError = _ignore) -> Iterator[str]:
    """Yield the video files named by ``inputs``, walking directories recursively.

    Paths are yielded as ``find`` prints them: the argument joined with the path relative to
    it. A file argument is yielded as given, whatever its extension (the user asked for it).
    Inside directories only names with a video extension are yielded; directories are walked
    depth-first with entries sorted by name, symlinks to directories are not followed.
    Anything that is not a directory (regular files, FIFOs, broken symlinks) is yielded when
    its name looks like a video, so that a later stage can give it an error row.
    """
    for arg in inputs:
        if os.path.isdir(arg):
            # Followed even when the argument itself is a symlink: the user named it.
            yield from _walk(arg, on_error)
        elif os.path.lexists(arg):
            yield arg
        else:
            on_error(arg, "no such file or directory")


def _walk(top: str, on_error: OnWalkError) -> Iterator[str]:
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        on_error(top, exc.strerror or str(exc))
        return
    for entry in entries:
        path = os.path.join(top, entry.name)
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path, on_error)
        elif is_video_name(entry.name):
            try:
                if entry.is_symlink() and os.path.isdir(path):
                    continue  # a symlink to a directory: never followed
            except OSError:
                pass
            yield path


def count_video_paths(inputs: Iterable[str]) -> int:
    """Count what :func:`iter_video_paths` would yield, without keeping the paths."""
    return sum(1 for _ in iter_video_paths(list(inputs)))
