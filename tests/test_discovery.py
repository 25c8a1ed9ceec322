from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from vmae_cli.discovery import (
    InputNotFoundError,
    check_inputs,
    is_video_name,
    iter_video_paths,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.mp4", True),
        ("A.MP4", True),
        ("clip.Mkv", True),
        ("x.webm", True),
        ("x.ts", True),
        ("x.3gp", True),
        ("x.ogv", True),
        ("x.wmv", True),
        ("x.flv", True),
        ("x.mpeg", True),
        ("notes.txt", False),
        ("mp4", False),
        ("archive.mp4.zip", False),
        (".mp4", False),  # a hidden file with no extension, as os.path.splitext sees it
    ],
)
def test_is_video_name(name: str, expected: bool) -> None:
    assert is_video_name(name) is expected


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_walk_is_recursive_sorted_and_filters_extensions(tmp_path: Path) -> None:
    _touch(tmp_path / "b" / "z.mp4")
    _touch(tmp_path / "b" / "a.MOV")
    _touch(tmp_path / "a.avi")
    _touch(tmp_path / "c" / "d" / "deep.MKV")
    _touch(tmp_path / "readme.txt")
    _touch(tmp_path / "b" / "notes.md")
    found = list(iter_video_paths([str(tmp_path)]))
    assert found == [
        os.path.join(str(tmp_path), "a.avi"),
        os.path.join(str(tmp_path), "b", "a.MOV"),
        os.path.join(str(tmp_path), "b", "z.mp4"),
        os.path.join(str(tmp_path), "c", "d", "deep.MKV"),
    ]


def test_paths_keep_the_argument_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path / "vids" / "x.mp4")
    monkeypatch.chdir(tmp_path)
    assert list(iter_video_paths(["vids"])) == ["vids/x.mp4"]
    assert list(iter_video_paths(["vids/"])) == ["vids/x.mp4"]
    assert list(iter_video_paths(["./vids"])) == ["./vids/x.mp4"]


def test_file_arguments_are_yielded_whatever_their_extension(tmp_path: Path) -> None:
    f = _touch(tmp_path / "clip.bin")
    d = tmp_path / "d"
    _touch(d / "y.mp4")
    assert list(iter_video_paths([str(f), str(d)])) == [str(f), str(d / "y.mp4")]


def test_symlinked_directories_are_not_followed_and_loops_end(tmp_path: Path) -> None:
    _touch(tmp_path / "real" / "x.mp4")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path, tmp_path / "real" / "loop")  # a loop back to the top
    assert list(iter_video_paths([str(tmp_path)])) == [str(tmp_path / "real" / "x.mp4")]


def test_each_symlinked_directory_not_followed_is_told(tmp_path: Path) -> None:
    """Issue 24, 21: a linked folder, whatever its name, is given to ``on_link`` (it was
    skipped without a word); a link to a file is a file and is not."""
    _touch(tmp_path / "real" / "x.mp4")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path / "real", tmp_path / "real" / "loop.mp4")  # named like a video
    os.symlink(tmp_path / "real" / "x.mp4", tmp_path / "y.mp4")
    links: list[str] = []
    found = list(iter_video_paths([str(tmp_path)], on_link=links.append))
    assert found == [str(tmp_path / "real" / "x.mp4"), str(tmp_path / "y.mp4")]
    assert links == [str(tmp_path / "link"), str(tmp_path / "real" / "loop.mp4")]


def test_symlinked_files_and_special_files_are_yielded(tmp_path: Path) -> None:
    target = _touch(tmp_path / "t.bin")
    os.symlink(target, tmp_path / "s.mp4")
    os.symlink(tmp_path / "missing", tmp_path / "dangling.mp4")
    os.mkfifo(tmp_path / "pipe.mp4")
    found = [os.path.basename(p) for p in iter_video_paths([str(tmp_path)])]
    assert found == ["dangling.mp4", "pipe.mp4", "s.mp4"]


def test_unreadable_directory_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path / "ok" / "a.mp4")
    _touch(tmp_path / "secret" / "b.mp4")
    real_scandir = os.scandir

    def scandir(path):  # root ignores chmod 000, so the permission error is simulated
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    errors: list[tuple[str, str]] = []
    found = list(iter_video_paths([str(tmp_path)], lambda p, r: errors.append((p, r))))
    assert found == [str(tmp_path / "ok" / "a.mp4")]
    assert errors == [(str(tmp_path / "secret"), "Permission denied")]


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    check_inputs([str(tmp_path)])
    with pytest.raises(InputNotFoundError, match="nope"):
        check_inputs([str(tmp_path), str(tmp_path / "nope")])


