"""What ``--sampling keyframes`` saves and what it costs in fidelity, video by video.

For each video, in this one process and on one thread (decoders, OpenCV and torch all
single-threaded, as in a decoding worker), the script decodes the views of the default
protocol twice through vmae's own ``decode_video``, with the transform of
``ViewMaker(16 frames, 224x224 centre crop)``:

``exact``      the 16 frames at the centres of 16 equal segments of the video (the default);
``keyframes``  the keyframe nearest each of those frames (``--sampling keyframes``).

It reports the CPU time of each (``time.process_time``, the minimum over ``--repeat`` runs,
so that other work on the machine changes little: CPU time, not wall time, is measured),
their ratio, and how far the keyframe frames are from the exact ones: in frames and seconds
(mean and max of ``|keyframe index - exact index|``) and in pixels (mean absolute difference
of the 224x224 crops, 0-255; for scale, also between neighbouring exact samples, 1/16 of the
video apart). Videos keyframe sampling cannot serve (AVI, MPEG-TS, ...) are
decoded exactly in both runs; their row says so. Then totals and the overall speed-up.

Usage::

    python benchmarks/keyframes.py VIDEOS_DIR [--json FILE] [--repeat N] [--frames T]
"""

from __future__ import annotations

import argparse
import sys
import time
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
    ratio,
    write_json,
)

#: Frames per clip of the default model (VideoMAE-B Kinetics).
DEFAULT_FRAMES = 16
#: Timed runs per video and mode; the minimum CPU time is kept.
DEFAULT_REPEAT = 3


def _single_threaded() -> None:
    """One thread for OpenCV and torch, and OpenCV's log silenced, as in a decoding worker:
    CPU time is then the work of one worker."""
    import torch

    from vmae_cli.views import prepare_worker

    prepare_worker()
    torch.set_num_threads(1)


def _decode(path: str, maker: Any, sampling: str) -> tuple[float, Any, Any, Any]:
    """One timed ``decode_video`` of ``path``: (CPU seconds, decoded, failure, meta)."""
    from vmae_cli.decoding import decode_video

    started = time.process_time()
    decoded, failure, meta = decode_video(path, maker.sample, maker.transform, sampling=sampling)
    return time.process_time() - started, decoded, failure, meta


