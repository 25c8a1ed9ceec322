"""What decoding costs per video, and what skipping non-reference frames saves.

For each video of a folder, in this one process on one thread (PyAV without frame threads,
one OpenCV thread, one torch thread), the CPU time (``time.process_time``, so that other work
on the machine disturbs little) of:

``full``    a sequential PyAV decode of every frame, no conversion: what a frame costs to
            decode, and how many frames the video has;
``noskip``  vmae's real decoding of the 16 sampled frames (``decode_video`` with the default
            protocol and ``ViewMaker``'s transform: RGB, resize, centre crop), with
            ``skip_frame`` off in the seeking decoder (``decode_pyav_seek(skip_nonref=False)``);
``skip``    the same as vmae runs it: non-reference frames skipped where that is exact
            (``vmae_cli.seeking.SKIP_NONREF_DECODERS``);
``opencv``  for videos up to ``--opencv-max-s`` long (default 10 s, the seeking threshold
            before skipping): OpenCV's sequential pass (``decode_opencv``), what those videos
            cost before they were seeked too. ``--seek-min-s 0`` seeks (with and without
            skipping) in every MP4/MOV/MKV/WebM video whatever its length, to compare.

With the counts: frames in the video, frames the plan sends to the decoder, frames the decoder
skipped (frames out of ``noskip`` minus frames out of ``skip``: both send the same packets),
frames kept; and per frame: CPU time to decode one (``full`` / frames) and to keep one
(``to_ndarray("rgb24")`` and the transform). Every video's ``skip`` result is compared with
its ``noskip`` result: the same frame indices and identical RGB frames, or the report says
which video differs. Then totals per decoder and for the folder.

Usage::

    python benchmarks/decode_cost.py VIDEOS_DIR [--repeat 5] [--json out.json]
    python benchmarks/decode_cost.py VIDEOS_DIR --seek-min-s 0 --opencv-max-s 10
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    describe_videos,
    fmt_bytes,
    fmt_duration,
    list_videos,
    machine_info,
    machine_summary,
    print_table,
    probe_duration_s,
    write_json,
)

#: Frames per clip of the default model (VideoMAE's 16).
FRAMES_PER_CLIP = 16
#: Videos up to this long (seconds) also get OpenCV's sequential pass measured: the ones vmae
#: decoded that way before short videos were seeked too (``SEEK_MIN_DURATION_S`` was 10 s).
DEFAULT_OPENCV_MAX_S = 10.0
#: Frames converted and transformed to measure what keeping one frame costs.
KEEP_COST_FRAMES = 8
#: A 1-minute load average above this fraction of the usable CPUs is reported as a busy
#: machine (the figures are CPU time, but shared caches and memory still feel it).
BUSY_LOAD_PER_CPU = 0.5


# --------------------------------------------------------------------------------------
# Measurements of one video
# --------------------------------------------------------------------------------------


def _cpu(run: Callable[[], Any]) -> tuple[float, Any]:
    """The CPU time of one call of ``run`` (seconds), and its result."""
    start = time.process_time()
    result = run()
    return time.process_time() - start, result


def full_decode(path: str) -> tuple[int, str, str]:
    """Decode every frame of ``path`` with PyAV, one thread, no conversion; return the frames
    that came out, the decoder's name and the container's."""
    import av

    frames = 0
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for packet in container.demux(stream):
            try:
                frames += len(packet.decode())
            except av.error.FFmpegError:
                continue  # a damaged packet, as vmae's decoders skip it
        return frames, stream.codec_context.name, container.format.name or ""


def keep_cost(path: str, transform: Callable[[Any], Any]) -> float:
    """Mean CPU seconds to keep one frame: ``to_ndarray("rgb24")`` and ``transform``, over the
    first :data:`KEEP_COST_FRAMES` frames of ``path`` (decoding is not counted)."""
    import av

    spent, kept = 0.0, 0
    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            start = time.process_time()
            transform(frame.to_ndarray(format="rgb24"))
            spent += time.process_time() - start
            kept += 1
            if kept == KEEP_COST_FRAMES:
                break
    return spent / kept if kept else 0.0


class _Keeper:
    """A transform that applies vmae's and also holds on to every RGB frame it was given
    (only a reference: nothing is copied while the decode is timed)."""

    def __init__(self, transform: Callable[[Any], Any]):
        self.transform = transform
        self.rgb: list[Any] = []

    def __call__(self, rgb: Any) -> Any:
        self.rgb.append(rgb)
        return self.transform(rgb)


@contextmanager
def seek_options(**options: Any) -> Iterator[None]:
    """Run ``decode_video`` with these keyword arguments for its seeking decoder
    (``skip_nonref``, ``counts``): the real decoding path, with one setting changed."""
    from vmae_cli import decoding

    original = decoding.decode_pyav_seek
    decoding.decode_pyav_seek = functools.partial(original, **options)
    try:
        yield
    finally:
        decoding.decode_pyav_seek = original


def vmae_decode(
    path: str, maker: Any, skip: bool, seek_min_s: float | None = None
) -> dict[str, Any]:
    """One run of ``decode_video(path, maker.sample, maker.transform)`` with ``skip_frame`` on
    or off (and, unless ``None``, another minimum duration for seeking): its CPU time, and
    what the decoder was sent and gave."""
    from vmae_cli.decoding import decode_video
    from vmae_cli.seeking import DecodeCounts

    counts, keeper = DecodeCounts(), _Keeper(maker.transform)
    options: dict[str, Any] = {"skip_nonref": skip, "counts": counts}
    if seek_min_s is not None:
        options["min_duration_s"] = seek_min_s

    def run() -> Any:
        with seek_options(**options):
            return decode_video(path, maker.sample, keeper)

    cpu, (decoded, failure, meta) = _cpu(run)
    return {
        "cpu_s": cpu,
        "ok": decoded is not None,
        "error": None if failure is None else f"{failure.status}: {failure.error}",
        "decoder": meta.decoder,
        "frames_decoded": meta.frames_decoded,
        "indices": list(decoded.frame_indices) if decoded is not None else [],
        "packets": counts.packets,
        "skippable": counts.skippable,
        "frames_out": counts.frames,
        "rgb": keeper.rgb,
    }


def opencv_decode(path: str, maker: Any) -> dict[str, Any]:
    """One run of OpenCV's sequential pass (``decode_opencv``): its CPU time."""
    from vmae_cli.decoding import decode_opencv

    cpu, _ = _cpu(lambda: decode_opencv(path, maker.sample, maker.transform))
    return {"cpu_s": cpu}


