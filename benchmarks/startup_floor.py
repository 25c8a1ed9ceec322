"""How fast a run of one video can be on this machine (issue 26, item 1): the parts that cannot
be overlapped, each measured alone, and the floors they add up to.

``startup.py`` times vmae's run of one video phase by phase. This script measures, each the
median of ``--runs`` fresh processes, what any run of that video must do:

``interpreter``  ``python -c pass``
``torch``        ``import torch`` (wall and CPU): the decoding workers resize with torch and
                 the pool that forks them is torch's ``DataLoader``, so torch is imported
                 before the first frame is decoded
``decode``       vmae's decoding of the video's 16 frames in one thread, as a worker does it
                 (``ViewMaker``: decode, RGB, resize, crop), torch already imported
``load``         ``load_model`` with a warm OpenVINO cache (sha256 of the entry, read,
                 compile), torch already imported
``call 1/2``     the first model call on the decoded clip, then a second one (the first pays
                 for the kernels OpenVINO builds on first use)
``resize``       the frames' resize with torch (what vmae does) and with Pillow (what
                 Hugging Face's processor does): time per clip and how many pixels differ
``no torch``     a run stripped to the bone, no torch anywhere: a forked child decodes the
                 16 frames with OpenCV and resizes them with Pillow while the parent reads,
                 checks and compiles the OpenVINO entry, then one model call (wall from the
                 interpreter's start)

With ``--startup-json`` (what ``startup.py --json`` wrote for the same video and model) the
floors are printed next to vmae's measured run, using its measured command-line part (up to
the walk and the output read back) and its exit:

* *as built*: that part + ``torch`` + ``decode`` + ``call 1`` + exit, the chain the run
  cannot shorten while the workers are forked after torch is imported;
* *perfect packing*: that part + (``torch`` + ``decode`` + ``load``, CPU) / cores + ``call 1``
  + exit: any design that resizes with torch, its work spread over every core with no wait;
* *no torch*: the ``no torch`` run plus what vmae's command-line part and exit take beyond
  the interpreter's start and the exit that run has already.

Usage::

    python benchmarks/startup.py --model M --video V --cache C --parts one-video --json s.json
    python benchmarks/startup_floor.py --model M --video V --cache C --startup-json s.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, machine_info, machine_summary, median, write_json

#: Run in a fresh interpreter: ``PROBE PART MODEL VIDEO``; prints one JSON object.
PROBE = r"""
import json, sys, time
W0, C0 = time.perf_counter(), time.process_time()
part, model, video = sys.argv[1:4]
out = {}
def since(w, c):
    return [time.perf_counter() - w, time.process_time() - c]
if part == "interpreter":
    pass
elif part == "torch":
    import torch
    out["torch"] = since(W0, C0)
else:
    import torch
    torch.set_num_threads(1)  # as in a decoding worker
    from vmae_cli.model import read_model_spec
    from vmae_cli.protocol import Protocol
    from vmae_cli.views import ViewMaker
    spec = read_model_spec(model)
    maker = ViewMaker(spec.frames_per_clip, spec.preprocess, Protocol())
    w, c = time.perf_counter(), time.process_time()
    outcome = maker(video)
    out["decode"] = since(w, c)
    views = outcome.views.frames
    if part == "model":
        from vmae_cli.model import load_model
        from vmae_cli.pipeline import default_workers
        torch.set_num_threads(default_workers())  # the main process uses every core
        w, c = time.perf_counter(), time.process_time()
        lm = load_model(model)
        out["load"] = since(w, c)
        for name in ("call 1", "call 2"):
            w, c = time.perf_counter(), time.process_time()
            lm.infer(views)
            out[name] = since(w, c)
        out["runtime"] = f"{lm.backend} {lm.precision}"
        out["entry"] = str(getattr(lm.model, "entry", "") or "")
    elif part == "resize":
        import numpy as np
        from PIL import Image
        from vmae_cli.decoding import decode_video
        from vmae_cli.preprocessing import resize_and_crop, resize_output_size
        decoded, failure, _ = decode_video(video, spec.frames_per_clip, lambda f: f)
        rgb = decoded.frames
        h, w_ = rgb[0].shape[:2]
        size = resize_output_size(h, w_, spec.preprocess)
        t = time.perf_counter()
        ours = [resize_and_crop(f, spec.preprocess)[0] for f in rgb]
        out["torch_s"] = time.perf_counter() - t
        t = time.perf_counter()
        wh = (size[1], size[0])
        pil = [np.asarray(Image.fromarray(f).resize(wh, Image.BILINEAR)) for f in rgb]
        out["pillow_s"] = time.perf_counter() - t
        full = [torch.nn.functional.interpolate(
            torch.from_numpy(f).permute(2, 0, 1)[None].contiguous(
                memory_format=torch.channels_last), size=size, mode="bilinear",
            antialias=True, align_corners=False)[0].permute(1, 2, 0).numpy() for f in rgb]
        diff = np.abs(np.stack(full).astype(int) - np.stack(pil))
        out["max_diff"] = int(diff.max())
        out["share_differing"] = float((diff > 0).mean())
        out["size"] = list(size)
