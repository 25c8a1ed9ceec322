"""The Python half of ``benchmarks/gpu_check.sh``: one subcommand per measurement.

``gpu_check.sh`` runs these one by one, each in its own process under its own timeout, and
each writes one JSON file into the work folder; ``summary`` then merges them into
``$OUT/gpu_check.json`` and a markdown table ``$OUT/gpu_check.md``. Every subcommand can also
be run by hand::

    python benchmarks/gpu_check.py env --json env.json
    python benchmarks/gpu_check.py wheels .whl/*.whl --json wheels.json --ok-list ok.txt
    python benchmarks/gpu_check.py model --model DIR --device cuda --dtype bfloat16 \\
        --batch-sizes 8,32,64 --json model.json
    python benchmarks/gpu_check.py gen-cv2 DIR --count 16        # videos without PyAV
    python benchmarks/gpu_check.py link SRC DST --copies 6       # hard-linked replicas
    python benchmarks/gpu_check.py e2e VIDEOS --model DIR --device cuda --label w16 --json e.json
    python benchmarks/gpu_check.py decode --device cuda --work DIR --json decode.json
    python benchmarks/gpu_check.py gen-long DIR/long.mp4 --seconds 120 --size 1920x1080 \\
        --short DIR/short.mp4 --json video.json            # one long H.264 MP4 (PyAV)
    python benchmarks/gpu_check.py segments DIR/long.mp4 --short DIR/short.mp4 --model DIR \\
        --device cuda --json segments.json                 # vmae classify --segments
    python benchmarks/gpu_check.py summary --work DIR --out OUT

Only the standard library is imported at module level: ``summary``, ``wheels`` and ``link``
start in a fraction of a second; torch, cv2 and av are imported by the parts that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    count_csv_rows,
    fmt_bytes,
    list_videos,
    machine_info,
    run_measured,
    vmae_command,
    write_json,
)

#: Largest per-pixel difference accepted between a GPU-decoded frame and the CPU decode.
MAX_PIXEL_DIFF = 3
#: Frames sampled per video by vmae's default protocol (the exactness check uses the same).
SAMPLES = 16

# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _err(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _run_text(cmd: list[str], timeout: float = 20) -> str | None:
    """stdout of ``cmd`` or ``None`` when it is missing, fails or hangs."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------
# env: what the machine has (Python, torch, GPU, FFmpeg libraries, NVDEC library)
# --------------------------------------------------------------------------------------

#: Folders where a driver's libnvcuvid.so.1 (NVDEC) usually lives.
NVCUVID_DIRS = (
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib/wsl/lib",
)


def ldconfig_libs(prefixes: tuple[str, ...]) -> list[str]:
    """Shared libraries in the loader cache whose name starts with one of ``prefixes``."""
    text = _run_text(["ldconfig", "-p"]) or _run_text(["/sbin/ldconfig", "-p"]) or ""
    found = []
    for line in text.splitlines():
        name = line.strip().split(" ", 1)[0]
        if name.startswith(prefixes):
            found.append(line.strip())
    return found


def find_nvcuvid() -> dict[str, Any]:
    """Where libnvcuvid (the driver's NVDEC library, needed by GPU decoders) is, if anywhere."""
    cached = ldconfig_libs(("libnvcuvid",))
    files = []
    for d in NVCUVID_DIRS:
        for name in ("libnvcuvid.so.1", "libnvcuvid.so"):
            p = Path(d) / name
            if p.exists():
                files.append(str(p))
    return {"ldconfig": cached, "files": files, "found": bool(cached or files)}


def pyav_ffmpeg_dir() -> Path | None:
    """The folder of the FFmpeg libraries bundled in the PyAV wheel (``av.libs``), if any."""
    import importlib.util

    spec = importlib.util.find_spec("av")
    if spec is None or not spec.origin:
        return None
    libs = Path(spec.origin).resolve().parent.parent / "av.libs"
    return libs if libs.is_dir() else None


