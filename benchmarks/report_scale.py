"""`vmae report` on many rows: time, peak memory and the page's size against its limit.

For each row count, it writes a JSONL file of generated rows like a large run's (one row per
video, `--labels` labels with uneven counts, one row in 50 failed with its error) whose paths
are distinct hard links to a few generated clips (so every shown video is decoded again for
real), then runs ``vmae report ROWS -o report.html`` as a subprocess while sampling the
process tree's memory: wall time, peak RSS (sum over the tree and of the main process), the
page's size, and the frames shown / labels left out to stay under ``--max-mb``.

Usage::

    python benchmarks/report_scale.py --rows 10000,100000 [--labels 400] [--max-mb 20]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (
    fmt_bytes,
    machine_info,
    machine_summary,
    print_table,
    run_measured,
    vmae_command,
    write_json,
)


def write_rows(folder: Path, clips: list[Path], rows: int, labels: int) -> Path:
    """``rows`` generated rows (and as many hard links) in ``folder``; returns the JSONL."""
    import av

    frames = {}
    for clip in clips:
        with av.open(str(clip)) as c:
            frames[clip] = sum(1 for _ in c.decode(video=0))
    videos = folder / "videos"
    videos.mkdir()
    out = folder / "rows.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for i in range(rows):
            clip = clips[i % len(clips)]
            path = videos / f"v{i:06d}{clip.suffix}"
            os.link(clip, path)
            st = path.stat()
            n = frames[clip]
            failed = i % 50 == 0
            # Uneven label counts, as in real data: label k gets about 1/(k+1) of the rows.
            label = f"class {int(labels ** ((i * 7919 % rows) / rows)) - 1:03d}"
            f.write(
                json.dumps(
                    {
                        "path": str(path),
                        "status": "damaged" if failed else "ok",
                        "error": f"cut short at byte {i}" if failed else "",
                        "label": "" if failed else label,
                        "score": None if failed else round((i * 31 % 997) / 997, 6),
                        "top_k": [] if failed else [{"label": label, "score": 0.5}],
                        "frames_decoded": n,
                        "frame_indices": [round(j * (n - 1) / 15) for j in range(16)],
                        "model": "benchmark",
                        "protocol": "uniform",
                        "size_bytes": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                    }
                )
                + "\n"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--max-mb", type=float, default=20.0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    from tools.videogen import make_test_videos

    info = machine_info()
    print(machine_summary(info))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        made = make_test_videos(Path(tmp) / "clips")
        clips = [made[k] for k in ("h264", "vp9", "mjpeg", "hevc", "portrait") if k in made]
        for count in (int(n) for n in args.rows.split(",")):
            folder = Path(tmp) / f"rows{count}"
            folder.mkdir()
            rows = write_rows(folder, clips, count, args.labels)
            page = folder / "report.html"
            cmd = [*vmae_command(), "report", str(rows), "-o", str(page), "-q"]
            measured = run_measured([*cmd, "--max-mb", str(args.max_mb)], timeout_s=3600)
            size = page.stat().st_size if page.exists() else 0
            html = page.read_text(encoding="utf-8") if page.exists() else ""
            results.append(
                {
                    "rows": count,
                    "rc": measured.returncode,
                    "wall_s": round(measured.wall_s, 1),
                    "peak_rss_sum_bytes": measured.memory.peak_rss_sum,
                    "peak_main_bytes": measured.memory.peak_root_rss,
                    "page_bytes": size,
                    "limit_bytes": int(args.max_mb * 2**20),
                    "videos_shown": html.count('<div class="strip">'),
                    "labels": html.count('class="label"'),
                    "labels_left_out": html.count("under its size limit"),
                    "stderr": measured.stderr[-500:],
                }
            )
    table = [
        [
            str(r["rows"]),
            str(r["rc"]),
            f"{r['wall_s']}",
            fmt_bytes(r["peak_rss_sum_bytes"]),
            fmt_bytes(r["peak_main_bytes"]),
            f"{fmt_bytes(r['page_bytes'])} of {fmt_bytes(r['limit_bytes'])}",
            str(r["videos_shown"]),
            f"{r['labels_left_out']} of {r['labels']}",
        ]
        for r in results
    ]
    header = ["rows", "rc", "wall s", "peak RSS (tree)", "peak RSS (main)", "page", "videos shown"]
    print_table(table, [*header, "labels without frames"])
    if args.json:
        write_json(args.json, {"machine": info, "results": results})
    return 0 if all(r["rc"] == 0 and r["page_bytes"] <= r["limit_bytes"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