def _measure(path: str, maker: Any, repeat: int) -> dict[str, Any]:
    """Both modes on one video, alternating, ``repeat`` times each."""
    from vmae_cli.protocol import SAMPLING_EXACT, SAMPLING_KEYFRAMES

    cpu: dict[str, list[float]] = {SAMPLING_EXACT: [], SAMPLING_KEYFRAMES: []}
    last: dict[str, Any] = {}
    for i in range(repeat):
        # Alternate which mode goes first, so neither always finds the file's pages warmer.
        order = (SAMPLING_EXACT, SAMPLING_KEYFRAMES)
        for mode in order if i % 2 == 0 else order[::-1]:
            seconds, decoded, failure, meta = _decode(path, maker, mode)
            cpu[mode].append(seconds)
            last[mode] = (decoded, failure, meta)
    exact, failure, meta = last[SAMPLING_EXACT]
    keyed, keyed_failure, keyed_meta = last[SAMPLING_KEYFRAMES]
    row: dict[str, Any] = {
        "video": path,
        "cpu_exact_s": round(min(cpu[SAMPLING_EXACT]), 4),
        "cpu_keyframes_s": round(min(cpu[SAMPLING_KEYFRAMES]), 4),
        "cpu_exact_runs_s": [round(s, 4) for s in cpu[SAMPLING_EXACT]],
        "cpu_keyframes_runs_s": [round(s, 4) for s in cpu[SAMPLING_KEYFRAMES]],
        "decoder_exact": meta.decoder,
        "decoder_keyframes": keyed_meta.decoder,
        "frames": meta.frames_decoded,
        "fps": meta.fps,
        "duration_s": meta.duration_s,
        "size": f"{meta.width}x{meta.height}" if meta.width else None,
    }
    if exact is None or keyed is None:
        row["failure"] = (failure or keyed_failure).status
        return row
    row["notes"] = keyed.notes
    row["served"] = keyed_meta.decoder == "pyav-keyframes"
    row["exact_indices"] = exact.frame_indices
    row["keyframe_indices"] = keyed.frame_indices
    row["distinct_keyframes"] = len(set(keyed.frame_indices))
    gaps = [abs(k - e) for k, e in zip(keyed.frame_indices, exact.frame_indices, strict=True)]
    row["index_distance_mean"] = sum(gaps) / len(gaps)
    row["index_distance_max"] = max(gaps)
    if meta.fps:
        row["seconds_distance_mean"] = row["index_distance_mean"] / meta.fps
        row["seconds_distance_max"] = row["index_distance_max"] / meta.fps
    diffs = [
        (a.float() - b.float()).abs().mean().item()
        for a, b in zip(keyed.frames, exact.frames, strict=True)
    ]
    row["pixel_distance_mean"] = sum(diffs) / len(diffs)
    row["pixel_distance_max_frame"] = max(diffs)
    # A yardstick for that figure: how much neighbouring exact samples differ.
    steps = [
        (a.float() - b.float()).abs().mean().item()
        for a, b in zip(exact.frames, exact.frames[1:], strict=False)
    ]
    row["pixel_distance_neighbours_mean"] = sum(steps) / len(steps) if steps else None
    return row


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    decoded = [r for r in rows if "failure" not in r]
    served = [r for r in decoded if r["served"]]
    s: dict[str, Any] = {
        "videos": len(rows),
        "decoded": len(decoded),
        "served_by_keyframes": len(served),
        "cpu_exact_s": round(sum(r["cpu_exact_s"] for r in decoded), 3),
        "cpu_keyframes_s": round(sum(r["cpu_keyframes_s"] for r in decoded), 3),
    }
    s["speedup"] = ratio(s["cpu_exact_s"], s["cpu_keyframes_s"])
    s["served_cpu_exact_s"] = round(sum(r["cpu_exact_s"] for r in served), 3)
    s["served_cpu_keyframes_s"] = round(sum(r["cpu_keyframes_s"] for r in served), 3)
    s["served_speedup"] = ratio(s["served_cpu_exact_s"], s["served_cpu_keyframes_s"])
    if served:
        s["index_distance_mean"] = _mean(r["index_distance_mean"] for r in served)
        s["index_distance_max"] = max(r["index_distance_max"] for r in served)
        timed = [r for r in served if "seconds_distance_mean" in r]
        if timed:
            s["seconds_distance_mean"] = _mean(r["seconds_distance_mean"] for r in timed)
            s["seconds_distance_max"] = max(r["seconds_distance_max"] for r in timed)
        s["pixel_distance_mean"] = _mean(r["pixel_distance_mean"] for r in served)
        s["pixel_distance_max_video"] = max(r["pixel_distance_mean"] for r in served)
        neighbours = [r["pixel_distance_neighbours_mean"] for r in served]
        if None not in neighbours:
            s["pixel_distance_neighbours_mean"] = _mean(neighbours)
    return s


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


