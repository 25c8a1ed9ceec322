"""Resume, summarize and report on a large output: time before the first new video and
peak memory, against the same on an empty output.

    python benchmarks/resume_scale.py [--rows 1000000] [--format csv|parquet] [--keep DIR]
        [--only resume summarize report]

The output is made by running vmae once on one generated video with the tests' tiny model
(so its columns, model and protocol are a real run's), then repeating that row ``--rows``
times under other paths (60 characters, as a real collection's). The resumed run walks a
folder of 3 new videos: all of the output's rows are kept, none is redone. Each
measurement runs in a fresh process, so its peak RSS is its own (torch and the model
included: compare with the empty output's line). ``summarize`` runs the command itself
(``vmae summarize OUT``: every default table), ``report`` the library's ``build_report``.
With ``--keep DIR`` the files are made once: a later run with the same DIR, format and rows
measures them again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._common import _read_kb  # noqa: E402

#: What can be measured on the big output, each in a fresh process.
MEASURES = ("resume", "summarize", "report")
#: Rows repeated per block when the big output is written (bounded memory while writing).
BLOCK_ROWS = 100_000


def _path(i: int) -> str:
    return f"/data/collections/2026/camera-{i % 97:03d}/clip-{i:012d}.mp4"


def make_output(folder: Path, fmt: str, rows: int) -> tuple[Path, Path, Path]:
    """The tiny model, a folder of 3 new videos, and an output of ``rows`` rows (those
    ``folder`` holds already, when it holds them for ``rows``)."""
    made = folder / f"big.{fmt}.rows"
    if made.exists() and made.read_text() == str(rows):
        return folder / "model", folder / "videos", folder / f"big.{fmt}"
    from tiny_model import make_tiny_model

    import vmae_cli
    from tools.videogen import make_test_videos

    model = make_tiny_model(folder / "model")
    clips = make_test_videos(folder / "clips")
    videos = folder / "videos"
    videos.mkdir()
    for name in ("h264", "vp9", "mjpeg"):
        os.link(clips[name], videos / clips[name].name)
    template = folder / f"template.{fmt}"
    vmae_cli.run([str(clips["h264"])], template, model=str(model), workers=0)
    out = folder / f"big.{fmt}"
    if fmt == "csv":
        lines = template.read_bytes().splitlines(keepends=True)
        header, row = lines[0], lines[1]
        cell = str(clips["h264"]).encode()
        with open(out, "wb") as f:
            f.write(header)
            for start in range(0, rows, BLOCK_ROWS):
                stop = min(rows, start + BLOCK_ROWS)
                f.write(b"".join(row.replace(cell, _path(i).encode()) for i in range(start, stop)))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        one = pq.read_table(template)
        with pq.ParquetWriter(out, one.schema) as writer:
            for start in range(0, rows, BLOCK_ROWS):
                stop = min(rows, start + BLOCK_ROWS)
                block = one.take(pa.array([0] * (stop - start)))
                paths = pa.array([_path(i) for i in range(start, stop)], pa.string())
                block = block.set_column(block.schema.get_field_index("path"), "path", paths)
                writer.write_table(block)
    made.write_text(str(rows))
    return model, videos, out


def measure(what: str, model: Path, videos: Path, out: Path) -> dict:
    """One measurement, in this (fresh) process."""
    import vmae_cli
    from vmae_cli.runner import RunHooks

    firsts: list[float] = []
    t0 = time.perf_counter()
    if what == "resume":
        report = vmae_cli.run(
            [str(videos)],
            out,
            model=str(model),
            workers=1,
            resume=True,
            hooks=RunHooks(on_row=lambda p: firsts.append(time.perf_counter() - t0)),
        )
        assert report.videos == 3, report.summary_line()
        figures = {"first_row_s": round(firsts[0], 2), "skipped": report.skipped}
    elif what == "summarize":
        from typer.testing import CliRunner

        from vmae_cli.cli import app

        done = CliRunner().invoke(app, ["summarize", str(out)])  # every default table
        assert done.exit_code == 0, done.output
        figures = {"rows": int(done.stdout.split()[0])}
    else:
        from vmae_cli.report import ReportOptions, build_report

        stats = build_report([str(out)], out.with_suffix(".html"), options=ReportOptions(workers=0))
        figures = {"strips": stats.strips}
    figures["total_s"] = round(time.perf_counter() - t0, 2)
    # VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
    figures["peak_rss_mib"] = round(_read_kb("/proc/self/status", ("VmHWM",))["VmHWM"] / 1024)
    return figures


def _child(what: str, model: Path, videos: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", what, str(model), str(videos), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--keep", type=Path, help="make the files here and keep them")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MEASURES,
        default=list(MEASURES),
        help="what to measure on the big output (all by default)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *paths = args.child
        print(json.dumps(measure(what, *map(Path, paths))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model, videos, big = make_output(folder, args.format, args.rows)
        made_s = time.perf_counter() - t0
        empty = big.with_name(f"empty.{args.format}")
        for stale in (empty, empty.with_name(empty.name + ".partial")):
            stale.unlink(missing_ok=True)  # a kept folder's, from the last run
        size = big.stat().st_size
        print(f"{args.rows} rows, {args.format}, {size / 2**20:.1f} MiB (made in {made_s:.0f} s)")
        base = _child("resume", model, videos, empty)
        print(f"resume, empty output:  {json.dumps(base)}")
        for what in args.only:
            got = _child(what, model, videos, big)
            print(f"{what + ',':10} big output: {json.dumps(got)}")
            if what == "resume":
                # The resumed run added rows: the file is made again next time.
                big.with_name(f"{big.name}.rows").unlink(missing_ok=True)
                extra = got["peak_rss_mib"] - base["peak_rss_mib"]
                print(f"  resume's extra memory for the rows: {extra} MiB")


if __name__ == "__main__":
    main()
