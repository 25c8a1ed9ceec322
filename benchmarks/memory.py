"""Does vmae's memory stay flat as the number of videos grows?

Writes a handful of short synthetic clips (H.264, HEVC, VP9, MPEG-4 from make_mix.py), then
builds one folder per requested count (``--videos 60,600``) holding that many hard links to
them under distinct names, and runs ``vmae classify FOLDER --model MODEL -q -o out.csv`` on
each while sampling the memory of its whole process tree every 50 ms. Reports, per count, the
peak sum of RSS and of PSS over the tree, the peak RSS of the main process alone, the wall
time and the rows written; then the ratio of the largest count's peaks to the smallest's
(target: <= 1.2) and, within the largest run, how much the main process grew between the
first and the last part of the run (a leak shows as steady growth).

Usage::

    python benchmarks/memory.py --model MODEL_DIR                       # 60 and 600 videos
    python benchmarks/memory.py --model MODEL_DIR --videos 20,200 --vmae-args="--workers 1"
    python benchmarks/memory.py --model MODEL_DIR --work-dir scratch/mem --keep --json mem.json

A tiny model (``make_model.py DIR --tiny``) makes this fast: memory growth does not depend on
the model's size, while the full model adds its ~0.35 GB (fp32) or ~0.18 GB (bf16) once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FirstRowWatch,
    count_csv_rows,
    fmt_bytes,
    machine_info,
    machine_summary,
    median,
    print_table,
    ratio,
    run_measured,
    vmae_command,
    write_json,
)


def make_sources(out_dir: Path, clips: int, seconds: float, max_side: int, seed: int) -> list[Path]:
    """Short clips of the make_mix.py mix (codecs and containers vary), cached in out_dir."""
    from make_mix import plan_item, write_item

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(clips):
        item = plan_item(seed, i, max_duration=seconds, max_side=max_side)
        path = out_dir / item.filename
        if not path.exists():
            write_item(item, out_dir, seed)
        paths.append(path)
    return paths


def build_folder(folder: Path, sources: list[Path], count: int) -> None:
    """``count`` hard links (copies across file systems) to ``sources``, named distinctly."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for j in range(count):
        src = sources[j % len(sources)]
        dst = folder / f"v{j:05d}_{src.name}"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def _window_median(timeline: list, lo: float, hi: float, index: int) -> float | None:
    """Median of timeline column ``index`` over the samples between fractions lo..hi of the
    timeline's time span."""
    if not timeline:
        return None
    t0, t1 = timeline[0][0], timeline[-1][0]
    a, b = t0 + lo * (t1 - t0), t0 + hi * (t1 - t0)
    return median([s[index] for s in timeline if a <= s[0] <= b])