def same_frames(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two decodes kept the same frame indices and identical RGB frames."""
    import numpy as np

    if a["indices"] != b["indices"] or len(a["rgb"]) != len(b["rgb"]):
        return False
    return all(np.array_equal(x, y) for x, y in zip(a["rgb"], b["rgb"], strict=True))


def measure_video(
    path: str, maker: Any, repeat: int, opencv_max_s: float, seek_min_s: float | None = None
) -> dict[str, Any]:
    """Every figure of one video (see the module docstring). The full decode runs once; the
    others ``repeat`` times, interleaved in a rotating order so that a change in the
    machine's speed hits each of them alike, keeping each one's least CPU time."""
    row: dict[str, Any] = {"path": path, "name": os.path.basename(path)}
    duration = probe_duration_s(path)
    row["duration_s"] = duration
    try:
        row["full_cpu_s"], (frames, codec, fmt) = _cpu(lambda: full_decode(path))
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update(frames=frames, codec=codec, container=fmt)
    row["decode_s_per_frame"] = row["full_cpu_s"] / frames if frames else None
    row["keep_s_per_frame"] = keep_cost(path, maker.transform)
    modes: dict[str, Callable[[], dict[str, Any]]] = {
        "noskip": lambda: vmae_decode(path, maker, skip=False, seek_min_s=seek_min_s),
        "skip": lambda: vmae_decode(path, maker, skip=True, seek_min_s=seek_min_s),
    }
    if duration is not None and duration <= opencv_max_s:
        modes["opencv"] = lambda: opencv_decode(path, maker)
    names = list(modes)
    best: dict[str, dict[str, Any]] = {}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            result = modes[name]()
            if name not in best or result["cpu_s"] < best[name]["cpu_s"]:
                best[name] = result
    noskip, skip = best["noskip"], best["skip"]
    row["decoder"] = skip["decoder"]
    row["error"] = skip["error"]
    row["noskip_cpu_s"], row["skip_cpu_s"] = noskip["cpu_s"], skip["cpu_s"]
    if "opencv" in best:
        row["opencv_cpu_s"] = best["opencv"]["cpu_s"]
    # None: both failed alike (nothing to compare); a failure of one only is not exact.
    failed_alike = not noskip["ok"] and not skip["ok"] and noskip["error"] == skip["error"]
    row["exact"] = None if failed_alike else same_frames(noskip, skip)
    row["kept"] = len(set(skip["indices"]))
    if skip["decoder"] == "pyav-seek":
        row["plan_frames"] = skip["packets"]
        row["skippable"] = skip["skippable"]
        # Both runs send the same packets; what the skipping one gets less is what it skipped.
        row["same_packets"] = noskip["packets"] == skip["packets"]
        row["skipped"] = noskip["frames_out"] - skip["frames_out"]
    else:
        # OpenCV (or PyAV as a fallback) reads every frame: nothing to skip.
        row["plan_frames"] = skip["frames_decoded"]
        row["skippable"] = row["skipped"] = 0
        row["same_packets"] = True
    return row


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _saving(before: float, after: float) -> str:
    return f"{100 * (1 - after / before):.0f}%" if before else "-"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals for the folder and per decoder (codec as FFmpeg decodes it)."""
    ok = [r for r in rows if "noskip_cpu_s" in r]
    totals = {
        "videos": len(rows),
        "measured": len(ok),
        "full_cpu_s": sum(r["full_cpu_s"] for r in ok),
        "noskip_cpu_s": sum(r["noskip_cpu_s"] for r in ok),
        "skip_cpu_s": sum(r["skip_cpu_s"] for r in ok),
        "frames": sum(r["frames"] for r in ok),
        "plan_frames": sum(r["plan_frames"] for r in ok),
        "skipped": sum(r["skipped"] for r in ok),
        "kept": sum(r["kept"] for r in ok),
        "not_exact": [r["name"] for r in ok if r["exact"] is False],
        "packets_differ": [r["name"] for r in ok if not r["same_packets"]],
    }
    per_codec: dict[str, dict[str, Any]] = {}
    for r in ok:
        c = per_codec.setdefault(
            r["codec"], {"videos": 0, "noskip_cpu_s": 0.0, "skip_cpu_s": 0.0, "plan": 0, "skip": 0}
        )
        c["videos"] += 1
        c["noskip_cpu_s"] += r["noskip_cpu_s"]
        c["skip_cpu_s"] += r["skip_cpu_s"]
        c["plan"] += r["plan_frames"]
        c["skip"] += r["skipped"]
    short = [r for r in ok if "opencv_cpu_s" in r]
    totals["short"] = {
        "videos": len(short),
        "opencv_cpu_s": sum(r["opencv_cpu_s"] for r in short),
        "skip_cpu_s": sum(r["skip_cpu_s"] for r in short),
    }
    return {"totals": totals, "per_codec": per_codec}


def print_report(report: dict[str, Any]) -> None:
    """The per-video table, the per-codec table, the totals and the exactness verdict."""
    rows = report["rows"]
    print()
    print(f"machine: {machine_summary(report['machine'])}")
    v = report["videos"]
    print(
        f"videos:  {v['videos']} files, {fmt_duration(v['total_duration_s'])} of video, "
        f"{fmt_bytes(v['total_bytes'])}; full decode once, the others the least CPU time of "
        f"{report['options']['repeat']} interleaved run(s)"
    )
    if report["options"]["seek_min_s"] is not None:
        print(
            f"note:    seeking in videos from {report['options']['seek_min_s']:g} s on "
            "(--seek-min-s), not from vmae's own minimum"
        )
    if report["busy"]:
        print(f"note:    the machine was not idle ({report['busy']})")
    header = [
        "video",
        "codec",
        "s",
        "frames",
        "decoder",
        "full s",
        "noskip s",
        "skip s",
        "saved",
        "opencv s",
        "plan",
        "skipped",
        "kept",
        "ms/decoded",
        "ms/kept",
        "exact",
    ]
    table = []
    for r in rows:
        if "noskip_cpu_s" not in r:
            table.append([r["name"], *["-"] * (len(header) - 2), r.get("error") or "failed"])
            continue
        table.append(
            [
                r["name"],
                r["codec"],
                _f(r["duration_s"], 1),
                str(r["frames"]),
                r["decoder"],
                _f(r["full_cpu_s"], 2),
                _f(r["noskip_cpu_s"], 3),
                _f(r["skip_cpu_s"], 3),
                _saving(r["noskip_cpu_s"], r["skip_cpu_s"]),
                _f(r.get("opencv_cpu_s"), 3),
                str(r["plan_frames"]),
                str(r["skipped"]),
                str(r["kept"]),
                _f(1000 * r["decode_s_per_frame"] if r["decode_s_per_frame"] else None, 2),
                _f(1000 * r["keep_s_per_frame"], 2),
                {True: "yes", False: "NO", None: "failed"}[r["exact"]],
            ]
        )
    print()
    print_table(table, header)
    s = report["summary"]
    print()
    codec_rows = [
        [
            codec,
            str(c["videos"]),
            _f(c["noskip_cpu_s"], 2),
            _f(c["skip_cpu_s"], 2),
            _saving(c["noskip_cpu_s"], c["skip_cpu_s"]),
            str(c["plan"]),
            str(c["skip"]),
        ]
        for codec, c in sorted(s["per_codec"].items())
    ]
    print_table(codec_rows, ["decoder", "videos", "noskip s", "skip s", "saved", "plan", "skipped"])
    t = s["totals"]
    print()
    print(
        f"decode core-seconds for the folder: {t['noskip_cpu_s']:.2f} without skip_frame, "
        f"{t['skip_cpu_s']:.2f} with it ({_saving(t['noskip_cpu_s'], t['skip_cpu_s'])} saved); "
        f"a full decode of every frame: {t['full_cpu_s']:.2f}"
    )
    print(
        f"frames: {t['frames']} in the videos, {t['plan_frames']} sent to the decoder, "
        f"{t['skipped']} of them skipped, {t['kept']} kept"
    )
    short = t["short"]
    if short["videos"]:
        print(
            f"videos up to {report['options']['opencv_max_s']:g} s ({short['videos']}): "
            f"OpenCV's sequential pass {short['opencv_cpu_s']:.2f} s, vmae now "
            f"{short['skip_cpu_s']:.2f} s"
        )
    if t["not_exact"]:
        print(f"NOT frame-exact with skip_frame: {', '.join(t['not_exact'])}")
    else:
        print(
            f"frame-exact: with skip_frame, every video decoded ({t['measured']}) kept the "
            "same frame indices and identical RGB frames as without it"
        )
    if t["packets_differ"]:
        print(f"different packets sent with and without skipping: {', '.join(t['packets_differ'])}")


def _load() -> float | None:
    """The 1-minute load average, or ``None`` where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _busy(info: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A few words when the load average, read at the start and after each video, says the
    machine was busy; else ''."""
    cpus = info.get("usable_cpus") or 1
    loads = [info.get("loadavg", [0.0])[0], *(r.get("loadavg_1m") for r in rows)]
    loads = [x for x in loads if x is not None]
    if not loads or max(loads) <= BUSY_LOAD_PER_CPU * cpus:
        return ""
    return (
        f"1-minute load average {min(loads)}-{max(loads)} on {cpus} CPUs during the run; "
        "the figures are CPU time of this process alone, which other work disturbs little"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("videos", help="folder of videos (walked like vmae does)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of noskip, skip and opencv per video, interleaved; the least CPU (default 3)",
    )
    parser.add_argument(
        "--opencv-max-s",
        type=float,
        default=DEFAULT_OPENCV_MAX_S,
        help="also measure OpenCV's sequential pass on videos up to this long (0: never)",
    )
    parser.add_argument(
        "--seek-min-s",
        type=float,
        help="seek in videos from this long on instead of vmae's minimum "
        "(SEEK_MIN_DURATION_S), e.g. 0 to see what seeking would cost on short videos",
    )
    args = parser.parse_args(argv)

    # One thread everywhere, as in a decoding worker: parallelism comes from processes.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from vmae_cli.preprocessing import PreprocessConfig
    from vmae_cli.views import ViewMaker, prepare_worker

    torch.set_num_threads(1)
    prepare_worker()
    maker = ViewMaker(FRAMES_PER_CLIP, PreprocessConfig())

    info = machine_info()
    paths = list_videos(args.videos)
    if not paths:
        print("decode_cost: no videos found", file=sys.stderr)
        return 2
    videos = describe_videos(paths)
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    # Warm up (imports, first allocations, the page cache) on the first video, untimed.
    measure_video(paths[0], maker, 1, 0)
    rows = []
    for i, path in enumerate(paths, 1):
        row = measure_video(path, maker, args.repeat, args.opencv_max_s, args.seek_min_s)
        row["loadavg_1m"] = _load()
        rows.append(row)
        print(
            f"  [{i}/{len(paths)}] {row['name']}: noskip {_f(row.get('noskip_cpu_s'))} s, "
            f"skip {_f(row.get('skip_cpu_s'))} s, exact {row.get('exact')}",
            file=sys.stderr,
        )
    report = {
        "machine": info,
        "videos_dir": os.path.abspath(args.videos),
        "videos": videos,
        "options": {
            "repeat": args.repeat,
            "opencv_max_s": args.opencv_max_s,
            "seek_min_s": args.seek_min_s,
        },
        "busy": _busy(info, rows),
        "rows": rows,
    }
    report["summary"] = summarise(rows)
    print_report(report)
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
