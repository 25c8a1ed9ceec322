"""Do the backends give the same probabilities? OpenVINO (f32, bf16) and torch bf16 against
torch float32, on the same videos, through vmae's own pipeline.

Every video is decoded once per setting by ``Classifier.classify_files`` (the same frames each
time: decoding is deterministic), with ``top_k`` = all labels, so each row carries the whole
probability vector. Reported per setting: the largest absolute difference of any label's
probability from torch float32 on each video, the largest over all videos, and how many
top-1 labels agree.

A random-weight head gives every label about the same probability (1/400 for ViT-B), and then
any two runtimes "agree" closely whatever their error; ``--sharpen K`` multiplies the
classifier head by K so that the predictions are as confident as a trained model's (the
report gives the mean top-1 probability; aim for 0.3-0.9). The sharpened copy is saved to a
temporary folder, so its conversions are cached under a key of their own.

    python benchmarks/backend_agreement.py VIDEOS_DIR --model MODEL_DIR --sharpen 30 [--json F]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import list_videos, machine_info, machine_summary, print_table, write_json

#: (backend, dtype) settings compared with the reference, torch float32.
SETTINGS = (("openvino", "float32"), ("openvino", "bfloat16"), ("torch", "bfloat16"))
REFERENCE = ("torch", "float32")
#: The bounds of issue 12 for OpenVINO against torch float32.
BOUNDS = {"float32": 1e-4, "bfloat16": 0.01}


def sharpened_copy(model_dir: str, factor: float, out: Path) -> Path:
    """``model_dir`` with its classifier head (weight and bias) multiplied by ``factor``."""
    import torch
    from transformers import AutoModelForVideoClassification

    model = AutoModelForVideoClassification.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        model.classifier.weight.mul_(factor)
        model.classifier.bias.mul_(factor)
    model.save_pretrained(out)
    shutil.copy(Path(model_dir) / "preprocessor_config.json", out)
    return out


def probabilities(
    model: str,
    paths: list[str],
    backend: str,
    dtype: str,
    workers: int,
    calibration: str | None = None,
) -> tuple[dict[str, dict[str, float]], str, float]:
    """Per path, every label's probability; the runtime used; seconds taken. ``calibration``:
    the folder an int8 quantization is calibrated on (``dtype="int8"`` only)."""
    from vmae_cli.pipeline import Classifier, ClassifyOptions

    start = time.perf_counter()
    clf = Classifier(model, device="cpu", dtype=dtype, backend=backend, calibration=calibration)
    labels = clf.spec.num_labels or 1000
    out: dict[str, dict[str, float]] = {}
    for p in clf.classify_files(paths, ClassifyOptions(top_k=labels, workers=workers)):
        if p.status == "ok":
            out[p.path] = {ls.label: ls.score for ls in p.top_k}
    return out, clf.runtime or "?", time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", help="folder of videos")
    parser.add_argument("--model", required=True, help="model folder (save_pretrained layout)")
    parser.add_argument("--sharpen", type=float, default=1.0, help="multiply the head by K")
    parser.add_argument("--workers", type=int, default=2, help="decoding workers")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    paths = list_videos(args.videos)
    info = machine_info()
    print(f"machine: {machine_summary(info)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="vmae-agree-") as tmp:
        model = args.model
        if args.sharpen != 1.0:
            model = str(sharpened_copy(args.model, args.sharpen, Path(tmp) / "model"))
        ref, ref_runtime, ref_s = probabilities(model, paths, *REFERENCE, args.workers)
        top1 = [max(v.values()) for v in ref.values()]
        mean_top1 = sum(top1) / len(top1) if top1 else None
        print(f"reference {ref_runtime}: {len(ref)} ok rows in {ref_s:.1f} s", file=sys.stderr)
        results: list[dict[str, Any]] = []
        for backend, dtype in SETTINGS:
            got, runtime, secs = probabilities(model, paths, backend, dtype, args.workers)
            per_video = {}
            agree = 0
            for path, want in ref.items():
                have = got.get(path)
                if have is None:
                    per_video[path] = None
                    continue
                per_video[path] = max(abs(have.get(k, 0.0) - v) for k, v in want.items())
                agree += max(have, key=have.get) == max(want, key=want.get)
            diffs = [d for d in per_video.values() if d is not None]
            results.append(
                {
                    "setting": f"{backend} {dtype}",
                    "runtime": runtime,
                    "seconds": round(secs, 1),
                    "videos": len(diffs),
                    "max_abs_diff": max(diffs) if diffs else None,
                    "mean_of_video_max": sum(diffs) / len(diffs) if diffs else None,
                    "top1_agree": agree,
                    "bound": BOUNDS.get(dtype) if backend == "openvino" else None,
                    "per_video": per_video,
                }
            )
            print(f"  {runtime}: max diff {max(diffs):.2e} in {secs:.1f} s", file=sys.stderr)
    rows = [
        [
            r["setting"],
            r["runtime"],
            f"{r['max_abs_diff']:.2e}",
            f"{r['mean_of_video_max']:.2e}",
            f"{r['top1_agree']}/{r['videos']}",
            "-" if r["bound"] is None else f"{r['bound']:g}",
            "-" if r["bound"] is None else ("yes" if r["max_abs_diff"] <= r["bound"] else "NO"),
        ]
        for r in results
    ]
    print()
    print(f"machine: {machine_summary(info)}")
    print(
        f"videos: {len(paths)} in {args.videos}; reference torch float32 ({len(ref)} ok); "
        f"head x{args.sharpen:g}, mean top-1 probability {mean_top1:.3f}"
    )
    print_table(
        rows,
        ["setting", "ran as", "max |dp|", "mean per-video max", "top-1 same", "bound", "within"],
    )
    if args.json:
        write_json(
            args.json,
            {
                "machine": info,
                "videos": paths,
                "sharpen": args.sharpen,
                "mean_top1": mean_top1,
                "results": results,
            },
        )
    return 0 if all(r["bound"] is None or r["max_abs_diff"] <= r["bound"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
