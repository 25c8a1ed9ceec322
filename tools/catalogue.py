"""A catalogue of bad, awkward and hostile inputs for a reliability run of ``vmae classify``.

:func:`make_catalogue` fills a folder with about 150 files (and a few things that are not
files) and writes ``catalogue.json`` next to them, saying for every entry what a batch
classifier must do with it:

* ``ok``: a row whose status is ``ok`` (FFmpeg decodes at least one frame of it);
* ``not_ok``: a row whose status is anything else (sometimes a specific status, e.g.
  ``too_large`` for the 16384x8192 memory bomb, ``not_a_file`` for a FIFO, ``not_video`` for
  text, pictures and audio, ``damaged`` for a truncated MP4 without its index);
* ``no_row``: no row at all (a ``.txt`` file, a directory named ``dir.mp4``, symlinks to
  directories, which are never followed).

Files whose fate depends on how much of them survives (truncated or overwritten videos) are
judged by a reference decode: every packet of the first video stream is decoded with PyAV,
skipping packets the decoder rejects; ``ok`` if at least one frame comes out. When none does,
the status expected is ``no_frames`` if PyAV opens the file as a video, else ``damaged`` if
the file still starts as the video did (truncated, or damaged further on) and ``not_video``
if its first bytes were overwritten.

Command line::

    python tools/catalogue.py make DIR             # build the catalogue into DIR
    python tools/catalogue.py check DIR ROWS_FILE  # compare `vmae classify DIR` output with it

``check`` reads the CSV or JSONL that ``vmae classify DIR`` wrote (``path`` and ``status``
columns), prints every mismatch (missing row, doubled row, ok expected but not ok, not ok
expected but ok, wrong status, unexpected row) and exits with 1 if there is any.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.videogen import (
    _LFS_POINTER,
    AWKWARD_SPECS,
    TEST_SPECS,
    _jpeg_bytes,
    _spec_supported,
    _write_audio_only,
    frame_pattern,
    make_memory_bomb,
    write_video,
)

__all__ = [
    "DAMAGED",
    "EXPECT_NO_ROW",
    "EXPECT_NOT_OK",
    "EXPECT_OK",
    "KINDS",
    "MANIFEST",
    "NO_FRAMES",
    "NOT_VIDEO",
    "CatalogueEntry",
    "check_rows",
    "display_path",
    "load_manifest",
    "make_catalogue",
    "read_rows",
    "reference_frame_count",
    "reference_opens",
]

EXPECT_OK = "ok"
EXPECT_NOT_OK = "not_ok"
EXPECT_NO_ROW = "no_row"

MANIFEST = "catalogue.json"

#: Failure statuses the manifest names for files that are not (or no longer) videos: spelled
#: out here rather than imported, so that the catalogue stays an independent reference.
NOT_VIDEO = "not_video"  # does not start like a video, or has no video stream
DAMAGED = "damaged"  # starts like a video, but nothing can open it
NO_FRAMES = "no_frames"  # opens as a video, but no frame decodes

#: Entry classes, in the order they are built (also the sub-folder each one lives in).
KINDS = (
    "not_video",
    "truncated",
    "corrupted",
    "lying_header",
    "codec",
    "awkward",
    "memory_bomb",
    "odd_name",
    "special",
    "long_path",
)

#: Lying-header / frame-count clips of TEST_SPECS; the rest of TEST_SPECS is kind "codec".
_LYING_SPECS = (
    "avi_overreport",
    "avi_underreport",
    "edit_list",
    "edit_list_delay",
    "truncated_playable",
    "truncated_mkv",
    "mkv_no_duration",
    "vp9_no_duration",
)

#: Paths longer than this (bytes, including the terminating NUL) fail with ENAMETOOLONG.
PATH_MAX = 4096


@dataclass(frozen=True)
class CatalogueEntry:
    """One thing in the catalogue.

    ``path`` is relative to the catalogue folder, as text; bytes that are not UTF-8 are
    kept with Python's ``surrogateescape`` (so ``os.fsencode(path)`` gives the exact name).
    ``status`` optionally names the one failure status that is right (``expect="not_ok"``).
    ``frames`` is the reference decode's frame count, for damaged files judged by it.
    """

    path: str
    expect: str
    kind: str
    reason: str
    status: str | None = None
    frames: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = display_path(self.path)
        d["path_hex"] = os.fsencode(self.path).hex()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CatalogueEntry:
        path = os.fsdecode(bytes.fromhex(d["path_hex"]))
        return cls(path, d["expect"], d["kind"], d["reason"], d.get("status"), d.get("frames"))


def display_path(path: str) -> str:
    """``path`` as UTF-8 text; bytes that are not UTF-8 become ``\\xNN`` escapes.

    The same rule ``vmae classify`` uses when it writes a path into a CSV or JSONL row.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, root: Path):
        self.root = root
        self.entries: list[CatalogueEntry] = []
        self.rng = np.random.default_rng(20240917)
        self.scratch = root / ".scratch"

    def add(
        self,
        rel: str,
        expect: str,
        kind: str,
        reason: str,
        status: str | None = None,
        frames: int | None = None,
    ) -> Path:
        self.entries.append(CatalogueEntry(rel, expect, kind, reason, status, frames))
        return self.root / rel

    def write(self, rel: str, data: bytes, expect: str, kind: str, reason: str, **kw: Any):
        path = self.add(rel, expect, kind, reason, **kw)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def judged(
        self, rel: str, data: bytes, kind: str, what: str, *, intact_start: bool = True
    ) -> Path:
        """Write ``data``; expect ``ok`` iff the reference decode gets a frame out of it.

        Otherwise the status expected is ``no_frames`` when PyAV still opens it as a video,
        else ``damaged`` when ``intact_start`` (the first bytes are the video's own) and
        ``not_video`` when not.
        """
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        frames = reference_frame_count(path)
        expect = EXPECT_OK if frames else EXPECT_NOT_OK
        status = None
        if not frames:
            status = NO_FRAMES if reference_opens(path) else DAMAGED if intact_start else NOT_VIDEO
        return self.add(
            rel,
            expect,
            kind,
            f"{what}; {frames} frames decode with FFmpeg",
            status=status,
            frames=frames,
        )

    def random(self, n: int) -> bytes:
        return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    def source(self, name: str) -> bytes:
        """A source clip to damage: ``moov_at_end.mp4``, ``faststart.mp4``, ``matroska.mkv``,
        ``mpeg4.avi`` (48 frames, one keyframe) or ``keyframes.mp4`` (96, one every 12)."""
        path = self.scratch / name
        if not path.exists():
            codec = "mpeg4" if name.endswith(".avi") else "h264"
            options: dict[str, Any] = {"num_frames": 48}
            if name == "keyframes.mp4":
                options = {"num_frames": 96, "gop": 12}
            if name in ("faststart.mp4", "keyframes.mp4"):
                options["container_options"] = {"movflags": "+faststart"}
            write_video(path, codec=codec, width=128, height=96, **options)
        return path.read_bytes()