print(json.dumps(out))
"""

#: ``NO_TORCH VIDEO ENTRY THREADS``: the bare run; prints its marks as JSON (s from start).
NO_TORCH = r"""
import hashlib, json, os, pickle, sys, time
T0 = time.perf_counter()
video, entry, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    import cv2
    import numpy as np
    from PIL import Image
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want = set(np.linspace(0, n - 1, 16).round().astype(int).tolist())
    frames = []
    for i in range(n):
        if not cap.grab():
            break
        if i in want:
            rgb = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
            h, w_ = rgb.shape[:2]
            size = (int(224 * w_ / h), 224) if w_ >= h else (224, int(224 * h / w_))
            im = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
            top, left = (im.shape[0] - 224) // 2, (im.shape[1] - 224) // 2
            frames.append(im[top:top + 224, left:left + 224])
    with os.fdopen(w, "wb") as f:
        f.write(pickle.dumps(np.stack(frames), protocol=5))
    os._exit(0)
os.close(w)
import numpy as np
import openvino as ov
marks = {}
digest = hashlib.sha256()
with open(os.path.join(entry, "model.bin"), "rb") as f:
    while block := f.read(1 << 24):
        digest.update(block)
core = ov.Core()
compiled = core.compile_model(
    core.read_model(os.path.join(entry, "model.xml")), "CPU",
    {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16",
     "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False})
marks["loaded"] = time.perf_counter() - T0
with os.fdopen(r, "rb") as f:
    clip = pickle.loads(f.read())
marks["decoded"] = time.perf_counter() - T0
x = ((clip.astype(np.float32) / 255 - 0.5) / 0.5).transpose(0, 3, 1, 2)[None]
compiled(x)
marks["called"] = time.perf_counter() - T0
print(json.dumps(marks))
"""


def run_script(name: str, code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``code`` in a fresh interpreter with ``args``: the JSON of its last line of output,
    plus its wall time as the parent saw it."""
    import time

    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return {"wall": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def probe(part: str, opts: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One fresh process of ``PROBE`` for ``part``."""
    return run_script(f"{part} probe", PROBE, [part, str(opts.model), str(opts.video)], env)


def no_torch(opts: argparse.Namespace, entry: str, env: dict[str, str]) -> dict[str, Any]:
    """One bare run (``NO_TORCH``) on the OpenVINO ``entry`` vmae's model load used."""
    threads = str(os.cpu_count() or 1)
    return run_script("no-torch run", NO_TORCH, [str(opts.video), entry, threads], env)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median (of ``[wall, cpu]`` pairs element by element)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, list) and value and isinstance(value[0], float):
            out[key] = [median([r[key][i] for r in runs]) for i in range(len(value))]
        elif isinstance(value, (int, float)):
            out[key] = median([r[key] for r in runs])
        else:
            out[key] = value
    return out


def vmae_parts(startup_json: Path) -> dict[str, float]:
    """From ``startup.py --json``: the one-video run's wall, the end of its command-line part
    (the output read back) and its exit."""
    data = json.loads(startup_json.read_text())
    run = data["results"]["new"]["one-video"]
    phases = run["phases"]
    return {
        "wall": run["wall_s"],
        "cli_end": phases["read-back"]["end_s"],
        "exit": phases["exit"]["duration_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder (ViT-B)")
    parser.add_argument("--video", type=Path, required=True, help="one video (10 s 720p)")
    parser.add_argument("--cache", type=Path, required=True, help="VMAE_CACHE_DIR, warm")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--startup-json", type=Path, help="startup.py's JSON for this video")
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args(argv)
    env = dict(os.environ)
    # Byte code cached, as an installed package has it (startup.py does the same).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["VMAE_CACHE_DIR"] = str(opts.cache.resolve())
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="vmae-floor-pyc-")
    info = machine_info()
    cores = info.get("usable_cpus") or os.cpu_count() or 1
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    probe("model", opts, env)  # untimed: byte code compiled, files in the page cache
    parts: dict[str, Any] = {}
    for part in ("interpreter", "torch", "model", "resize"):
        parts[part] = medians([probe(part, opts, env) for _ in range(opts.runs)])
        print(f"{part}: {json.dumps(parts[part])}", file=sys.stderr)
    entry = parts["model"].get("entry")
    if entry:
        parts["no torch"] = medians([no_torch(opts, entry, env) for _ in range(opts.runs)])
        print(f"no torch: {json.dumps(parts['no torch'])}", file=sys.stderr)
    m = parts["model"]
    torch_wall, torch_cpu = parts["torch"]["torch"]
    rows = [
        ("interpreter (python -c pass)", parts["interpreter"]["wall"], None),
        ("import torch", torch_wall, torch_cpu),
        ("decode 16 frames, one thread", *m["decode"]),
        ("load_model, warm cache", *m["load"]),
        ("first model call", *m["call 1"]),
        ("second model call", *m["call 2"]),
    ]
    print(f"\nruntime: {m.get('runtime')}; cores: {cores}")
    print(f"{'part':34s} {'wall s':>7s} {'CPU s':>7s}")
    for name, wall, cpu in rows:
        print(f"{name:34s} {wall:7.3f} {'' if cpu is None else f'{cpu:7.3f}':>7s}")
    r = parts["resize"]
    print(
        f"resize of 16 frames to {r['size']}: torch {r['torch_s']:.3f} s, Pillow "
        f"{r['pillow_s']:.3f} s; Pillow differs from torch by up to {r['max_diff']} grey "
        f"level(s) on {r['share_differing']:.2%} of the values"
    )
    floors: dict[str, float] = {}
    if "no torch" in parts:
        nt = parts["no torch"]
        print(
            f"no torch at all: loaded {nt['loaded']:.3f} s, decoded {nt['decoded']:.3f} s, "
            f"called {nt['called']:.3f} s, process {nt['wall']:.3f} s"
        )
    if opts.startup_json:
        v = vmae_parts(opts.startup_json)
        cli, exit_s = v["cli_end"], v["exit"]
        floors["as built"] = cli + torch_wall + m["decode"][0] + m["call 1"][0] + exit_s
        floors["perfect packing"] = (
            cli + (torch_cpu + m["decode"][1] + m["load"][1]) / cores + m["call 1"][0] + exit_s
        )
        if "no torch" in parts:
            # The bare run's wall already holds an interpreter's start and an exit: only what
            # vmae's command-line part and exit take beyond those is added.
            nt = parts["no torch"]
            interpreter, bare_exit = parts["interpreter"]["wall"], nt["wall"] - nt["called"]
            floors["no torch"] = nt["wall"] + cli - interpreter + max(0.0, exit_s - bare_exit)
        print(f"\nvmae's run of one video (startup.py): {v['wall']:.3f} s; its command-line")
        print(f"part ends at {cli:.3f} s, its exit takes {exit_s:.3f} s")
        for name, value in floors.items():
            print(f"floor, {name:16s} {value:6.3f} s")
    if opts.json:
        write_json(opts.json, {"machine": info, "parts": parts, "floors": floors})
        print(f"wrote {opts.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
