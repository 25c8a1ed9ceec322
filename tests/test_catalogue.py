"""The reliability catalogue (tools/catalogue.py) against the decoder, the walk and ``check``.

The catalogue is built once per session (about 7 s, most of it the 16384x8192 memory bomb).
Every class of entry gets one test: each of its files goes through ``decode_video`` and must
come out ok or not ok as the manifest says.  Things that could block an ``open()`` (a FIFO,
symlinks to directories, symlink cycles) only go through ``check_and_read_head``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest

from tools.catalogue import (
    DAMAGED,
    EXPECT_NO_ROW,
    EXPECT_NOT_OK,
    EXPECT_OK,
    KINDS,
    MANIFEST,
    NO_FRAMES,
    NOT_VIDEO,
    CatalogueEntry,
    check_rows,
    display_path,
    load_manifest,
    main,
    make_catalogue,
    read_rows,
)
from vmae_cli.decoding import decode_video
from vmae_cli.discovery import iter_video_paths
from vmae_cli.filegate import check_and_read_head
from vmae_cli.identity import path_cell

# Nearly every test reads the catalogue, which takes seconds to make.
pytestmark = pytest.mark.slow

T = 8


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CatalogueEntry]]:
    root = tmp_path_factory.mktemp("catalogue")
    return root, make_catalogue(root)


def _is_plain_file(path: Path) -> bool:
    """True if ``path`` (after symlinks) is a regular file: safe to hand to a decoder."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _verdict(root: Path, entry: CatalogueEntry) -> str | None:
    """What is wrong with how the decoder treats ``entry``, or None if it is right."""
    path = root / entry.path
    if not _is_plain_file(path):
        # FIFOs, directories, dangling links, symlink cycles: never opened, only checked.
        failure, _ = check_and_read_head(str(path))
        if entry.expect == EXPECT_OK:
            return f"the file check refused it: {failure}" if failure else None
        if failure is None:
            return "the file check let it through to the decoder"
        if entry.status and failure.status != entry.status:
            return f"status {failure.status!r} ({failure.error}), expected {entry.status!r}"
        return None
    if entry.expect == EXPECT_NO_ROW:
        return None  # a regular file the walk must skip: see test_walk_yields_...
    decoded, failure, meta = decode_video(str(path), T, lambda f: f.shape)
    if entry.expect == EXPECT_OK:
        if decoded is None:
            return f"not ok: {failure.status}: {failure.error}"
        if len(decoded.frames) != T or meta.frames_decoded < 1:
            return f"ok but {len(decoded.frames)} frames, frames_decoded={meta.frames_decoded}"
        return None
    if decoded is not None:
        return f"ok ({meta.decoder}, {meta.frames_decoded} frames), expected a failure"
    if not failure.error:
        return f"status {failure.status!r} without an error message"
    if entry.status and failure.status != entry.status:
        return f"status {failure.status!r} ({failure.error}), expected {entry.status!r}"
    return None


#: Classes with entries the current decoder gets wrong (known bugs, reported to the lead).
KNOWN_FAILURES: dict[str, str] = {}


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(k, marks=pytest.mark.xfail(strict=False, reason=KNOWN_FAILURES[k]))
        if k in KNOWN_FAILURES
        else k
        for k in KINDS
    ],
)
def test_decode_video_agrees_with_the_manifest(
    kind: str, catalogue: tuple[Path, list[CatalogueEntry]]
) -> None:
    root, entries = catalogue
    mine = [e for e in entries if e.kind == kind]
    if not mine:
        pytest.skip(f"no {kind} entries could be built here")
    wrong = []
    for entry in mine:
        verdict = _verdict(root, entry)
        if verdict:
            wrong.append(f"{display_path(entry.path)[:120]!r} ({entry.reason}): {verdict}")
    assert not wrong, "\n".join(wrong)