def _print_report(report: dict[str, Any]) -> None:
    v, s = report["videos"], report["summary"]
    print(f"machine: {machine_summary(report['machine'])}")
    print(
        f"videos:  {v['videos']} files, {fmt_duration(v['total_duration_s'])} of video "
        f"({v['total_duration_s']:.0f} s), {fmt_bytes(v['total_bytes'])}; "
        f"{report['frames']} frames per video, CPU time (min of {report['repeat']} runs)"
    )
    header = [
        "video",
        "size",
        "dur s",
        "exact decoder",
        "exact CPU s",
        "keyframes CPU s",
        "speed-up",
        "keyframes",
        "frames off mean/max",
        "s off mean/max",
        "pixels off",
        "neighbours",
        "decoder with keyframes",
    ]
    rows = []
    for r in report["rows"]:
        name = Path(r["video"]).name
        if "failure" in r:
            rows.append([name, r.get("size") or "-", *[""] * 10, r["failure"]])
            continue
        served = r["served"]
        rows.append(
            [
                name,
                r["size"] or "-",
                f"{r['duration_s']:.0f}" if r["duration_s"] else "-",
                r["decoder_exact"],
                f"{r['cpu_exact_s']:.3f}",
                f"{r['cpu_keyframes_s']:.3f}",
                f"{ratio(r['cpu_exact_s'], r['cpu_keyframes_s']) or 0:.1f}x",
                str(r["distinct_keyframes"]) if served else "-",
                f"{r['index_distance_mean']:.1f}/{r['index_distance_max']}" if served else "-",
                f"{r['seconds_distance_mean']:.2f}/{r['seconds_distance_max']:.2f}"
                if served and "seconds_distance_mean" in r
                else "-",
                f"{r['pixel_distance_mean']:.1f}" if served else "-",
                f"{r['pixel_distance_neighbours_mean']:.1f}"
                if r.get("pixel_distance_neighbours_mean") is not None
                else "-",
                r["decoder_keyframes"] if served else f"{r['decoder_keyframes']} (exact)",
            ]
        )
    print()
    print_table(rows, header)
    print()
    print(
        f"total CPU: exact {s['cpu_exact_s']:.2f} s, keyframes {s['cpu_keyframes_s']:.2f} s: "
        f"speed-up {s['speedup'] or 0:.2f}x over {s['decoded']} videos"
    )
    print(
        f"videos served by keyframes: {s['served_by_keyframes']} of {s['decoded']}: exact "
        f"{s['served_cpu_exact_s']:.2f} s, keyframes {s['served_cpu_keyframes_s']:.2f} s, "
        f"speed-up {s['served_speedup'] or 0:.2f}x"
    )
    if s.get("served_by_keyframes"):
        seconds = ""
        if "seconds_distance_mean" in s:
            seconds = (
                f" ({s['seconds_distance_mean']:.2f} s mean, {s['seconds_distance_max']:.2f} s max)"
            )
        print(
            f"distance on those: {s['index_distance_mean']:.1f} frames mean, "
            f"{s['index_distance_max']} max{seconds}; pixels {s['pixel_distance_mean']:.1f} "
            f"mean absolute difference (0-255), {s['pixel_distance_max_video']:.1f} for the "
            "worst video"
        )
        if "pixel_distance_neighbours_mean" in s:
            print(
                "for scale: neighbouring exact samples differ by "
                f"{s['pixel_distance_neighbours_mean']:.1f} on the same videos"
            )
    for r in report["rows"]:
        for note in r.get("notes", []):
            print(f"note: {Path(r['video']).name}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", help="folder of videos (walked as vmae walks it)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per mode")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per clip")
    args = parser.parse_args(argv)
    paths = list_videos(args.videos)
    if not paths:
        print("keyframes: no videos found", file=sys.stderr)
        return 2
    _single_threaded()
    from vmae_cli.preprocessing import PreprocessConfig
    from vmae_cli.protocol import Protocol
    from vmae_cli.views import ViewMaker

    maker = ViewMaker(args.frames, PreprocessConfig(), Protocol())
    info = machine_info()
    # Untimed: the first call of each mode pays for imports and the decoders' set-up.
    _measure(paths[0], maker, repeat=1)
    rows = []
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path}", file=sys.stderr)
        rows.append(_measure(path, maker, max(1, args.repeat)))
    report = {
        "machine": info,
        "videos_dir": args.videos,
        "videos": describe_videos(paths),
        "frames": args.frames,
        "repeat": max(1, args.repeat),
        "rows": rows,
        "summary": _summarise(rows),
    }
    _print_report(report)
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
