"""Stage 3: turn decoded frames into what the model expects, following its own preprocessor config.

The work is split in two so that full-resolution frames never cross a process boundary:

* :func:`resize_and_crop` runs in the decoding workers on uint8 frames (shortest-edge resize,
  then centre crop) and returns a small uint8 tensor;
* :func:`normalize` runs on the model's device on whole batches (rescale, mean/std).

Resizing uses ``torch.nn.functional.interpolate`` on uint8 channels-last tensors with
``antialias=True``: measured to reproduce PIL's bilinear resize (what Hugging Face's VideoMAE
image processor uses) pixel for pixel, where ``cv2.INTER_LINEAR`` differs by 1-3 grey levels on
average and changes predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import VmaeError

if TYPE_CHECKING:
    import numpy as np
    import torch

#: Defaults of Hugging Face's VideoMAE image processor, used for keys a config leaves out.
DEFAULT_SHORTEST_EDGE_PX = 224
DEFAULT_CROP_PX = 224
DEFAULT_RESCALE_FACTOR = 1 / 255
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
#: V-JEPA 2's processor resizes the short side to the crop times this, whatever its config's
#: ``size`` says (``VJEPA2VideoProcessor.__init__`` overrides it: 292 px for a 256 crop).
VJEPA2_RESIZE_RATIO = 256 / 224

#: PIL resampling codes (as stored in preprocessor configs) -> interpolate modes.
_RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_PIL_BILINEAR = 2


@dataclass(frozen=True)
class ProcessorDefaults:
    """What one of Hugging Face's processor classes does for the keys a config leaves out."""

    shortest_edge: int = DEFAULT_SHORTEST_EDGE_PX
    crop_px: int = DEFAULT_CROP_PX
    rescale_factor: float = DEFAULT_RESCALE_FACTOR
    offset: bool = False  # rescale to [-1, 1]: x * factor - 1 (ViViT)
    mean: tuple[float, float, float] = IMAGENET_STANDARD_MEAN
    std: tuple[float, float, float] = IMAGENET_STANDARD_STD
    #: The short side is resized to ``int(crop * VJEPA2_RESIZE_RATIO)``, ignoring ``size``.
    resize_from_crop: bool = False


