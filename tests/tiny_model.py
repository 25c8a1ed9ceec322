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


def processor_config(**fields: object) -> dict[str, object]:
    """A processor config for TINY_IMAGE_PX frames in today's layout (short side and square
    crop of TINY_IMAGE_PX, bilinear, /255, every step on), with ``fields`` set as given."""
    return {
        "crop_size": {"height": TINY_IMAGE_PX, "width": TINY_IMAGE_PX},
        "do_center_crop": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": TINY_IMAGE_PX},
        **fields,
    }


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
        pre = legacy_processor_config(TINY_IMAGE_PX)
    else:
        pre = processor_config(
            image_processor_type="VideoMAEImageProcessor",
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return out


if __name__ == "__main__":
    import sys

    from transformers.utils import logging as hf_logging

    # Only the folder on stdout: no "Writing model shards" bar (save_pretrained) or warnings.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(make_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-videomae"))


#: Tiny random checkpoints of the other video classifiers transformers knows, with processor
#: configs laid out as their Hub checkpoints have them (scaled down to small frames).
FAMILY_FRAMES = {"timesformer": 8, "vivit": 32, "vjepa2": 8}


def make_tiny_family(out_dir: str | Path, model_type: str, *, seed: int = 0) -> Path:
    """Save a random-weight TimeSformer, ViViT or V-JEPA 2 video classifier with its processor
    config (``preprocessor_config.json``, or ``video_preprocessor_config.json`` for V-JEPA 2)
    to ``out_dir``: 10 labels, frames per clip from :data:`FAMILY_FRAMES`."""
    import torch
    import transformers as tf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    labels = {
        "id2label": dict(enumerate(TINY_LABELS)),
        "label2id": {label: i for i, label in enumerate(TINY_LABELS)},
    }
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    frames = FAMILY_FRAMES[model_type]
    if model_type == "timesformer":
        config = tf.TimesformerConfig(
            image_size=TINY_IMAGE_PX,
            patch_size=16,
            num_frames=frames,
            intermediate_size=64,
            **small,
            **labels,
        )
        model = tf.TimesformerForVideoClassification(config)
        # As facebook/timesformer-base-finetuned-k400 has it: VideoMAE's image processor,
        # with the mean/std of its current revision.
        name, pre = (
            "preprocessor_config.json",
            processor_config(
                image_processor_type="VideoMAEImageProcessor",
                image_mean=[0.45, 0.45, 0.45],
                image_std=[0.225, 0.225, 0.225],
            ),
        )
    elif model_type == "vivit":
        config = tf.VivitConfig(
            image_size=TINY_IMAGE_PX,
            num_frames=frames,
            tubelet_size=[2, 16, 16],
            intermediate_size=64,
            **small,
            **labels,
        )
        model = tf.VivitForVideoClassification(config)
        # As google/vivit-b-16x2-kinetics400: short side 256 for a 224 crop, [-1, 1] by offset.
        name, pre = (
            "preprocessor_config.json",
            processor_config(
                image_processor_type="VivitImageProcessor",
                image_mean=[0.5, 0.5, 0.5],
                image_std=[0.5, 0.5, 0.5],
                offset=True,
                rescale_factor=1 / 127.5,
                size={"shortest_edge": TINY_IMAGE_PX * 256 // 224},
            ),
        )
    elif model_type == "vjepa2":
        config = tf.VJEPA2Config(
            crop_size=TINY_IMAGE_PX,
            frames_per_clip=frames,
            patch_size=16,
            tubelet_size=2,
            mlp_ratio=2.0,
            pred_hidden_size=32,
            pred_num_hidden_layers=1,
            pred_num_attention_heads=2,
            num_pooler_layers=1,
            **small,
            **labels,
        )
        model = tf.VJEPA2ForVideoClassification(config)
        # As facebook/vjepa2-vitl-fpc16-256-ssv2: a video processor config only.
        name, pre = (
            "video_preprocessor_config.json",
            processor_config(
                video_processor_type="VJEPA2VideoProcessor",
                crop_size=TINY_IMAGE_PX,  # an int, as V-JEPA 2's configs have it
                image_mean=[0.485, 0.456, 0.406],
                image_std=[0.229, 0.224, 0.225],
                size={"shortest_edge": int(TINY_IMAGE_PX * 256 / 224)},
            ),
        )
    else:
        raise ValueError(f"unknown model type {model_type!r}")
    model.eval().save_pretrained(out)
    (out / name).write_text(json.dumps(pre, indent=2))
    return out


#: A tiny X-CLIP: 8 frames of 64x64 in 32 px patches, 16-wide projections, one layer each.
XCLIP_FRAMES = 8
XCLIP_PATCH_PX = 32
#: Letters pairs merged by the tiny tokenizer's BPE (a real CLIP vocabulary has 48,894
#: merges); enough that words are not all single letters.
_XCLIP_MERGES = ("i n", "in g</w>", "t h", "a n", "e r", "o n", "r e", "a t")


def _clip_byte_chars() -> list[str]:
    """The 256 characters byte-level BPE writes bytes as (GPT-2's and CLIP's table)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tiny_clip_tokenizer(out_dir: str | Path) -> Path:
    """Write a small CLIP BPE tokenizer (``vocab.json``, ``merges.txt``,
    ``tokenizer_config.json``) to ``out_dir``: every byte alone and as a word's end, a few
    merges, then ``<|startoftext|>`` and ``<|endoftext|>`` last, as in CLIP's vocabulary
    (X-CLIP's text model pools at the highest token id: the end of text)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chars = _clip_byte_chars()
    tokens = [*chars, *(c + "</w>" for c in chars)]
    tokens += ["".join(m.split()) for m in _XCLIP_MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = "#version: 0.2\n" + "\n".join(_XCLIP_MERGES) + "\n"
    (out / "merges.txt").write_text(merges, encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 77,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return out


def make_tiny_xclip(out_dir: str | Path, *, frames: int = XCLIP_FRAMES, seed: int = 0) -> Path:
    """Save a random-weight X-CLIP (``XCLIPModel``) with its tokenizer and its processor
    config to ``out_dir``, laid out as ``microsoft/xclip-base-patch32`` has them (the legacy
    ``VideoMAEFeatureExtractor`` config with int ``size`` and ``crop_size``, ImageNet
    mean/std), scaled down: ``frames`` frames of :data:`TINY_IMAGE_PX` px."""
    import torch
    from transformers import XCLIPConfig, XCLIPModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    write_tiny_clip_tokenizer(out)
    vocab_size = len(json.loads((out / "vocab.json").read_text(encoding="utf-8")))
    projection = 16
    small = {"num_hidden_layers": 1, "num_attention_heads": 2}
    config = XCLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "max_position_embeddings": 77,
            **small,
        },
        vision_config={
            "image_size": TINY_IMAGE_PX,
            "patch_size": XCLIP_PATCH_PX,
            "num_frames": frames,
            "hidden_size": 32,
            "intermediate_size": 64,
            "mit_hidden_size": projection,  # the MIT runs on the projected frame vectors
            "mit_intermediate_size": 32,
            "mit_num_hidden_layers": 1,
            "mit_num_attention_heads": 2,
            **small,
        },
        projection_dim=projection,
        prompt_layers=1,
        prompt_num_attention_heads=2,
    )
    XCLIPModel(config).eval().save_pretrained(out)
    pre = xclip_processor_config(TINY_IMAGE_PX)
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return out


def xclip_processor_config(size_px: int) -> dict[str, object]:
    """The processor config of the Hub's X-CLIP checkpoints (the legacy
    ``VideoMAEFeatureExtractor`` layout: int ``size`` and ``crop_size``, ImageNet mean/std)
    for frames of ``size_px``."""
    return {
        **legacy_processor_config(size_px),
        "crop_size": size_px,
        "processor_class": "XCLIPProcessor",
    }


def legacy_processor_config(size_px: int) -> dict[str, object]:
    """The 2022 layout of a VideoMAE processor config: int ``size``, no ``crop_size``, a
    feature extractor, ImageNet mean/std."""
    return {
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "VideoMAEFeatureExtractor",
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 2,
        "size": size_px,
    }