def run_count(args: argparse.Namespace, folder: Path, count: int, out_csv: Path) -> dict[str, Any]:
    cmd = [
        *vmae_command(),
        "classify",
        str(folder),
        "--model",
        args.model,
        "-q",
        "-o",
        str(out_csv),
        "--overwrite",
        *shlex.split(args.vmae_args),
    ]
    watch = FirstRowWatch(out_csv)
    m = run_measured(cmd, pss_every=args.pss_every, capture_stdout=False, on_tick=watch)
    statuses = count_csv_rows(out_csv)
    mem = m.memory
    # Growth is judged after start-up (imports, model load): from the first row to the end.
    first = watch.seconds or 0.0
    tl = [s for s in mem.timeline if s[0] >= first]
    result = {
        "videos": count,
        "cmd": shlex.join(cmd),
        "exit_code": m.returncode,
        "wall_s": round(m.wall_s, 2),
        "videos_per_s": count / m.wall_s if m.wall_s > 0 else None,
        "rows": sum(statuses.values()),
        "ok": statuses.get("ok", 0),
        "statuses": statuses,
        "memory": mem.as_dict(with_timeline=True),
        # RSS early vs late between the first row and the end of the processing (medians
        # over 0-20 % and 70-90 % of that span; the very end is the exit, workers gone).
        "root_rss_early": _window_median(tl, 0.0, 0.2, 2),
        "root_rss_late": _window_median(tl, 0.7, 0.9, 2),
        "rss_sum_early": _window_median(tl, 0.0, 0.2, 1),
        "rss_sum_late": _window_median(tl, 0.7, 0.9, 1),
        "first_row_s": watch.seconds,
        "stderr_tail": "\n".join(m.stderr.strip().splitlines()[-10:]),
    }
    print(
        f"  {count} videos: {m.wall_s:.1f} s, exit {m.returncode}, {result['ok']}/{result['rows']}"
        f" ok, peak RSS sum {fmt_bytes(mem.peak_rss_sum)}, PSS sum {fmt_bytes(mem.peak_pss_sum)}"
        f", main {fmt_bytes(mem.peak_root_rss)}",
        file=sys.stderr,
    )
    if m.returncode not in (0, 3) and result["stderr_tail"]:
        print(result["stderr_tail"], file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument(
        "--videos", default="60,600", help="comma-separated folder sizes (default 60,600)"
    )
    parser.add_argument("--clips", type=int, default=6, help="distinct source clips (default 6)")
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="their duration (3 s)")
    parser.add_argument("--clip-side", type=int, default=640, help="their long side (640 px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, help="where folders are built (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument(
        "--vmae-args",
        default="",
        help='extra vmae arguments as one string, written --vmae-args="--workers 1"',
    )
    parser.add_argument("--target", type=float, default=1.2, help="max peak ratio (default 1.2)")
    parser.add_argument(
        "--pss-every", type=int, default=10, help="read PSS every N-th sample (0 = never)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    args.model = os.path.abspath(args.model) if os.path.isdir(args.model) else args.model
    counts = sorted(int(c) for c in args.videos.split(",") if c.strip())
    if not counts:
        parser.error("--videos needs at least one count")

    own_tmp = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vmae-mem-")) if own_tmp else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    try:
        start = time.perf_counter()
        sources = make_sources(
            work / "sources", args.clips, args.clip_seconds, args.clip_side, args.seed
        )
        print(
            f"sources: {len(sources)} clips, "
            f"{fmt_bytes(sum(p.stat().st_size for p in sources))} "
            f"({time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        results = []
        for count in counts:
            folder = work / f"n{count}"
            build_folder(folder, sources, count)
            results.append(run_count(args, folder, count, work / f"n{count}.csv"))
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    report = _report(args, info, sources, results)
    if args.keep or not own_tmp:
        print(f"work dir: {work}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0 if report["summary"].get("pass", True) else 1


def _report(
    args: argparse.Namespace, info: dict, sources: list[Path], results: list[dict]
) -> dict[str, Any]:
    print()
    print(f"machine: {machine_summary(info)}")
    print(f"model: {args.model}; vmae args: {args.vmae_args or '-'}")
    rows = []
    for r in results:
        mem = r["memory"]
        rows.append(
            [
                str(r["videos"]),
                f"{r['wall_s']:.1f}",
                f"{r['videos_per_s']:.2f}" if r["videos_per_s"] else "-",
                fmt_bytes(mem["peak_rss_sum"]),
                fmt_bytes(mem["peak_pss_sum"]),
                fmt_bytes(mem["peak_root_rss"]),
                str(mem["max_processes"]),
                f"{r['ok']}/{r['rows']} (exit {r['exit_code']})",
            ]
        )
    header = ["videos", "wall s", "videos/s", "peak RSS sum", "peak PSS sum", "main RSS"]
    print()
    print_table(rows, [*header, "procs", "ok"])
    summary: dict[str, Any] = {}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for key in ("peak_rss_sum", "peak_pss_sum", "peak_root_rss"):
            summary[f"ratio_{key}"] = ratio(large["memory"][key], small["memory"][key])
        summary["target"] = args.target
        summary["pass"] = bool(
            summary["ratio_peak_rss_sum"] is not None
            and summary["ratio_peak_rss_sum"] <= args.target
        )
        print()
        print(
            f"peak ratio {large['videos']}/{small['videos']} videos: RSS sum "
            f"{_r(summary['ratio_peak_rss_sum'])}, PSS sum {_r(summary['ratio_peak_pss_sum'])}, "
            f"main process {_r(summary['ratio_peak_root_rss'])} "
            f"(target <= {args.target}: {'PASS' if summary['pass'] else 'FAIL'})"
        )
    last = results[-1]
    if last["root_rss_early"] and last["root_rss_late"]:
        growth = last["root_rss_late"] - last["root_rss_early"]
        summary["main_rss_growth_bytes"] = growth
        summary["main_rss_growth_per_1000_videos"] = growth * 1000 / last["videos"]
        print(
            f"main process during the {last['videos']}-video run (first row to exit): median "
            f"RSS {fmt_bytes(last['root_rss_early'])} over the first 20 %, "
            f"{fmt_bytes(last['root_rss_late'])} over 70-90 % "
            f"({'+' if growth >= 0 else '-'}{fmt_bytes(abs(growth))})"
        )
    return {
        "machine": info,
        "model": args.model,
        "vmae_args": args.vmae_args,
        "sources": [p.name for p in sources],
        "runs": results,
        "summary": summary,
    }


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