def reference_opens(path: str | os.PathLike[str]) -> bool:
    """True if FFmpeg (through PyAV) opens ``path`` and finds a video stream in it."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return bool(container.streams.video)
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        return False


def reference_frame_count(path: str | os.PathLike[str]) -> int:
    """Frames FFmpeg (through PyAV) decodes from the first video stream; 0 if it cannot open.

    Packets the decoder rejects are skipped, as a tolerant player would do.
    """
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        return 0
    count = 0
    with container:
        if not container.streams.video:
            return 0
        try:
            for packet in container.demux(video=0):
                try:
                    count += len(packet.decode())
                except av.FFmpegError:
                    continue
        except av.FFmpegError:  # demuxing itself gave up: keep what decoded so far
            pass
    return count


def _not_videos(b: _Builder) -> None:
    import av
    import cv2

    kind = "not_video"
    no = EXPECT_NOT_OK

    def write(rel: str, data: bytes, reason: str) -> None:
        b.write(rel, data, no, kind, reason, status=NOT_VIDEO)

    b.write("not_video/empty.mp4", b"", no, kind, "zero bytes", status="empty")
    write("not_video/random.mp4", b.random(8192), "8 KB of random bytes")
    write("not_video/text.mp4", b"Just some notes.\nNot a video.\n", "plain text")
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    html += b"<body><h1>Not Found</h1></body></html>\n"
    write("not_video/error_page.mp4", html, "an HTML error page saved as video")
    srt = b"1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n00:00:02,000 --> 00:00:03,000\nBye\n"
    write("not_video/subtitles.mp4", srt, "SRT subtitles: FFmpeg opens, no video")
    write("not_video/subtitles.mkv", srt, "SRT subtitles named .mkv")
    meta = json.dumps({"video": "clip.mp4", "label": "cat", "frames": 42}).encode()
    write("not_video/metadata.mp4", meta, "JSON")
    write("not_video/lfs_pointer.mp4", _LFS_POINTER.encode(), "Git LFS pointer")
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x02"
    write("not_video/._clip.mp4", apple + b.random(4000), "AppleDouble '._' file")

    # Audio only, in the containers audio usually comes in, all named .mp4.
    b.scratch.mkdir(parents=True, exist_ok=True)
    m4a = _write_audio_only(b.scratch / "audio.m4a")
    write("not_video/audio_aac.mp4", m4a.read_bytes(), "AAC audio in MP4, no video")
    for codec, ext, label in (("libmp3lame", "mp3", "MP3"), ("pcm_s16le", "wav", "WAV")):
        path = b.scratch / f"audio.{ext}"
        tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
        with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as out:
            stream = out.add_stream(codec, rate=8000, layout="mono")
            fmt = "s16p" if codec == "libmp3lame" else "s16"
            frame = av.AudioFrame.from_ndarray(tone[None, :], format=fmt, layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        write(f"not_video/audio_{ext}.mp4", path.read_bytes(), f"{label} audio")

    # Pictures and documents renamed .mp4.  An animated GIF is a video to FFmpeg, but not
    # what a video classifier is asked to look at.
    rgb = frame_pattern(0, 128, 96)
    write("not_video/photo.mp4", _jpeg_bytes(rgb), "a JPEG renamed .mp4")
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    write("not_video/image.mp4", png.tobytes(), "a PNG renamed .mp4")
    gif = b.scratch / "anim.gif"
    write_video(gif, codec="gif", width=64, height=48, num_frames=4, pix_fmt="rgb8")
    write("not_video/anim.mp4", gif.read_bytes(), "an animated GIF renamed .mp4")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    write("not_video/document.mp4", pdf, "a PDF renamed .mp4")
    zip_path = b.scratch / "archive.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("clip.mp4", (2024, 1, 1, 0, 0, 0)), b.random(2048))
    write("not_video/archive.mp4", zip_path.read_bytes(), "a ZIP renamed .mp4")


def _truncated(b: _Builder) -> None:
    kind = "truncated"
    for name in ("moov_at_end.mp4", "faststart.mp4", "matroska.mkv", "mpeg4.avi"):
        data = b.source(name)
        stem, ext = os.path.splitext(name)
        header = _header_length(data, ext)
        b.judged(f"truncated/{stem}_header_only{ext}", data[:header], kind, "only the header")
        for percent in (10, 50, 90):
            cut = data[: len(data) * percent // 100]
            b.judged(f"truncated/{stem}_{percent}pct{ext}", cut, kind, f"first {percent}%")


def _header_length(data: bytes, ext: str) -> int:
    """Bytes before the first frame's data: where the media payload starts."""
    if ext == ".mp4":
        # Up to and including the mdat box header (moov too, when it comes first).
        return data.index(b"mdat") + 4
    if ext == ".mkv":
        return data.index(b"\x1f\x43\xb6\x75")  # the first Cluster element
    if ext == ".avi":
        return data.index(b"movi") + 4
    raise ValueError(ext)


