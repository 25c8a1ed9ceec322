"""What a path is, decided before and without decoding it.

Before any decoder sees a path it is checked to be a regular, non-empty, readable file: a
FIFO named ``x.mp4`` would block ``open()`` forever in every FFmpeg-based decoder, and a
directory or socket only gives a confusing decoder error. The check uses ``stat`` and a
non-blocking ``open``, so it never hangs.

The file's first :data:`SNIFF_BYTES` bytes then serve twice: a signature of something that is
certainly no video (an image, a Git LFS pointer, a PDF) refuses the file at once
(:func:`sniff_not_video`), and when no decoder can open it they decide how it is reported:
``damaged`` when they look like a video container or stream (an MP4 cut before its index;
:func:`sniff_video`, :func:`damaged_or_not_video`), ``not_video`` otherwise.

Nothing here imports a decoder; the decoders (:mod:`vmae_cli.decoding`) call this module.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from typing import Any

from . import remote
from .results import (
    STATUS_DAMAGED,
    STATUS_EMPTY,
    STATUS_NOT_A_FILE,
    STATUS_NOT_FOUND,
    STATUS_NOT_VIDEO,
    STATUS_UNREADABLE,
    Failure,
)

#: File signatures of things FFmpeg would happily "decode" as a one-frame video, or that
#: deserve a clearer message than "invalid data" (first bytes -> what the file is).
_NOT_VIDEO_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x05\x16\x07", "macOS metadata (an AppleDouble '._' file)"),
    (b"version https://git-lfs", "a Git LFS pointer (the video was never downloaded)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
)
#: Bytes read from the start of a file to recognise it: enough for three MPEG-TS packets.
SNIFF_BYTES = 512


def sniff_not_video(head: bytes) -> str | None:
    """Name what a file is when its first bytes say it is certainly not a video."""
    for signature, what in _NOT_VIDEO_SIGNATURES:
        if head.startswith(signature):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    return None


# Signatures of video containers and streams: a file that starts like one of these but that no
# decoder can open is ``damaged``, not ``not_video``. Containers that also carry audio-only files
# are told apart where the first bytes allow (M4A brands, FLV flags, Ogg codec ids); where they do
# not (Matroska, ASF), an audio file is only affected when no decoder can open it at all.

#: Video containers and streams recognised by fixed bytes at the start of the file.
_VIDEO_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),  # EBML header
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV"),  # ASF header object GUID
    (b"\x00\x00\x01\xba", "MPEG program stream"),  # pack header (also VOB)
    (b"\x00\x00\x01\xb3", "MPEG-1/2 video stream"),  # sequence header
)
#: MP4/MOV/3GP: the box type at offset 4 of a file (after the 32-bit box size).
_MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
#: Of those, boxes that are never 16 MB or more at the start of a file: their size's first byte
#: must be 0 (this keeps text such as ``"Get free ..."`` from passing for a ``free`` box).
_MP4_SMALL_BOXES = (b"ftyp", b"free", b"wide", b"skip", b"pnot")
#: ``ftyp`` major brands of audio-only MP4 files (iTunes audio and audiobooks, Flash audio).
_MP4_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
#: RIFF form types of AVI (``AVIX`` continues an OpenDML AVI over 1 GB).
_AVI_FORMS = (b"AVI ", b"AVIX")
#: FLV header: ``FLV``, a version byte, then flags whose bit 0 says "has video".
_FLV_MAGIC = b"FLV"
_FLV_HAS_VIDEO = 0x01
#: Ogg page magic, and the first packets of the audio codecs Ogg usually carries.
_OGG_MAGIC = b"OggS"
_OGG_AUDIO_CODECS = (b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex   ")
#: MPEG-TS: a sync byte every 188 bytes (192 in Blu-ray M2TS, after a 4-byte timestamp);
#: three in a row are required (one 0x47 byte is common in any binary file).
_TS_SYNC = 0x47
_TS_LAYOUTS = ((0, 188), (4, 192))  # (offset of the first sync byte, packet size)
_TS_SYNC_COUNT = 3
#: Raw H.264/HEVC (Annex B): a 4-byte start code followed by the NAL header of what such a
#: stream starts with: H.264 access unit delimiter or SPS, HEVC AUD, VPS or SPS. Any other byte
#: after a start code is not accepted (00 00 00 01 alone is too common in binary files).
_ANNEX_B_START = b"\x00\x00\x00\x01"
_H264_FIRST_NAL_HEADERS = (b"\x09", b"\x27", b"\x47", b"\x67")
_HEVC_FIRST_NAL_HEADERS = (b"\x46\x01", b"\x40\x01", b"\x42\x01")


def sniff_video(head: bytes) -> str | None:
    """Name the video container or stream that a file's first bytes look like, else ``None``.

    E.g. ``"MP4"``, ``"MOV"``, ``"Matroska/WebM"``, ``"AVI"``. Only a resemblance: the file may
    still be broken anywhere after these bytes. Audio-only files are ``None`` where their first
    bytes say so (an M4A ``ftyp`` brand, an FLV without the video flag, Ogg Vorbis/Opus).
    """
    for magic, what in _VIDEO_MAGIC:
        if head.startswith(magic):
            return what
    box = head[4:8]
    if box in _MP4_FIRST_BOXES and (head[0] == 0 or box not in _MP4_SMALL_BOXES):
        if box != b"ftyp":
            return "MP4/MOV"
        brand = head[8:12]
        if brand in _MP4_AUDIO_BRANDS:
            return None
        if brand == b"qt  ":
            return "MOV"
        return "3GP" if brand.startswith(b"3g") else "MP4"
    if head[:4] == b"RIFF" and head[8:12] in _AVI_FORMS:
        return "AVI"
    if head.startswith(_FLV_MAGIC) and len(head) > 4:
        return "FLV" if head[4] & _FLV_HAS_VIDEO else None
    if head.startswith(_OGG_MAGIC):
        # The first page's first packet follows its 27-byte header and segment table.
        first_packet = head[27 + head[26] :] if len(head) > 26 else b""
        return None if first_packet.startswith(_OGG_AUDIO_CODECS) else "Ogg"
    for first, size in _TS_LAYOUTS:
        syncs = [first + i * size for i in range(_TS_SYNC_COUNT)]
        if len(head) > syncs[-1] and all(head[i] == _TS_SYNC for i in syncs):
            return "MPEG-TS"
    if head.startswith(_ANNEX_B_START):
        nal = head[len(_ANNEX_B_START) :]
        if nal.startswith(_HEVC_FIRST_NAL_HEADERS):
            return "HEVC stream"
        if nal.startswith(_H264_FIRST_NAL_HEADERS):
            return "H.264 stream"
    return None


#: The MP4 box that indexes every frame; without it no decoder can find any.
_MP4_INDEX_BOX = b"moov"
#: Top-level boxes walked at most when explaining a damaged MP4 (a real file has a handful).
_MAX_MP4_BOXES = 1000


def mp4_boxes(f: Any, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """The top-level boxes of an MP4/MOV read through ``f`` (a binary file of ``end``
    bytes), from their headers only: ``(kind, offset, header bytes, size)``. A size may run
    past the end (a cut file); the walk stops at the end, at a header it cannot read, or
    after :data:`_MAX_MP4_BOXES`."""
    offset = 0
    for _ in range(_MAX_MP4_BOXES):
        if offset >= end:
            return
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header[:8])
        head = 8
        if size == 1:
            if len(header) < 16:
                return
            size, head = struct.unpack(">Q", header[8:])[0], 16  # 64-bit size
        elif size == 0:
            size = end - offset  # the box runs to the end of the file
        if size < head:
            return  # not a box: garbage, the walk cannot go on
        yield kind, offset, head, size
        offset += size


def mp4_media(f: Any, end: int) -> list[tuple[int, int]] | None:
    """The byte ranges of a whole, unfragmented MP4's media data (its ``mdat`` payloads),
    or ``None`` when its index may not say everything (``moof``/``sidx``/``mfra`` boxes: a
    fragmented file) or its boxes do not tile the file: a demuxer given zeros there instead
    still finds every packet's time and flags in the index (``moov``)."""
    ranges, covered = [], 0
    for kind, offset, head, size in mp4_boxes(f, end):
        if kind in (b"moof", b"sidx", b"mfra") or offset + size > end:
            return None
        if kind == b"mdat":
            ranges.append((offset + head, offset + size))
        covered = offset + size
    return ranges if ranges and covered == end else None


