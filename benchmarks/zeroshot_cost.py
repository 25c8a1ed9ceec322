"""What zero-shot labels cost (issue 27): X-CLIP's speed next to VideoMAE's.

In one run, each model in its own process, one after the other:

* **model**: clips/s of ``LoadedModel.predict`` on random uint8 ``(1, T, 3, 224, 224)``
  clips after warm-up, for the runtime vmae picks (``backend="auto"``, ``dtype="auto"``:
  VideoMAE on OpenVINO where it is installed; X-CLIP on torch, which runs it whatever the
  backend) and for torch with the same dtype, so that the models compare on one runtime too;
  X-CLIP with 10 text labels (their text side is encoded once, at load, and timed apart);
* **vmae** (with ``--videos DIR``): ``vmae classify DIR`` as a subprocess with each model
  (X-CLIP with ``--labels``), start-up included: wall seconds and videos/s.

Models: VideoMAE ViT-B as ``make_model.py`` writes it (16 frames of 224, 1,568 tokens a
clip), X-CLIP base with 32 px patches and 8 frames (``microsoft/xclip-base-patch32``'s
shape: 8 x 50 tokens) and with 16 px patches and 32 frames (``...-patch16-zero-shot``'s:
32 x 197 tokens), random weights, a small tokenizer (the vocabulary's size does not change
the cost of a clip). Written under ``--work`` once and reused.

Usage::

    python benchmarks/zeroshot_cost.py --work DIR [--videos DIR] [--seconds 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import (
    machine_info,
    machine_summary,
    print_table,
    run_measured,
    vmae_command,
    write_json,
)

HERE = Path(__file__).resolve().parent

#: The labels of the X-CLIP runs (a curator's own categories).
LABELS = (
    "cooking",
    "skateboarding",
    "a dog playing",
    "people dancing",
    "a car driving on a road",
    "playing guitar",
    "swimming",
    "an empty corridor",
    "unboxing a parcel",
    "a football goal",
)
#: The models, by name: their folder under ``--work`` and (patch size, frames) of an X-CLIP,
#: or None for VideoMAE ViT-B.
MODELS = {
    "videomae-vit-b (16 x 224, tubelets 2x16x16)": ("videomae-vit-b", None),
    "xclip-base-patch32 (8 x 224)": ("xclip-base-patch32", (32, 8)),
    "xclip-base-patch16, 32 frames (32 x 224)": ("xclip-base-patch16-32f", (16, 32)),
}


def make_models(work: Path) -> dict[str, Path]:
    """Write the three models under ``work`` (once); their folders by name."""
    folders = {}
    for name, (subfolder, shape) in MODELS.items():
        folder = work / subfolder
        folders[name] = folder
        if (folder / "config.json").exists():
            continue
        if shape is None:
            subprocess.run([sys.executable, str(HERE / "make_model.py"), str(folder)], check=True)
        else:
            make_xclip(folder, *shape)
    return folders


def make_xclip(folder: Path, patch: int, frames: int) -> None:
    """A random X-CLIP base (ViT-B vision and text encoders, transformers' defaults) with
    ``patch`` px patches and ``frames`` frames, a small CLIP tokenizer and the processor
    config of the Hub's X-CLIP checkpoints."""
    import torch
    from tiny_model import write_tiny_clip_tokenizer, xclip_processor_config
    from transformers import XCLIPConfig, XCLIPModel

    torch.manual_seed(0)
    write_tiny_clip_tokenizer(folder)
    vocab = len(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
    config = XCLIPConfig(
        text_config={"vocab_size": vocab},
        vision_config={"patch_size": patch, "num_frames": frames},
    )
    XCLIPModel(config).eval().save_pretrained(folder)
    processor = xclip_processor_config(224)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))