def _corrupted(b: _Builder) -> None:
    kind = "corrupted"

    def overwrite(data: bytes, start: int, length: int) -> bytes:
        out = bytearray(data)
        out[start : start + length] = b.random(length)
        return bytes(out)

    for name in ("faststart.mp4", "matroska.mkv", "mpeg4.avi"):
        data = b.source(name)
        stem, ext = os.path.splitext(name)
        mid = len(data) // 2
        b.judged(
            f"corrupted/{stem}_middle{ext}",
            overwrite(data, mid - 1024, 2048),
            kind,
            "2 KB overwritten in the middle",
        )
        b.judged(
            f"corrupted/{stem}_start{ext}",
            overwrite(data, 0, 64),
            kind,
            "first 64 bytes random",
            intact_start=False,
        )
        zeroed = bytearray(data)
        zeroed[mid : mid + 4096] = bytes(4096)
        b.judged(f"corrupted/{stem}_zeroed{ext}", bytes(zeroed), kind, "4 KB zeroed mid-way")
    # Damage followed by clean keyframes: a decoder must resynchronise, not stop there.
    data = bytearray(b.source("keyframes.mp4"))
    mid = len(data) // 2
    data[mid : mid + 8192] = bytes(8192)
    b.judged(
        "corrupted/keyframes_zeroed.mp4",
        bytes(data),
        kind,
        "96 frames, keyframe every 12, 8 KB zeroed mid-way (clean frames after it)",
    )


