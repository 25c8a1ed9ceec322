from __future__ import annotations

import numpy as np
import pytest
import torch

from vmae_cli.preprocessing import (
    PreprocessConfig,
    PreprocessConfigError,
    crop_box,
    normalize,
    parse_preprocess_config,
    resize_and_crop,
    resize_output_size,
)

KINETICS_MEAN = [0.485, 0.456, 0.406]
KINETICS_STD = [0.229, 0.224, 0.225]
MODERN = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": KINETICS_MEAN,
    "image_processor_type": "VideoMAEImageProcessor",
    "image_std": KINETICS_STD,
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
LEGACY = {  # the layout of MCG-NJU's 2022 checkpoints
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "VideoMAEFeatureExtractor",
    "image_mean": KINETICS_MEAN,
    "image_std": KINETICS_STD,
    "resample": 2,
    "size": 224,
}


@pytest.mark.parametrize("raw", [MODERN, LEGACY], ids=["modern", "legacy"])
def test_both_config_layouts_mean_the_same(raw: dict) -> None:
    c = parse_preprocess_config(raw)
    assert c.shortest_edge == 224
    assert c.resize_hw is None
    assert c.crop_hw == (224, 224)
    assert c.mean == tuple(KINETICS_MEAN)
    assert c.std == tuple(KINETICS_STD)
    assert c.rescale_factor == pytest.approx(1 / 255)
    assert c.interpolation == "bilinear"


def test_explicit_height_width_size_and_defaults() -> None:
    c = parse_preprocess_config({"size": {"height": 160, "width": 192}, "crop_size": 128})
    assert c.resize_hw == (160, 192)
    assert c.crop_hw == (128, 128)
    assert c.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    "bad", [{"size": "big"}, {"image_mean": [0.5, 0.5]}, {"crop_size": {"h": 3}}]
)
def test_unreadable_configs_raise(bad: dict) -> None:
    with pytest.raises(PreprocessConfigError):
        parse_preprocess_config(bad)


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((240, 320), (224, 298)),  # int(224 * 320 / 240) = 298 (truncated)
        ((1080, 1920), (224, 398)),
        ((1920, 1080), (398, 224)),
        ((256, 340), (224, 297)),
        ((224, 224), (224, 224)),
        ((2, 2), (224, 224)),
        ((100, 90), (248, 224)),
    ],
)
def test_resize_output_size_matches_hf(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert resize_output_size(*hw, PreprocessConfig()) == expected


def test_crop_box_centres_and_pads() -> None:
    assert crop_box(224, 298, (224, 224)) == (0, 37, 0, 0)
    assert crop_box(398, 224, (224, 224)) == (87, 0, 0, 0)
    assert crop_box(160, 213, (224, 224)) == (0, 0, 32, 5)


def _natural_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth frames with some noise: closer to video than uniform noise."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(t):
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        f = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        f += rng.integers(-12, 12, f.shape, dtype=np.int16)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.mark.parametrize("raw", [MODERN, LEGACY], ids=["modern", "legacy"])
@pytest.mark.parametrize("hw", [(240, 320), (1080, 1920), (1280, 720), (256, 340), (90, 100)])
def test_pixel_parity_with_hf_image_processor(raw: dict, hw: tuple[int, int]) -> None:
    from transformers.models.videomae.image_processing_pil_videomae import (
        VideoMAEImageProcessorPil,
    )

    frames = _natural_frames(2, *hw)
    ref = VideoMAEImageProcessorPil.from_dict(raw)(list(frames), return_tensors="pt")
    ref = ref["pixel_values"][0]
    config = parse_preprocess_config(raw)
    ours = normalize(resize_and_crop(frames, config), config)
    assert ours.shape == ref.shape == (2, 3, 224, 224)
    assert (ours - ref).abs().mean().item() <= 0.002


def test_resize_and_crop_keeps_uint8_and_small() -> None:
    frames = _natural_frames(3, 480, 640)
    out = resize_and_crop(frames, PreprocessConfig())
    assert out.dtype == torch.uint8
    assert out.shape == (3, 3, 224, 224)


def test_normalize_casts_after_float32_arithmetic() -> None:
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    c = PreprocessConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    out = normalize(x, c, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), torch.ones_like(out, dtype=torch.float32))