def gpu_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {}
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_cuda"] = torch.version.cuda
        facts["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            facts["gpu"] = p.name
            facts["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
            facts["capability"] = f"{p.major}.{p.minor}"
            facts["multiprocessors"] = p.multi_processor_count
            facts["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        facts["torch_error"] = _err(exc)
    smi = _run_text(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm",
            "--format=csv,noheader",
        ]
    )
    facts["nvidia_smi"] = smi.strip() if smi else None
    return facts


def cmd_env(args: argparse.Namespace) -> int:
    import platform

    info: dict[str, Any] = {"machine": machine_info()}
    info["python"] = {
        "version": platform.python_version(),
        "executable": sys.executable,
        "glibc": " ".join(platform.libc_ver()),
        "wheel_tags": _top_tags(4),
    }
    info["gpu"] = gpu_facts()
    dists = (
        "torch",
        "transformers",
        "av",
        "opencv-python-headless",
        "opencv-python",
        "numpy",
        "torchcodec",
        "PyNvVideoCodec",
        "pynvvideocodec",
        "setuptools",
        "pytest",
        "vmae-cli",
        "typer",
        "rich",
        "pandas",
    )
    info["versions"] = {d: v for d in dists if (v := _dist_version(d))}
    info["system_ffmpeg"] = ldconfig_libs(("libavcodec.so", "libavformat.so", "libavutil.so"))
    av_dir = pyav_ffmpeg_dir()
    info["pyav_ffmpeg_dir"] = str(av_dir) if av_dir else None
    if av_dir:
        info["pyav_ffmpeg_libs"] = sorted(p.name for p in av_dir.glob("libav*"))
    info["nvcuvid"] = find_nvcuvid()
    info["ffmpeg_cli"] = shutil.which("ffmpeg")
    info["nproc"] = os.cpu_count()
    write_json(args.json, info)
    g = info["gpu"]
    print(
        f"env: python {info['python']['version']} ({sys.executable}); torch {g.get('torch')} "
        f"cuda {g.get('torch_cuda')} available={g.get('cuda_available')} {g.get('gpu', '')}; "
        f"av {info['versions'].get('av')}, torchcodec {info['versions'].get('torchcodec')}; "
        f"system FFmpeg libs: {len(info['system_ffmpeg'])}; "
        f"libnvcuvid: {'yes' if info['nvcuvid']['found'] else 'no'}"
    )
    return 0


# --------------------------------------------------------------------------------------
# wheels: which carried wheels this Python can install
# --------------------------------------------------------------------------------------


def _packaging():
    try:
        from packaging import tags, utils
    except ImportError:  # pip always vendors it
        from pip._vendor.packaging import tags, utils  # type: ignore[no-redef]
    return tags, utils


def _top_tags(n: int) -> list[str]:
    try:
        tags, _ = _packaging()
        return [str(t) for _, t in zip(range(n), tags.sys_tags(), strict=False)]
    except Exception as exc:  # noqa: BLE001 - informational only
        return [f"unknown ({_err(exc)})"]


#: Wheels that must never be installed by this script (the device's torch stays as it is).
FORBIDDEN_PREFIXES = ("torch-", "torchvision-", "torchaudio-", "triton-", "nvidia_", "nvidia-")


def cmd_wheels(args: argparse.Namespace) -> int:
    import platform

    tags, utils = _packaging()
    supported = set(tags.sys_tags())
    py = platform.python_version_tuple()
    need = (
        f"pip download NAME==VERSION --no-deps --only-binary=:all: --python-version "
        f"{py[0]}.{py[1]} --implementation cp --platform manylinux_2_28_x86_64 "
        f"--platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 "
        f"--platform manylinux2014_x86_64 -d .whl"
    )
    rows, ok = [], []
    for w in args.wheels:
        p = Path(w)
        row: dict[str, Any] = {"file": p.name, "bytes": p.stat().st_size if p.exists() else None}
        try:
            name, version, _, wtags = utils.parse_wheel_filename(p.name)
            row.update(name=str(name), version=str(version))
            row["tags"] = sorted(str(t) for t in wtags)
            if p.name.lower().startswith(FORBIDDEN_PREFIXES):
                row["install"] = False
                row["why"] = "refused: the device's torch/CUDA packages are never replaced"
            elif wtags & supported:
                row["install"] = True
                ok.append(str(p))
            else:
                row["install"] = False
                row["why"] = f"not for this Python ({_top_tags(1)[0]}); get one with: {need}"
        except Exception as exc:  # noqa: BLE001 - a bad file name is reported, not fatal
            row["install"] = False
            row["why"] = f"not a wheel file name: {_err(exc)}"
        rows.append(row)
        verdict = "install" if row["install"] else f"skip ({row['why']})"
        print(f"wheel {p.name}: {fmt_bytes(row['bytes'])}, {verdict}")
    write_json(args.json, {"python_tags": _top_tags(4), "wheels": rows, "download_hint": need})
    if args.ok_list:
        Path(args.ok_list).write_text("".join(f"{p}\n" for p in ok), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------------------
# model: model-only clips/s and peak GPU memory per batch size
# --------------------------------------------------------------------------------------


def videomae_macs_per_clip(config: dict[str, Any]) -> float:
    """Multiply-accumulates of one VideoMAE forward pass (encoder + patch embedding), from the
    model's config.json (VideoMAEConfig's defaults where a key is missing: ViT-B)."""
    t = int(config.get("num_frames", 16))
    size = config.get("image_size", 224)
    h = w = int(size if isinstance(size, int) else size[0])
    p = int(config.get("patch_size", 16))
    tub = int(config.get("tubelet_size", 2))
    d = int(config.get("hidden_size", 768))
    m = int(config.get("intermediate_size", 3072))
    layers = int(config.get("num_hidden_layers", 12))
    n = (t // tub) * (h // p) * (w // p)
    embed = n * (3 * tub * p * p) * d
    per_layer = n * (4 * d * d + 2 * d * m) + 2 * n * n * d
    return float(embed + layers * per_layer)


def _time_predict(lm: Any, x: Any, device: str, seconds: float, min_iters: int) -> dict:
    times = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        lm.predict(x)  # returns probabilities on the CPU: the call ends synchronised
        _sync(device)
        times.append(time.perf_counter() - t)
        if len(times) >= min_iters and time.perf_counter() - start >= seconds:
            break
    total = time.perf_counter() - start
    times.sort()
    return {
        "iterations": len(times),
        "seconds": round(total, 3),
        "clips_per_s": x.shape[0] * len(times) / total,
        "median_batch_ms": round(times[len(times) // 2] * 1000, 3),
        "min_batch_ms": round(times[0] * 1000, 3),
    }


def cmd_model(args: argparse.Namespace) -> int:
    import inspect

    import torch

    from vmae_cli.model import load_model

    result: dict[str, Any] = {"model": args.model, "device": args.device, "dtype": args.dtype}
    result["gpu"] = gpu_facts()
    cuda = args.device.startswith("cuda")
    kwargs: dict[str, Any] = {"device": args.device, "dtype": args.dtype}
    params = inspect.signature(load_model).parameters
    if "backend" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["backend"] = args.backend  # torch: the runtime that runs on CUDA
    t = time.perf_counter()
    lm = load_model(args.model, **kwargs)
    result["load_s"] = round(time.perf_counter() - t, 2)
    result["backend"] = getattr(lm, "backend", "torch")
    result["resolved_dtype"] = str(lm.dtype).replace("torch.", "")
    macs = videomae_macs_per_clip(_read_json(Path(args.model) / "config.json") or {})
    result["gflop_per_clip"] = round(2 * macs / 1e9, 2)
    crop = getattr(lm.preprocess, "crop_hw", None) or (224, 224)
    result["input"] = [lm.frames_per_clip, 3, *crop]
    try:
        result["params_m"] = round(sum(p.numel() for p in lm.model.parameters()) / 1e6, 2)
    except Exception:  # noqa: BLE001 - not a torch module (another runtime)
        result["params_m"] = None
    runs = []
    gen = torch.Generator().manual_seed(0)
    for batch in (int(b) for b in args.batch_sizes.split(",") if b.strip()):
        run: dict[str, Any] = {"batch_size": batch}
        try:
            shape = (batch, lm.frames_per_clip, 3, *crop)
            host = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
            if cuda:
                host = host.pin_memory()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            on_device = host.to(lm.device)
            for _ in range(args.warmup):
                lm.predict(on_device)
            _sync(args.device)
            run["device_input"] = _time_predict(
                lm, on_device, args.device, args.seconds, args.min_iters
            )
            if cuda:
                run["host_pinned_input"] = _time_predict(
                    lm, host, args.device, args.seconds / 2, max(2, args.min_iters // 2)
                )
                run["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
                run["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
            cps = run["device_input"]["clips_per_s"]
            run["tflop_per_s"] = round(cps * 2 * macs / 1e12, 2)
            msg = (
                f"model {result['resolved_dtype']} B={batch}: {cps:.1f} clips/s "
                f"({run['device_input']['median_batch_ms']:.1f} ms/batch, "
                f"{run['tflop_per_s']} TFLOP/s)"
            )
            if cuda:
                msg += (
                    f", pinned host input {run['host_pinned_input']['clips_per_s']:.1f} "
                    f"clips/s, peak {fmt_bytes(run['peak_allocated_bytes'])} allocated"
                )
            print(msg, flush=True)
            del host, on_device
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory: recorded, next size
            run["error"] = _err(exc)
            print(f"model B={batch}: {run['error']}", flush=True)
            if cuda:
                torch.cuda.empty_cache()
        runs.append(run)
        write_json(args.json, {**result, "runs": runs})  # keep what is done if killed later
    result["runs"] = runs
    write_json(args.json, result)
    return 0 if runs and all("error" not in r for r in runs) else 1


# --------------------------------------------------------------------------------------
# gen-cv2 / link: the video set of the end-to-end runs
# --------------------------------------------------------------------------------------


def _cv2_video(job: tuple[str, int, int, int, int]) -> str:
    import cv2

    from tools.videogen import frame_pattern

    path, width, height, frames, start = job
    for fourcc in ("XVID", "MJPG"):
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 25.0, (width, height))
        if writer.isOpened():
            break
        writer.release()
    else:
        raise RuntimeError("OpenCV can write neither XVID nor MJPG AVI files here")
    for i in range(frames):
        writer.write(cv2.cvtColor(frame_pattern(start + i, width, height), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def cmd_gen_cv2(args: argparse.Namespace) -> int:
    """Videos made with OpenCV alone (AVI, MPEG-4 part 2 or MJPEG), for a machine without
    PyAV, where make_mix.py cannot run. Short clips: vmae reads AVI sequentially anyway."""
    from concurrent.futures import ProcessPoolExecutor

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [(1280, 720), (640, 360), (960, 540), (854, 480)]
    jobs = []
    for i in range(args.count):
        w, h = sizes[i % len(sizes)]
        if args.max_side and max(w, h) > args.max_side:
            s = args.max_side / max(w, h)
            w, h = int(w * s) // 2 * 2, int(h * s) // 2 * 2
        frames = max(16, int(args.seconds * 25) - 7 * (i % 5))
        jobs.append((str(out / f"{i:03d}_cv2_{w}x{h}.avi"), w, h, frames, 37 * i))
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(_cv2_video, jobs))
    print(f"gen-cv2: {len(done)} AVI videos in {time.perf_counter() - t:.1f} s in {out}")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    """``copies`` hard links of every video under SRC in DST/copy_K/ (symlinks if linking
    across file systems fails): many distinct paths, each costing a real decode."""
    src_videos = list_videos(args.src)
    dst = Path(args.dst)
    made = 0
    for k in range(args.copies):
        folder = dst / f"copy_{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for p in src_videos:
            target = folder / Path(p).name
            if target.exists():
                continue
            try:
                os.link(p, target)
            except OSError:
                os.symlink(os.path.abspath(p), target)
            made += 1
    total_bytes = sum(os.stat(p).st_size for p in src_videos)
    info = {
        "unique_videos": len(src_videos),
        "copies": args.copies,
        "videos": len(src_videos) * args.copies,
        "unique_bytes": total_bytes,
        "folder": str(dst),
    }
    mix = _read_json(Path(args.src) / "mix.json")
    if isinstance(mix, dict):
        items = mix.get("items") or mix.get("files") or []
        if isinstance(items, list):
            dur = [float(i.get("duration_s", 0)) for i in items if isinstance(i, dict)]
            info["unique_duration_s"] = round(sum(dur), 1)
    if args.json:
        write_json(args.json, info)
    print(
        f"link: {len(src_videos)} videos x {args.copies} = {info['videos']} paths "
        f"({made} new links), {fmt_bytes(total_bytes)} unique, in {dst}"
    )
    return 0 if src_videos else 1


# --------------------------------------------------------------------------------------
# e2e: `vmae classify` as a whole process, with GPU utilisation sampled alongside
# --------------------------------------------------------------------------------------


class SmiSampler:
    """``nvidia-smi`` sampling GPU utilisation and memory every ``interval_ms`` in the
    background; does nothing where nvidia-smi is missing."""

    def __init__(self, interval_ms: int = 250):
        self.interval_ms = interval_ms
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0
        self.samples: list[tuple[float, float, float]] = []  # (s since start, util %, MiB)
        self._thread: threading.Thread | None = None

    def start(self) -> SmiSampler:
        exe = shutil.which("nvidia-smi")
        if not exe:
            return self
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                exe,
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "-lms",
                str(self.interval_ms),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                util, mem = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                continue
            self.samples.append((time.perf_counter() - self.t0, util, mem))

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self._thread:
            self._thread.join(timeout=5)
        return self.summarise(self.samples)

    @staticmethod
    def summarise(samples: list[tuple[float, float, float]], after_s: float = 0.0) -> dict:
        util = [u for t, u, _ in samples if t >= after_s]
        mem = [m for t, _, m in samples if t >= after_s]
        if not util:
            return {"samples": 0}
        return {
            "samples": len(util),
            "util_mean": round(sum(util) / len(util), 1),
            "util_max": max(util),
            "mem_max_mib": max(mem),
        }


class RowCounter:
    """An ``on_tick`` callback: the data rows of a growing CSV over time, read every
    ``every``-th tick (the sampler ticks every 50 ms)."""

    def __init__(self, path: Path, every: int = 10):
        self.path, self.every, self.n = path, every, 0
        self.timeline: list[tuple[float, int]] = []

    def __call__(self, elapsed: float) -> None:
        self.n += 1
        if self.n % self.every:
            return
        try:
            with open(self.path, "rb") as f:
                rows = max(0, f.read().count(b"\n") - 1)
        except OSError:
            return
        if not self.timeline or rows != self.timeline[-1][1]:
            self.timeline.append((round(elapsed, 2), rows))


def cmd_e2e(args: argparse.Namespace) -> int:
    work = Path(args.json).parent
    csv_path = work / f"e2e_{args.label}.csv"
    summary_path = work / f"e2e_{args.label}_summary.json"
    for p in (csv_path, summary_path):
        p.unlink(missing_ok=True)
    videos = list_videos(args.videos)
    cmd = [
        *vmae_command(),
        "classify",
        args.videos,
        "--model",
        args.model,
        "--device",
        args.device,
        "-q",
        "-o",
        str(csv_path),
        "--summary",
        str(summary_path),
    ]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    print(f"e2e {args.label}: {len(videos)} videos: {' '.join(cmd)}", flush=True)
    rows = RowCounter(csv_path)
    smi = SmiSampler().start()
    m = run_measured(
        cmd,
        pss_every=40,
        timeout_s=args.timeout,
        capture_stdout=False,
        on_tick=rows,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    gpu = smi.stop()
    statuses = count_csv_rows(csv_path)
    done = sum(statuses.values())
    first = next(((t, n) for t, n in rows.timeline if n > 0), None)
    steady = None
    if first and done > first[1] and m.wall_s > first[0]:
        steady = (done - first[1]) / (m.wall_s - first[0])
    result = {
        "label": args.label,
        "cmd": cmd,
        "workers": args.workers if args.workers is not None else f"default ({os.cpu_count()})",
        "videos": len(videos),
        "exit_code": m.returncode,
        "timed_out": m.returncode < 0 and args.timeout is not None and m.wall_s >= args.timeout,
        "wall_s": round(m.wall_s, 2),
        "rows": done,
        "videos_per_s": done / m.wall_s if m.wall_s > 0 else None,
        "first_row_s": first[0] if first else None,
        "steady_videos_per_s": steady,
        "statuses": statuses,
        "decoders": count_csv_rows(csv_path, "decoder"),
        "memory": m.memory.as_dict(),
        "gpu": gpu,
        "vmae_summary": _read_json(summary_path),
        "row_timeline": rows.timeline[:: max(1, len(rows.timeline) // 60)],
        "stderr_tail": "\n".join(m.stderr.strip().splitlines()[-12:]),
    }
    if gpu and first and smi.samples:
        result["gpu_after_first_row"] = SmiSampler.summarise(smi.samples, first[0])
    write_json(args.json, result)
    util = f", GPU util mean {gpu.get('util_mean')} % max {gpu.get('util_max')} %" if gpu else ""
    steady_text = f"{steady:.2f}" if steady else "-"
    print(
        f"e2e {args.label}: exit {m.returncode}, {done}/{len(videos)} rows in {m.wall_s:.1f} s "
        f"= {result['videos_per_s'] or 0:.2f} videos/s (after the first row {steady_text}), "
        f"first row {result['first_row_s']} s, {statuses}{util}",
        flush=True,
    )
    if m.returncode not in (0, 3):
        print(result["stderr_tail"], flush=True)
    return 0 if m.returncode in (0, 3) else 1


# --------------------------------------------------------------------------------------
# gen-long / segments: `vmae classify --segments` on one long video, per hour of video
# --------------------------------------------------------------------------------------

SECONDS_PER_HOUR = 3600.0


def _long_chunk(job: tuple[str, int, int, int, int, float, int, int]) -> float:
    """One stretch of the long video (frames ``start``..): an H.264 MP4 of its own."""
    from tools.videogen import write_video

    path, width, height, frames, start, fps, gop, bframes = job
    t = time.perf_counter()
    write_video(
        path,
        codec="h264",
        width=width,
        height=height,
        num_frames=frames,
        fps=fps,
        gop=gop,
        bframes=bframes,
        start_index=start,
    )
    return time.perf_counter() - t


def concat_mp4(chunks: list[tuple[str, int]], out: Path, fps: float) -> int:
    """Remux (packet copy, no re-encoding) the MP4 files ``chunks`` (path, first frame), each
    made by :func:`_long_chunk` with the same settings, into one MP4 ``out``: their
    timestamps are shifted by their first frame. Returns the packets written."""
    from fractions import Fraction

    import av

    rate = Fraction(fps).limit_denominator(1001)
    packets = 0
    with av.open(str(out), "w", container_options={"fflags": "+bitexact"}) as dst:
        ost = None
        for path, first in chunks:
            with av.open(path) as src:
                ist = src.streams.video[0]
                if ost is None:
                    ost = dst.add_stream_from_template(ist)
                for pkt in src.demux(ist):
                    if pkt.dts is None:  # the demuxer's empty packet at the end
                        continue
                    shift = round(Fraction(first) / rate / pkt.time_base)
                    pkt.dts += shift
                    if pkt.pts is not None:
                        pkt.pts += shift
                    pkt.stream = ost
                    dst.mux(pkt)
                    packets += 1
    return packets


def cmd_gen_long(args: argparse.Namespace) -> int:
    """One long H.264 MP4 of tools/videogen's frames (frame i shows index i): ``jobs``
    stretches encoded in parallel (libx264 ultrafast, one thread each, a keyframe every
    ``gop`` frames, B-frames), then remuxed into one file, so that vmae reads it as a real
    recording (demux index, seek plan). Also, with ``--short``, a clip of the first
    ``--short-frames`` frames, for vmae's start-up time."""
    from concurrent.futures import ProcessPoolExecutor

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.split("x"))
    total = max(1, round(args.seconds * args.fps))
    gop = max(1, args.gop or round(2 * args.fps))
    per = -(-total // max(1, args.jobs))  # ceil
    per = -(-per // gop) * gop  # whole GOPs: the keyframes stay every `gop` frames
    starts = list(range(0, total, per))
    parts = out.parent / f"{out.stem}_parts"
    parts.mkdir(exist_ok=True)
    jobs = [
        (str(parts / f"{k:03d}.mp4"), w, h, min(per, total - s), s, args.fps, gop, args.bframes)
        for k, s in enumerate(starts)
    ]
    if args.short:
        frames = min(args.short_frames, total)
        jobs.append((str(args.short), w, h, frames, 0, args.fps, gop, args.bframes))
    info: dict[str, Any] = {
        "generator": (
            f"gpu_check.py gen-long: PyAV H.264 MP4 (tools/videogen.py write_video: libx264 "
            f"ultrafast, crf 20), keyframe every {gop} frames, {args.bframes} B-frames, "
            f"{len(starts)} stretches encoded in parallel and remuxed"
        ),
        "path": str(out),
        "width": w,
        "height": h,
        "fps": args.fps,
        "frames": total,
        "seconds": round(total / args.fps, 3),
        "gop": gop,
        "bframes": args.bframes,
        "chunks": len(starts),
        "jobs": args.jobs,
    }
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(jobs)))) as pool:
        encode_s = list(pool.map(_long_chunk, jobs))
    info["encode_wall_s"] = round(time.perf_counter() - t, 2)
    info["encode_cpu_s"] = round(sum(encode_s), 1)
    t2 = time.perf_counter()
    info["packets"] = concat_mp4([(j[0], j[4]) for j in jobs[: len(starts)]], out, args.fps)
    info["concat_s"] = round(time.perf_counter() - t2, 2)
    shutil.rmtree(parts, ignore_errors=True)
    info["bytes"] = out.stat().st_size
    info["wall_s"] = round(time.perf_counter() - t, 2)
    if args.short:
        info["short"] = {
            "path": str(args.short),
            "frames": jobs[-1][3],
            "bytes": Path(args.short).stat().st_size,
        }
    if args.json:
        write_json(args.json, info)
    ok = info["packets"] == total
    print(
        f"gen-long: {out.name}: {total} frames ({info['seconds']} s) of {w}x{h} at "
        f"{args.fps} fps, {fmt_bytes(info['bytes'])}, {len(starts)} stretches in "
        f"{info['encode_wall_s']} s ({info['encode_cpu_s']} s of encoding) + remux "
        f"{info['concat_s']} s" + ("" if ok else f"; ERROR: {info['packets']} packets"),
        flush=True,
    )
    return 0 if ok else 1


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _num(text: Any, kind: type = int) -> Any:
    try:
        return kind(text)
    except (TypeError, ValueError):
        return None


def check_segments(videos_csv: Path, windows_csv: Path, frames: int | None) -> dict[str, Any]:
    """Whether a one-video ``--segments`` run wrote what it should: one ``ok`` video row whose
    ``windows`` is the number of window rows, windows numbered 0..N-1 that tile the video
    from frame 0 to its last frame (``frames_decoded - 1``); and, given, ``frames`` frames."""
    rows, wins = _read_csv(videos_csv), _read_csv(windows_csv)
    row = rows[0] if rows else {}
    problems = []
    if len(rows) != 1:
        problems.append(f"{len(rows)} video rows, not 1")
    if row.get("status") != "ok":
        problems.append(f"video status {row.get('status')!r} {row.get('error') or ''}".strip())
    windows = _num(row.get("windows"))
    if windows != len(wins):
        problems.append(f"windows column {windows}, {len(wins)} window rows")
    numbers = [_num(w.get("window")) for w in wins]
    if numbers != list(range(len(wins))):
        problems.append("window rows are not numbered 0..N-1 in order")
    decoded = _num(row.get("frames_decoded"))
    first = _num(wins[0].get("start_frame")) if wins else None
    last = _num(wins[-1].get("end_frame")) if wins else None
    if first != 0:
        problems.append(f"first start_frame {first}, not 0")
    if decoded is None or last != decoded - 1:
        problems.append(f"last end_frame {last}, frames_decoded {decoded}")
    if frames is not None and decoded != frames:
        problems.append(f"frames_decoded {decoded}, {frames} frames written")
    gaps = 0
    for a, b in zip(wins, wins[1:], strict=False):
        start, end = _num(b.get("start_frame")), _num(a.get("end_frame"))
        if start is None or end is None or start > end + 1:
            gaps += 1
    if gaps:
        problems.append(f"{gaps} gaps between windows")
    statuses: dict[str, int] = {}
    for w in wins:
        statuses[w.get("status") or "-"] = statuses.get(w.get("status") or "-", 0) + 1
    if set(statuses) - {"ok"}:
        problems.append(f"window statuses {statuses}")
    return {
        "ok": not problems,
        "problems": problems,
        "video_rows": len(rows),
        "status": row.get("status"),
        "windows_column": windows,
        "window_rows": len(wins),
        "window_statuses": statuses,
        "first_start_frame": first,
        "last_end_frame": last,
        "frames_decoded": decoded,
        "duration_s": _num(row.get("duration_s"), float),
        "fps": _num(row.get("fps"), float),
        "decoder": row.get("decoder"),
        "protocol": row.get("protocol"),
        "notes": row.get("notes"),
    }


def _segments_run(
    args: argparse.Namespace, video: str, label: str, timeout: float, frames: int | None
) -> dict[str, Any]:
    """One ``vmae classify VIDEO --segments`` as a whole process (start-up included), with
    GPU utilisation and the CPU time of vmae and its workers."""
    import resource

    work = Path(args.json).parent
    videos_csv = work / f"segments_{label}_videos.csv"
    windows_csv = work / f"segments_{label}_windows.csv"
    summary_path = work / f"segments_{label}_summary.json"
    for p in (videos_csv, windows_csv, summary_path):
        p.unlink(missing_ok=True)
    cmd = [
        *vmae_command(),
        "classify",
        video,
        "--segments",
        "--model",
        args.model,
        "--device",
        args.device,
        "-o",
        str(videos_csv),
        "--segments-out",
        str(windows_csv),
        "-q",
        "--summary",
        str(summary_path),
    ]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    print(f"segments {label}: {' '.join(cmd)}", flush=True)
    smi = SmiSampler().start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = run_measured(
        cmd,
        pss_every=40,
        timeout_s=timeout,
        capture_stdout=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gpu = smi.stop()  # after the rusage: nvidia-smi's own CPU is not counted
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    check = check_segments(videos_csv, windows_csv, frames)
    return {
        "label": label,
        "video": Path(video).name,
        "cmd": cmd,
        "exit_code": m.returncode,
        "timed_out": m.returncode < 0 and m.wall_s >= timeout,
        "wall_s": round(m.wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "windows": check["window_rows"],
        "windows_per_s": check["window_rows"] / m.wall_s if m.wall_s > 0 else None,
        "check": check,
        "memory": m.memory.as_dict(),
        "gpu": gpu,
        "vmae_summary": _read_json(summary_path),
        "stderr_tail": "\n".join(m.stderr.strip().splitlines()[-12:]),
    }


def cmd_segments(args: argparse.Namespace) -> int:
    """`vmae classify VIDEO --segments` (default window, default workers): wall time, windows/s
    and minutes per hour of video, start-up included and (with ``--short``, a clip of one or
    two windows run first) without it; CPU minutes per hour; GPU utilisation; the output
    checked (:func:`check_segments`)."""
    deadline = time.perf_counter() + args.timeout
    video_info = _read_json(args.video_json) if args.video_json else None
    frames = (video_info or {}).get("frames")
    short_frames = ((video_info or {}).get("short") or {}).get("frames")
    result: dict[str, Any] = {
        "device": args.device,
        "model": args.model,
        "workers": args.workers if args.workers is not None else f"default ({os.cpu_count()})",
        "window": "default",
        "video": video_info,
        "runs": [],
    }
    if args.short:
        budget = min(args.timeout / 3, 90.0)
        short = _segments_run(args, args.short, "startup", budget, short_frames)
        result["runs"].append(short)
        write_json(args.json, result)
        print(
            f"segments start-up: {short['video']} ({short_frames} frames), exit "
            f"{short['exit_code']} in {short['wall_s']} s, {short['windows']} windows",
            flush=True,
        )
    left = deadline - time.perf_counter() - 2
    if left < 5:
        result["error"] = "no time left for the long video"
        write_json(args.json, result)
        print(f"segments: {result['error']}")
        return 1
    run = _segments_run(args, args.video, "long", left, frames)
    result["runs"].append(run)
    check = run["check"]
    duration = check.get("duration_s") or (video_info or {}).get("seconds")
    fig: dict[str, Any] = {
        "video_s": duration,
        "wall_s": run["wall_s"],
        "windows": run["windows"],
        "windows_per_s": run["windows_per_s"],
        "minutes_per_hour": None,
        "cpu_minutes_per_hour": None,
        "startup_s": None,
        "startup_windows": None,
        "windows_per_s_after_startup": None,
        "minutes_per_hour_after_startup": None,
        "gpu_util_mean": (run["gpu"] or {}).get("util_mean"),
        "gpu_util_max": (run["gpu"] or {}).get("util_max"),
        "gpu_mem_max_mib": (run["gpu"] or {}).get("mem_max_mib"),
        "check_ok": check["ok"] and run["exit_code"] == 0,
    }
    if duration:
        per_hour = SECONDS_PER_HOUR / duration
        fig["minutes_per_hour"] = run["wall_s"] * per_hour / 60
        fig["cpu_minutes_per_hour"] = run["cpu_s"] * per_hour / 60
        first = result["runs"][0] if args.short else None
        if first and first["exit_code"] == 0 and run["wall_s"] > first["wall_s"]:
            # The short clip's run is start-up plus one or two windows: the difference is
            # the cost of the long video's other windows.
            fig["startup_s"] = first["wall_s"]
            fig["startup_windows"] = first["windows"]
            extra_s = run["wall_s"] - first["wall_s"]
            fig["windows_per_s_after_startup"] = (run["windows"] - first["windows"]) / extra_s
            fig["minutes_per_hour_after_startup"] = extra_s * per_hour / 60
    for key, value in fig.items():
        if isinstance(value, float):
            fig[key] = round(value, 3)
    result["figures"] = fig
    write_json(args.json, result)
    gpu = run["gpu"]
    util = f", GPU util mean {gpu.get('util_mean')} % max {gpu.get('util_max')} %" if gpu else ""
    after = (
        f" ({fig['minutes_per_hour_after_startup']:.2f} after a start-up of {fig['startup_s']} s)"
        if fig["minutes_per_hour_after_startup"] is not None
        else ""
    )
    mph = fig["minutes_per_hour"]
    cpu_mph = fig["cpu_minutes_per_hour"]
    print(
        f"segments: {run['video']} ({_f(duration)} s, {check.get('frames_decoded')} frames, "
        f"{check.get('decoder')}), exit {run['exit_code']} in {run['wall_s']} s: "
        f"{run['windows']} windows = {run['windows_per_s'] or 0:.2f} windows/s, "
        f"{_f(mph, 2)} min per hour of video{after}, CPU {_f(cpu_mph, 2)} min per hour{util}; "
        f"check {'ok' if check['ok'] else 'FAILED: ' + '; '.join(check['problems'])}",
        flush=True,
    )
    if run["exit_code"] != 0:
        print(run["stderr_tail"], flush=True)
    return 0 if fig["check_ok"] else 1


# --------------------------------------------------------------------------------------
# decode: a GPU decoder's frames/s and frame-exactness against a CPU full decode
# --------------------------------------------------------------------------------------


def build_ffmpeg_shim(shim: Path) -> dict[str, Any]:
    """Links with the plain sonames (``libavcodec.so.62``) to the FFmpeg libraries bundled in
    the PyAV wheel, so that torchcodec, which needs a system FFmpeg, can load them."""
    info: dict[str, Any] = {"dir": str(shim), "source": None, "links": []}
    src = pyav_ffmpeg_dir()
    if src is None:
        info["why_not"] = "PyAV (with its av.libs) is not installed"
        return info
    info["source"] = str(src)
    shim.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(r"^(lib(?:av\w+|sw\w+|postproc))-[0-9a-f]{8}\.so\.(\d+)")
    for lib in sorted(src.glob("*.so*")):
        names = [lib.name]
        hit = pattern.match(lib.name)
        if hit:
            names.append(f"{hit.group(1)}.so.{hit.group(2)}")
            info["links"].append(names[-1])
        for name in names:
            link = shim / name
            if not link.exists():
                link.symlink_to(lib)
    return info


def cuda_wheel_lib_dirs() -> list[str]:
    """Folders of the CUDA libraries pip installed with torch (``nvidia/*/lib``), and
    torch's own ``lib``."""
    import site

    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    found: list[str] = []
    for root in dict.fromkeys(r for r in roots if r and os.path.isdir(r)):
        base = Path(root)
        candidates = [*base.glob("nvidia/*/lib"), *base.glob("nvidia/*/*/lib"), base / "torch/lib"]
        for d in candidates:
            if d.is_dir() and any(d.glob("lib*.so*")) and str(d) not in found:
                found.append(str(d))
    return found


def _reexec_with_libs(args: argparse.Namespace) -> None:
    """Run this subcommand again with LD_LIBRARY_PATH naming the FFmpeg shim and the folder
    of libnvcuvid (the loader reads LD_LIBRARY_PATH only when a process starts)."""
    if os.environ.get("GPU_CHECK_LIBS_SET") or not args.work:
        return
    shim = build_ffmpeg_shim(Path(args.work) / "ffmpeg-shim")
    write_json(Path(args.work) / "ffmpeg_shim.json", shim)
    dirs = [shim["dir"]] if shim.get("source") else []
    nv = find_nvcuvid()
    if nv["files"] and not nv["ldconfig"]:
        dirs.append(str(Path(nv["files"][0]).parent))
    # torchcodec's CUDA build links libnvrtc.so.13 and libcudart.so.13 without a RUNPATH;
    # torch's pip wheels keep them in site-packages/nvidia/.../lib, off the loader's path.
    dirs += cuda_wheel_lib_dirs()
    write_json(Path(args.work) / "ld_library_path.json", dirs)
    env = dict(os.environ, GPU_CHECK_LIBS_SET="1")
    if dirs:
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = ":".join([*dirs, *([old] if old else [])])
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _missing_libs(text: str) -> list[str]:
    """The shared libraries a loader error text says it could not find."""
    return sorted(set(re.findall(r"[\w.+-]+\.so[\w.]*(?=: cannot open shared)", text)))


def probe_decoders(device: str) -> dict[str, Any]:
    """Which GPU decoders import here, and why the others do not."""
    probe: dict[str, Any] = {}
    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder  # noqa: F401

        probe["torchcodec"] = {"version": getattr(torchcodec, "__version__", "?")}
        try:
            from torchcodec._core import ops

            probe["torchcodec"]["ffmpeg_major"] = getattr(ops, "ffmpeg_major_version", None)
            probe["torchcodec"]["ffmpeg_loaded"] = getattr(ops, "_FFMPEG_AVAILABLE", None)
            if getattr(ops, "_FFMPEG_AVAILABLE", True) is False:
                try:
                    ops.load_core_libraries()
                except Exception as exc:  # noqa: BLE001 - the reason FFmpeg did not load
                    text = str(exc)
                    probe["torchcodec"]["ffmpeg_error"] = text[-4000:]
                    probe["torchcodec"]["missing_libs"] = _missing_libs(text)
        except Exception as exc:  # noqa: BLE001 - private module: best effort
            probe["torchcodec"]["ops_error"] = _err(exc)
    except Exception as exc:  # noqa: BLE001 - not installed or does not load
        probe["torchcodec_error"] = _err(exc)
        missing = _missing_libs(str(exc))
        if missing:
            probe["torchcodec_error"] += f" (libraries not found: {', '.join(missing)})"
            probe["torchcodec_error_text"] = str(exc)[-4000:]
    try:
        import PyNvVideoCodec  # noqa: F401

        probe["pynvvideocodec"] = {"version": _dist_version("PyNvVideoCodec")}
    except Exception as exc:  # noqa: BLE001
        probe["pynvvideocodec_error"] = _err(exc)
    if device.startswith("cuda"):
        import torch

        probe["cuda_available"] = torch.cuda.is_available()
    probe["nvcuvid"] = find_nvcuvid()
    probe["ld_library_path"] = os.environ.get("LD_LIBRARY_PATH")
    return probe


def _make_clip(job: tuple[str, str, int, int, int, int]) -> tuple[str, float]:
    from tools.videogen import write_video

    path, codec, width, height, frames, threads = job
    t = time.perf_counter()
    opts = (
        {"threads": str(threads)}
        if codec == "h264"
        else {"x265-params": f"log-level=error:pools={threads}:frame-threads={min(threads, 4)}"}
    )
    write_video(
        path,
        codec=codec,
        width=width,
        height=height,
        num_frames=frames,
        fps=25,
        gop=50,
        bframes=2,
        stream_options=opts,
    )
    return path, time.perf_counter() - t


def _cpu_reference(path: str) -> tuple[list[Any], float, str]:
    """Every frame of ``path`` as RGB (H, W, 3) uint8, decoded from the start on the CPU."""
    import numpy as np

    t = time.perf_counter()
    try:
        import av

        frames = []
        with av.open(path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for f in c.decode(stream):
                frames.append(f.to_ndarray(format="rgb24"))
        return frames, time.perf_counter() - t, "pyav"
    except ImportError:
        import cv2

        cap = cv2.VideoCapture(path)
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        cap.release()
        return frames, time.perf_counter() - t, "opencv"


def _compare(got: Any, ref: list[Any], indices: list[int]) -> dict[str, Any]:
    """Per-pixel differences between decoded frames ``got`` (N, 3, H, W) and the reference."""
    import numpy as np

    from tools.videogen import MAX_INDEX, read_index

    arr = got.cpu().numpy() if hasattr(got, "cpu") else np.asarray(got)
    maxes, means, above, over = [], [], 0, 0
    mismatches = []
    p999 = []
    for k, idx in enumerate(indices):
        frame = np.ascontiguousarray(arr[k].transpose(1, 2, 0))
        r = ref[idx]
        if frame.shape != r.shape:
            mismatches.append({"index": idx, "why": f"shape {frame.shape} vs {r.shape}"})
            continue
        diff = np.abs(frame.astype(np.int16) - r.astype(np.int16))
        maxes.append(int(diff.max()))
        means.append(float(diff.mean()))
        p999.append(float(np.percentile(diff, 99.9)))
        above += int((diff > MAX_PIXEL_DIFF).sum())
        over += diff.size
        try:
            code = read_index(frame)
        except ValueError:
            code = -1
        if code != idx & MAX_INDEX:
            mismatches.append({"index": idx, "code_read": code})
    return {
        "max_abs_diff": max(maxes) if maxes else None,
        "mean_abs_diff": round(sum(means) / len(means), 4) if means else None,
        "p999_abs_diff": max(p999) if p999 else None,
        "per_index_max": maxes,
        "fraction_above_limit": round(above / over, 6) if over else None,
        "index_mismatches": mismatches,
    }


def _measure_torchcodec(path: str, device: str, ref: list[Any], reps_s: float) -> dict:
    import torch
    from torchcodec.decoders import VideoDecoder

    from vmae_cli.decoding import sample_indices

    out: dict[str, Any] = {"reference_frames": len(ref)}
    indices = sample_indices(len(ref), SAMPLES)
    out["indices"] = indices
    # One video as vmae would use it: open, then the 16 sampled frames (exact seeking).
    _sync(device)
    t = time.perf_counter()
    dec = VideoDecoder(path, device=device, seek_mode="exact")
    opened = time.perf_counter()
    batch = dec.get_frames_at(indices=indices)
    _sync(device)
    out["open_ms"] = round((opened - t) * 1000, 2)
    out["sampled_16_ms"] = round((time.perf_counter() - opened) * 1000, 2)
    out["frames_reported"] = len(dec)
    out["frame_device"] = str(batch.data.device)
    fallback = getattr(dec, "cpu_fallback", None)
    out["cpu_fallback"] = None if fallback is None else str(fallback)
    out["fell_back_to_cpu"] = bool(fallback) if fallback is not None else None
    out.update(_compare(batch.data, ref, indices))
    del batch, dec
    # Throughput: decode every frame from the start, repeated for at least reps_s seconds.
    n_frames, reps, total = 0, 0, 0.0
    while reps < 2 or (total < reps_s and reps < 20):
        dec = VideoDecoder(path, device=device, seek_mode="approximate")
        _sync(device)
        t = time.perf_counter()
        n = len(dec)
        for start in range(0, n, 32):
            frames = dec.get_frames_in_range(start, min(n, start + 32)).data
            del frames
        _sync(device)
        total += time.perf_counter() - t
        n_frames += n
        reps += 1
        del dec
    out["full_decode_frames_per_s"] = round(n_frames / total, 1) if total else None
    out["full_decode_reps"] = reps
    if device.startswith("cuda"):
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return out


def cmd_decode(args: argparse.Namespace) -> int:
    _reexec_with_libs(args)
    result: dict[str, Any] = {"device": args.device, "limit": MAX_PIXEL_DIFF}
    shim = _read_json(Path(args.work) / "ffmpeg_shim.json") if args.work else None
    result["ffmpeg_shim"] = shim
    result["probe"] = probe = probe_decoders(args.device)
    reasons = []
    if "torchcodec" not in probe:
        reasons.append(f"torchcodec does not import ({probe.get('torchcodec_error')})")
    elif probe["torchcodec"].get("ffmpeg_loaded") is False:
        missing = ", ".join(probe["torchcodec"].get("missing_libs") or []) or "see the JSON"
        reasons.append(
            "torchcodec imports but cannot load its FFmpeg-based core (it needs a system "
            "FFmpeg 4-9's shared libraries, or PyAV's bundled ones through the shim; "
            f"libraries not found: {missing})"
        )
    if args.device.startswith("cuda") and not probe.get("cuda_available"):
        reasons.append("CUDA is not available")
    if "pynvvideocodec" in probe:
        result["pynvvideocodec_note"] = "PyNvVideoCodec imports; this script measures torchcodec"
    usable = not reasons
    result["available"] = usable
    if not usable:
        result["status"] = "no GPU decoder available"
        result["why"] = "; ".join(reasons)
        write_json(args.json, result)
        print(f"decode: no GPU decoder available: {result['why']}")
        return 0
    try:
        import av  # noqa: F401
    except ImportError:
        result.update(status="not measured", why="PyAV is needed to write H.264/HEVC clips")
        write_json(args.json, result)
        print(f"decode: {result['why']}")
        return 0

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    work = Path(args.work) / "decode_clips"
    work.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.split("x"))
    jobs = [
        (str(work / f"{codec}_{w}x{h}.mp4"), codec, w, h, args.frames, args.threads)
        for codec in args.codecs.split(",")
    ]
    t = time.perf_counter()
    clips = []
    # spawn: this process already holds torch's threads (and maybe a CUDA context).
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=spawn) as pool:
        for job, fut in zip(jobs, [pool.submit(_make_clip, j) for j in jobs], strict=True):
            try:
                clips.append((job, fut.result()[1]))
            except Exception as exc:  # noqa: BLE001 - e.g. no HEVC encoder: the others go on
                print(f"decode: could not write {job[0]}: {_err(exc)}")
                result.setdefault("clip_errors", []).append({"clip": job[0], "error": _err(exc)})
    result["clips_written_s"] = round(time.perf_counter() - t, 1)
    per_clip = []
    for job, enc_s in clips:
        path, codec = job[0], job[1]
        row: dict[str, Any] = {"clip": Path(path).name, "codec": codec, "size": f"{w}x{h}"}
        row["encode_s"] = round(enc_s, 1)
        row["bytes"] = os.path.getsize(path)
        try:
            ref, ref_s, ref_name = _cpu_reference(path)
            row["reference"] = ref_name
            row["reference_frames_per_s"] = round(len(ref) / ref_s, 1) if ref_s else None
            row.update(_measure_torchcodec(path, args.device, ref, args.seconds))
            if args.device.startswith("cuda") and args.cpu_baseline:
                cpu = _measure_torchcodec(path, "cpu", ref, args.seconds / 2)
                row["torchcodec_cpu"] = {
                    k: cpu.get(k)
                    for k in (
                        "full_decode_frames_per_s",
                        "sampled_16_ms",
                        "open_ms",
                        "max_abs_diff",
                        "mean_abs_diff",
                        "index_mismatches",
                    )
                }
            row["exact"] = (
                row.get("max_abs_diff") is not None
                and row["max_abs_diff"] <= MAX_PIXEL_DIFF
                and not row["index_mismatches"]
                and row["frames_reported"] == len(ref)
                and not row.get("fell_back_to_cpu")
            )
            del ref
        except Exception as exc:  # noqa: BLE001 - one clip's failure is its row
            row["error"] = _err(exc)
        per_clip.append(row)
        print(
            f"decode {row['clip']}: "
            + (
                row["error"]
                if "error" in row
                else f"{row['full_decode_frames_per_s']} frames/s full decode on "
                f"{row['frame_device']} (CPU reference {row['reference_frames_per_s']}), 16 "
                f"sampled in {row['sampled_16_ms']} ms, max diff {row['max_abs_diff']}, mean "
                f"{row['mean_abs_diff']}, index mismatches {len(row['index_mismatches'])}, "
                f"{row['cpu_fallback']}"
            ),
            flush=True,
        )
        write_json(args.json, {**result, "clips": per_clip})
    result["clips"] = per_clip
    measured = [r for r in per_clip if "error" not in r]
    result["status"] = "measured" if measured else "failed"
    result["all_exact"] = bool(measured) and all(r["exact"] for r in measured)
    write_json(args.json, result)
    return 0 if measured else 1


# --------------------------------------------------------------------------------------
# summary: $OUT/gpu_check.json and $OUT/gpu_check.md
# --------------------------------------------------------------------------------------


def _parts(work: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = (work / "parts.tsv").read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        cells = line.split("\t")
        if len(cells) >= 5:
            rows.append(
                {
                    "part": cells[0],
                    "status": cells[1],
                    "rc": int(cells[2]) if cells[2].lstrip("-").isdigit() else cells[2],
                    "seconds": int(cells[3]) if cells[3].isdigit() else cells[3],
                    "timeout_s": int(cells[4]) if cells[4].lstrip("-").isdigit() else cells[4],
                    "note": cells[5] if len(cells) > 5 else "",
                }
            )
    return rows


def _junit(path: Path) -> dict[str, Any] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    tests = []
    for case in root.iter("testcase"):
        outcome = "passed"
        detail = ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                detail = (child.get("message") or "")[:200]
        tests.append(
            {
                "test": f"{case.get('classname', '')}::{case.get('name', '')}",
                "outcome": outcome,
                "seconds": float(case.get("time") or 0),
                "detail": detail,
            }
        )
    counts: dict[str, int] = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return {"counts": counts, "tests": tests}


def _f(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _md_head(s: dict[str, Any]) -> list[str]:
    env = s.get("env") or {}
    g = env.get("gpu") or {}
    v = env.get("versions") or {}
    title = "GPU (H200)" if s["mode"] == "device" else "GPU check dry run (CPU, tiny sizes)"
    return [
        f"### {title}: `benchmarks/gpu_check.sh`, {s['date']}",
        "",
        f"Machine: {g.get('gpu') or 'no GPU'} ({g.get('nvidia_smi') or 'no nvidia-smi'}), "
        f"{env.get('nproc')} CPUs; Python {(env.get('python') or {}).get('version')}, torch "
        f"{g.get('torch')} (CUDA {g.get('torch_cuda')}), transformers {v.get('transformers')}, "
        f"av {v.get('av', 'none')}, opencv {v.get('opencv-python-headless', '?')}, torchcodec "
        f"{v.get('torchcodec', 'none')}. Whole check {s['elapsed_s']} s.",
        "",
        "| part | status | s | note |",
        "|---|---|---|---|",
        *(f"| {p['part']} | {p['status']} | {p['seconds']} | {p['note']} |" for p in s["parts"]),
    ]


def _md_tests(s: dict[str, Any]) -> list[str]:
    tests = s.get("cuda_tests")
    if not tests:
        return []
    counts = ", ".join(f"{n} {k}" for k, n in sorted(tests["counts"].items()))
    out = ["", f"CUDA tests (`pytest -k 'cuda or gpu'`): {counts or 'none collected'}."]
    out += [
        f"* {t['test']}: {t['outcome']} {t['detail']}"
        for t in tests["tests"]
        if t["outcome"] != "passed"
    ]
    return out


def _md_model(s: dict[str, Any]) -> list[str]:
    model = s.get("model_only")
    if not model or not model.get("runs"):
        return []
    out = [
        "",
        f"Model only (`LoadedModel.predict` on {model.get('device')}, "
        f"{model.get('resolved_dtype')}, {model.get('gflop_per_clip')} GFLOP per clip, input "
        f"{model.get('input')}, {model.get('params_m')} M parameters, load {model.get('load_s')}"
        " s):",
        "",
        "| batch | clips/s (input on device) | ms/batch | TFLOP/s | clips/s (pinned host input)"
        " | peak allocated | peak reserved |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in model["runs"]:
        if "error" in r:
            out.append(f"| {r['batch_size']} | {r['error']} | | | | | |")
            continue
        d, hp = r["device_input"], r.get("host_pinned_input") or {}
        out.append(
            f"| {r['batch_size']} | {_f(d['clips_per_s'])} | {_f(d['median_batch_ms'])} | "
            f"{_f(r.get('tflop_per_s'), 2)} | {_f(hp.get('clips_per_s'))} | "
            f"{fmt_bytes(r.get('peak_allocated_bytes'))} | "
            f"{fmt_bytes(r.get('peak_reserved_bytes'))} |"
        )
    return out


def _md_e2e(s: dict[str, Any]) -> list[str]:
    e2e = s.get("e2e") or {}
    if not e2e.get("runs"):
        return []
    vids = e2e.get("videos") or {}
    out = [
        "",
        f"End to end (`vmae classify --device {s.get('device')}`): {vids.get('videos')} videos "
        f"({vids.get('unique_videos')} generated x {vids.get('copies')} hard links, "
        f"{fmt_bytes(vids.get('unique_bytes'))} unique, {vids.get('unique_duration_s', '?')} s "
        f"of video) made by {vids.get('generator', '?')}:",
        "",
        "| run | workers | wall s | 1st row s | videos/s | videos/s after 1st row | rows | "
        "statuses | decoders | GPU util mean / max % | peak PSS sum |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in e2e["runs"]:
        gpu = r.get("gpu_after_first_row") or r.get("gpu") or {}
        util = f"{_f(gpu.get('util_mean'))} / {_f(gpu.get('util_max'))}" if gpu else "-"
        out.append(
            f"| {r.get('label')} | {r.get('workers')} | {_f(r.get('wall_s'))} | "
            f"{_f(r.get('first_row_s'))} | {_f(r.get('videos_per_s'), 2)} | "
            f"{_f(r.get('steady_videos_per_s'), 2)} | {r.get('rows')}/{r.get('videos')} "
            f"(exit {r.get('exit_code')}) | {_kv(r.get('statuses'))} | {_kv(r.get('decoders'))}"
            f" | {util} | {fmt_bytes((r.get('memory') or {}).get('peak_pss_sum'))} |"
        )
    return out


def _md_segments(s: dict[str, Any]) -> list[str]:
    seg = s.get("segments")
    if not seg:
        return []
    v = seg.get("video") or {}
    out = [
        "",
        f"Segments (`vmae classify VIDEO --segments --device {seg.get('device') or s.get('device')}"
        f"`, default window, workers {seg.get('workers', '?')}): one {v.get('seconds', '?')} s "
        f"video, {v.get('width', '?')}x{v.get('height', '?')} at {v.get('fps', '?')} fps "
        f"({v.get('frames', '?')} frames, {fmt_bytes(v.get('bytes'))}, made in "
        f"{v.get('wall_s', '?')} s by {v.get('generator', '?')}); the start-up run is the same "
        f"command on a {(v.get('short') or {}).get('frames', '?')}-frame clip. Minutes per "
        "hour of video: wall (or CPU: vmae and the workers it reaped) seconds x 3600 / video "
        "seconds / 60; the last row is the long run less the start-up run.",
        "",
        "| run | wall s | windows | windows/s | min per hour of video | CPU min per hour | "
        "GPU util mean / max % | GPU mem max | peak RSS sum | decoder | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fig = seg.get("figures") or {}
    for r in seg.get("runs") or []:
        c = r.get("check") or {}
        gpu = r.get("gpu") or {}
        util = f"{_f(gpu.get('util_mean'))} / {_f(gpu.get('util_max'))}" if gpu else "-"
        mem = f"{_f(gpu.get('mem_max_mib'), 0)} MiB" if gpu.get("mem_max_mib") else "-"
        dur = c.get("duration_s")
        per_hour = SECONDS_PER_HOUR / dur / 60 if dur else None
        problems = list(c.get("problems") or [])
        if r.get("exit_code") != 0:
            problems.insert(0, f"exit {r.get('exit_code')}")
        ok = "FAILED: " + "; ".join(problems) if problems else "ok"
        out.append(
            f"| {r.get('label')} ({r.get('video')}, {_f(dur)} s) | {_f(r.get('wall_s'))} | "
            f"{r.get('windows')} | {_f(r.get('windows_per_s'), 2)} | "
            f"{_f(r['wall_s'] * per_hour if per_hour else None, 2)} | "
            f"{_f(r['cpu_s'] * per_hour if per_hour else None, 2)} | {util} | {mem} | "
            f"{fmt_bytes((r.get('memory') or {}).get('peak_rss_sum'))} | "
            f"{c.get('decoder') or '-'} | {ok} |"
        )
    if fig.get("minutes_per_hour_after_startup") is not None:
        out.append(
            f"| long minus start-up | {_f(fig['wall_s'] - fig['startup_s'])} | "
            f"{fig['windows'] - (fig.get('startup_windows') or 0)} | "
            f"{_f(fig.get('windows_per_s_after_startup'), 2)} | "
            f"{_f(fig.get('minutes_per_hour_after_startup'), 2)} | | | | | | |"
        )
    if seg.get("error"):
        out += ["", f"Segments: {seg['error']}"]
    return out


def _md_decode(s: dict[str, Any]) -> list[str]:
    dec = s.get("gpu_decode")
    if not dec:
        return []
    if not dec.get("clips"):
        return ["", f"GPU decoding: {dec.get('status')}: {dec.get('why', '')}"]
    tc = (dec.get("probe") or {}).get("torchcodec") or {}
    out = [
        "",
        f"GPU decoding (torchcodec {tc.get('version')}, FFmpeg {tc.get('ffmpeg_major')}, device "
        f"{dec.get('device')}): every frame decoded, and the 16 sampled frames against a CPU "
        f"full decode (limit: max abs diff <= {dec.get('limit')}):",
        "",
        "| clip | frames | frames/s (decoder) | frames/s (CPU reference) | open + 16 sampled ms "
        "| max diff | mean diff | index mismatches | CPU fallback | exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in dec["clips"]:
        if "error" in r:
            out.append(f"| {r['clip']} | {r['error']} | | | | | | | | |")
            continue
        out.append(
            f"| {r['clip']} | {r['frames_reported']}/{r['reference_frames']} | "
            f"{_f(r.get('full_decode_frames_per_s'))} | "
            f"{_f(r.get('reference_frames_per_s'))} ({r.get('reference')}) | "
            f"{_f(r['open_ms'])} + {_f(r['sampled_16_ms'])} | {r['max_abs_diff']} | "
            f"{r['mean_abs_diff']} | {len(r['index_mismatches'])} | "
            f"{'yes' if r.get('fell_back_to_cpu') else 'no'} | "
            f"{'yes' if r.get('exact') else 'no'} |"
        )
        cpu = r.get("torchcodec_cpu")
        if cpu:
            out.append(
                "| (same clip, torchcodec on the CPU) | | "
                f"{_f(cpu.get('full_decode_frames_per_s'))} | | "
                f"{_f(cpu.get('open_ms'))} + {_f(cpu.get('sampled_16_ms'))} | "
                f"{cpu.get('max_abs_diff')} | {cpu.get('mean_abs_diff')} | "
                f"{len(cpu.get('index_mismatches') or [])} | | |"
            )
    return out


def render_markdown(s: dict[str, Any]) -> str:
    """The tables of :func:`cmd_summary`; a section whose data is malformed says so and the
    others still appear."""
    out: list[str] = []
    for section in (_md_head, _md_tests, _md_model, _md_e2e, _md_segments, _md_decode):
        try:
            out += section(s)
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the rest
            out += ["", f"({section.__name__[4:]}: cannot render: {_err(exc)})"]
    out.append("")
    return "\n".join(out)


def _kv(d: dict | None) -> str:
    return " ".join(f"{k} {v}" for k, v in (d or {}).items()) or "-"


def cmd_summary(args: argparse.Namespace) -> int:
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s: dict[str, Any] = {
        "schema": 1,
        "mode": args.mode,
        "device": args.device,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "elapsed_s": args.elapsed,
        "budget_s": args.budget,
        "final": args.final,
        "parts": _parts(work),
        "env": _read_json(work / "env.json"),
        "setup": {
            "wheels": _read_json(work / "wheels.json"),
            "notes": _read_text(work / "setup_notes.txt"),
        },
        "cuda_tests": _junit(work / "cuda_tests.xml"),
        "model_only": _read_json(work / "model.json"),
        "e2e": None,
        "segments": None,
        "gpu_decode": _read_json(work / "decode.json"),
    }
    seg, seg_video = _read_json(work / "segments.json"), _read_json(work / "segments_video.json")
    if seg or seg_video:
        s["segments"] = {**(seg or {}), "video": seg_video or (seg or {}).get("video")}
    runs = [r for p in sorted(work.glob("e2e_run_*.json")) if (r := _read_json(p))]
    if runs or (work / "e2e_videos.json").exists():
        videos = _read_json(work / "e2e_videos.json") or {}
        gen = _read_text(work / "e2e_generator.txt")
        if gen:
            videos["generator"] = gen.strip()
        s["e2e"] = {"videos": videos, "runs": runs}
    failed = [p["part"] for p in s["parts"] if p["status"] not in ("ok", "skipped-dry-run")]
    s["parts_not_ok"] = failed
    write_json(out / "gpu_check.json", s)
    md = render_markdown(s)
    (out / "gpu_check.md").write_text(md, encoding="utf-8")
    if not args.quiet:
        print(md)
    return 0


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("env", help="versions, GPU, FFmpeg and NVDEC libraries")
    p.add_argument("--json", type=Path, required=True)
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("wheels", help="which wheels this Python can install")
    p.add_argument("wheels", nargs="*")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--ok-list", type=Path, help="write the installable wheels here, one a line")
    p.set_defaults(func=cmd_wheels)

    p = sub.add_parser("model", help="model-only clips/s and peak GPU memory")
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--backend", default="torch", help="where load_model takes one")
    p.add_argument("--batch-sizes", default="8,32,64")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per batch size")
    p.add_argument("--min-iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", type=Path, required=True)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("gen-cv2", help="AVI videos with OpenCV alone (no PyAV)")
    p.add_argument("out_dir")
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--max-side", type=int, default=1280)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=cmd_gen_cv2)

    p = sub.add_parser("link", help="hard-linked replicas of a folder of videos")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=cmd_link)

    p = sub.add_parser("e2e", help="vmae classify as a whole process")
    p.add_argument("videos")
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--label", required=True)
    p.add_argument("--timeout", type=float, help="kill vmae after this many seconds")
    p.add_argument("--json", type=Path, required=True)
    p.set_defaults(func=cmd_e2e)

    p = sub.add_parser("gen-long", help="one long H.264 MP4 (PyAV), stretches in parallel")
    p.add_argument("out", help="the .mp4 to write")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--gop", type=int, default=0, help="keyframe interval (default 2 s)")
    p.add_argument("--bframes", type=int, default=2)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--short", type=Path, help="also write the first frames here")
    p.add_argument("--short-frames", type=int, default=64)
    p.add_argument("--json", type=Path)
    p.set_defaults(func=cmd_gen_long)

    p = sub.add_parser("segments", help="vmae classify --segments on one long video")
    p.add_argument("video")
    p.add_argument("--short", help="a short clip run first: vmae's start-up time")
    p.add_argument("--video-json", type=Path, help="gen-long's JSON (frames, seconds)")
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--workers", type=int)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for both runs")
    p.add_argument("--json", type=Path, required=True)
    p.set_defaults(func=cmd_segments)

    p = sub.add_parser("decode", help="GPU decoder frames/s and frame exactness")
    p.add_argument("--device", default="cuda")
    p.add_argument("--work", required=True, help="folder for clips and the FFmpeg shim")
    p.add_argument("--codecs", default="h264,hevc")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--threads", type=int, default=4, help="encoder threads per clip")
    p.add_argument("--seconds", type=float, default=1.0, help="repeat full decodes this long")
    p.add_argument("--no-cpu-baseline", dest="cpu_baseline", action="store_false")
    p.add_argument("--json", type=Path, required=True)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("summary", help="merge the parts into gpu_check.json / gpu_check.md")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="device")
    p.add_argument("--device", default="cuda")
    p.add_argument("--elapsed", type=int, default=0)
    p.add_argument("--budget", type=int, default=0)
    p.add_argument("--final", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_summary)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