def _spec_entries(b: _Builder) -> None:
    for name, spec in TEST_SPECS.items():
        if not _spec_supported(spec):
            continue
        kind = "lying_header" if name in _LYING_SPECS else "codec"
        rel = f"{kind}/{spec.filename}"
        spec.write(b.root / kind)
        b.add(rel, EXPECT_OK, kind, f"TEST_SPECS[{name!r}]: {spec.codec} {spec.filename}")
    for name, spec in AWKWARD_SPECS.items():
        if not _spec_supported(spec):
            continue
        spec.write(b.root / "awkward")
        b.add(
            f"awkward/{spec.filename}",
            EXPECT_OK,
            "awkward",
            f"AWKWARD_SPECS[{name!r}]: {spec.codec} {spec.width}x{spec.height} "
            f"{spec.options.get('pix_fmt', '')}".rstrip(),
        )


def _memory_bomb(b: _Builder) -> None:
    rel = "memory_bomb/bomb_16384x8192.mp4"
    make_memory_bomb(b.root / rel)
    b.add(rel, EXPECT_NOT_OK, "memory_bomb", "H.264 with 16384x8192 frames", status="too_large")


#: Odd file names (text; non-UTF-8 bytes via surrogateescape), each a copy of a good clip.
_ODD_NAMES = (
    "with space.mp4",
    "comma,in,name.mp4",
    'double"quote.mp4',
    "single'quote.mp4",
    "new\nline.mp4",
    "carriage\rreturn.mp4",
    "tab\there.mp4",
    "back\\slash.mp4",
    os.fsdecode(b"latin1_caf\xe9.mp4"),
    os.fsdecode(b"bad_utf8_\xff\xfe.mp4"),
    "=HYPERLINK(1).mp4",
    "+plus.mp4",
    "-minus.mp4",
    "@at.mp4",
    "pipe:0.mp4",
    "file:x.mp4",
    "-rf.mp4",
    "concat:a.mp4",
    "vidéo 日本語 🎬.mp4",
    "vide\u0301o_nfd.mp4",
    "a" * 246 + ".mp4",
    "UPPER.MP4",
    ".hidden.mp4",
    "trailing space .mp4",
    "$(touch pwned).mp4",
    "star*question?.mp4",
)


def _odd_names(b: _Builder, clip: bytes, mkv: bytes) -> None:
    kind = "odd_name"
    for name in _ODD_NAMES:
        b.write(f"odd_name/{name}", clip, EXPECT_OK, kind, f"file name {name!r}")
    b.write("odd_name/Mixed.MkV", mkv, EXPECT_OK, kind, "mixed-case .MkV extension")
    b.write(
        os.fsdecode(b"odd_name/dir_\xff/inside.mp4"),
        clip,
        EXPECT_OK,
        kind,
        "a video in a directory whose name is not UTF-8",
    )


