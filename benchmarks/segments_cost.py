"""What `--segments` costs per hour of video: end to end, and decoding alone.

For each video, two measurements side by side in one run:

* **end to end**: ``vmae classify VIDEO --segments -o ... --segments-out ...`` with the given
  model and options (a subprocess, start-up included); windows per second and minutes of
  wall time per hour of video;
* **decoding alone**: the windows of the same video decoded, resized and cropped as a
  decoding worker does it (``vmae_cli.views.WindowMaker``, in this process, one thread): CPU
  seconds per hour of video, i.e. what one core spends before the model sees anything.

Usage::

    python benchmarks/segments_cost.py VIDEO [VIDEO ...] --model MODEL_DIR \\
        [--vmae-args "--window 2s --hop 1s"] [--json OUT]

A full-size model with random weights (``make_model.py DIR``) costs what the real one does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (
    fmt_duration,
    machine_info,
    machine_summary,
    print_table,
    probe_duration_s,
    run_measured,
    vmae_command,
    write_json,
)

SECONDS_PER_HOUR = 3600.0


def decode_only(path: str, model: str, vmae_args: list[str]) -> dict[str, float]:
    """CPU and wall seconds to decode every window of ``path`` as a worker does, and the
    windows made (the window options are read from ``vmae_args``)."""
    from vmae_cli.model import read_model_spec
    from vmae_cli.protocol import Protocol
    from vmae_cli.results import WindowChunk
    from vmae_cli.segments import Segments, Span
    from vmae_cli.views import WindowMaker

    options = dict(zip(vmae_args[::2], vmae_args[1::2], strict=False))
    window, hop = options.get("--window"), options.get("--hop")
    segments = Segments(Span.parse(window) if window else None, Span.parse(hop) if hop else None)
    spec = read_model_spec(model)
    protocol = Protocol(segments=segments).for_model(spec.frames_per_clip)
    job = WindowMaker(spec.frames_per_clip, spec.preprocess, protocol)
    import torch

    torch.set_num_threads(1)  # as in a decoding worker
    cpu, wall = time.process_time(), time.perf_counter()
    windows = 0
    for item in job(path):
        if isinstance(item, WindowChunk):
            windows += len(item.windows)
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "windows": windows,
    }


def end_to_end(path: str, model: str, vmae_args: list[str], work: str) -> dict[str, float]:
    """Wall seconds of a whole ``vmae classify --segments`` run on ``path``, and its windows."""
    out, windows = os.path.join(work, "videos.csv"), os.path.join(work, "windows.csv")
    cmd = [*vmae_command(), "classify", path, "--model", model, "-q", "--segments"]
    cmd += ["-o", out, "--segments-out", windows, "--overwrite", *vmae_args]
    run = run_measured(cmd, capture_stdout=False)
    if run.returncode != 0:
        raise SystemExit(f"vmae failed ({run.returncode}): {run.stderr.strip()}")
    with open(windows, encoding="utf-8-sig") as f:
        count = sum(1 for _ in f) - 1
    return {"wall_s": run.wall_s, "windows": count, "peak_rss": run.memory.peak_rss_sum}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--model", required=True)
    parser.add_argument("--vmae-args", default="", help="more options for vmae classify")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    vmae_args = shlex.split(args.vmae_args)
    info = machine_info()
    print(machine_summary(info), file=sys.stderr)
    results = []
    rows = []
    for video in args.videos:
        duration = probe_duration_s(video)
        if not duration:
            raise SystemExit(f"{video}: no duration in its header")
        with tempfile.TemporaryDirectory() as work:
            e2e = end_to_end(video, args.model, vmae_args, work)
        dec = decode_only(video, args.model, vmae_args)
        per_hour = SECONDS_PER_HOUR / duration
        result = {
            "video": os.path.basename(video),
            "duration_s": duration,
            "windows": e2e["windows"],
            "e2e_wall_s": e2e["wall_s"],
            "e2e_windows_per_s": e2e["windows"] / e2e["wall_s"],
            "e2e_minutes_per_hour": e2e["wall_s"] * per_hour / 60,
            "peak_rss": e2e["peak_rss"],
            "decode_cpu_s": dec["cpu_s"],
            "decode_cpu_minutes_per_hour": dec["cpu_s"] * per_hour / 60,
        }
        results.append(result)
        rows.append(
            [
                result["video"],
                f"{duration:.1f}",
                str(result["windows"]),
                fmt_duration(e2e["wall_s"]),
                f"{result['e2e_windows_per_s']:.2f}",
                f"{result['e2e_minutes_per_hour']:.1f}",
                f"{dec['cpu_s']:.1f}",
                f"{result['decode_cpu_minutes_per_hour']:.1f}",
            ]
        )
    header = [
        "video",
        "seconds",
        "windows",
        "vmae wall",
        "windows/s",
        "min per hour of video",
        "decode CPU s",
        "decode CPU min per hour",
    ]
    print_table(rows, header)
    if args.json:
        write_json(args.json, {"machine": info, "vmae_args": vmae_args, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
