"""What ``--embeddings`` costs: model calls with and without the vector, and whole runs.

Two measurements, each side by side in one run (alternating, so that drift of the machine hits
both settings alike):

* **model**: clips/s of ``LoadedModel.infer`` on random uint8 ``(B, T, 3, H, W)`` batches,
  with ``embeddings=False`` and ``True``, for each backend given (torch, OpenVINO), after
  warm-up. The vector comes from the same call (a hook on the head's input; OpenVINO already
  runs the head apart), so the two should not differ beyond noise.
* **vmae** (with ``--videos DIR``): ``vmae classify DIR -o rows.csv`` with and without
  ``--embeddings emb.parquet`` as subprocesses, start-up included, the order alternating
  from round to round: the best and median wall seconds of each, and the size of the
  embeddings file per vector.

Usage::

    python benchmarks/embeddings_cost.py --model MODEL_DIR [--backends torch,openvino]
        [--batch 2] [--seconds 20] [--videos DIR --rounds 2] [--json OUT]

A full-size model with random weights (``make_model.py DIR``) costs what the real one does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (
    machine_info,
    machine_summary,
    print_table,
    run_measured,
    vmae_command,
    write_json,
)


def model_rates(model: str, backend: str, batch: int, seconds: float) -> dict[str, float]:
    """Clips/s without and with embeddings, measured in alternating slices."""
    import torch

    from vmae_cli.model import load_model

    lm = load_model(model, device="cpu", dtype="auto", backend=backend)
    h, w = lm.preprocess.crop_hw
    x = torch.randint(0, 256, (batch, lm.frames_per_clip, 3, h, w), dtype=torch.uint8)
    for embeddings in (False, True):  # warm-up
        lm.infer(x, embeddings=embeddings)
    spent = {False: 0.0, True: 0.0}
    clips = {False: 0, True: 0}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for embeddings in (False, True):
            t0 = time.perf_counter()
            lm.infer(x, embeddings=embeddings)
            spent[embeddings] += time.perf_counter() - t0
            clips[embeddings] += batch
    return {
        "runtime": f"{lm.backend} {lm.precision}",
        "without": clips[False] / spent[False],
        "with": clips[True] / spent[True],
    }


def vmae_runs(model: str, videos: str, rounds: int) -> dict[str, object]:
    """Wall seconds of whole runs without and with ``--embeddings`` (alternating)."""
    walls: dict[str, list[float]] = {"without": [], "with": []}
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            # The order alternates: a run may leave caches warm for the next one.
            for setting in ("without", "with") if round_ % 2 == 0 else ("with", "without"):
                out = Path(tmp) / f"{setting}.csv"
                emb = Path(tmp) / "emb.parquet"
                cmd = [*vmae_command(), "classify", videos, "-m", model, "-q", "-o", str(out)]
                cmd += ["--overwrite"]  # each round replaces the last one's rows
                if setting == "with":
                    cmd += ["--embeddings", str(emb)]
                measured = run_measured(cmd)
                walls[setting].append(measured.wall_s)
                if setting == "with" and emb.exists():
                    import pandas as pd

                    rows = len(pd.read_parquet(emb, columns=["path"]))
                    sizes.append(os.path.getsize(emb) / max(rows, 1))
    return {
        "wall_s": {k: min(v) for k, v in walls.items()},
        "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
        "bytes_per_vector": round(sizes[-1]) if sizes else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--backends", default="torch,openvino")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--videos")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    info = machine_info()
    print(machine_summary(info))
    results: dict[str, object] = {"machine": info, "model": {}}
    rows = []
    for backend in args.backends.split(","):
        r = model_rates(args.model, backend, args.batch, args.seconds)
        results["model"][backend] = r  # type: ignore[index]
        ratio = r["with"] / r["without"]
        rows.append([r["runtime"], f"{r['without']:.3f}", f"{r['with']:.3f}", f"{ratio:.3f}"])
    print_table(rows, ["runtime", "clips/s without", "clips/s with", "with / without"])
    if args.videos:
        runs = vmae_runs(args.model, args.videos, args.rounds)
        results["vmae"] = runs
        best, mid = runs["wall_s"], runs["median_wall_s"]
        print(
            f"vmae classify {args.videos}, best (median) of {args.rounds}: "
            f"{best['without']:.1f} ({mid['without']:.1f}) s without, "  # type: ignore[index]
            f"{best['with']:.1f} ({mid['with']:.1f}) s with --embeddings; "  # type: ignore[index]
            f"{runs['bytes_per_vector']} bytes per vector in the file"
        )
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