def _special(b: _Builder, clip: bytes) -> None:
    kind = "special"
    base = b.root / "special"
    base.mkdir(parents=True, exist_ok=True)
    b.write("special/target.mp4", clip, EXPECT_OK, kind, "the target of the symlinks")

    os.mkfifo(b.add("special/x.mp4", EXPECT_NOT_OK, kind, "a FIFO", status="not_a_file"))
    os.symlink("target.mp4", b.add("special/link.mp4", EXPECT_OK, kind, "symlink to a video"))
    os.symlink(
        "missing.mp4",
        b.add("special/broken_link.mp4", EXPECT_NOT_OK, kind, "broken symlink", "not_found"),
    )
    # Loops: symlinks to a directory are never followed, so no row and no hang; a pair of
    # file symlinks pointing at each other fails stat() with ELOOP.
    os.symlink(".", b.add("special/loop", EXPECT_NO_ROW, kind, "symlink to its own directory"))
    os.symlink(
        "..",
        b.add("special/loop_dir.mp4", EXPECT_NO_ROW, kind, "video-named symlink to a directory"),
    )
    os.symlink("cycle_b.mp4", b.add("special/cycle_a.mp4", EXPECT_NOT_OK, kind, "symlink cycle"))
    os.symlink("cycle_a.mp4", b.add("special/cycle_b.mp4", EXPECT_NOT_OK, kind, "symlink cycle"))

    locked = b.root / "special/unreadable.mp4"
    locked.write_bytes(clip)
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything
        b.add("special/unreadable.mp4", EXPECT_OK, kind, "mode 000, but readable (root)")
    else:
        b.add("special/unreadable.mp4", EXPECT_NOT_OK, kind, "mode 000", status="unreadable")

    (base / "dir.mp4").mkdir()
    b.add("special/dir.mp4", EXPECT_NO_ROW, kind, "a directory named like a video")
    b.write("special/dir.mp4/inside.mp4", clip, EXPECT_OK, kind, "a video inside dir.mp4")
    b.write("special/readme.txt", b"not a video extension\n", EXPECT_NO_ROW, kind, ".txt file")
    b.write("special/clip.mp4.part", clip, EXPECT_NO_ROW, kind, "a video under a .part name")
    b.write("special/no_extension", clip, EXPECT_NO_ROW, kind, "a video with no extension")


