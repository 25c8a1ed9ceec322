"""Rows in each format: file size, time to write (as a run does, through a RowSink, the
Parquet file made at the end included), time to read back with pandas, peak memory.

    python benchmarks/row_formats.py [--rows 100000]

Each format runs in a fresh process (peak RSS is then that format's alone). The rows are
synthetic but shaped like real ones: a 60-character absolute path, five labels with scores,
16 frame indices, the stream facts, a notes cell empty in most rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

FORMATS = ("csv", "jsonl", "parquet")


def _rows(n: int):
    from vmae_cli.results import FileStamp, LabelScore, Prediction, VideoMeta

    labels = [f"label number {i}" for i in range(400)]
    for i in range(n):
        top = [LabelScore(labels[(i * 7 + k) % 400], 0.5 / (k + 1)) for k in range(5)]
        yield Prediction(
            path=f"/data/collections/2026/camera-{i % 97:03d}/clip-{i:09d}.mp4",
            status="ok" if i % 50 else "not_video",
            error="" if i % 50 else "not a video, or damaged at the start",
            top_k=top if i % 50 else [],
            meta=VideoMeta("pyav-seek", 300 + i % 900, 300 + i % 900, 25.0, 12.0, 1280, 720, 0),
            frame_indices=list(range(0, 16 * 18, 18)),
            notes=[] if i % 10 else ["header says 300 frames, 290 decode (truncated?)"],
            model="MCG-NJU/videomae-base-finetuned-kinetics",
            protocol="uniform",
            stamp=FileStamp(10_000_000 + i, 1_796_650_442_812_285_000 + i),
            model_revision="sha256:3e48f661f30821aa",
        )


def one(fmt: str, n: int, folder: str) -> dict:
    """Write ``n`` rows in ``fmt`` through a RowSink, read them back; the figures."""
    import pandas  # noqa: F401 - imported before the clocks start, as in a long run
    import pyarrow.parquet  # noqa: F401

    from vmae_cli.formats import FORMATS as ALL
    from vmae_cli.formats import read_frame
    from vmae_cli.rowindex import RowIndex
    from vmae_cli.sinks import Layout, RowSink

    path = os.path.join(folder, f"rows{ALL[fmt].extension}")
    t0 = time.perf_counter()
    sink = RowSink(path, fmt, windows=False, stdout=None)
    sink.lock()
    sink.start(Layout(5, (), False, "m", "uniform"), resume=False)
    sink.drop(set(), RowIndex.empty())
    for p in _rows(n):
        sink.write(p)
    sink.finish()
    written = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = read_frame(path, ["path", "status", "label", "score"])
    read = time.perf_counter() - t0
    assert len(table) == n, (fmt, len(table))
    return {
        "format": fmt,
        "rows": n,
        "bytes": os.path.getsize(path),
        "write_s": round(written, 2),
        "read_s": round(read, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--one", choices=FORMATS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.one:
            print(json.dumps(one(args.one, args.rows, folder)))
            return
        print(f"{'format':8} {'rows':>9} {'MiB':>8} {'write s':>8} {'read s':>8} {'peak MiB':>9}")
        for fmt in FORMATS:
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--one", fmt]
            got = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
            print(
                f"{fmt:8} {got['rows']:>9} {got['bytes'] / 2**20:>8.1f} {got['write_s']:>8} "
                f"{got['read_s']:>8} {got['peak_rss_mib']:>9}"
            )


if __name__ == "__main__":
    main()
