"""Check that vmae feeds a model exactly what Hugging Face's own tools would, on any videos.

For each video it compares, against references computed independently of vmae's code:

* the sampled indices with the segment centres of the true frame count (a full PyAV decode);
* ``pixel_values`` of ``vmae inspect`` with ``VideoMAEImageProcessorPil`` applied to the
  fully decoded frames at those indices (mean absolute difference, normalised units);
* the probabilities of ``vmae classify --dtype float32`` (all labels) with HF's processor +
  the same model on those frames (largest absolute difference);
* with ``--protocol``, the ``videomae`` protocol's averaged probabilities with a step-by-step
  transcription of the VideoMAE test code (PIL resize, numpy crops).

    python tools/fidelity.py VIDEO [VIDEO ...] --model MODEL_DIR [--protocol] [--json OUT]

Exit status 1 when any check misses its bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Bounds of the fidelity issue.
MAX_INDEX_DIFF = 1
MAX_PIXEL_MAD = 0.002
MAX_PROB_DIFF = 0.01


def paper_clips(n: int, clip_len: int, stride: int, clips: int) -> list[list[int]]:
    """The VideoMAE Kinetics test sampling, transcribed step by step from its test mode."""
    all_index = [x for x in range(0, n, stride)]
    while len(all_index) < clip_len:
        all_index.append(all_index[-1])
    buffer = np.asarray(all_index)
    temporal_step = max(1.0 * (buffer.shape[0] - clip_len) / max(clips - 1, 1), 0)
    if clips == 1:
        temporal_step = 0.0
        first = (buffer.shape[0] - clip_len) // 2
    else:
        first = 0
    out = []
    for chunk_nb in range(clips):
        temporal_start = first + int(chunk_nb * temporal_step)
        out.append(buffer[temporal_start : temporal_start + clip_len].tolist())
    return out


def upright_rgb(frame: Any) -> Any:
    """A decoded PyAV frame as an RGB array, rotated upright as ffmpeg shows it."""
    rgb = frame.to_ndarray(format="rgb24")
    k = (int(frame.rotation or 0) // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def upright_frames(path: str | Path, keep: set[int] | None = None) -> tuple[int, dict[int, Any]]:
    """Fully decode ``path`` with PyAV: the frame count and the RGB frames whose index is in
    ``keep`` (all when ``None``), rotated upright as ffmpeg shows them."""
    import av

    frames: dict[int, Any] = {}
    n = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if keep is None or n in keep:
                frames[n] = upright_rgb(frame)
            n += 1
    return n, frames


def hf_pixel_values(model_dir: str | Path, frames: list[Any]) -> Any:
    """``pixel_values`` (1, T, 3, H, W) from Hugging Face's PIL VideoMAE image processor."""
    from transformers.models.videomae.image_processing_pil_videomae import (
        VideoMAEImageProcessorPil,
    )

    processor = VideoMAEImageProcessorPil.from_pretrained(model_dir)
    return processor(list(frames), return_tensors="pt")["pixel_values"]