def _long_path(b: _Builder, clip: bytes) -> None:
    """A video whose path (``DIR/rel``) is longer than PATH_MAX, under a directory that is not.

    The directory can still be listed, so the walk finds the file, but any path-based
    ``stat``/``open`` of it fails with ENAMETOOLONG: a row saying so is the possible outcome
    (``not_ok``); only ``openat``-style relative opens could decode it.
    """
    absolute = len(os.fsencode(os.path.abspath(b.root)))
    name = "v" * 246 + ".mp4"
    # ``rel_dir/name`` alone is PATH_MAX bytes, too long for the kernel whatever spelling of
    # DIR is used; the directory must stay listable, so DIR may be up to ~250 bytes long.
    parts, left = ["long_path"], PATH_MAX - len(name) - len("long_path/") - 1
    while left > 0:
        part = min(200, left)
        parts.append("d" * part)
        left -= part + 1
    rel_dir = "/".join(parts)
    if absolute + 1 + len(rel_dir) + 1 >= PATH_MAX:
        return  # DIR itself is too long for the directory to be listable: leave it out
    fd = os.open(b.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in rel_dir.split("/"):
            os.mkdir(part, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        try:
            os.write(out, clip)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    b.add(
        f"{rel_dir}/{name}",
        EXPECT_NOT_OK,
        "long_path",
        f"path of {len(rel_dir) + 1 + len(name)} bytes relative to DIR: ENAMETOOLONG",
    )


def make_catalogue(out_dir: str | os.PathLike[str], *, bomb: bool = True) -> list[CatalogueEntry]:
    """Build the catalogue into ``out_dir`` (missing or empty) and write its manifest.

    ``bomb=False`` leaves out the 16384x8192 file (about 3 s and 1.5 GB of memory to encode).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    b = _Builder(root)
    b.scratch.mkdir()
    clip = write_video(
        b.scratch / "clip.mp4", codec="h264", width=128, height=96, num_frames=12
    ).read_bytes()
    mkv = write_video(
        b.scratch / "clip.mkv", codec="h264", width=128, height=96, num_frames=12
    ).read_bytes()
    _not_videos(b)
    _truncated(b)
    _corrupted(b)
    _spec_entries(b)  # kinds codec, lying_header and awkward
    if bomb:
        _memory_bomb(b)
    _odd_names(b, clip, mkv)
    _special(b, clip)
    _long_path(b, clip)
    shutil.rmtree(b.scratch)
    entries = sorted(b.entries, key=lambda e: (KINDS.index(e.kind), os.fsencode(e.path)))
    displays = Counter(display_path(e.path) for e in entries)
    clashes = [p for p, n in displays.items() if n > 1]
    if clashes:
        raise AssertionError(f"catalogue paths that display alike: {clashes}")
    (root / MANIFEST).write_text(
        json.dumps([e.to_json() for e in entries], indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return entries


def load_manifest(out_dir: str | os.PathLike[str]) -> list[CatalogueEntry]:
    """Read ``catalogue.json`` of a catalogue folder."""
    data = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    return [CatalogueEntry.from_json(d) for d in data]


# --------------------------------------------------------------------------------------
# Checking a run's output
# --------------------------------------------------------------------------------------

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def read_rows(rows_file: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a ``vmae classify`` output: JSONL (one object per line) or CSV with a header.

    A CSV cell that ``vmae`` protected against spreadsheet formulas (``'=...``) is unquoted.
    """
    # newline="": a "\r" inside a quoted CSV cell is data; "utf-8-sig": a CSV may start
    # with a byte-order mark for spreadsheets.
    with open(rows_file, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        # Only "\n" ends a JSONL record (str.splitlines would also split on U+2028 etc.).
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        path = row.get("path") or ""
        if path.startswith("'") and path[1:].startswith(_FORMULA_PREFIXES):
            row["path"] = path[1:]
        rows.append(row)
    return rows


def _short(text: str) -> str:
    return repr(text if len(text) < 160 else f"{text[:60]}...{text[-60:]}")


def _relative(row_path: str, prefixes: list[str]) -> str | None:
    for prefix in prefixes:
        if row_path.startswith(prefix):
            return row_path[len(prefix) :]
    return None


def check_rows(
    out_dir: str | os.PathLike[str],
    rows: list[dict[str, str]],
    entries: list[CatalogueEntry] | None = None,
) -> list[str]:
    """Compare rows of ``vmae classify out_dir`` with the manifest; return the mismatches."""
    from vmae_cli.identity import cell_path

    entries = load_manifest(out_dir) if entries is None else entries
    by_display = {display_path(e.path): e for e in entries}
    top = os.fspath(out_dir)
    prefixes = sorted(
        {
            display_path(os.path.join(top, "")),
            display_path(os.path.join(os.path.normpath(top), "")),
            display_path(os.path.join(os.path.abspath(top), "")),
            display_path(os.path.join(os.path.relpath(top), "")),
        },
        key=len,
        reverse=True,
    )
    seen: dict[str, list[dict[str, str]]] = defaultdict(list)
    problems: list[str] = []
    for row in rows:
        # A row's path cell is vmae's identity (vmae_cli.identity): the file it names, shown.
        row_path = display_path(cell_path(row.get("path") or ""))
        rel = _relative(row_path, prefixes)
        if rel is None or rel not in by_display:
            problems.append(f"unexpected row: {_short(row_path)} status={row.get('status')!r}")
            continue
        seen[rel].append(row)
    for entry in entries:
        shown = display_path(entry.path)
        got = seen.get(shown, [])
        label = f"{_short(shown)} [{entry.kind}: {entry.reason}]"
        if entry.expect == EXPECT_NO_ROW:
            if got:
                problems.append(f"unexpected row: {label} got status={got[0].get('status')!r}")
            continue
        if not got:
            problems.append(f"missing row: {label} expected {entry.expect}")
            continue
        if len(got) > 1:
            problems.append(f"doubled row: {label} appears {len(got)} times")
        status = got[0].get("status") or ""
        error = got[0].get("error") or ""
        if entry.expect == EXPECT_OK and status != "ok":
            problems.append(f"ok expected but not ok: {label} got {status}: {error}")
        elif entry.expect == EXPECT_NOT_OK and status == "ok":
            problems.append(f"not_ok expected but ok: {label}")
        elif entry.status and status != entry.status and status != "ok":
            problems.append(f"wrong status: {label} expected {entry.status}, got {status}: {error}")
    return problems


def _mode_summary(entries: list[CatalogueEntry]) -> str:
    counts = Counter((e.kind, e.expect) for e in entries)
    parts = [f"{kind}/{expect}: {n}" for (kind, expect), n in sorted(counts.items())]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="build the catalogue into DIR")
    make.add_argument("out_dir", type=Path)
    make.add_argument("--no-bomb", action="store_true", help="leave out the 16384x8192 file")
    check = sub.add_parser("check", help="compare vmae classify output with the manifest")
    check.add_argument("out_dir")
    check.add_argument("rows_file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "make":
        start = time.perf_counter()
        entries = make_catalogue(args.out_dir, bomb=not args.no_bomb)
        elapsed = time.perf_counter() - start
        print(f"{len(entries)} entries in {elapsed:.1f}s: {_mode_summary(entries)}")
        return 0
    problems = check_rows(args.out_dir, read_rows(args.rows_file))
    for problem in problems:
        print(problem)
    entries = load_manifest(args.out_dir)
    print(f"{len(problems)} mismatches over {len(entries)} entries", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
