"""Check ``vmae classify --embeddings`` against Hugging Face, on any videos.

It runs vmae (a subprocess) with ``--embeddings`` and compares, for every ok video, the
stored vector with the one Hugging Face's ``VideoMAEForVideoClassification`` hands its
classifier, computed here from the model's own parts (``videomae``, then ``fc_norm`` of the
mean over tokens, or the first token when the model has no ``fc_norm``) in float32, on:

* the same ``pixel_values`` (the bound): what vmae gives the model, as ``vmae inspect``
  shows it (:func:`vmae_cli.inspection.inspect_video`, or ``inspect_windows`` for
  ``--segments``), so the check is about the vector, not the preprocessing;
* Hugging Face's own processor (reported, no bound): one full PyAV decode, the frames at the
  row's ``frame_indices`` through ``VideoMAEImageProcessor`` (as :mod:`tools.fidelity` uses
  it); the difference adds the resizing's (bounded by ``tools/fidelity.py`` on
  probabilities).

With ``--segments`` the same is done for up to ``--windows`` windows per video, and the
video's vector must be the mean of its windows'. Checks: exactly one vector per ok video (and
per ok window), none for a failed one, each of the model's hidden size; cosine similarity >=
0.999 for float16 vectors, largest absolute difference <= 1e-4 for float32 ones
(``--embeddings-dtype``). Only the default one-view protocol is compared.

    python tools/embeddings_check.py VIDEO|DIR [...] --model MODEL_DIR
        [--embeddings-dtype float16|float32] [--dtype float32] [--backend torch]
        [--segments [--window 64f --hop 64f --windows N]] [--out-dir DIR] [--vmae-args ARGS]

One line per video on stdout; exit status 1 when a check misses its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.fidelity import hf_pixel_values, upright_frames
from tools.segments_check import vmae_command

#: The bounds of issue 14.
MIN_COSINE_F16 = 0.999
MAX_ABS_DIFF_F32 = 1e-4


def hf_pooled(model: Any, pixel_values: Any) -> np.ndarray:
    """What Hugging Face's VideoMAE classifier hands its head for ``pixel_values`` (1 view),
    float32."""
    import torch

    with torch.inference_mode():
        hidden = model.videomae(pixel_values.float()).last_hidden_state
        fc_norm = getattr(model, "fc_norm", None)
        pooled = fc_norm(hidden.mean(1)) if fc_norm is not None else hidden[:, 0]
    return pooled[0].float().numpy()


def vmae_video_view(path: str, spec: Any) -> Any:
    """The ``pixel_values`` (1, T, 3, H, W) vmae gives the model for ``path``."""
    from vmae_cli.inspection import inspect_video

    return inspect_video(path, spec.frames_per_clip, spec.preprocess).pixel_values(spec.preprocess)


def vmae_window_views(
    path: str, spec: Any, args: argparse.Namespace, wanted: set[int]
) -> dict[int, Any]:
    """The ``pixel_values`` (1, T, 3, H, W) vmae gives the model for the windows ``wanted``."""
    from vmae_cli.inspection import InspectedWindow, inspect_windows
    from vmae_cli.preprocessing import normalize
    from vmae_cli.protocol import Protocol
    from vmae_cli.segments import Segments, Span

    segments = Segments(
        Span.parse(args.window) if args.window else None,
        Span.parse(args.hop) if args.hop else None,
    )
    views = {}
    protocol = Protocol(segments=segments)
    for item in inspect_windows(path, spec.frames_per_clip, spec.preprocess, protocol, keep=0):
        wanted_here = isinstance(item, InspectedWindow) and item.window.index in wanted
        if wanted_here and item.frames is not None:
            views[item.window.index] = normalize(item.frames, spec.preprocess)
    return views


def _worsen(worst: dict[str, float], figures: dict[str, float]) -> None:
    worst["cosine"] = min(worst["cosine"], figures["cosine"])
    worst["max_abs_diff"] = max(worst["max_abs_diff"], figures["max_abs_diff"])


def compare(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    """Cosine similarity and largest absolute difference of two vectors."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    cosine = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want) or 1.0))
    return {"cosine": cosine, "max_abs_diff": float(np.abs(got - want).max())}


def within(figures: dict[str, float], dtype: str) -> bool:
    """Whether the figures meet the bound of ``dtype``."""
    if dtype == "float16":
        return figures["cosine"] >= MIN_COSINE_F16
    return figures["max_abs_diff"] <= MAX_ABS_DIFF_F32