def _mp4_index_state(path: str) -> str:
    """``"whole"``, ``"cut"`` (the moov box runs past the end of the file) or ``"missing"``.

    Walks the top-level boxes by their sizes, reading only box headers.
    """
    reader = remote.opened(path) if remote.is_url(path) else open(path, "rb")  # noqa: SIM115
    with reader as f:
        end = f.seek(0, os.SEEK_END)
        for kind, offset, _, size in mp4_boxes(f, end):
            if kind == _MP4_INDEX_BOX:
                return "whole" if offset + size <= end else "cut"
    return "missing"


#: What :func:`sniff_video` calls the ISO base media (MP4/MOV) family.
_MP4_FAMILY = ("MP4", "MOV", "3GP", "MP4/MOV")


def _mp4_index_damage(path: str, what: str) -> str | None:
    """Say what is wrong with an MP4/MOV's index (moov box), if anything."""
    if what not in _MP4_FAMILY:
        return None
    try:
        state = _mp4_index_state(path)
    except OSError:
        return None
    if state == "missing":
        return f"damaged {what}: no index (moov box) found; truncated or still being copied?"
    if state == "cut":
        return (
            f"damaged {what}: the index (moov box) is cut short; truncated or still being copied?"
        )
    return None


def damaged_or_not_video(
    path: str, head: bytes, failure: Failure, open_error: str | None
) -> Failure:
    """The failure to report for a file the decoders gave up on with ``failure``.

    ``head`` is the file's first bytes (from :func:`check_and_read_head`); ``open_error`` is
    why no decoder could open the file at all, in the decoder's words, or ``None`` when one
    opened it. A ``not_video`` becomes ``damaged`` when the file starts like a video
    (:func:`sniff_video`) and either no decoder could open it at all or its MP4 index is cut
    short (FFmpeg then opens it and finds no stream). A file that opens whole and has no
    video stream (audio only) stays ``not_video``; any other failure is returned as it is.
    """
    if failure.status != STATUS_NOT_VIDEO:
        return failure
    what = sniff_video(head)
    if what is None:
        return failure
    message = _mp4_index_damage(path, what)
    if message is not None:
        return Failure(STATUS_DAMAGED, message)
    if open_error is not None:
        return Failure(STATUS_DAMAGED, f"damaged {what}: no decoder could open it ({open_error})")
    return failure


