"""Build a tiny random VideoMAE classifier saved with save_pretrained, for tests.

The hub is out of reach here, so tests load this instead of the real model; everything else
(AutoModel loading, the preprocessor config, id2label) goes through the real code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Tiny but structurally real: 8 frames of 64x64 in tubelets of 2x16x16, 10 labels.
TINY_FRAMES = 8
TINY_IMAGE_PX = 64
TINY_LABELS = [
    "arm wrestling",
    'label, with "quotes"',
    "çà et là",
    "=SUM(A1)",
    "dancing",
    "juggling",
    "running",
    "swimming",
    "typing",
    "waving",
]


def make_tiny_model(
    out_dir: str | Path,
    *,
    legacy_preprocessor: bool = False,
    seed: int = 0,
    multi_label: bool = False,
) -> Path:
    """Save a random-weight VideoMAE classifier (and its preprocessor config) to ``out_dir``;
    with ``multi_label``, a checkpoint whose ``problem_type`` is multi-label (sigmoids)."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = VideoMAEConfig(
        image_size=TINY_IMAGE_PX,
        patch_size=16,
        num_frames=TINY_FRAMES,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_LABELS)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    VideoMAEForVideoClassification(config).eval().save_pretrained(out)
    if legacy_preprocessor:
        # The layout of the 2022 checkpoints: int size, no crop_size, a feature extractor.
        pre = {
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "VideoMAEFeatureExtractor",
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "resample": 2,
            "size": TINY_IMAGE_PX,
        }
    else:
        pre = {
            "crop_size": {"height": TINY_IMAGE_PX, "width": TINY_IMAGE_PX},
            "do_center_crop": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "VideoMAEImageProcessor",
            "image_std": [0.229, 0.224, 0.225],
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": TINY_IMAGE_PX},
        }
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return out


if __name__ == "__main__":
    import sys

    from transformers.utils import logging as hf_logging

    # Only the folder on stdout: no "Writing model shards" bar (save_pretrained) or warnings.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(make_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-videomae"))
