"""The same videos classified from the local disk, from an S3-compatible server and from an
HTTP server (issue 25): rows, bytes fetched per video, wall time.

Both servers run on this machine (tests/servers.py: moto behind a counting proxy, and an
HTTP server that honours Range), so the comparison measures what reading through range
requests costs vmae, not a network. Each source is one ``vmae classify`` process; the
sources take turns, ``--repeats`` times, and the median wall time of each is reported.

Usage::

    python benchmarks/make_mix.py $BENCH/rmix --count 20
    python benchmarks/remote_inputs.py $BENCH/rmix                 # the tiny random model
    python benchmarks/remote_inputs.py $BENCH/rmix --model $BENCH/vitb --repeats 3

With the tiny model (the default) decoding is nearly all of a run, the case where reading
costs most; ``--model`` takes a full-size checkpoint (``benchmarks/make_model.py``).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from _common import machine_info, machine_summary, vmae_command  # noqa: E402

BUCKET = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", type=Path, help="a folder of videos (benchmarks/make_mix.py)")
    parser.add_argument("--model", help="a checkpoint folder (default: a tiny random VideoMAE)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    from servers import S3, MotoServer, RangeHTTPServer

    from vmae_cli.discovery import iter_video_paths

    videos = sorted(Path(p) for p in iter_video_paths([str(args.videos)]))
    work = Path(tempfile.mkdtemp(prefix="vmae-remote-bench-"))
    model = args.model or str(_tiny_model(work / "model"))
    print(f"# {len(videos)} videos, {sum(v.stat().st_size for v in videos) / 1e6:.1f} MB")
    print(f"# {machine_summary(machine_info())}")
    with (
        MotoServer() as moto,
        RangeHTTPServer(upstream=moto.url) as proxy,
        RangeHTTPServer(args.videos) as web,
    ):
        store = S3(moto, proxy, work / "aws")
        env = {k: v for k, v in os.environ.items() if k not in store.env}
        env |= {k: v for k, v in store.env.items() if v is not None}
        client = store.client()
        client.create_bucket(Bucket=BUCKET)
        for v in videos:
            client.upload_file(str(v), BUCKET, v.relative_to(args.videos).as_posix())
        listing = work / "urls.txt"
        listing.write_text(
            "".join(web.url_of(v.relative_to(args.videos).as_posix()) + "\n" for v in videos)
        )
        sources = {
            "local": [str(args.videos)],
            "s3": [f"s3://{BUCKET}/"],
            "http": ["--files-from", str(listing)],
        }
        walls: dict[str, list[float]] = {name: [] for name in sources}
        sent: dict[str, dict] = {}
        served: dict[str, list[float]] = {name: [] for name in sources}
        for repeat in range(args.repeats):
            for name, inputs in sources.items():
                out = work / f"{name}-{repeat}.csv"
                cmd = [*vmae_command(), "classify", *inputs, "-o", str(out)]
                cmd += ["--model", model, "--device", "cpu", "--overwrite"]
                if args.workers:
                    cmd += ["--workers", str(args.workers)]
                t0, cpu0 = time.perf_counter(), _servers_cpu(moto)
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                walls[name].append(time.perf_counter() - t0)
                served[name].append(_servers_cpu(moto) - cpu0)
                if done.returncode not in (0, 3):
                    sys.exit(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
                if repeat == 0 and name != "local":  # what the servers sent, per video
                    server = proxy if name == "s3" else web
                    prefix = f"{BUCKET}/" if name == "s3" else ""
                    sent[name] = {
                        v: server.traffic(prefix + v.relative_to(args.videos).as_posix())
                        for v in videos
                    }
        rows = {name: _rows(work / f"{name}-0.csv", args.videos) for name in sources}
    _report(videos, args.videos, rows, walls, sent, served)


def _tiny_model(where: Path) -> Path:
    from tiny_model import make_tiny_model

    return make_tiny_model(where)


def _rows(path: Path, root: Path) -> dict[str, dict]:
    """Rows by the video's path relative to ``root`` (or to the bucket, or the server)."""
    out = {}
    root = root.absolute()
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")):
        p = row["path"]
        if p.startswith(str(root)):
            key = os.path.relpath(p, root)
        else:
            key = p.split("://", 1)[1].split("/", 1)[1]
        out[key] = row
    return out


def _comparable(row: dict) -> dict:
    notes = "; ".join(n for n in row["notes"].split("; ") if not n.startswith("fetched "))
    kept = {k: v for k, v in row.items() if k not in ("path", "mtime_ns", "notes")}
    return kept | {"notes": notes}


def _servers_cpu(moto) -> float:
    """CPU seconds the servers used so far: this process (the HTTP server and the S3 proxy
    are its threads) and moto's."""
    own = os.times()
    total = own.user + own.system
    with open(f"/proc/{moto._proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return total + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report(videos, root, rows, walls, sent, served) -> None:
    local = rows["local"]
    for name in ("s3", "http"):
        same = sum(_comparable(rows[name][k]) == _comparable(local[k]) for k in local)
        print(f"{name}: {same} of {len(local)} rows identical to local (less path and stamp)")
    print("\n| source | wall (s), each run | median | vs local | servers' CPU s (median) |")
    print("|---|---|---|---|---|")
    base = statistics.median(walls["local"])
    for name, times in walls.items():
        each = ", ".join(f"{t:.1f}" for t in times)
        med = statistics.median(times)
        cpu = statistics.median(served[name])
        print(f"| {name} | {each} | {med:.1f} | {med / base:.2f}x | {cpu:.1f} |")
    print(
        "\nBytes each server sent for a video (listing, info and every read, driver and workers):"
    )
    print("\n| video | duration (s) | MB | decoder | S3 sent | HTTP sent | requests S3 / HTTP |")
    print("|---|---|---|---|---|---|---|")
    for v in videos:
        key = os.path.relpath(v.absolute(), root.absolute())
        size = v.stat().st_size
        row = local[key]
        s3, web = sent["s3"][v], sent["http"][v]
        print(
            f"| {key} | {row['duration_s']} | {size / 1e6:.1f} | {row['decoder']} | "
            f"{s3.bytes_sent / size:.0%} | {web.bytes_sent / size:.0%} | "
            f"{s3.requests} / {web.requests} |"
        )


if __name__ == "__main__":
    main()