def check_and_read_head(path: str) -> tuple[Failure | None, bytes]:
    """A :class:`Failure` if ``path`` must not be handed to a decoder, else ``None``; and the
    first :data:`SNIFF_BYTES` bytes it read (empty when it read none).

    Uses ``stat`` first (which never blocks, unlike ``open`` on a FIFO). A URL is asked of
    its store (:func:`vmae_cli.remote.check_and_read_head`).
    """
    if remote.is_url(path):
        failure, head = remote.check_and_read_head(path, SNIFF_BYTES)
        if failure is None and (what := sniff_not_video(head)) is not None:
            return Failure(STATUS_NOT_VIDEO, f"not a video: {what}"), head
        return failure, head
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return Failure(STATUS_NOT_FOUND, "broken symbolic link"), b""
        return Failure(STATUS_NOT_FOUND, "file not found"), b""
    except OSError as exc:
        return Failure(STATUS_UNREADABLE, f"cannot access file: {exc.strerror or exc}"), b""
    except ValueError:  # "embedded null byte": a name from a list, no file can have it
        return Failure(STATUS_NOT_FOUND, "no file can be named so: the path holds a NUL byte"), b""
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        if stat.S_ISDIR(st.st_mode):
            kind = "a directory"
        return Failure(STATUS_NOT_A_FILE, f"not a video file: {kind}"), b""
    if st.st_size == 0:
        return Failure(STATUS_EMPTY, "empty file (0 bytes)"), b""
    try:
        # O_NONBLOCK: the file was a regular file a moment ago, but never block on open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            head = os.read(fd, SNIFF_BYTES)
        finally:
            os.close(fd)
    except PermissionError:
        return Failure(STATUS_UNREADABLE, "permission denied"), b""
    except OSError as exc:
        return Failure(STATUS_UNREADABLE, f"cannot read file: {exc.strerror or exc}"), b""
    what = sniff_not_video(head)
    if what is not None:
        return Failure(STATUS_NOT_VIDEO, f"not a video: {what}"), head
    return None, head
