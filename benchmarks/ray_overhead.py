"""The Ray engine's cost against the local engine on one machine, and a paper estimate of
what a cluster would do, from per-video costs measured here.

``engines``  ``vmae classify VIDEOS_DIR --model MODEL_DIR -q -o local.csv`` and the same with
             ``--engine ray`` (no address: vmae starts a local Ray and stops it, so Ray's
             start-up is included), as subprocesses timed from start to exit, alternating
             local/ray then ray/local so that drift in the machine's speed hits both. The rows
             of every run are compared with the first local run's: same paths, each once, same
             status, label and error, scores within 1e-3. Reports wall times, time to the first
             row, and the ratio ray / local (target: <= 1.3).
``costs``    in child processes: the CPU-seconds of decoding one video (vmae's decoding job over
             the folder, one video at a time in a process set up as a worker is: its CPU time,
             user + system, divided by the videos) and
             of one model call per clip (``LoadedModel.predict`` on random uint8 clips, the
             dtype vmae picks on this CPU, the process's CPU time divided by the clips).

The estimate: a node with C cores classifies about ``C / (decode + clips_per_video * model)``
videos/s (both scale with cores: decoding runs one video per worker process, the model uses
every core), times the Ray efficiency measured here (local wall / ray wall), times the
nodes. A GPU node's model cost is not measured here (no GPU on this machine): the estimate
takes the GPU's clip rate as a stated assumption (``--gpu-clips-per-s``), so a GPU node gives
``min(C / decode, gpu_clips_per_s / clips_per_video)``: on CPU decoding it is the cores that
bound it.

Usage::

    python benchmarks/ray_overhead.py VIDEOS_DIR --model MODEL_DIR [--runs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FirstRowWatch,
    count_csv_rows,
    list_videos,
    machine_info,
    machine_summary,
    median,
    print_table,
    run_measured,
    vmae_command,
    write_json,
)

#: Scores of the two engines may differ by this much (the same model, the same frames).
SCORE_TOLERANCE = 1e-3


def _rows(path: str) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    keyed = {r["path"]: r for r in rows}
    if len(keyed) != len(rows):
        raise SystemExit(f"{path}: some video has two rows")
    return keyed


def compare_rows(reference: str, other: str) -> list[str]:
    """What differs between two vmae CSVs (empty: the same rows)."""
    a, b = _rows(reference), _rows(other)
    problems = []
    if set(a) != set(b):
        problems.append(f"paths differ: {sorted(set(a) ^ set(b))[:5]}")
    for path in sorted(set(a) & set(b)):
        ra, rb = a[path], b[path]
        for column in ("status", "label", "error", "decoder", "frames_decoded"):
            if ra[column] != rb[column]:
                problems.append(f"{path}: {column} {ra[column]!r} != {rb[column]!r}")
        if ra["score"] and rb["score"]:
            if abs(float(ra["score"]) - float(rb["score"])) > SCORE_TOLERANCE:
                problems.append(f"{path}: score {ra['score']} != {rb['score']}")
        elif ra["score"] != rb["score"]:
            problems.append(f"{path}: score {ra['score']!r} != {rb['score']!r}")
    return problems


def run_engines(videos: str, model: str, runs: int, extra: list[str]) -> dict[str, Any]:
    """Alternate local and ray runs; time them and compare their rows."""
    results: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for i in range(runs):
            order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
            for engine in order:
                out = os.path.join(tmp, f"{engine}-{i}.csv")
                cmd = [*vmae_command(), "classify", videos, "--model", model, "-q", "-o", out]
                if engine == "ray":
                    cmd += ["--engine", "ray"]
                watch = FirstRowWatch(out)
                m = run_measured(cmd + extra, on_tick=watch, pss_every=1 << 30)
                if m.returncode not in (0, 3):
                    raise SystemExit(f"{' '.join(cmd)} exited {m.returncode}:\n{m.stderr}")
                if reference is None and engine == "local":
                    reference = out
                record = {
                    "run": i,
                    "wall_s": round(m.wall_s, 2),
                    "first_row_s": round(watch.seconds, 2) if watch.seconds else None,
                    "by_status": count_csv_rows(out),
                    "exit_code": m.returncode,
                    "stderr": m.stderr.strip().splitlines()[-3:],
                    "out": out,
                }
                results[engine].append(record)
                print(f"  run {i} {engine:5s}: {m.wall_s:6.1f} s", file=sys.stderr)
        assert reference is not None
        for records in results.values():
            for record in records:
                record["differences"] = compare_rows(reference, record.pop("out"))
    local = median([r["wall_s"] for r in results["local"]])
    ray = median([r["wall_s"] for r in results["ray"]])
    return {
        "runs": results,
        "local_wall_s": local,
        "ray_wall_s": ray,
        "ratio_ray_to_local": round(ray / local, 3) if local and ray else None,
    }


# --------------------------------------------------------------------------------------
# Per-video costs (child processes: `ray_overhead.py --_worker decode|model ...`)
# --------------------------------------------------------------------------------------


def _decode_worker(args: argparse.Namespace) -> dict[str, Any]:
    from vmae_cli.model import read_model_spec
    from vmae_cli.views import ViewMaker, iter_decoded, prepare_worker

    spec = read_model_spec(args.model)
    paths = list_videos(args.videos)
    job = ViewMaker(spec.frames_per_clip, spec.preprocess)
    # In this process, set up as a decoding worker is (one OpenCV thread), so that the
    # process's CPU time is what the workers of a run spend on these videos.
    prepare_worker()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcomes = list(iter_decoded(paths, job, workers=0))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "videos": len(paths),
        "decoded": sum(o.views is not None for o in outcomes),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_video": round(cpu / max(1, len(paths)), 3),
    }


def _model_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from vmae_cli.model import load_model

    lm = load_model(args.model, device="cpu", dtype="auto")
    size = lm.preprocess.crop_hw
    clips = torch.randint(0, 256, (2, lm.frames_per_clip, 3, *size), dtype=torch.uint8)
    lm.predict(clips)  # warm-up
    calls = args.model_calls
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        lm.predict(clips)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = calls * clips.shape[0]
    return {
        "dtype": str(lm.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "clips": n,
        "wall_s": round(wall, 2),
        "cpu_s_per_clip": round(cpu / n, 3),
        "clips_per_s": round(n / wall, 3),
    }


def _child(part: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        args.videos,
        "--model",
        args.model,
        "--_worker",
        part,
        "--model-calls",
        str(args.model_calls),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def estimate(
    decode_cpu_s: float,
    model_cpu_s: float,
    efficiency: float,
    *,
    clips_per_video: int,
    cpu_nodes: int,
    cpu_node_cores: int,
    gpu_nodes: int,
    gpu_node_cores: int,
    gpu_clips_per_s: float,
) -> dict[str, Any]:
    """Videos/s of a CPU cluster and of a GPU cluster from per-video CPU costs."""
    per_cpu_node = cpu_node_cores / (decode_cpu_s + clips_per_video * model_cpu_s)
    decode_bound = gpu_node_cores / decode_cpu_s
    model_bound = gpu_clips_per_s / clips_per_video
    per_gpu_node = min(decode_bound, model_bound)
    return {
        "cpu_cluster": {
            "nodes": cpu_nodes,
            "cores_per_node": cpu_node_cores,
            "videos_per_s_per_node": round(per_cpu_node * efficiency, 3),
            "videos_per_s": round(cpu_nodes * per_cpu_node * efficiency, 2),
        },
        "gpu_cluster": {
            "nodes": gpu_nodes,
            "cpu_cores_per_node": gpu_node_cores,
            "assumed_gpu_clips_per_s": gpu_clips_per_s,
            "decode_bound_videos_per_s_per_node": round(decode_bound, 2),
            "bound_by": "decoding (CPU)" if decode_bound < model_bound else "the GPU",
            "videos_per_s": round(gpu_nodes * per_gpu_node * efficiency, 2),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("videos")
    p.add_argument("--model", required=True)
    p.add_argument("--runs", type=int, default=2, help="runs of each engine")
    p.add_argument("--model-calls", type=int, default=8)
    p.add_argument("--vmae-args", default="", help="more options for both engines")
    p.add_argument("--cpu-nodes", type=int, default=10)
    p.add_argument("--cpu-node-cores", type=int, default=32)
    p.add_argument("--gpu-nodes", type=int, default=4)
    p.add_argument("--gpu-node-cores", type=int, default=32)
    p.add_argument(
        "--gpu-clips-per-s",
        type=float,
        default=1000.0,
        help="ASSUMED ViT-B clips/s of one GPU (not measured here)",
    )
    p.add_argument("--json")
    p.add_argument("--_worker", choices=("decode", "model"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._worker:
        worker = _decode_worker if args._worker == "decode" else _model_worker
        print(json.dumps(worker(args)))
        return

    info = machine_info()
    print(machine_summary(info))
    videos = list_videos(args.videos)
    print(f"{len(videos)} videos in {args.videos}; model {args.model}")
    engines = run_engines(args.videos, args.model, args.runs, args.vmae_args.split())
    print_table(
        [
            [
                engine,
                str(r["run"]),
                f"{r['wall_s']:.1f}",
                f"{r['first_row_s']:.1f}" if r["first_row_s"] else "-",
                json.dumps(r["by_status"]),
                "same rows" if not r["differences"] else f"{len(r['differences'])} differences",
            ]
            for engine in ("local", "ray")
            for r in engines["runs"][engine]
        ],
        ["engine", "run", "wall s", "1st row s", "statuses", "rows vs local run 0"],
    )
    print(
        f"median wall: local {engines['local_wall_s']:.1f} s, ray {engines['ray_wall_s']:.1f} s; "
        f"ray / local = {engines['ratio_ray_to_local']} (target <= 1.3)"
    )
    for engine in ("local", "ray"):
        for r in engines["runs"][engine]:
            for d in r["differences"][:5]:
                print(f"  {engine} run {r['run']}: {d}")

    decode = _child("decode", args)
    model = _child("model", args)
    print(
        f"decoding: {decode['cpu_s_per_video']} CPU-s per video ({decode['videos']} videos, "
        f"one at a time, {decode['wall_s']} s wall); model: "
        f"{model['cpu_s_per_clip']} CPU-s per clip ({model['dtype']}, {model['threads']} "
        f"threads, {model['clips_per_s']} clips/s)"
    )
    efficiency = 1 / engines["ratio_ray_to_local"] if engines["ratio_ray_to_local"] else 1.0
    est = estimate(
        decode["cpu_s_per_video"],
        model["cpu_s_per_clip"],
        min(1.0, efficiency),
        clips_per_video=1,
        cpu_nodes=args.cpu_nodes,
        cpu_node_cores=args.cpu_node_cores,
        gpu_nodes=args.gpu_nodes,
        gpu_node_cores=args.gpu_node_cores,
        gpu_clips_per_s=args.gpu_clips_per_s,
    )
    c, g = est["cpu_cluster"], est["gpu_cluster"]
    print(
        f"estimate, {c['nodes']} CPU nodes x {c['cores_per_node']} cores: "
        f"{c['videos_per_s']} videos/s ({c['videos_per_s_per_node']} per node)"
    )
    print(
        f"estimate, {g['nodes']} GPU nodes x {g['cpu_cores_per_node']} cores, GPU assumed at "
        f"{g['assumed_gpu_clips_per_s']:g} clips/s: {g['videos_per_s']} videos/s, bound by "
        f"{g['bound_by']}"
    )
    if args.json:
        write_json(
            args.json,
            {
                "machine": info,
                "videos": len(videos),
                "engines": engines,
                "decode": decode,
                "model": model,
                "estimate": est,
            },
        )


if __name__ == "__main__":
    main()
