"""How well ``vmae fit-head`` learns labels of one's own from a few examples (issue 27).

Three tasks on generated videos (``tools/videogen.moving_square``: a textured square moving
over a noisy grey background, its start, size, shade and background random), each with
``--per-class`` videos per label, where only one thing tells the labels apart:

* ``colour``: red, green, blue, yellow squares (motion and texture random);
* ``motion``: squares moving right, left, down, up (colour and texture random);
* ``texture``: plain, striped, checked squares (colour and motion random).

For each task: ``vmae classify VIDEOS --model MODEL --embeddings`` (a subprocess), then
:func:`vmae_cli.fitting.fit_head` on every video as an example (its cross-validated accuracy
per label, against chance), then ``vmae classify VIDEOS --head`` and how its rows agree with
the head's own predictions on the stored vectors (top-1 and the largest score difference).
A backbone with random weights still has vectors a linear head can separate where the
difference is in the pixels; how far a trained backbone's vectors carry the difference is
what the accuracy of a real model measures.

Usage::

    python benchmarks/fit_head_accuracy.py --model MODEL_DIR --work DIR [--per-class 20]
        [--tasks colour,motion,texture] [--json OUT]
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _common import machine_info, machine_summary, print_table, run_measured, vmae_command

from tools.videogen import SQUARE_TEXTURES, moving_square, write_video

#: Side of the generated videos (px), their frames and rate.
VIDEO_PX = 128
VIDEO_FRAMES = 40
VIDEO_FPS = 25
#: Speed of a moving square (px a frame): 1.5 x 39 frames = 58 px, under half the frame.
SPEED = 1.5
#: The labels of each task.
COLOURS = {"red": 0.0, "yellow": 1 / 6, "green": 1 / 3, "blue": 2 / 3}
MOTIONS = {"right": (SPEED, 0.0), "left": (-SPEED, 0.0), "down": (0.0, SPEED), "up": (0.0, -SPEED)}
TASKS = ("colour", "motion", "texture")


def _rgb(hue: float, rng: np.random.Generator) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
    return (r * 255, g * 255, b * 255)


def make_task(task: str, folder: Path, per_class: int, seed: int) -> Path:
    """Write the task's videos under ``folder/videos`` (once) and ``folder/examples.csv``."""
    rng = np.random.default_rng(seed)
    labels = {"colour": COLOURS, "motion": MOTIONS, "texture": SQUARE_TEXTURES}[task]
    examples = folder / "examples.csv"
    if examples.exists():
        return examples
    rows = []
    for c, label in enumerate(labels):
        for i in range(per_class):
            hue = COLOURS[label] if task == "colour" else rng.uniform(0, 1)
            motion = MOTIONS[label] if task == "motion" else list(MOTIONS.values())[i % 4]
            texture = label if task == "texture" else SQUARE_TEXTURES[int(rng.integers(3))]
            pattern = moving_square(
                _rgb(hue, rng), motion, texture, rng, size_px=VIDEO_PX, frames=VIDEO_FRAMES
            )
            path = write_video(
                folder / "videos" / f"{c}_{label}_{i:03d}.mp4",
                codec="h264",
                width=VIDEO_PX,
                height=VIDEO_PX,
                num_frames=VIDEO_FRAMES,
                fps=VIDEO_FPS,
                pattern=pattern,
            )
            rows.append((str(path.resolve()), label))
    with examples.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    return examples


def classify(videos: Path, model: str, out: Path, *extra: str) -> float:
    """``vmae classify`` as a subprocess; its wall seconds."""
    cmd = [*vmae_command(), "classify", str(videos), "--model", model, "-o", str(out)]
    cmd += ["--overwrite", "-q", *extra]
    measured = run_measured(cmd)
    if measured.returncode != 0:
        raise RuntimeError(f"{cmd} exited {measured.returncode}: {measured.stderr[-2000:]}")
    return measured.wall_s


def run_task(task: str, model: str, work: Path, per_class: int) -> dict[str, object]:
    from vmae_cli.embeddings import read_video_vectors
    from vmae_cli.fitting import fit_head
    from vmae_cli.formats import read_rows

    folder = work / task
    examples = make_task(task, folder, per_class, seed=TASKS.index(task))
    emb, rows = folder / "emb.parquet", folder / "rows.csv"
    classify_s = classify(folder / "videos", model, rows, "--embeddings", str(emb))
    t0 = time.perf_counter()
    fitted = fit_head(emb, examples, folder / "head", overwrite=True)
    fit_s = time.perf_counter() - t0
    head_rows = folder / "head.jsonl"
    classify(folder / "videos", model, head_rows, "--head", str(folder / "head"), "--top-k", "4")
    got = [r for r in read_rows(head_rows) if r["status"] == "ok"]
    stored = read_video_vectors(emb, [r["path"] for r in got])
    want = fitted.head.probabilities(np.stack([stored[r["path"]] for r in got]))
    agree, worst = 0, 0.0
    for row, probs in zip(got, want, strict=True):
        agree += row["label"] == fitted.head.labels[int(probs.argmax())]
        for entry in row["top_k"]:
            index = fitted.head.labels.index(entry["label"])
            worst = max(worst, abs(float(entry["score"]) - float(probs[index])))
    return {
        "labels": list(fitted.labels),
        "examples": fitted.examples,
        "folds": fitted.folds,
        "accuracy": fitted.accuracy,
        "chance": fitted.chance,
        "per_label": {s.label: s.accuracy for s in fitted.per_label},
        "confusion": [list(r) for r in fitted.confusion],
        "head_rows": len(got),
        "head_agreement": agree / max(len(got), 1),
        "head_max_score_diff": worst,
        "classify_s": classify_s,
        "fit_s": fit_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the backbone (a model folder or id)")
    parser.add_argument("--work", required=True, type=Path, help="videos, rows and heads")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    info = machine_info()
    print(machine_summary(info), file=sys.stderr)
    results: dict[str, object] = {"machine": info, "model": args.model, "tasks": {}}
    table = []
    for task in args.tasks.split(","):
        r = run_task(task, args.model, args.work, args.per_class)
        results["tasks"][task] = r  # type: ignore[index]
        per_label = ", ".join(f"{k} {v:.0%}" for k, v in r["per_label"].items())  # type: ignore[union-attr]
        table.append(
            [
                task,
                str(r["examples"]),
                f"{r['accuracy']:.1%}",
                f"{r['chance']:.1%}",
                per_label,
                f"{r['head_agreement']:.0%}",
                f"{r['head_max_score_diff']:.1e}",
            ]
        )
    print_table(
        table,
        ["task", "examples", "CV accuracy", "chance", "per label", "--head top-1", "max diff"],
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