def test_damaged_videos_lose_no_decodable_frames(
    catalogue: tuple[Path, list[CatalogueEntry]],
) -> None:
    """Truncated/corrupted files: as many frames as the reference decode gets out of them."""
    root, entries = catalogue
    short = []
    for entry in entries:
        if entry.frames is None or entry.expect != EXPECT_OK:
            continue
        decoded, failure, meta = decode_video(str(root / entry.path), T, lambda f: None)
        if meta.frames_decoded != entry.frames:
            short.append(
                f"{entry.path}: {meta.decoder} decoded {meta.frames_decoded} frames, "
                f"FFmpeg gives {entry.frames} ({failure})"
            )
    assert not short, "\n".join(short)


def test_manifest_names_damaged_and_not_video(
    catalogue: tuple[Path, list[CatalogueEntry]],
) -> None:
    """Truncated files that start like a video but open nowhere are ``damaged``; text,
    pictures and audio (an MP4 with only an AAC track included) stay ``not_video``."""
    _, entries = catalogue
    by_path = {e.path: e for e in entries}
    for cut in ("header_only", "10pct", "50pct", "90pct"):
        assert by_path[f"truncated/moov_at_end_{cut}.mp4"].status == DAMAGED
    assert by_path["truncated/faststart_header_only.mp4"].status == NO_FRAMES  # opens, no frame
    assert by_path["corrupted/faststart_start.mp4"].status == NOT_VIDEO  # first bytes random
    not_videos = [e for e in entries if e.kind == "not_video" and e.path != "not_video/empty.mp4"]
    assert {e.status for e in not_videos} == {NOT_VIDEO}
    assert "not_video/audio_aac.mp4" in {e.path for e in not_videos}


def test_every_kind_is_represented(catalogue: tuple[Path, list[CatalogueEntry]]) -> None:
    _, entries = catalogue
    kinds = {e.kind for e in entries}
    # long_path is left out only when the temporary folder's own path is very long.
    assert set(KINDS) - {"long_path"} <= kinds
    assert len(entries) >= 100
    expects = {e.expect for e in entries}
    assert expects == {EXPECT_OK, EXPECT_NOT_OK, EXPECT_NO_ROW}


def test_walk_yields_exactly_the_entries_that_need_a_row(
    catalogue: tuple[Path, list[CatalogueEntry]],
) -> None:
    root, entries = catalogue
    top = str(root)
    found = [os.path.relpath(p, top) for p in iter_video_paths([top])]
    assert len(found) == len(set(found)), "a path was yielded twice"
    expected = {e.path for e in entries if e.expect != EXPECT_NO_ROW}
    assert set(found) == expected


def test_manifest_round_trips_names_that_are_not_utf8(
    catalogue: tuple[Path, list[CatalogueEntry]],
) -> None:
    root, entries = catalogue
    assert load_manifest(root) == entries
    raw = [e for e in entries if b"\xff" in os.fsencode(e.path)]
    assert raw, "the catalogue should have non-UTF-8 names"
    for entry in raw:
        assert os.path.lexists(os.fsencode(root) + b"/" + os.fsencode(entry.path))
    # The manifest itself is valid UTF-8 JSON with readable escapes.
    text = (root / MANIFEST).read_text(encoding="utf-8")
    assert "\\\\xff" in text
    json.loads(text)


# --------------------------------------------------------------------------------------
# check: rows written the way `vmae classify DIR` writes them
# --------------------------------------------------------------------------------------


