"""The whole pipeline on generated videos with the tiny model, checked against HF's own tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vmae_cli import Classifier, ClassifyOptions
from vmae_cli.decoding import decode_pyav


@pytest.fixture(scope="module")
def tree(tmp_path_factory, test_videos, bad_files) -> Path:
    root = tmp_path_factory.mktemp("tree")
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(test_videos["h264_bframes"], root / "a.mp4")
    shutil.copy(test_videos["vp9"], root / "nested" / "B.WEBM")
    shutil.copy(test_videos["mpeg4_bframes"], root / "nested" / "deeper" / "c.avi")
    shutil.copy(test_videos["av1"], root / "nested" / "d.mp4")
    shutil.copy(test_videos["short_3"], root / "short.mp4")
    shutil.copy(bad_files["random_bytes"], root / "nested" / "corrupt.mp4")
    (root / "notes.txt").write_text("not a video")
    return root


def test_one_prediction_per_video(tree: Path, loaded_tiny) -> None:
    preds = list(Classifier(loaded_tiny).classify([str(tree)], ClassifyOptions(workers=2)))
    by_name = {os.path.relpath(p.path, tree): p for p in preds}
    assert sorted(by_name) == sorted(
        [
            "a.mp4",
            "nested/B.WEBM",
            "nested/deeper/c.avi",
            "nested/d.mp4",
            "short.mp4",
            "nested/corrupt.mp4",
        ]
    )
    labels = set(loaded_tiny.id2label.values())
    for name, p in by_name.items():
        if name == "nested/corrupt.mp4":
            assert p.status == "not_video"
            assert p.error
            assert p.label == ""
        else:
            assert p.status == "ok", (name, p.error)
            assert p.label in labels
            assert 0 < p.score <= 1
            assert len(p.frame_indices) == 8
    assert "frames repeated" in by_name["short.mp4"].notes[0]
    assert by_name["short.mp4"].frame_indices == [0, 0, 0, 1, 1, 2, 2, 2]


def test_probabilities_match_hf_processor_and_model(
    test_videos, tiny_model_dir, loaded_tiny
) -> None:
    """Same frames through HF's image processor and the same model give the same scores."""
    from transformers import AutoModelForVideoClassification
    from transformers.models.videomae.image_processing_pil_videomae import (
        VideoMAEImageProcessorPil,
    )

    path = str(test_videos["h264_bframes"])
    pred = next(
        iter(Classifier(loaded_tiny).classify_files([path], ClassifyOptions(top_k=10, workers=0)))
    )
    raw = decode_pyav(path, 8, lambda rgb: rgb)
    assert raw.frame_indices == pred.frame_indices
    processor = VideoMAEImageProcessorPil.from_pretrained(tiny_model_dir)
    model = AutoModelForVideoClassification.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        inputs = processor(list(np.stack(raw.frames)), return_tensors="pt")
        ref = torch.softmax(model(**inputs).logits, -1)[0]
    ours = {ls.label: ls.score for ls in pred.top_k}
    for i, label in model.config.id2label.items():
        assert ours[label] == pytest.approx(ref[i].item(), abs=1e-3)