def model_rate(folder: str, backend: str, seconds: float) -> dict[str, object]:
    """In this process: load the model as vmae does, then clips/s of one-clip calls."""
    import torch

    from vmae_cli.labelsource import TextLabel
    from vmae_cli.model import load_model, read_model_spec

    spec = read_model_spec(folder)
    labels = tuple(TextLabel.of(label) for label in LABELS) if spec.zero_shot else ()
    t0 = time.perf_counter()
    lm = load_model(folder, device="cpu", backend=backend, text_labels=labels)
    load_s = time.perf_counter() - t0
    h, w = lm.preprocess.crop_hw
    clip = torch.randint(0, 256, (1, lm.frames_per_clip, 3, h, w), dtype=torch.uint8)
    for _ in range(2):
        lm.predict(clip)
    calls, spent = 0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        lm.predict(clip)
        spent += time.perf_counter() - t0
        calls += 1
    return {
        "runtime": f"{lm.backend} {lm.precision}",
        "frames": lm.frames_per_clip,
        "clips_per_s": calls / spent,
        "load_s": load_s,
    }


def vmae_run(folder: Path, videos: str, zero_shot: bool, tmp: Path) -> dict[str, object]:
    """One ``vmae classify`` of ``videos`` with the model in ``folder``."""
    out = tmp / f"rows-{folder.name}.csv"
    cmd = [*vmae_command(), "classify", videos, "--model", str(folder)]
    cmd += ["-o", str(out), "--overwrite", "-q"]
    if zero_shot:
        cmd += ["--labels", ",".join(LABELS)]
    measured = run_measured(cmd)
    if measured.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} exited {measured.returncode}: {measured.stderr[-2000:]}")
    rows = sum(1 for _ in out.open(encoding="utf-8-sig")) - 1
    return {"wall_s": measured.wall_s, "videos": rows, "videos_per_s": rows / measured.wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="where the models are kept")
    parser.add_argument("--videos", help="a folder to classify end to end with each model")
    parser.add_argument("--seconds", type=float, default=20.0, help="per model-only setting")
    parser.add_argument("--runs", type=int, default=1, help="vmae runs per model")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--one", nargs=2, metavar=("FOLDER", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process of one model-only measurement
        print(json.dumps(model_rate(args.one[0], args.one[1], args.seconds)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    folders = make_models(args.work)
    info = machine_info()
    print(machine_summary(info), file=sys.stderr)
    results: dict[str, object] = {"machine": info, "labels": list(LABELS), "model": {}}
    rows = []
    for name, folder in folders.items():
        for backend in ("auto", "torch"):
            cmd = [sys.executable, __file__, "--work", str(args.work), "--one", str(folder)]
            cmd += [backend, "--seconds", str(args.seconds)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rate = json.loads(done.stdout.strip().splitlines()[-1])
            results["model"][f"{name} / {backend}"] = rate  # type: ignore[index]
            rows.append(
                [
                    name,
                    backend,
                    str(rate["runtime"]),
                    f"{rate['clips_per_s']:.3f}",
                    f"{rate['load_s']:.1f}",
                ]
            )
    print_table(rows, ["model", "backend", "runtime", "clips/s", "load s"])
    if args.videos:
        import tempfile

        runs: dict[str, list[dict[str, object]]] = {name: [] for name in folders}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.runs):
                for name, folder in folders.items():
                    zero_shot = MODELS[name][1] is not None
                    runs[name].append(vmae_run(folder, args.videos, zero_shot, Path(tmp)))
        results["vmae"] = runs
        table = []
        for name, measured in runs.items():
            walls = [float(m["wall_s"]) for m in measured]  # type: ignore[arg-type]
            videos = int(measured[0]["videos"])  # type: ignore[arg-type]
            wall = statistics.median(walls)
            table.append([name, str(videos), f"{wall:.1f}", f"{videos / wall:.3f}"])
        print_table(table, ["model", "videos", "wall s (median)", "videos/s"])
    if args.json:
        write_json(args.json, results)
    print(f"done: {os.path.basename(__file__)}", file=sys.stderr)


if __name__ == "__main__":
    main()
