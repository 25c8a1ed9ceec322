"""Write a random-weight VideoMAE video classifier with the geometry of the default model.

The default model (``MCG-NJU/videomae-base-finetuned-kinetics``) cannot be downloaded here,
so benchmarks use a model with exactly its shape: ViT-B (12 layers, hidden 768, 12 heads,
MLP 3072), 16 frames of 224x224 in 2x16x16 tubelets (1568 tokens), mean pooling, 400
labels, and a preprocessor config with its numbers (shortest edge 224, centre crop 224,
ImageNet mean/std). The compute per clip is the real one; the predictions are meaningless.

``--tiny`` keeps that input contract (16 x 224 x 224, 400 labels, the same preprocessing)
but shrinks the transformer to almost nothing, so that vmae's decoding and preprocessing cost
can be measured without the model (and the scripts tried out in seconds).

Usage::

    python benchmarks/make_model.py DIR            # ViT-B, ~345 MB of float32 weights
    python benchmarks/make_model.py DIR --tiny     # same inputs, tiny transformer
    python benchmarks/make_model.py DIR --legacy-preprocessor   # 2022 config layout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

NUM_LABELS = 400
NUM_FRAMES = 16
IMAGE_SIZE = 224
IMAGE_MEAN = [0.485, 0.456, 0.406]
IMAGE_STD = [0.229, 0.224, 0.225]


def preprocessor_config(legacy: bool = False) -> dict:
    """The preprocessor config of the Kinetics model, in today's layout or the 2022 one."""
    if legacy:
        return {
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "VideoMAEFeatureExtractor",
            "image_mean": IMAGE_MEAN,
            "image_std": IMAGE_STD,
            "resample": 2,
            "size": IMAGE_SIZE,
        }
    return {
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_center_crop": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": IMAGE_MEAN,
        "image_processor_type": "VideoMAEImageProcessor",
        "image_std": IMAGE_STD,
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": IMAGE_SIZE},
    }


def make_model(
    out_dir: str | Path, *, tiny: bool = False, legacy_preprocessor: bool = False, seed: int = 0
) -> Path:
    """Save the model (``save_pretrained``) and its ``preprocessor_config.json`` to ``out_dir``."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    labels = {i: f"class_{i:03d}" for i in range(NUM_LABELS)}
    geometry = {
        "image_size": IMAGE_SIZE,
        "patch_size": 16,
        "num_frames": NUM_FRAMES,
        "tubelet_size": 2,
        "use_mean_pooling": True,
        "id2label": labels,
        "label2id": {v: k for k, v in labels.items()},
    }
    if tiny:
        size = {
            "hidden_size": 48,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 96,
        }
    else:
        # VideoMAEConfig's defaults are ViT-B; spelled out so the file says what it builds.
        size = {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    config = VideoMAEConfig(**geometry, **size)
    model = VideoMAEForVideoClassification(config).eval()
    model.save_pretrained(out)
    pre = preprocessor_config(legacy_preprocessor)
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument(
        "--tiny", action="store_true", help="same inputs (16x224x224, 400 labels), tiny model"
    )
    parser.add_argument(
        "--legacy-preprocessor",
        action="store_true",
        help="write the 2022 preprocessor layout (int size, no crop_size) of the Hub model",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = make_model(
        args.out_dir, tiny=args.tiny, legacy_preprocessor=args.legacy_preprocessor, seed=args.seed
    )
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    kind = "tiny" if args.tiny else "ViT-B"
    print(
        f"{out}: {kind} VideoMAE, {NUM_FRAMES}x{IMAGE_SIZE}x{IMAGE_SIZE}, {NUM_LABELS} labels, "
        f"{total / 2**20:.1f} MiB in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