def test_non_utf8_names_survive_the_walk(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.mp4"
    with open(raw, "wb") as f:
        f.write(b"x")
    found = list(iter_video_paths([str(tmp_path)]))
    assert [os.fsencode(p) for p in found] == [raw]


class _Entry:
    """A stand-in for ``os.DirEntry`` that counts how many of its kind are alive."""

    alive = 0
    most = 0

    def __init__(self, folder: str, name: str, is_dir: bool = False):
        self.name, self.path, self._dir = name, os.path.join(folder, name), is_dir
        _Entry.alive += 1
        _Entry.most = max(_Entry.most, _Entry.alive)

    def __del__(self) -> None:
        _Entry.alive -= 1

    def is_dir(self, follow_symlinks: bool = True) -> bool:
        return self._dir

    def is_symlink(self) -> bool:
        return False


class _Listing:
    """What ``os.scandir`` gives, made one entry at a time."""

    def __init__(self, entries):
        self._entries = entries

    def __enter__(self):
        return self._entries

    def __exit__(self, *exc) -> None:
        pass


def test_a_folder_of_many_other_files_keeps_none_of_their_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 25: the walk sorted every ``DirEntry`` of a folder, so a folder of a million
    frames held a million entries. Only the names of folders and videos are kept now: the
    other entries die as soon as they are read."""
    others = 100_000

    def scandir(path):
        path = os.fspath(path)
        if path.endswith("sub"):
            return _Listing(_Entry(path, n) for n in ("b.mp4", "a.mkv"))

        def entries():
            for i in range(others):
                if i == others // 2:
                    yield _Entry(path, "sub", is_dir=True)
                    yield _Entry(path, "clip.MP4")
                yield _Entry(path, f"frame{i:06d}.jpg")

        return _Listing(entries())

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os.path, "isdir", lambda p: p == "/top")
    _Entry.alive = _Entry.most = 0
    found = list(iter_video_paths(["/top"]))
    assert found == ["/top/clip.MP4", "/top/sub/a.mkv", "/top/sub/b.mp4"]
    assert _Entry.most <= 2  # the one being read (and the generator's next), never the folder


# ---------------------------------------------------------------------------------------
# File lists (--files-from) and filters (--include / --exclude)
# ---------------------------------------------------------------------------------------


def test_a_file_list_by_lines_by_nul_and_relative_to_its_folder(tmp_path: Path) -> None:
    from vmae_cli.discovery import read_file_list

    lines = tmp_path / "list.txt"
    lines.write_bytes(b"a.mp4\r\n/abs/b.mp4\n\nsub/c d.mkv\n")
    assert read_file_list(lines) == [
        str(tmp_path / "a.mp4"),
        "/abs/b.mp4",
        str(tmp_path / "sub" / "c d.mkv"),
    ]
    nul = tmp_path / "list0"
    nul.write_bytes(b"/x/new\nline.mp4\0/x/\xff.mp4\0")
    assert read_file_list(nul, null=True) == ["/x/new\nline.mp4", os.fsdecode(b"/x/\xff.mp4")]
    stdin = io.BytesIO(b"rel.mp4\n")
    assert read_file_list("-", stdin=stdin) == ["rel.mp4"]  # stdin: the current folder


def test_a_file_list_from_a_csv_or_parquet_column(tmp_path: Path) -> None:
    import pandas as pd

    from vmae_cli.discovery import FileListError, InputNotFoundError, read_file_list

    table = tmp_path / "t.csv"
    table.write_text("\ufeffid,video\n1,/v/a.mp4\n2,\n3,/v/b.mp4\n", encoding="utf-8")
    assert read_file_list(table, path_column="video") == ["/v/a.mp4", "/v/b.mp4"]
    with pytest.raises(FileListError, match="no column 'path'.*id, video"):
        read_file_list(table, path_column="path")
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"video": ["/v/a.mp4", "/v/b.mp4"]}).to_parquet(parquet)
    assert read_file_list(parquet, path_column="video") == ["/v/a.mp4", "/v/b.mp4"]
    with pytest.raises(InputNotFoundError):
        read_file_list(tmp_path / "missing.txt")


def test_include_and_exclude_filter_walked_paths(tmp_path: Path) -> None:
    from vmae_cli.discovery import iter_video_paths, path_filter

    for name in ("a.mp4", "b.MKV", "raw/c.mp4", "raw/GX01.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = lambda keep: [  # noqa: E731
        os.path.relpath(p, tmp_path) for p in iter_video_paths([str(tmp_path)], keep=keep)
    ]
    assert names(path_filter(include=["*.mp4"])) == ["a.mp4", "raw/GX01.mp4", "raw/c.mp4"]
    assert names(path_filter(exclude=["*/raw/*"])) == ["a.mp4", "b.MKV"]
    assert names(path_filter(include=["*.mp4"], exclude=["GX*"])) == ["a.mp4", "raw/c.mp4"]


def test_include_and_exclude_ignore_case_as_the_walk_does(tmp_path: Path) -> None:
    """Issue 24, 22: the walk finds ``CLIP.MP4`` as a video, so ``--include '*.mp4'`` keeps
    it (it dropped it), and ``--exclude '*/raw/*'`` drops a ``RAW`` folder's videos."""
    from vmae_cli.discovery import iter_video_paths, path_filter

    for name in ("CLIP.MP4", "b.mkv", "RAW/c.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = lambda keep: [  # noqa: E731
        os.path.relpath(p, tmp_path) for p in iter_video_paths([str(tmp_path)], keep=keep)
    ]
    assert names(path_filter(include=["*.mp4"])) == ["CLIP.MP4", "RAW/c.mp4"]
    assert names(path_filter(exclude=["*/raw/*", "*.MKV"])) == ["CLIP.MP4"]