def _rows_for(top: str, entries: list[CatalogueEntry]) -> list[dict[str, str]]:
    """Perfect rows: one per entry that needs a row, with a plausible status."""
    rows = []
    for entry in entries:
        if entry.expect == EXPECT_NO_ROW:
            continue
        status = "ok" if entry.expect == EXPECT_OK else (entry.status or "not_video")
        error = "" if status == "ok" else "something"
        rows.append({"path": os.path.join(top, entry.path), "status": status, "error": error})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)  # "\r\n" line ends: cells holding "\r" or "\n" get quoted
    writer.writerow(["path", "status", "error", "label"])
    for row in rows:
        shown = path_cell(row["path"])  # as vmae writes it
        if shown.startswith(("=", "+", "-", "@", "\t", "\r")):
            shown = "'" + shown
        writer.writerow([shown, row["status"], row["error"], "x"])
    path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8", newline="")
    return path


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [
        json.dumps({**row, "path": path_cell(row["path"])}, ensure_ascii=False) + "\n"
        for row in rows
    ]
    path.write_text("".join(lines), encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_check_accepts_perfect_rows_in_both_formats(
    fmt: str, catalogue: tuple[Path, list[CatalogueEntry]], tmp_path: Path
) -> None:
    root, entries = catalogue
    rows = _rows_for(str(root), entries)
    write = _write_csv if fmt == "csv" else _write_jsonl
    rows_file = write(tmp_path / f"rows.{fmt}", rows)
    assert check_rows(root, read_rows(rows_file), entries) == []
    assert main(["check", str(root), str(rows_file)]) == 0


def test_check_reads_paths_relative_to_the_directory_as_given(
    catalogue: tuple[Path, list[CatalogueEntry]], tmp_path: Path, monkeypatch
) -> None:
    root, entries = catalogue
    monkeypatch.chdir(root.parent)
    rows = _rows_for(root.name, entries)  # as from `vmae classify catalogue0`
    rows_file = _write_jsonl(tmp_path / "rows.jsonl", rows)
    for spelling in (root.name, f"./{root.name}/", str(root)):
        assert check_rows(spelling, read_rows(rows_file), entries) == [], spelling


def test_check_reports_every_kind_of_mismatch(
    catalogue: tuple[Path, list[CatalogueEntry]], tmp_path: Path
) -> None:
    root, entries = catalogue
    rows = _rows_for(str(root), entries)
    by_rel = {os.path.relpath(r["path"], str(root)): r for r in rows}
    ok_entries = [e for e in entries if e.expect == EXPECT_OK]
    not_ok_entries = [e for e in entries if e.expect == EXPECT_NOT_OK and not e.status]
    missing, doubled, failed = ok_entries[0], ok_entries[1], ok_entries[2]
    wrongly_ok = not_ok_entries[0]
    bomb = next(e for e in entries if e.kind == "memory_bomb")
    no_row = next(e for e in entries if e.expect == EXPECT_NO_ROW)

    rows.remove(by_rel[missing.path])
    rows.append(dict(by_rel[doubled.path]))
    by_rel[failed.path].update(status="no_frames", error="no frame could be decoded")
    by_rel[wrongly_ok.path].update(status="ok", error="")
    by_rel[bomb.path].update(status="not_video", error="??")
    rows.append({"path": str(root / no_row.path), "status": "not_video", "error": "x"})
    rows.append({"path": "/elsewhere/stray.mp4", "status": "ok", "error": ""})

    problems = check_rows(root, rows, entries)
    text = "\n".join(problems)
    assert f"missing row: {display_path(missing.path)!r}" in text
    assert f"doubled row: {display_path(doubled.path)!r}" in text
    assert f"ok expected but not ok: {display_path(failed.path)!r}" in text
    assert f"not_ok expected but ok: {display_path(wrongly_ok.path)!r}" in text
    assert f"wrong status: {display_path(bomb.path)!r}" in text
    assert "unexpected row: '/elsewhere/stray.mp4'" in text
    assert f"unexpected row: {display_path(no_row.path)!r}" in text
    assert len(problems) == 7, text
    rows_file = _write_jsonl(tmp_path / "rows.jsonl", rows)
    assert main(["check", str(root), str(rows_file)]) == 1


def test_make_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").touch()
    with pytest.raises(FileExistsError):
        make_catalogue(tmp_path)
