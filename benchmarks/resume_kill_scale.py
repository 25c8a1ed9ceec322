"""kill -9 twice, then ``--resume``, on a large output: nothing lost, nothing doubled (issue 25).

    python benchmarks/resume_kill_scale.py [--rows 10000000] [--format csv|parquet] [--keep DIR]

The output is made as ``benchmarks/resume_scale.py`` makes it (``--rows`` rows of a real
run's columns). A folder of ``--new`` videos (hard links of generated ones under other names)
is then classified into it with ``--resume`` by a ``vmae classify`` process that is killed
with SIGKILL once its first new row is in the file, twice, and a third run finishes. The
check reads the file back with pyarrow: every old path once, every new video once and
``ok``, no other row.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._common import vmae_command  # noqa: E402
from benchmarks.resume_scale import make_output  # noqa: E402

#: How long a killed run may take to write its first new row (seconds).
FIRST_ROW_LIMIT_S = 600


def _new_videos(videos: Path, count: int) -> list[str]:
    """``count`` videos under new names beside the 3 that make_output put in ``videos``."""
    sources = sorted(videos.iterdir())
    names = []
    for i in range(count):
        src = sources[i % len(sources)]
        dst = videos / f"new-{i:03d}{src.suffix}"
        if not dst.exists():
            os.link(src, dst)
        names.append(str(dst))
    return names


def _written(out: Path, fmt: str) -> int:
    """Bytes of rows written so far: the CSV's, or the Parquet output's journal's."""
    if fmt == "csv":
        return out.stat().st_size
    journal = out.with_name(f"{out.name}.partial")
    return journal.stat().st_size if journal.exists() else 0


def _grew(out: Path, fmt: str, size: int) -> bool:
    """A new row is in the output since it held ``size`` bytes of rows."""
    return _written(out, fmt) > size


def _killed_run(cmd: list[str], out: Path, fmt: str) -> float:
    size = _written(out, fmt)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not _grew(out, fmt, size):
        if child.poll() is not None:
            raise SystemExit(f"the run ended (exit {child.returncode}) before it could be killed")
        if time.perf_counter() - t0 > FIRST_ROW_LIMIT_S:
            child.kill()
            raise SystemExit("no new row in time")
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    return time.perf_counter() - t0


def _check(out: Path, fmt: str, rows: int, new: list[str]) -> str:
    import pyarrow.compute as pc

    if fmt == "csv":
        from pyarrow import csv

        table = csv.read_csv(
            out,
            convert_options=csv.ConvertOptions(
                include_columns=["path", "status"],
                column_types={"path": "string", "status": "string"},
            ),
        )
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out, columns=["path", "status"])
    paths = table.column("path")
    unique = len(pc.unique(paths))
    got_new = table.filter(pc.is_in(paths, value_set=pc.cast(new, "string")))
    statuses = set(got_new.column("status").to_pylist())
    ok = table.num_rows == rows + len(new) == unique and got_new.num_rows == len(new)
    verdict = "PASS" if ok and statuses == {"ok"} else "FAIL"
    return (
        f"{verdict}: {table.num_rows} rows, {unique} distinct paths, "
        f"{got_new.num_rows} of {len(new)} new videos (statuses {sorted(statuses)}), "
        f"expected {rows + len(new)} rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--new", type=int, default=12, help="new videos to classify")
    parser.add_argument("--keep", type=Path, help="make the files here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        model, videos, out = make_output(folder, args.format, args.rows)
        new = _new_videos(videos, args.new)
        new += [str(p) for p in sorted(videos.iterdir()) if str(p) not in new]
        cmd = [*vmae_command(), "classify", str(videos), "-o", str(out), "--resume"]
        cmd += ["--model", str(model), "--workers", "1", "--device", "cpu"]
        print(f"{args.rows} rows, {args.format}; {len(new)} new videos")
        for attempt in (1, 2):
            took = _killed_run(cmd, out, args.format)
            print(f"run {attempt}: killed with SIGKILL {took:.1f} s in, after its first new row")
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(f"run 3: exit {done.returncode} in {time.perf_counter() - t0:.1f} s")
        print(_check(out, args.format, args.rows, new))


if __name__ == "__main__":
    main()