_VIDEOMAE = ProcessorDefaults()
_TIMESFORMER = ProcessorDefaults(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
_VIVIT = ProcessorDefaults(shortest_edge=256, rescale_factor=1 / 127.5, offset=True)
_VJEPA2 = ProcessorDefaults(
    shortest_edge=int(256 * VJEPA2_RESIZE_RATIO),
    crop_px=256,
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
    resize_from_crop=True,
)

#: Hugging Face's processor classes (as configs name them) and their defaults.
PROCESSOR_DEFAULTS = {
    "VideoMAEImageProcessor": _VIDEOMAE,
    "VideoMAEImageProcessorPil": _VIDEOMAE,
    "VideoMAEFeatureExtractor": _VIDEOMAE,
    "VideoMAEVideoProcessor": _VIDEOMAE,
    "TimesformerVideoProcessor": _TIMESFORMER,
    "VivitImageProcessor": _VIVIT,
    "VivitVideoProcessor": _VIVIT,
    "VJEPA2VideoProcessor": _VJEPA2,
}
#: The processor class Hugging Face picks for a model type when the config names none, for
#: an image processor config (``preprocessor_config.json``) and a video processor config
#: (``video_preprocessor_config.json``).
IMAGE_PROCESSOR_OF = {
    "videomae": "VideoMAEImageProcessor",
    "timesformer": "VideoMAEImageProcessor",
    "vivit": "VivitImageProcessor",
    # XCLIPProcessor's image processor (its checkpoints' configs name VideoMAE's, legacy).
    "xclip": "VideoMAEImageProcessor",
}
VIDEO_PROCESSOR_OF = {
    "videomae": "VideoMAEVideoProcessor",
    "timesformer": "TimesformerVideoProcessor",
    "vivit": "VivitVideoProcessor",
    "vjepa2": "VJEPA2VideoProcessor",
}


class PreprocessConfigError(VmaeError, ValueError):
    """The model's preprocessor config cannot be understood."""


@dataclass(frozen=True)
class PreprocessConfig:
    """The subset of a processor config that defines the pixels the model sees.

    Exactly one of ``shortest_edge`` or ``resize_hw`` is set when ``do_resize`` is true.
    """

    do_resize: bool = True
    shortest_edge: int | None = DEFAULT_SHORTEST_EDGE_PX
    resize_hw: tuple[int, int] | None = None
    resample: int = _PIL_BILINEAR
    do_center_crop: bool = True
    crop_hw: tuple[int, int] = (DEFAULT_CROP_PX, DEFAULT_CROP_PX)
    do_rescale: bool = True
    rescale_factor: float = DEFAULT_RESCALE_FACTOR
    do_normalize: bool = True
    mean: tuple[float, float, float] = IMAGENET_STANDARD_MEAN
    std: tuple[float, float, float] = IMAGENET_STANDARD_STD
    offset: bool = False  # after rescaling, subtract 1 (ViViT: [0, 255] -> [-1, 1])
    processor: str = "VideoMAEImageProcessor"  # the Hugging Face class whose rules these are

    @property
    def interpolation(self) -> str:
        """The ``torch.nn.functional.interpolate`` mode for :attr:`resample`."""
        return _RESAMPLE_MODES.get(self.resample, "bilinear")


def _hw(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict) and "height" in value and "width" in value:
        return (int(value["height"]), int(value["width"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise PreprocessConfigError(f"cannot read {what}={value!r}")


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    vals = tuple(float(v) for v in value)
    if len(vals) != 3:
        raise PreprocessConfigError(f"expected 3 channel values, got {value!r}")
    return vals  # type: ignore[return-value]


def parse_preprocess_config(
    raw: dict[str, Any], model_type: str = "videomae", *, video: bool = False
) -> PreprocessConfig:
    """Build a :class:`PreprocessConfig` from a processor config dictionary
    (``preprocessor_config.json``, or ``video_preprocessor_config.json`` with ``video``).

    Keys the config leaves out take the defaults of the processor class it names
    (``image_processor_type``, ``video_processor_type``, ``feature_extractor_type``), else of
    the class Hugging Face picks for ``model_type`` (:data:`PROCESSOR_DEFAULTS`). Both VideoMAE
    layouts are understood: today's (``"size": {"shortest_edge": 224}``, ``"crop_size":
    {"height": 224, "width": 224}``) and the legacy one of the 2022 checkpoints (``"size":
    224``, no ``crop_size``). As in Hugging Face's processors, an int ``size`` means the
    shortest edge and a missing ``crop_size`` the class default; V-JEPA 2's resize follows its
    crop (:data:`VJEPA2_RESIZE_RATIO`).
    """
    named = next(
        (
            raw[k]
            for k in ("video_processor_type", "image_processor_type", "feature_extractor_type")
            if isinstance(raw.get(k), str)
        ),
        None,
    )
    fallback = (VIDEO_PROCESSOR_OF if video else IMAGE_PROCESSOR_OF).get(
        model_type, "VideoMAEImageProcessor"
    )
    processor = named if named in PROCESSOR_DEFAULTS else fallback
    defaults = PROCESSOR_DEFAULTS.get(processor, _VIDEOMAE)
    crop = raw.get("crop_size") or defaults.crop_px
    crop_hw = _hw(crop, "crop_size")
    size = raw.get("size", {"shortest_edge": defaults.shortest_edge})
    if defaults.resize_from_crop:
        size = {"shortest_edge": int(crop_hw[0] * VJEPA2_RESIZE_RATIO)}
    shortest_edge: int | None = None
    resize_hw: tuple[int, int] | None = None
    if isinstance(size, int):
        shortest_edge = size
    elif isinstance(size, dict) and "shortest_edge" in size:
        shortest_edge = int(size["shortest_edge"])
    elif isinstance(size, (dict, list, tuple)):
        resize_hw = _hw(size, "size")
    else:
        raise PreprocessConfigError(f"cannot read size={size!r}")
    return PreprocessConfig(
        do_resize=bool(raw.get("do_resize", True)),
        shortest_edge=shortest_edge,
        resize_hw=resize_hw,
        resample=int(raw.get("resample", _PIL_BILINEAR)),
        do_center_crop=bool(raw.get("do_center_crop", True)),
        crop_hw=crop_hw,
        do_rescale=bool(raw.get("do_rescale", True)),
        rescale_factor=float(raw.get("rescale_factor", defaults.rescale_factor)),
        do_normalize=bool(raw.get("do_normalize", True)),
        mean=_triple(raw.get("image_mean"), defaults.mean),
        std=_triple(raw.get("image_std"), defaults.std),
        offset=bool(raw.get("offset", defaults.offset)) and bool(raw.get("do_rescale", True)),
        processor=processor,
    )


def resize_output_size(height: int, width: int, config: PreprocessConfig) -> tuple[int, int]:
    """The ``(height, width)`` a frame is resized to, computed exactly as Hugging Face does.

    For a shortest-edge size S the short side becomes S and the long side
    ``int(S * long / short)`` (truncated, not rounded).
    """
    if not config.do_resize:
        return (height, width)
    if config.resize_hw is not None:
        return config.resize_hw
    s = config.shortest_edge or DEFAULT_SHORTEST_EDGE_PX
    if width <= height:
        return (int(s * height / width), s)
    return (s, int(s * width / height))


def crop_box(height: int, width: int, crop_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, left, pad_top, pad_left)`` of a centre crop, with the zero padding HF adds.

    Padding is only non-zero when the crop is larger than the image, which happens when a
    config's crop exceeds its resize size.
    """
    ch, cw = crop_hw
    pad_top = (ch - height) // 2 if ch > height else 0
    pad_left = (cw - width) // 2 if cw > width else 0
    top = (height - ch) // 2 if height >= ch else 0
    left = (width - cw) // 2 if width >= cw else 0
    return top, left, pad_top, pad_left


def _to_nchw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    import torch

    x = torch.as_tensor(frames)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    return x.permute(0, 3, 1, 2)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize uint8 ``(T, 3, H, W)`` frames to ``size`` the way PIL does for ``mode``."""
    import torch
    import torch.nn.functional as F

    if size == (int(x.shape[-2]), int(x.shape[-1])):
        return x
    # channels-last uint8 is the layout whose antialiased bilinear kernel matches PIL.
    x = x.contiguous(memory_format=torch.channels_last)
    kwargs = {} if mode == "nearest" else {"antialias": True, "align_corners": False}
    return F.interpolate(x, size=size, mode=mode, **kwargs)


def resize_and_crop(frames: np.ndarray | torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Resize then centre-crop uint8 RGB frames ``(T, H, W, 3)``; returns uint8 ``(T, 3, h, w)``.

    All frames of a video share one size, so they are resized in one call.
    """
    import torch

    x = _to_nchw(frames)
    height, width = int(x.shape[-2]), int(x.shape[-1])
    new_h, new_w = resize_output_size(height, width, config)
    x = _resize(x, (new_h, new_w), config.interpolation)
    if config.do_center_crop:
        ch, cw = config.crop_hw
        top, left, pad_top, pad_left = crop_box(new_h, new_w, config.crop_hw)
        x = x[:, :, top : top + ch, left : left + cw]
        if x.shape[-2] != ch or x.shape[-1] != cw:
            out = torch.zeros((x.shape[0], 3, ch, cw), dtype=x.dtype)
            out[:, :, pad_top : pad_top + x.shape[-2], pad_left : pad_left + x.shape[-1]] = x
            x = out
    return x.contiguous()


def cover_size(height: int, width: int, crop_hw: tuple[int, int]) -> tuple[int, int]:
    """The size a frame is resized to before several crops are cut from it (multi-crop test).

    The side that fits the crop's aspect ratio less well becomes the crop's size and the other
    keeps the frame's proportions, truncated as Hugging Face and the VideoMAE code do: for a
    square crop of S, the short side becomes S and the long side ``int(S * long / short)``.
    """
    ch, cw = crop_hw
    if width * ch >= height * cw:  # at least as wide as the crop: fit the height
        return (ch, max(cw, int(ch * width / height)))
    return (max(ch, int(cw * height / width)), cw)


def resize_to_cover(frames: np.ndarray | torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Resize uint8 RGB frames ``(T, H, W, 3)`` to :func:`cover_size`; returns ``(T, 3, h, w)``."""
    x = _to_nchw(frames)
    size = cover_size(int(x.shape[-2]), int(x.shape[-1]), config.crop_hw)
    return _resize(x, size, config.interpolation).contiguous()


def spatial_crops(frames: torch.Tensor, crop_hw: tuple[int, int], crops: int) -> list[torch.Tensor]:
    """``crops`` crops of ``crop_hw`` spread along the long side of ``(..., H, W)`` frames.

    Crop ``k`` starts at ``int(k * (long - crop) / (crops - 1))``: the start, the centre and
    the end for three crops, as in the VideoMAE test code; one crop is the centre crop.
    """
    ch, cw = crop_hw
    height, width = int(frames.shape[-2]), int(frames.shape[-1])
    spare_h, spare_w = max(height - ch, 0), max(width - cw, 0)
    along_width = spare_w >= spare_h and spare_w > 0
    spare = spare_w if along_width else spare_h
    out = []
    for k in range(crops):
        start = spare // 2 if crops == 1 else int(k * spare / (crops - 1))
        if along_width:
            top, left = spare_h // 2, start
        else:
            top, left = start, spare_w // 2
        out.append(frames[..., top : top + ch, left : left + cw].contiguous())
    return out


def normalize(
    frames: torch.Tensor, config: PreprocessConfig, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Rescale and normalise uint8 frames ``(..., 3, H, W)`` to the model's ``pixel_values``.

    The arithmetic is done in float32 (as Hugging Face does) on the tensor's device, then cast
    to ``dtype`` if given.
    """
    import torch

    x = frames.to(torch.float32)
    if config.do_rescale:
        x = x * config.rescale_factor
        if config.offset:
            x = x - 1.0
    if config.do_normalize:
        mean = torch.tensor(config.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
        std = torch.tensor(config.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
        x = (x - mean) / std
    return x if dtype is None else x.to(dtype)