def run_vmae(args: argparse.Namespace, out: Path) -> tuple[int, str]:
    """Run vmae on the inputs, writing rows, window rows and embeddings under ``out``."""
    argv = [*vmae_command(args.vmae), "classify", *args.inputs, "-m", args.model, "-q"]
    argv += ["-o", str(out / "rows.jsonl"), "--embeddings", str(out / "emb.parquet")]
    argv += ["--overwrite"]  # a check run again replaces its own outputs
    argv += ["--embeddings-dtype", args.embeddings_dtype, "--dtype", args.dtype]
    argv += ["--backend", args.backend, "--device", "cpu"]
    if args.segments:
        argv += ["--segments-out", str(out / "windows.jsonl")]
        argv += [f"--{k}={v}" for k, v in (("window", args.window), ("hop", args.hop)) if v]
    argv += shlex.split(args.vmae_args or "")
    print("$", shlex.join(argv), file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.returncode, done.stderr


def check(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One result per video row."""
    import pandas as pd
    from transformers import VideoMAEForVideoClassification

    from vmae_cli.model import read_model_spec

    model = VideoMAEForVideoClassification.from_pretrained(args.model, dtype="float32").eval()
    spec = read_model_spec(args.model)
    hidden = model.config.hidden_size
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    windows: dict[str, list[dict]] = {}
    if args.segments:
        for line in (out / "windows.jsonl").read_text().splitlines():
            w = json.loads(line)
            windows.setdefault(w["path"], []).append(w)
    table = pd.read_parquet(out / "emb.parquet")
    keyed: dict[tuple[str, int | None], list[np.ndarray]] = {}
    for path, window, vector in zip(
        table["path"], table["window"], table["embedding"], strict=True
    ):
        key = (path, None if pd.isna(window) else int(window))
        keyed.setdefault(key, []).append(np.asarray(vector, dtype=np.float32))
    results = []
    for row in rows:
        path = row["path"]
        result: dict[str, Any] = {"path": path, "status": row["status"], "problems": []}
        problems = result["problems"]
        mine = {k: v for k, v in keyed.items() if k[0] == path}
        if row["status"] != "ok":
            if mine:
                problems.append(f"{len(mine)} vectors for a failed video")
            results.append(result)
            continue
        own = mine.get((path, None), [])
        if len(own) != 1:
            problems.append(f"{len(own)} video vectors")
            results.append(result)
            continue
        if own[0].shape != (hidden,):
            problems.append(f"vector of shape {own[0].shape}, hidden size {hidden}")
        ok_windows = [w for w in windows.get(path, []) if w["status"] == "ok"]
        expected_keys = {(path, None)} | {(path, w["window"]) for w in ok_windows}
        if set(mine) != expected_keys or any(len(v) != 1 for v in mine.values()):
            problems.append("the vectors' keys are not one per ok window and one for the video")
        if args.segments:
            chosen = ok_windows[:: max(1, len(ok_windows) // max(1, args.windows))][: args.windows]
            if ok_windows and all((path, w["window"]) in mine for w in ok_windows):
                mean = np.mean([mine[(path, w["window"])][0] for w in ok_windows], axis=0)
                figures = compare(own[0], mean)
                result["video_vs_window_mean"] = figures
                if not within(figures, args.embeddings_dtype):
                    problems.append("the video vector is not the mean of its windows'")
            views = vmae_window_views(path, spec, args, {w["window"] for w in chosen})
            checks = [
                (w["frame_indices"], views.get(w["window"]), mine[(path, w["window"])][0])
                for w in chosen
                if (path, w["window"]) in mine
            ]
        else:
            checks = [(row["frame_indices"], vmae_video_view(path, spec), own[0])]
        keep = {i for idx, _, _ in checks for i in idx}
        _, frames = upright_frames(path, keep)
        worst = {"cosine": 1.0, "max_abs_diff": 0.0}
        worst_hf = dict(worst)
        for idx, pixel_values, vector in checks:
            if pixel_values is None:
                problems.append("vmae inspect did not give a window that has a vector")
                continue
            _worsen(worst, compare(vector, hf_pooled(model, pixel_values)))
            reference = hf_pixel_values(args.model, [frames[i] for i in idx])
            _worsen(worst_hf, compare(vector, hf_pooled(model, reference)))
        result.update(worst, compared=len(checks), hf_processor=worst_hf)
        if not within(worst, args.embeddings_dtype):
            problems.append(f"cosine {worst['cosine']:.6f}, max diff {worst['max_abs_diff']:.2e}")
        results.append(result)
    paths = {r["path"] for r in rows}
    strays = {k[0] for k in keyed} - paths
    if strays:
        results.append({"path": "(vectors without a row)", "problems": sorted(strays)})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--model", required=True)
    parser.add_argument("--embeddings-dtype", default="float16", choices=("float16", "float32"))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--segments", action="store_true")
    parser.add_argument("--window")
    parser.add_argument("--hop")
    parser.add_argument("--windows", type=int, default=4, help="windows compared per video")
    parser.add_argument("--out-dir", help="keep vmae's outputs here (default: a temp folder)")
    parser.add_argument("--vmae", help="the vmae command (default: the one beside Python)")
    parser.add_argument("--vmae-args", help="more arguments for vmae classify")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rc, stderr = run_vmae(args, out)
        if rc not in (0, 3):
            sys.stderr.write(stderr[-4000:])
            return 1
        results = check(args, out)
    bad = 0
    for r in results:
        bad += bool(r["problems"])
        figures = ""
        if "cosine" in r:
            hf = r["hf_processor"]
            figures = f" cosine {r['cosine']:.8f} max_abs_diff {r['max_abs_diff']:.2e}"
            figures += f" ({r['compared']} view{'s' if r['compared'] != 1 else ''}; with HF's"
            figures += f" processor: {hf['cosine']:.8f}, {hf['max_abs_diff']:.2e})"
        verdict = "FAIL " + "; ".join(map(str, r["problems"])) if r["problems"] else "ok"
        print(f"{os.path.basename(r['path'])}: {r.get('status', '')}{figures}: {verdict}")
    ok = sum(1 for r in results if r.get("status") == "ok")
    print(f"{len(results)} rows, {ok} ok videos, {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
