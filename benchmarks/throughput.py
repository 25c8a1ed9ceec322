"""Throughput of vmae against the Hugging Face pipeline and against the model alone, in one run.

Three parts, each in its own process so that none disturbs the others (torch thread pools,
memory, caches), measured one after the other on the same files:

``model``  model-only rate: clips/s of ``vmae_cli.model.LoadedModel.predict`` on random uint8
           batches ``(B, 16, 3, 224, 224)`` after warm-up, for each backend (torch, and
           OpenVINO when installed, from vmae's conversion cache: the first run converts),
           dtype (bfloat16, float32) and batch size asked for. No decoding at all: the best
           of them is the ceiling for vmae on this machine.
``vmae``   ``vmae classify VIDEOS_DIR --model MODEL_DIR -q -o tmp.csv [--vmae-args]`` as a
           subprocess, timed from start to exit (interpreter start-up, imports and model load
           included), with the peak memory of its whole process tree (RSS and PSS sums, sampled
           every 50 ms) and the rows per status of its CSV.
``hf``     ``transformers.pipeline("video-classification", model=MODEL_DIR, device="cpu",
           dtype=torch.float32)`` called once per video over the same files (what a user of
           the library would write), timed both as a whole process and for the loop alone,
           with the time split between ``preprocess`` (decoding + image processor) and the
           model. What transformers does here (5.x, no torchvision, no torchcodec): the model
           folder has no video processor, so the pipeline uses the image processor
           (``VideoMAEImageProcessorPil``) and decodes with its own PyAV loop, which keeps the
           frames ``np.linspace(0, num_frames * frame_sampling_rate - 1, num_frames)``, i.e.
           frames 0..15: the first 16 frames (about half a second) of every video, decoded from
           the start and converted to full-size RGB, the rest of the video never read. vmae
           samples 16 frames spread over the whole video, which means decoding all of it, so
           the two rates do not measure the same work; the JSON records what HF sampled.

Then a table with the ratios vmae/HF and vmae/model-only (the best setting, and each backend's
bf16) and the machine's details.

Usage::

    python benchmarks/throughput.py VIDEOS_DIR --model MODEL_DIR [--json out.json]
    python benchmarks/throughput.py VIDEOS_DIR --model MODEL_DIR --parts vmae \\
        --vmae-args="--workers 2 --batch-size 4" --runs 3
    python benchmarks/throughput.py VIDEOS_DIR --model MODEL_DIR --parts model \\
        --model-batch-sizes 1,2,4 --model-dtypes bfloat16,float32
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FirstRowWatch,
    count_csv_rows,
    describe_videos,
    fmt_bytes,
    fmt_duration,
    fmt_rate,
    list_videos,
    machine_info,
    machine_summary,
    median,
    print_table,
    ratio,
    run_measured,
    vmae_command,
    write_json,
)
from startup import BOOT

PARTS = ("model", "vmae", "hf")


# --------------------------------------------------------------------------------------
# Workers (run in child processes: `throughput.py --_worker hf|model ...`)
# --------------------------------------------------------------------------------------


def _hf_worker(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers.utils import (
        is_av_available,
        is_torchcodec_available,
        is_torchvision_available,
    )

    transformers.logging.set_verbosity_error()
    imported = time.perf_counter()
    dtype = getattr(torch, args.hf_dtype)
    pipe = transformers.pipeline(
        "video-classification", model=args.model, device="cpu", dtype=dtype
    )
    loaded = time.perf_counter()
    num_frames = int(getattr(pipe.model.config, "num_frames", 16))
    # What VideoClassificationPipeline.preprocess samples with its defaults
    # (frame_sampling_rate=1) when it decodes itself (no video processor).
    indices = np.linspace(0, num_frames * 1 - 1, num=num_frames, dtype=np.int64).tolist()
    info = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "image_processor": type(pipe.image_processor).__name__ if pipe.image_processor else None,
        "video_processor": type(pipe.video_processor).__name__ if pipe.video_processor else None,
        "torchvision_available": is_torchvision_available(),
        "torchcodec_available": is_torchcodec_available(),
        "av_available": is_av_available(),
        "model_dtype": str(pipe.model.dtype).replace("torch.", ""),
    }
    if pipe.video_processor is None:
        info["sampling"] = (
            f"own PyAV loop: frames {indices} of the decoded stream "
            f"(np.linspace(0, num_frames*frame_sampling_rate-1, num_frames)), i.e. the first "
            f"{num_frames}; decoding stops after frame {indices[-1]}; frames converted to "
            "full-size rgb24, then the image processor resizes and crops each one"
        )
    else:
        info["sampling"] = (
            f"video processor {type(pipe.video_processor).__name__} with "
            f"num_frames={num_frames}, do_sample_frames=True"
        )
    info["sampled_indices"] = indices if pipe.video_processor is None else None

    # Time the two halves of every call: preprocess (decode + image processor) and the model.
    spent = {"preprocess": 0.0, "forward": 0.0}
    orig_pre, orig_fwd = pipe.preprocess, pipe._forward

    def timed_pre(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return orig_pre(*a, **k)
        finally:
            spent["preprocess"] += time.perf_counter() - t

    def timed_fwd(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return orig_fwd(*a, **k)
        finally:
            spent["forward"] += time.perf_counter() - t

    pipe.preprocess, pipe._forward = timed_pre, timed_fwd
    paths = list_videos(args.videos)[: args.hf_limit or None]
    ok, failures, per_video = 0, [], []
    loop_start = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        try:
            pipe(path, top_k=1)
            ok += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported per file
            failures.append({"path": path, "error": f"{type(exc).__name__}: {exc}"[:300]})
        per_video.append(round(time.perf_counter() - t, 4))
    loop = time.perf_counter() - loop_start
    return {
        **info,
        "videos": len(paths),
        "ok": ok,
        "failures": failures,
        "import_s": round(imported - started, 3),
        "load_s": round(loaded - imported, 3),
        "loop_s": round(loop, 3),
        "preprocess_s": round(spent["preprocess"], 3),
        "forward_s": round(spent["forward"], 3),
        "first_video_s": per_video[0] if per_video else None,
        "per_video_s": per_video,
        "loop_videos_per_s": len(paths) / loop if loop > 0 else None,
    }


def _model_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from vmae_cli import openvino_backend
    from vmae_cli.model import load_model

    results = []
    settings = [(b, d) for b in _split(args.model_backends) for d in _split(args.model_dtypes)]
    for backend, dtype in settings:
        if backend == "openvino" and not openvino_backend.available():
            print("  model openvino: not installed, skipped", file=sys.stderr)
            continue
        t = time.perf_counter()
        if dtype == "int8":
            # Quantized on the first videos of VIDEOS (cached like the conversion: the first
            # run quantizes), as ``vmae classify --dtype int8 --calibration VIDEOS`` does.
            from vmae_cli.pipeline import Classifier

            clf = Classifier(
                args.model, device="cpu", dtype=dtype, backend=backend, calibration=args.videos
            )
            lm = clf.loaded
        else:
            lm = load_model(args.model, device="cpu", dtype=dtype, backend=backend)
        load_s = time.perf_counter() - t
        crop = getattr(lm.preprocess, "crop_hw", None) or (224, 224)
        for batch in (int(b) for b in _split(args.model_batch_sizes)):
            gen = torch.Generator().manual_seed(0)
            x = torch.randint(
                0, 256, (batch, lm.frames_per_clip, 3, *crop), dtype=torch.uint8, generator=gen
            )
            for _ in range(args.model_warmup):
                lm.predict(x)
            iters, start = 0, time.perf_counter()
            times = []
            while True:
                t = time.perf_counter()
                lm.predict(x)
                times.append(time.perf_counter() - t)
                iters += 1
                elapsed = time.perf_counter() - start
                if iters >= args.model_min_iters and elapsed >= args.model_seconds:
                    break
            results.append(
                {
                    "backend": lm.backend,
                    "dtype": dtype,
                    "resolved_dtype": lm.precision,
                    "batch_size": batch,
                    "input_shape": list(x.shape),
                    "iterations": iters,
                    "seconds": round(elapsed, 3),
                    "clips_per_s": batch * iters / elapsed,
                    "median_batch_s": round(sorted(times)[len(times) // 2], 4),
                    "load_s": round(load_s, 3),
                    "torch_threads": torch.get_num_threads(),
                }
            )
            print(
                f"  model {lm.backend} {dtype} B={batch}: {batch * iters / elapsed:.3f} clips/s "
                f"({iters} batches in {elapsed:.1f} s)",
                file=sys.stderr,
            )
        del lm
    return {"runs": results}


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# --------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------


def _run_worker(kind: str, args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """Run this script as ``--_worker kind`` in a child; return its JSON and measurement."""
    with tempfile.TemporaryDirectory(prefix="vmae-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            args.videos,
            "--model",
            args.model,
            "--_worker",
            kind,
            "--_out",
            str(out),
            "--model-dtypes",
            args.model_dtypes,
            "--model-backends",
            args.model_backends,
            "--model-batch-sizes",
            args.model_batch_sizes,
            "--model-seconds",
            str(args.model_seconds),
            "--model-min-iters",
            str(args.model_min_iters),
            "--model-warmup",
            str(args.model_warmup),
            "--hf-limit",
            str(args.hf_limit or 0),
            "--hf-dtype",
            args.hf_dtype,
        ]
        m = run_measured(cmd, pss_every=args.pss_every)
        if m.stderr.strip() and args.verbose:
            sys.stderr.write(m.stderr)
        if m.returncode != 0 or not out.exists():
            tail = "\n".join(m.stderr.strip().splitlines()[-15:])
            print(f"throughput: the {kind} part failed (exit {m.returncode}):\n{tail}")
            return {"error": f"exit {m.returncode}", "stderr_tail": tail}, m
        return json.loads(out.read_text()), m


def _warm_page_cache(paths: list[str]) -> float:
    """Read every file once so that no part pays for the first read from disk."""
    start = time.perf_counter()
    for p in paths:
        try:
            with open(p, "rb") as f:
                while f.read(1 << 22):
                    pass
        except OSError:
            pass
    return time.perf_counter() - start


def _runtime(summary: Path) -> str | None:
    """The model runtime a vmae run reported in its --summary file (``"openvino bfloat16"``)."""
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("runtime")
    except (OSError, ValueError):
        return None


def timeline(marks_file: Path, wall_s: float) -> dict[str, Any] | None:
    """Where a vmae run's wall time went, from its marks (``startup.BOOT`` with
    ``STARTUP_EVERY=1``): start-up to the first model call, the model calls (busy), the
    model waiting between calls (for decoded videos), and the tail after the last call."""
    try:
        marks = json.loads(marks_file.read_text())
    except (OSError, ValueError):
        return None
    starts = [m[2] for m in marks if m[0] == "calls" and m[1] == "start"]
    ends = [m[2] for m in marks if m[0] == "calls" and m[1] == "end"]
    views = sum(m[3] for m in marks if m[0] == "calls" and m[1] == "start" and len(m) > 3)
    decoded = [m[2] for m in marks if m[0] == "decoded"]
    loaded = [m[2] for m in marks if m[0] == "model" and m[1] == "end"]
    if not starts or len(starts) != len(ends):
        return None
    busy = sum(e - s for s, e in zip(starts, ends, strict=True))
    out = {
        "wall_s": round(wall_s, 3),
        "to_first_call_s": round(starts[0], 3),
        "first_decoded_s": round(decoded[0], 3) if decoded else None,
        "model_loaded_s": round(loaded[0], 3) if loaded else None,
        "calls": len(starts),
        "views": views,
        "model_busy_s": round(busy, 3),
        "model_waiting_s": round(ends[-1] - starts[0] - busy, 3),
        "after_last_call_s": round(wall_s - ends[-1], 3),
        "last_decoded_s": round(decoded[-1], 3) if decoded else None,
    }
    out["model_busy_share"] = round(busy / wall_s, 3) if wall_s > 0 else None
    return out


def _timeline_line(t: dict[str, Any]) -> str:
    return (
        f"first model call at {t['to_first_call_s']:.1f} s (first video decoded "
        f"{t['first_decoded_s']} s, model loaded {t['model_loaded_s']} s); {t['calls']} calls "
        f"of {t['views']} views busy {t['model_busy_s']:.1f} s ({t['model_busy_share']:.0%} of "
        f"the wall), waiting for videos {t['model_waiting_s']:.1f} s between calls; "
        f"{t['after_last_call_s']:.1f} s after the last call (last video decoded at "
        f"{t['last_decoded_s']} s)"
    )


def _measure_vmae(args: argparse.Namespace, n_videos: int) -> list[dict[str, Any]]:
    runs = []
    variants = args.vmae_args or [""]
    with tempfile.TemporaryDirectory(prefix="vmae-bench-") as tmp:
        # Each variant once per round, so that a drift of the machine's speed hits all alike.
        for i, variant in ((i, v) for i in range(args.runs) for v in variants):
            csv_path = Path(tmp) / f"run{len(runs)}.csv"
            summary_path = Path(tmp) / f"run{len(runs)}.json"
            cmd = [
                *vmae_command(),
                "classify",
                args.videos,
                "--model",
                args.model,
                "-q",
                "-o",
                str(csv_path),
                "--summary",
                str(summary_path),
                *shlex.split(variant),
            ]
            watch = FirstRowWatch(csv_path)
            env = None
            marks = Path(tmp) / f"run{len(runs)}.marks.json"
            if args.timeline:
                # vmae started through startup.py's BOOT: every model call and decoded video
                # is marked, the code itself unchanged.
                cmd = [sys.executable, "-c", BOOT, *cmd[len(vmae_command()) :]]
                env = {**os.environ, "STARTUP_MARKS": str(marks), "STARTUP_EVERY": "1"}
                env["STARTUP_T0"] = repr(time.time())
            m = run_measured(
                cmd, env=env, pss_every=args.pss_every, capture_stdout=False, on_tick=watch
            )
            statuses = count_csv_rows(csv_path)
            rows = sum(statuses.values())
            run = {
                "args": variant,
                "cmd": shlex.join(cmd),
                "exit_code": m.returncode,
                "wall_s": round(m.wall_s, 3),
                "videos_per_s": n_videos / m.wall_s if m.wall_s > 0 else None,
                "first_row_s": None if watch.seconds is None else round(watch.seconds, 2),
                "rows": rows,
                "ok": statuses.get("ok", 0),
                "statuses": statuses,
                "decoders": count_csv_rows(csv_path, "decoder"),
                "runtime": _runtime(summary_path),
                "memory": m.memory.as_dict(with_timeline=True),
                "stderr_tail": "\n".join(m.stderr.strip().splitlines()[-10:]),
            }
            if args.timeline:
                run["timeline"] = timeline(marks, m.wall_s)
            runs.append(run)
            print(
                f"  vmae {variant or '(defaults)'} run {i + 1}/{args.runs}: {m.wall_s:.1f} s "
                f"(first row after "
                f"{run['first_row_s']} s), exit {m.returncode}, "
                f"{run['ok']}/{rows} ok, peak RSS sum {fmt_bytes(m.memory.peak_rss_sum)}",
                file=sys.stderr,
            )
            if run.get("timeline"):
                print(f"    timeline: {_timeline_line(run['timeline'])}", file=sys.stderr)
            if m.returncode not in (0, 3) and run["stderr_tail"]:
                print(run["stderr_tail"], file=sys.stderr)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("videos", help="folder of videos (walked like vmae does)")
    parser.add_argument("--model", required=True, help="model folder (save_pretrained layout)")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, in this order (default {','.join(PARTS)})",
    )
    parser.add_argument("--skip-hf", action="store_true", help="same as leaving hf out of --parts")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--vmae-args",
        action="append",
        help='extra vmae arguments as one string, written --vmae-args="--workers 2"; given '
        "several times, each is a variant, run in turn in every round",
    )
    parser.add_argument("--runs", type=int, default=1, help="vmae end-to-end runs (default 1)")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="mark every model call and decoded video of the vmae runs (startup.py's hooks): "
        "start-up, model busy, model waiting for videos, the tail",
    )
    parser.add_argument(
        "--hf-limit", type=int, default=0, help="HF: only the first N videos (0 = all)"
    )
    parser.add_argument(
        "--hf-dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="dtype of the HF pipeline (default float32, what a user gets without asking)",
    )
    parser.add_argument("--model-dtypes", default="bfloat16,float32")
    parser.add_argument(
        "--model-backends",
        default="torch,openvino",
        help="model-only backends (default torch,openvino; openvino is skipped if missing)",
    )
    parser.add_argument(
        "--model-batch-sizes", default="2", help="comma-separated (default 2, vmae's CPU default)"
    )
    parser.add_argument(
        "--model-seconds", type=float, default=20.0, help="measure each model setting this long"
    )
    parser.add_argument("--model-min-iters", type=int, default=3)
    parser.add_argument("--model-warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument(
        "--pss-every",
        type=int,
        default=40,
        help="read PSS every N-th 50 ms memory sample (default 40 = every 2 s; 0 = never): "
        "reading it walks the page tables, ~9 ms per GB-sized process, CPU the run then lacks",
    )
    parser.add_argument(
        "--no-warm-cache", action="store_true", help="do not read the files once beforehand"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the parts' stderr")
    parser.add_argument("--_worker", choices=["hf", "model"], help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.videos = os.path.abspath(args.videos)
    args.model = os.path.abspath(args.model) if os.path.isdir(args.model) else args.model

    if args._worker:
        result = _hf_worker(args) if args._worker == "hf" else _model_worker(args)
        write_json(args._out, result)
        return 0

    parts = [p for p in _split(args.parts) if not (args.skip_hf and p == "hf")]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {PARTS}")
    info = machine_info()
    paths = list_videos(args.videos)
    videos = describe_videos(paths)
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    print(
        f"videos: {videos['videos']} files, {fmt_duration(videos['total_duration_s'])} of video, "
        f"{fmt_bytes(videos['total_bytes'])}",
        file=sys.stderr,
    )
    if not paths:
        print("throughput: no videos found", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "machine": info,
        "videos_dir": args.videos,
        "model": args.model,
        "videos": videos,
        "options": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "parts": {},
    }
    if not args.no_warm_cache:
        report["page_cache_warm_s"] = round(_warm_page_cache(paths), 2)

    for part in parts:
        print(f"[{part}] ...", file=sys.stderr)
        if part == "vmae":
            report["parts"]["vmae"] = {"runs": _measure_vmae(args, len(paths))}
            continue
        data, m = _run_worker(part, args)
        data["process"] = {
            "wall_s": round(m.wall_s, 3),
            "exit_code": m.returncode,
            "memory": m.memory.as_dict(),
        }
        if part == "hf" and "loop_s" in data:
            n = data["videos"]
            data["process"]["videos_per_s"] = n / m.wall_s if m.wall_s > 0 else None
            print(
                f"  hf: {data['ok']}/{n} ok, loop {data['loop_s']:.1f} s "
                f"(preprocess {data['preprocess_s']:.1f} s, model {data['forward_s']:.1f} s), "
                f"process {m.wall_s:.1f} s",
                file=sys.stderr,
            )
        report["parts"][part] = data

    report["summary"] = _summarise(report)
    _print_report(report)
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0


def _summarise(report: dict[str, Any]) -> dict[str, Any]:
    parts = report["parts"]
    s: dict[str, Any] = {}
    vmae = parts.get("vmae", {}).get("runs", [])
    by_args: dict[str, list[float]] = {}
    for r in vmae:
        if r.get("videos_per_s") and r["exit_code"] in (0, 3):
            by_args.setdefault(r.get("args", ""), []).append(r["videos_per_s"])
    # The first variant is "vmae"; each variant's median is given too.
    rates = next(iter(by_args.values()), [])
    s["vmae_videos_per_s"] = median(rates)
    s["vmae_videos_per_s_best"] = max(rates) if rates else None
    s["vmae_videos_per_s_by_args"] = {k: median(v) for k, v in by_args.items()}
    hf = parts.get("hf", {})
    s["hf_videos_per_s_process"] = hf.get("process", {}).get("videos_per_s")
    s["hf_videos_per_s_loop"] = hf.get("loop_videos_per_s")
    hf_n = hf.get("videos")
    if hf_n is not None and hf_n != report["videos"]["videos"]:
        s["note"] = f"HF ran over the first {hf_n} videos only (--hf-limit)"
    best: dict[str, Any] = {}  # per "backend dtype", the best batch size
    for run in parts.get("model", {}).get("runs", []):
        key = f"{run.get('backend', 'torch')} {run['dtype']}"
        if key not in best or run["clips_per_s"] > best[key]["clips_per_s"]:
            best[key] = run
    s["model_only"] = {
        k: {"clips_per_s": v["clips_per_s"], "batch_size": v["batch_size"]} for k, v in best.items()
    }
    top = max(best, key=lambda k: best[k]["clips_per_s"]) if best else None
    s["model_only_best"] = top
    runtimes = {r.get("runtime") for r in vmae} - {None}
    s["vmae_runtime"] = ", ".join(sorted(runtimes)) or None
    rate = s["vmae_videos_per_s"]
    s["ratio_vmae_over_hf_process"] = ratio(rate, s["hf_videos_per_s_process"])
    s["ratio_vmae_over_hf_loop"] = ratio(rate, s["hf_videos_per_s_loop"])
    s["ratio_vmae_over_model_best"] = ratio(rate, best[top]["clips_per_s"] if top else None)
    for key, run in best.items():
        s[f"ratio_vmae_over_model {key}"] = ratio(rate, run["clips_per_s"])
    first = next(iter(s["vmae_videos_per_s_by_args"].values()), None)
    for variant, value in list(s["vmae_videos_per_s_by_args"].items())[1:]:
        s[f"ratio_vmae {variant} over vmae {next(iter(by_args))}"] = ratio(value, first)
        for key, run in best.items():
            s[f"ratio_vmae {variant} over_model {key}"] = ratio(value, run["clips_per_s"])
    return s


def _print_report(report: dict[str, Any]) -> None:
    parts, s = report["parts"], report["summary"]
    v = report["videos"]
    print()
    print(f"machine: {machine_summary(report['machine'])}")
    print(
        f"videos:  {v['videos']} files, {fmt_duration(v['total_duration_s'])} of video "
        f"({v['total_duration_s']:.0f} s), {fmt_bytes(v['total_bytes'])}; model: {report['model']}"
    )
    header = [
        "measurement",
        "videos/s",
        "clips/s",
        "wall s",
        "1st row s",
        "peak RSS sum",
        "peak PSS sum",
        "ok",
    ]
    rows: list[list[str]] = []

    def add(**cells: str) -> None:
        keys = ["name", "vps", "cps", "wall", "first", "rss", "pss", "ok"]
        rows.append([cells.get(k, "") for k in keys])

    for run in parts.get("model", {}).get("runs", []):
        add(
            name=f"model only {run.get('backend', 'torch')} {run['dtype']} B={run['batch_size']}",
            cps=fmt_rate(run["clips_per_s"]),
            wall=f"{run['seconds']:.1f}",
        )
    for i, run in enumerate(parts.get("vmae", {}).get("runs", []), 1):
        mem = run["memory"]
        add(
            name=f"vmae classify {run.get('args') or '(defaults)'} run {i}",
            vps=fmt_rate(run["videos_per_s"]),
            wall=f"{run['wall_s']:.1f}",
            first=fmt_rate(run.get("first_row_s"), 1),
            rss=fmt_bytes(mem["peak_rss_sum"]),
            pss=fmt_bytes(mem["peak_pss_sum"]),
            ok=f"{run['ok']}/{run['rows']} (exit {run['exit_code']})",
        )
    hf = parts.get("hf", {})
    if "loop_s" in hf:
        mem = hf["process"]["memory"]
        add(
            name=f"HF pipeline {hf.get('model_dtype', '?')} (process)",
            vps=fmt_rate(hf["process"]["videos_per_s"]),
            wall=f"{hf['process']['wall_s']:.1f}",
            rss=fmt_bytes(mem["peak_rss_sum"]),
            pss=fmt_bytes(mem["peak_pss_sum"]),
            ok=f"{hf['ok']}/{hf['videos']}",
        )
        add(
            name=f"HF pipeline {hf.get('model_dtype', '?')} (loop only)",
            vps=fmt_rate(hf["loop_videos_per_s"]),
            wall=f"{hf['loop_s']:.1f}",
        )
    elif "error" in hf:
        add(name="HF pipeline", vps="failed", ok=hf["error"])
    print()
    print_table(rows, header)
    print()
    ratios = [
        ("vmae / HF (whole process each)", s.get("ratio_vmae_over_hf_process")),
        ("vmae / HF (HF loop only, no start-up)", s.get("ratio_vmae_over_hf_loop")),
        (
            f"vmae / best model-only ({s.get('model_only_best')})",
            s.get("ratio_vmae_over_model_best"),
        ),
    ]
    for key in s.get("model_only", {}):
        ratios.append((f"vmae / model-only {key} (best B)", s.get(f"ratio_vmae_over_model {key}")))
    for key, value in s.items():
        if key.startswith("ratio_vmae "):  # the variants after the first
            ratios.append((key.removeprefix("ratio_"), value))
    for name, value in ratios:
        print(f"{name:48s} {fmt_rate(value, 2)}")
    if s.get("vmae_runtime"):
        print(f"vmae ran the model with: {s['vmae_runtime']}")
    if s.get("note"):
        print(f"note: {s['note']}")
    for i, run in enumerate(parts.get("vmae", {}).get("runs", []), 1):
        decoders = ", ".join(f"{k} {v}" for k, v in sorted(run.get("decoders", {}).items()))
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(run["statuses"].items()))
        print(f"vmae run {i}: rows by status: {statuses or '-'}; by decoder: {decoders or '-'}")
    if "loop_s" in hf:
        print(
            f"HF: {hf['image_processor']} / video processor {hf['video_processor']}; "
            f"torchvision {hf['torchvision_available']}, torchcodec {hf['torchcodec_available']}; "
            f"preprocess {hf['preprocess_s']:.1f} s + model {hf['forward_s']:.1f} s of "
            f"{hf['loop_s']:.1f} s loop"
        )
        print(f"HF sampling: {hf['sampling']}")
        if hf["failures"]:
            print(f"HF failures: {len(hf['failures'])}, first: {hf['failures'][0]}")


if __name__ == "__main__":
    sys.exit(main())