def protocol_pixel_values(
    model_dir: str | Path, frames: dict[int, Any], n: int, clip_len: int, clips: int, crops: int
) -> Any:
    """The paper's views (V, T, 3, H, W): stride-4 clips, short side resized to the crop size
    with PIL, square crops at the start, centre and end of the long side, normalised."""
    import torch
    from PIL import Image

    cfg = json.loads((Path(model_dir) / "preprocessor_config.json").read_text())
    crop_size = cfg.get("crop_size") or {"height": 224}
    crop = crop_size["height"] if isinstance(crop_size, dict) else int(crop_size)
    mean = np.asarray(cfg.get("image_mean", [0.5] * 3), dtype=np.float32)
    std = np.asarray(cfg.get("image_std", [0.5] * 3), dtype=np.float32)
    views = []
    for clip in paper_clips(n, clip_len, 4, clips):
        resized = []
        for i in clip:
            img = Image.fromarray(frames[i])
            w, h = img.size
            size = (int(crop * w / h), crop) if w >= h else (crop, int(crop * h / w))
            resized.append(np.asarray(img.resize(size, Image.BILINEAR)))
        buf = np.stack(resized)
        step = (max(buf.shape[1], buf.shape[2]) - crop) / max(crops - 1, 1)
        for split_nb in range(crops):
            start = int(split_nb * step) if crops > 1 else int(step / 2)
            if buf.shape[1] >= buf.shape[2]:
                views.append(buf[:, start : start + crop, :, :])
            else:
                views.append(buf[:, :, start : start + crop, :])
    x = (np.stack(views).astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(x).permute(0, 1, 4, 2, 3)


def model_probs(model: Any, pixel_values: Any) -> Any:
    """Softmax per view, averaged over views, in float32."""
    import torch

    with torch.inference_mode():
        out = [model(pixel_values=v.unsqueeze(0)).logits for v in pixel_values]
        return torch.softmax(torch.cat(out).float(), dim=-1).mean(dim=0)


def check_video(path: str, model_dir: str, loaded: Any, model: Any, protocol: bool) -> dict:
    """All checks for one video; returns a dict of figures and ``ok``."""
    from vmae_cli import Classifier, ClassifyOptions
    from vmae_cli.decoding import sample_indices
    from vmae_cli.inspection import inspect_video
    from vmae_cli.protocol import PROTOCOLS

    t = loaded.frames_per_clip
    started = time.perf_counter()
    ours = inspect_video(path, t, loaded.preprocess)
    if ours.failure is not None:
        return {"path": path, "ok": False, "error": ours.failure.error}
    n_true, _ = upright_frames(path, keep=set())
    expected = sample_indices(n_true, t)
    index_diff = max(abs(a - b) for a, b in zip(ours.frame_indices, expected, strict=True))
    _, frames = upright_frames(path, keep=set(ours.frame_indices))
    ref_pv = hf_pixel_values(model_dir, [frames[i] for i in ours.frame_indices])
    pixel_mad = float((ours.pixel_values(loaded.preprocess) - ref_pv).abs().mean())
    clf = Classifier(loaded)
    k = len(loaded.id2label)
    pred = next(iter(clf.classify_files([path], ClassifyOptions(top_k=k, workers=0))))
    ref = model_probs(model, ref_pv)
    labels = loaded.id2label
    ours_p = {ls.label: ls.score for ls in pred.top_k}
    prob_diff = max(abs(ours_p[labels[i]] - float(ref[i])) for i in labels)
    row = {
        "path": path,
        "decoder": ours.meta.decoder,
        "size": f"{ours.meta.width}x{ours.meta.height}",
        "rotation": ours.meta.rotation,
        "frames_reported": ours.meta.frames_reported,
        "frames_decoded": ours.meta.frames_decoded,
        "frames_true": n_true,
        "index_diff": index_diff,
        "pixel_mad": pixel_mad,
        "prob_diff": prob_diff,
    }
    ok = index_diff <= MAX_INDEX_DIFF and pixel_mad <= MAX_PIXEL_MAD and prob_diff <= MAX_PROB_DIFF
    if protocol:
        proto = PROTOCOLS["videomae"]
        opts = ClassifyOptions(top_k=k, workers=0, protocol=proto)
        pred = next(iter(clf.classify_files([path], opts)))
        clips = paper_clips(n_true, t, proto.frame_stride, proto.clips)
        _, frames = upright_frames(path, keep={i for c in clips for i in c})
        pv = protocol_pixel_values(model_dir, frames, n_true, t, proto.clips, proto.crops)
        ref = model_probs(model, pv)
        ours_p = {ls.label: ls.score for ls in pred.top_k}
        row["protocol_prob_diff"] = max(abs(ours_p[labels[i]] - float(ref[i])) for i in labels)
        row["protocol_indices_equal"] = pred.frame_indices == [i for c in clips for i in c]
        ok = ok and row["protocol_prob_diff"] <= MAX_PROB_DIFF and row["protocol_indices_equal"]
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["ok"] = ok
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--model", required=True, help="a local model folder")
    parser.add_argument("--protocol", action="store_true", help="also check --protocol videomae")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    from transformers import AutoModelForVideoClassification

    from vmae_cli.model import load_model

    loaded = load_model(args.model, device="cpu", dtype="float32")
    model = AutoModelForVideoClassification.from_pretrained(args.model).eval()
    rows = []
    for path in args.videos:
        row = check_video(path, args.model, loaded, model, args.protocol)
        rows.append(row)
        print(json.dumps(row), flush=True)
    bad = [r["path"] for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)}/{len(rows)} videos within bounds", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
