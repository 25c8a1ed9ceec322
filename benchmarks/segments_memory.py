"""Does ``vmae classify --segments`` stay flat in memory as one video gets longer?

Generates one H.264 video per requested duration (``--minutes 1,60``; ffmpeg's moving
``testsrc2`` pattern, ``--size`` and ``--fps``, ``-preset ultrafast``, a keyframe every
``--gop-s`` seconds; MP4, or MPEG-TS with ``--container ts``, which vmae reads with one
sequential PyAV pass instead of the demux index and seek plan it uses for MP4), then runs
``vmae classify FILE --model MODEL -q --segments -o videos.csv --segments-out windows.csv`` on
each while sampling the memory of its whole process tree every 50 ms (``_common.TreeSampler``).

Reports, per duration: frames, windows, wall time, and the peaks over the whole run of the
sum of RSS and of PSS over the tree, of its anonymous PSS, of the main process's RSS and of
the decoding workers' RSS; then the same peaks once the tree has settled (from the last
change in its number of processes while the video is read: the workers' fork, the idle
worker's exit and any short-lived child are start-up, not length). Then the ratio of the
longest video's peaks to the shortest's (target: whole-run RSS sum and PSS sum <= 1.3) and,
within the longest run, how the main process and the workers grew between the first and the
last tenth of the settled span (a leak shows as steady growth), with the main process's RSS
split into anonymous memory, mapped files and shared memory.

Each run is checked: the main CSV holds one ``ok`` row whose ``windows`` equals the number of
window rows, ``frames_decoded`` is the generated frame count, and the window rows tile the
video (numbered 0..N-1, all ``ok``, the first starts on frame 0, each starts at most one
frame after the previous one ends, the last ends on frame ``frames_decoded - 1``).

Usage::

    python benchmarks/segments_memory.py --model MODEL_DIR                 # 1 and 60 minutes
    python benchmarks/segments_memory.py --model MODEL_DIR --container ts --minutes 1,10
    python benchmarks/segments_memory.py --model MODEL_DIR --work-dir scratch/seg --json s.json
    python benchmarks/segments_memory.py --model MODEL_DIR --vmae-args="--workers 0"

Videos are cached in the work dir (a given ``--work-dir`` is kept). By default one minute is
encoded and longer videos repeat it with a stream copy: a 60-minute 640x360 file (~0.6 GB)
then takes seconds, where encoding it in full (``--encode-full``) takes ~2 CPU-minutes.
Before the measured runs, vmae runs once unmeasured on the shortest video, so that one-time
work (OpenVINO's conversion cache, the page cache) does not land in the first measurement;
``--no-warmup`` skips it. A tiny model (``tests/tiny_model.py DIR``, or ``make_model.py DIR
--tiny`` for the real input size) keeps the run about decoding and the pipeline.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    _read_kb,
    fmt_bytes,
    fmt_duration,
    machine_info,
    machine_summary,
    print_table,
    process_tree,
    ratio,
    run_measured,
    vmae_command,
    write_json,
)
from memory import _r, _window_median

#: The parts of the main process's RSS followed over time (/proc/PID/status).
MAIN_KINDS = ("RssAnon", "RssFile", "RssShmem")
#: Container -> (file extension, ffmpeg muxer).
CONTAINERS = {"mp4": (".mp4", "mp4"), "ts": (".ts", "mpegts")}


# --------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------


def ensure_ffmpeg() -> str:
    """The ffmpeg executable; installed with apt-get when missing (Debian/Ubuntu as root)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    if shutil.which("apt-get"):
        print("ffmpeg not found: apt-get install -y ffmpeg", file=sys.stderr)
        subprocess.run(["apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "ffmpeg"], check=False, stdout=subprocess.DEVNULL
        )
        found = shutil.which("ffmpeg")
    if not found:
        sys.exit("ffmpeg is needed to generate the videos (apt-get install ffmpeg)")
    return found


def ffmpeg_version(ffmpeg: str) -> str:
    try:
        out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else "?"
    except OSError:
        return "?"


def looped(minutes: float, args: argparse.Namespace) -> bool:
    """Whether the video of ``minutes`` is made of repeated pieces (see :func:`make_video`)."""
    pieces = minutes / args.piece_min
    return not args.encode_full and pieces == int(pieces)


def video_name(minutes: float, args: argparse.Namespace, piece: bool = False) -> str:
    ext = CONTAINERS[args.container][0]
    how = "piece" if piece else "loop" if looped(minutes, args) else "full"
    return (
        f"testsrc2_{args.size}_{args.fps:g}fps_gop{args.gop_s:g}s_crf{args.crf}_"
        f"{minutes:g}min_{how}{ext}"
    )


def _ffmpeg_to(ffmpeg: str, path: Path, args: argparse.Namespace, *inputs: str) -> float:
    """Run ffmpeg with ``inputs`` (input and codec options) into ``path`` (atomically: only a
    complete file gets the name); return the seconds it took."""
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    cmd = [
        ffmpeg,
        *("-hide_banner", "-loglevel", "error", "-nostdin", "-y"),
        *inputs,
        *("-f", CONTAINERS[args.container][1], str(partial)),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    partial.replace(path)
    return seconds


def _encode(ffmpeg: str, path: Path, minutes: float, args: argparse.Namespace) -> float:
    """Encode ``minutes`` of the moving test pattern into ``path``."""
    gop = max(1, round(args.gop_s * args.fps))
    return _ffmpeg_to(
        ffmpeg,
        path,
        args,
        *("-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate={args.fps:g}"),
        *("-t", f"{minutes * 60:g}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-crf", str(args.crf)),
        *("-g", str(gop), "-pix_fmt", "yuv420p"),
    )


def make_video(ffmpeg: str, work: Path, minutes: float, args: argparse.Namespace) -> float:
    """Write the video of ``minutes`` in ``work`` (unless it exists); return the seconds it
    took (0 when cached).

    By default one piece of ``--piece-min`` minutes is encoded and a longer video whose
    length is a whole number of pieces is that piece repeated (``-stream_loop``, stream
    copy: seconds instead of minutes; every piece starts on a keyframe, the timestamps run
    on, and vmae cannot tell it from one long encode except that the picture repeats);
    ``--encode-full`` encodes every video in full.
    """
    path = work / video_name(minutes, args)
    if path.exists():
        return 0.0
    if not looped(minutes, args):
        return _encode(ffmpeg, path, minutes, args)
    base = work / video_name(args.piece_min, args, piece=True)
    seconds = 0.0 if base.exists() else _encode(ffmpeg, base, args.piece_min, args)
    return seconds + _ffmpeg_to(
        ffmpeg,
        path,
        args,
        "-stream_loop",
        str(round(minutes / args.piece_min) - 1),
        "-i",
        str(base),
        "-c",
        "copy",
    )


# --------------------------------------------------------------------------------------
# What the process tree is doing
# --------------------------------------------------------------------------------------


@dataclass
class TreeWatch:
    """An ``on_tick`` callback for :func:`run_measured`: what each process of vmae's tree
    holds over time, how many processes there are, and when some process has the video open
    (the time it is being read).

    vmae's tree is found as this script's descendants (vmae is this script's only child while
    it runs); the first one is vmae's main process, the others are the decoding workers (and
    any short-lived child, such as the one OpenVINO's telemetry forks while the model loads).
    """

    video: str
    every: int = 2  # look at open files every N-th tick (readlink of each fd)
    pss_every: int = 4  # read each process's Pss and Pss_Anon every N-th tick
    first_open_s: float | None = None
    last_open_s: float | None = None
    #: (seconds, processes, main's VmRSS, workers' VmRSS sum, main's RssAnon, RssFile,
    #: RssShmem): every tick (~20 per s), not thinned
    ticks: list[tuple[float, int, int, int, int, int, int]] = field(default_factory=list)
    #: (seconds, main's Pss, workers' Pss sum, main's Pss_Anon, workers' Pss_Anon sum).
    #: Pss_Anon leaves out library pages, whose share also depends on the other processes of
    #: the machine that map the same files.
    pss: list[tuple[float, int, int, int, int]] = field(default_factory=list)
    peak_worker_rss: int = 0
    _n: int = 0

    def __call__(self, elapsed: float) -> None:
        tree = process_tree(os.getpid())[1:]
        if not tree:
            return
        t = round(elapsed, 3)
        main = _read_kb(f"/proc/{tree[0]}/status", ("VmRSS", *MAIN_KINDS))
        workers = 0
        for pid in tree[1:]:
            rss = _read_kb(f"/proc/{pid}/status", ("VmRSS",)).get("VmRSS", 0) * 1024
            workers += rss
            self.peak_worker_rss = max(self.peak_worker_rss, rss)
        kb = [main.get(k, 0) * 1024 for k in ("VmRSS", *MAIN_KINDS)]
        self.ticks.append((t, len(tree), kb[0], workers, kb[1], kb[2], kb[3]))
        self._n += 1
        if self.pss_every and self._n % self.pss_every == 1:
            got = [_read_kb(f"/proc/{pid}/smaps_rollup", ("Pss", "Pss_Anon")) for pid in tree]
            pss = [g.get("Pss", 0) * 1024 for g in got]
            anon = [g.get("Pss_Anon", 0) * 1024 for g in got]
            self.pss.append((t, pss[0], sum(pss[1:]), anon[0], sum(anon[1:])))
        if self._n % self.every == 0 and any(self._has_open(pid) for pid in tree):
            if self.first_open_s is None:
                self.first_open_s = elapsed
            self.last_open_s = elapsed

    def _has_open(self, pid: int) -> bool:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == self.video:
                    return True
            except OSError:
                continue
        return False

    def settled_from(self) -> float | None:
        """When the tree settled while the video was read: the first tick after the last
        change in the number of processes (workers forked, an idle worker gone, a short-lived
        child), else when the video was first seen open."""
        a, b = self.first_open_s, self.last_open_s
        if a is None or b is None:
            return None
        span = [x for x in self.ticks if a <= x[0] <= b]
        start = a
        for prev, cur in zip(span, span[1:], strict=False):
            if cur[1] != prev[1]:
                start = cur[0]
        return start

    def summary(self) -> dict[str, Any]:
        """Peaks over the settled span, and medians over its first and last tenth, of the
        main process, the workers and the whole tree."""
        a, b = self.settled_from(), self.last_open_s
        out: dict[str, Any] = {"settled_from_s": a, "settled_s": None}
        if a is None or b is None:
            return out
        out["settled_s"] = round(b - a, 2)
        ticks = [x for x in self.ticks if a <= x[0] <= b]
        pss = [x for x in self.pss if a <= x[0] <= b]
        # (seconds, 0, value) series: _window_median's layout, value at index 2.
        series = {
            "rss_sum": [(x[0], 0, x[2] + x[3]) for x in ticks],
            "main_rss": [(x[0], 0, x[2]) for x in ticks],
            "workers_rss": [(x[0], 0, x[3]) for x in ticks],
            **{f"main_{k}": [(x[0], 0, x[4 + i]) for x in ticks] for i, k in enumerate(MAIN_KINDS)},
            "pss_sum": [(x[0], 0, x[1] + x[2]) for x in pss],
            "main_pss": [(x[0], 0, x[1]) for x in pss],
            "workers_pss": [(x[0], 0, x[2]) for x in pss],
            "pss_anon_sum": [(x[0], 0, x[3] + x[4]) for x in pss],
            "main_pss_anon": [(x[0], 0, x[3]) for x in pss],
        }
        for name, values in series.items():
            out[f"settled_peak_{name}"] = max((v for _, _, v in values), default=None)
            out[f"{name}_first_tenth"] = _window_median(values, 0.0, 0.1, 2)
            out[f"{name}_last_tenth"] = _window_median(values, 0.9, 1.0, 2)
        return out


# --------------------------------------------------------------------------------------
# Checking the rows
# --------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def check_rows(videos_csv: Path, windows_csv: Path, expected_frames: int) -> dict[str, Any]:
    """The main row's facts and the list of problems (empty when everything is as expected)."""
    rows = _read_csv(videos_csv)
    wins = _read_csv(windows_csv)
    problems: list[str] = []
    facts: dict[str, Any] = {"rows": len(rows), "window_rows": len(wins)}
    if len(rows) != 1:
        problems.append(f"{len(rows)} rows in the main CSV, not 1")
    if not rows:
        return {**facts, "problems": problems}
    row = rows[0]
    facts.update(
        status=row.get("status"),
        error=row.get("error"),
        decoder=row.get("decoder"),
        label=row.get("label"),
        notes=row.get("notes"),
        protocol=row.get("protocol"),
    )
    if row.get("status") != "ok":
        problems.append(f"main row status {row.get('status')!r}: {row.get('error')}")
    try:
        facts["windows"] = int(row["windows"])
        facts["frames_decoded"] = int(row["frames_decoded"])
    except (KeyError, ValueError):
        problems.append("main row without windows or frames_decoded")
        return {**facts, "problems": problems}
    if facts["frames_decoded"] != expected_frames:
        problems.append(f"{facts['frames_decoded']} frames decoded, not {expected_frames}")
    if facts["windows"] != len(wins):
        problems.append(f"windows={facts['windows']} but {len(wins)} window rows")
    if not wins:
        problems.append("no window rows")
        return {**facts, "problems": problems}
    try:
        index = [int(w["window"]) for w in wins]
        start = [int(w["start_frame"]) for w in wins]
        end = [int(w["end_frame"]) for w in wins]
    except (KeyError, ValueError):
        problems.append("window rows without window, start_frame or end_frame")
        return {**facts, "problems": problems}
    not_ok = sum(1 for w in wins if w.get("status") != "ok")
    if not_ok:
        problems.append(f"{not_ok} window rows not ok")
    if index != list(range(len(wins))):
        problems.append("window numbers are not 0..N-1 in order")
    if start[0] != 0:
        problems.append(f"first window starts on frame {start[0]}, not 0")
    if end[-1] != facts["frames_decoded"] - 1:
        problems.append(
            f"last window ends on frame {end[-1]}, not frames_decoded - 1 = "
            f"{facts['frames_decoded'] - 1}"
        )
    gaps = [i for i in range(1, len(wins)) if start[i] > end[i - 1] + 1]
    if gaps:
        problems.append(f"{len(gaps)} gaps between windows (first before window {gaps[0]})")
    backwards = [i for i in range(len(wins)) if end[i] < start[i] or (i and end[i] < end[i - 1])]
    if backwards:
        problems.append(f"{len(backwards)} windows end before they start or before the previous")
    facts["window_span"] = end[0] - start[0] + 1
    return {**facts, "problems": problems}


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


def vmae_cmd(args: argparse.Namespace, video: Path, videos_csv: Path, windows_csv: Path):
    return [
        *vmae_command(),
        "classify",
        str(video),
        "--model",
        args.model,
        "-q",
        "--segments",
        "-o",
        str(videos_csv),
        "--segments-out",
        str(windows_csv),
        "--overwrite",
        *shlex.split(args.vmae_args),
    ]


def run_one(args: argparse.Namespace, video: Path, minutes: float, work: Path) -> dict[str, Any]:
    videos_csv = work / f"{video.stem}.videos.csv"
    windows_csv = work / f"{video.stem}.windows.csv"
    for p in (videos_csv, windows_csv):
        p.unlink(missing_ok=True)
    cmd = vmae_cmd(args, video, videos_csv, windows_csv)
    watch = TreeWatch(os.path.realpath(video))
    m = run_measured(
        cmd, pss_every=args.pss_every, capture_stdout=False, on_tick=watch, timeout_s=args.timeout
    )
    mem = m.memory
    checked = check_rows(videos_csv, windows_csv, round(minutes * 60 * args.fps))
    a, b = watch.first_open_s, watch.last_open_s
    reading = None if a is None or b is None else b - a
    result: dict[str, Any] = {
        "minutes": minutes,
        "video": video.name,
        "video_bytes": video.stat().st_size,
        "cmd": shlex.join(cmd),
        "exit_code": m.returncode,
        "wall_s": round(m.wall_s, 2),
        "reading_from_s": a,
        "reading_s": None if reading is None else round(reading, 2),
        **checked,
        # Peaks over the whole run, start-up included (what the target is about).
        "memory": mem.as_dict(with_timeline=True),
        "peak_workers_rss_sum": max((x[3] for x in watch.ticks), default=0),
        "peak_worker_rss": watch.peak_worker_rss,
        "peak_pss_anon_sum": max((x[3] + x[4] for x in watch.pss), default=0),
        # Once settled: peaks, and medians over the first and last tenth.
        **watch.summary(),
        "pss_timeline": watch.pss,
        "stderr_tail": "\n".join(m.stderr.strip().splitlines()[-10:]),
    }
    frames = checked.get("frames_decoded")
    result["frames_per_s"] = frames / m.wall_s if frames and m.wall_s > 0 else None
    print(
        f"  {minutes:g} min: {m.wall_s:.1f} s (video open {_s(reading)}), exit {m.returncode}, "
        f"{frames} frames, {checked.get('windows')} windows, peak RSS sum "
        f"{fmt_bytes(mem.peak_rss_sum)}, PSS sum {fmt_bytes(mem.peak_pss_sum)}, main "
        f"{fmt_bytes(mem.peak_root_rss)}, workers {fmt_bytes(result['peak_workers_rss_sum'])}"
        + (f"; PROBLEMS: {'; '.join(checked['problems'])}" if checked["problems"] else ""),
        file=sys.stderr,
    )
    if m.returncode != 0 and result["stderr_tail"]:
        print(result["stderr_tail"], file=sys.stderr)
    return result


def _growth(r: dict[str, Any], key: str, full: bool = False) -> str:
    """``+12.3 MiB``, or with ``full`` ``120.0 MiB -> 132.3 MiB (+12.3 MiB)``: the median over
    the last tenth of the settled span against the first tenth."""
    early, late = r.get(f"{key}_first_tenth"), r.get(f"{key}_last_tenth")
    if early is None or late is None:
        return "-"
    delta = (
        "0" if late == early else f"{'+' if late > early else '-'}{fmt_bytes(abs(late - early))}"
    )
    return f"{fmt_bytes(early)} -> {fmt_bytes(late)} ({delta})" if full else delta


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument(
        "--minutes", default="1,60", help="comma-separated video durations (default 1,60)"
    )
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    parser.add_argument("--gop-s", type=float, default=2.0, help="keyframe interval (2 s)")
    parser.add_argument("--crf", type=int, default=28, help="x264 quality (default 28)")
    parser.add_argument(
        "--piece-min", type=float, default=1.0, help="minutes encoded, then repeated (1)"
    )
    parser.add_argument(
        "--encode-full", action="store_true", help="encode every video in full, no repeats"
    )
    parser.add_argument(
        "--container", choices=sorted(CONTAINERS), default="mp4", help="mp4 (default) or ts"
    )
    parser.add_argument("--work-dir", type=Path, help="videos and outputs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep a temporary work dir")
    parser.add_argument(
        "--vmae-args",
        default="",
        help='extra vmae arguments as one string, written --vmae-args="--workers 2"',
    )
    parser.add_argument("--no-warmup", action="store_true", help="no unmeasured first run")
    parser.add_argument("--target", type=float, default=1.3, help="max peak ratio (default 1.3)")
    parser.add_argument(
        "--pss-every", type=int, default=2, help="read PSS every N-th sample (0 = never)"
    )
    parser.add_argument("--timeout", type=float, help="kill a vmae run after this many seconds")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    args.model = os.path.abspath(args.model) if os.path.isdir(args.model) else args.model
    minutes = sorted({float(x) for x in args.minutes.split(",") if x.strip()})
    if not minutes or minutes[0] <= 0:
        parser.error("--minutes needs positive durations")
    try:
        w, h = (int(x) for x in args.size.lower().split("x"))
        if w <= 0 or h <= 0 or w % 2 or h % 2:
            raise ValueError
    except ValueError:
        parser.error("--size must be WIDTHxHEIGHT, even and positive (640x360)")

    ffmpeg = ensure_ffmpeg()
    own_tmp = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vmae-segmem-")) if own_tmp else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    info["ffmpeg"] = ffmpeg_version(ffmpeg)
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    videos: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    try:
        for m in minutes:
            seconds = make_video(ffmpeg, work, m, args)
            path = work / video_name(m, args)
            videos.append(
                {
                    "minutes": m,
                    "name": path.name,
                    "bytes": path.stat().st_size,
                    "generate_s": round(seconds, 1) if seconds else None,
                    "made": "repeated pieces" if looped(m, args) else "encoded in full",
                }
            )
            print(
                f"video {path.name}: {fmt_bytes(path.stat().st_size)}, "
                + (f"written in {seconds:.1f} s" if seconds else "cached"),
                file=sys.stderr,
            )
        if not args.no_warmup:
            first = work / video_name(minutes[0], args)
            out = work / "warmup"
            out.mkdir(exist_ok=True)
            start = time.perf_counter()
            cmd = vmae_cmd(args, first, out / "videos.csv", out / "windows.csv")
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False).returncode
            print(f"warm-up run: exit {rc}, {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for m in minutes:
            results.append(run_one(args, work / video_name(m, args), m, work))
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    report = _report(args, info, videos, results)
    if args.keep or not own_tmp:
        print(f"work dir: {work}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0 if report["summary"].get("pass", True) else 1


def _report(
    args: argparse.Namespace, info: dict, videos: list[dict], results: list[dict]
) -> dict[str, Any]:
    print()
    print(f"machine: {machine_summary(info)}; {info.get('ffmpeg')}")
    print(
        f"model: {args.model}; video: testsrc2 {args.size} {args.fps:g} fps, H.264 ultrafast "
        f"crf {args.crf}, GOP {args.gop_s:g} s, {args.container}; vmae args: "
        f"{args.vmae_args or '-'}"
    )
    gen = [
        f"{v['minutes']:g} min {fmt_bytes(v['bytes'])} {v['made']} "
        + (f"in {v['generate_s']:.1f} s" if v["generate_s"] else "(cached)")
        for v in videos
    ]
    print(f"videos: {'; '.join(gen)}")
    rows = []
    for r in results:
        mem = r["memory"]
        rows.append(
            [
                f"{r['minutes']:g}",
                str(r.get("frames_decoded", "-")),
                str(r.get("windows", "-")),
                str(r.get("decoder") or "-"),
                fmt_duration(r["wall_s"]) if r["wall_s"] >= 60 else f"{r['wall_s']:.1f} s",
                f"{r['frames_per_s']:.0f}" if r["frames_per_s"] else "-",
                fmt_bytes(mem["peak_rss_sum"]),
                fmt_bytes(mem["peak_pss_sum"]),
                fmt_bytes(r["peak_pss_anon_sum"]),
                fmt_bytes(mem["peak_root_rss"]),
                fmt_bytes(r["peak_workers_rss_sum"]),
                str(mem["max_processes"]),
                "ok" if not r["problems"] and r["exit_code"] == 0 else f"exit {r['exit_code']}",
            ]
        )
    header = ["minutes", "frames", "windows", "decoder", "wall", "frames/s", "RSS sum"]
    print()
    print("peaks over the whole run (start-up included):")
    print_table(rows, [*header, "PSS sum", "PSS anon", "main RSS", "workers RSS", "procs", "check"])
    for r in results:
        for p in r["problems"]:
            print(f"  {r['minutes']:g} min: {p}")
    rows = []
    for r in results:
        peaks = ("rss_sum", "pss_sum", "pss_anon_sum", "main_rss", "workers_rss")
        rows.append(
            [
                f"{r['minutes']:g}",
                _s(r["settled_from_s"]),
                _s(r["settled_s"]),
                *(fmt_bytes(r.get(f"settled_peak_{k}")) for k in peaks),
                *(_growth(r, k) for k in ("main_rss", "main_RssAnon", "workers_rss", "pss_sum")),
            ]
        )
    print()
    print("once settled (from the last change in the number of processes while the video was")
    print("read, to its end); growth: median over the last tenth minus the first tenth:")
    header = ["minutes", "from", "for", "RSS sum", "PSS sum", "PSS anon", "main RSS"]
    growth = ["main RSS +", "main anon +", "workers RSS +", "PSS sum +"]
    print_table(rows, [*header, "workers RSS", *growth])
    summary: dict[str, Any] = {
        "checks_pass": all(not r["problems"] and r["exit_code"] == 0 for r in results)
    }
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for key in ("peak_rss_sum", "peak_pss_sum", "peak_root_rss"):
            summary[f"ratio_{key}"] = ratio(large["memory"][key], small["memory"][key])
        for key in (
            "peak_pss_anon_sum",
            "peak_workers_rss_sum",
            "settled_peak_rss_sum",
            "settled_peak_pss_sum",
            "settled_peak_pss_anon_sum",
            "settled_peak_main_rss",
        ):
            summary[f"ratio_{key}"] = ratio(large.get(key), small.get(key))
        summary["target"] = args.target
        summary["ratio_pass"] = all(
            summary[f"ratio_{k}"] is not None and summary[f"ratio_{k}"] <= args.target
            for k in ("peak_rss_sum", "peak_pss_sum")
        )
        summary["pass"] = summary["ratio_pass"] and summary["checks_pass"]
        print()
        print(
            f"peak ratio {large['minutes']:g}/{small['minutes']:g} min, whole run: RSS sum "
            f"{_r(summary['ratio_peak_rss_sum'])}, PSS sum {_r(summary['ratio_peak_pss_sum'])}"
            f" (target <= {args.target}: {'PASS' if summary['ratio_pass'] else 'FAIL'}); "
            f"PSS anon sum {_r(summary['ratio_peak_pss_anon_sum'])}, main process "
            f"{_r(summary['ratio_peak_root_rss'])}, workers "
            f"{_r(summary['ratio_peak_workers_rss_sum'])}"
        )
        print(
            f"peak ratio once settled: RSS sum {_r(summary['ratio_settled_peak_rss_sum'])}, PSS "
            f"sum {_r(summary['ratio_settled_peak_pss_sum'])}, PSS anon sum "
            f"{_r(summary['ratio_settled_peak_pss_anon_sum'])}, main process "
            f"{_r(summary['ratio_settled_peak_main_rss'])}"
        )
        print(f"rows: {'PASS' if summary['checks_pass'] else 'FAIL'}")
    else:
        summary["pass"] = summary["checks_pass"]
    last = results[-1]
    keys = ("main_rss", "main_RssAnon", "main_RssFile", "main_RssShmem", "workers_rss")
    for key in (*keys, "main_pss", "main_pss_anon", "workers_pss", "pss_sum", "pss_anon_sum"):
        early, late = last.get(f"{key}_first_tenth"), last.get(f"{key}_last_tenth")
        if early is not None and late is not None:
            summary[f"{key}_growth_bytes"] = late - early
    if last.get("main_rss_first_tenth") is not None:
        print(
            f"longest run ({last['minutes']:g} min), settled for {_s(last['settled_s'])}: main "
            f"process RSS {_growth(last, 'main_rss', True)}: anon "
            f"{_growth(last, 'main_RssAnon')}, files {_growth(last, 'main_RssFile')}, shmem "
            f"{_growth(last, 'main_RssShmem')}; workers RSS {_growth(last, 'workers_rss', True)}"
            f"; PSS main {_growth(last, 'main_pss')} (anon {_growth(last, 'main_pss_anon')}), "
            f"workers {_growth(last, 'workers_pss')}, tree anon {_growth(last, 'pss_anon_sum')}"
        )
    return {
        "machine": info,
        "model": args.model,
        "vmae_args": args.vmae_args,
        "video": {
            "size": args.size,
            "fps": args.fps,
            "gop_s": args.gop_s,
            "crf": args.crf,
            "container": args.container,
        },
        "videos": videos,
        "runs": results,
        "summary": summary,
    }


if __name__ == "__main__":
    sys.exit(main())
