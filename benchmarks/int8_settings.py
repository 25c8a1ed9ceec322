"""Which NNCF settings keep an int8 model closest to float32 (issue 26, item 3).

The model is converted once (``openvino_backend.convert``, kept in ``--work``); every video
of each ``--group NAME=DIR`` gives one clip, decoded and normalised as vmae does
(``pipeline._clip_maker``, the default protocol). Float32 probabilities are the reference
(the head, kept apart as vmae keeps it, multiplied by ``--sharpen`` so that a random head
does not hide differences). Each VARIANT, a JSON object, is one quantization of the same
converted model with ``nncf.quantize`` (transformer mode, as ``openvino_backend.quantize``):

``calib``  clips to calibrate on, per group: ``{"generated": 8}`` (the group's first 8)
``sq``     SmoothQuant's alpha for the matrix products (-1: off; absent: NNCF's default)
``bf16``   ``true``: no quantization, OpenVINO bf16 against float32, as a yardstick

For each: top-1 agreement per group, the largest and mean largest probability difference,
and the float32 top-1 margin of each video whose top-1 flipped (a flip on a near tie says
little).

    python benchmarks/int8_settings.py --model VIT_B --work DIR --sharpen 15 \\
        --group generated=G --group mix=M --group real=R \\
        '{"bf16": true}' '{"calib": {"generated": 8}}' '{"calib": {"generated": 8}, "sq": -1}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_summary


def group_clips(paths: list[str], spec: Any) -> Any:
    """One normalised float32 clip per video of ``paths`` (those that decode), stacked."""
    import numpy as np

    from vmae_cli import pipeline
    from vmae_cli.protocol import Protocol

    pipeline.CALIBRATION_CLIPS = len(paths)  # every video's clip, not a calibration's few
    protocol = Protocol().for_model(spec.frames_per_clip)
    arrays, _ = pipeline._clip_maker(paths, spec, protocol)()
    return np.concatenate(arrays)


def probabilities(compiled: Any, clips: Any, weight: Any, bias: Any) -> Any:
    """Softmax of the sharpened float64 head over the compiled model's features, per clip."""
    import numpy as np

    request = compiled.create_infer_request()
    features = []
    for i in range(len(clips)):
        request.infer({0: clips[i : i + 1]})
        features.append(request.get_output_tensor(0).data.copy())
    logits = np.concatenate(features).astype(np.float64) @ weight.T + bias
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def compare(got: Any, want: Any) -> dict[str, Any]:
    import numpy as np

    top = np.sort(want, 1)
    margin = top[:, -1] - top[:, -2]
    flips = np.nonzero(got.argmax(1) != want.argmax(1))[0]
    diff = np.abs(got - want).max(1)
    return {
        "agree": int(len(want) - len(flips)),
        "videos": int(len(want)),
        "max_diff": float(diff.max()),
        "mean_max_diff": float(diff.mean()),
        "flip_margins": [round(float(m), 4) for m in margin[flips]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="JSON objects, one per setting")
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", type=Path, required=True, help="kept between runs")
    parser.add_argument("--group", action="append", required=True, help="NAME=DIR")
    parser.add_argument("--sharpen", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import nncf
    import numpy as np
    import openvino as ov

    from vmae_cli import openvino_backend as ovb
    from vmae_cli.discovery import iter_video_paths
    from vmae_cli.model import read_model_spec

    print(f"machine: {machine_summary(machine_info())}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    spec = read_model_spec(args.model)
    xml, head_file = args.work / "f32.xml", args.work / "head.npz"
    core = ov.Core()
    if not xml.exists():
        made = ovb.convert(args.model, None, True, spec.frames_per_clip, spec.preprocess.crop_hw)
        ov.save_model(made.model, str(xml), compress_to_fp16=False)
        made.head.save(head_file)
    head = ovb.Head.load(head_file)
    weight = head.weight.astype(np.float64) * args.sharpen
    bias = head.bias.astype(np.float64) * args.sharpen
    groups = dict(g.split("=", 1) for g in args.group)
    clips_file = args.work / f"clips-{'-'.join(groups)}.npz"
    if not clips_file.exists():
        np.savez(
            clips_file,
            **{n: group_clips(sorted(iter_video_paths([d])), spec) for n, d in groups.items()},
        )
    with np.load(clips_file) as kept:
        clips = {n: kept[n] for n in groups}
    reference_file = args.work / f"f32-{'-'.join(groups)}-x{args.sharpen:g}.npz"
    if not reference_file.exists():
        f32 = core.compile_model(
            core.read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        np.savez(
            reference_file, **{n: probabilities(f32, x, weight, bias) for n, x in clips.items()}
        )
    reference = dict(np.load(reference_file))
    print({n: len(x) for n, x in clips.items()}, flush=True)

    results = []
    for text in args.variants:
        variant = json.loads(text)
        started = time.perf_counter()
        if variant.get("bf16"):
            model = core.read_model(str(xml))
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
        else:
            calibration = [
                clip[None] for name, n in variant["calib"].items() for clip in clips[name][:n]
            ]
            extra: dict[str, Any] = {}
            if "sq" in variant:
                alphas = nncf.AdvancedSmoothQuantParameters(matmul=variant["sq"])
                extra["advanced_parameters"] = nncf.AdvancedQuantizationParameters(
                    smooth_quant_alphas=alphas
                )
            quantized = nncf.quantize(
                core.read_model(str(xml)),
                nncf.Dataset(calibration),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration),
                **extra,
            )
            compiled = core.compile_model(quantized, "CPU", {})
        made_s = time.perf_counter() - started
        per_group = {
            n: compare(probabilities(compiled, x, weight, bias), reference[n])
            for n, x in clips.items()
        }
        agree = sum(g["agree"] for g in per_group.values())
        total = sum(g["videos"] for g in per_group.values())
        worst = max(g["max_diff"] for g in per_group.values())
        results.append({"variant": variant, "made_s": made_s, "groups": per_group})
        print(f"{text}: made in {made_s:.0f} s; top-1 {agree}/{total}; max diff {worst:.3f}")
        for n, g in per_group.items():
            print(
                f"  {n}: {g['agree']}/{g['videos']}, max {g['max_diff']:.3f}, mean of maxima "
                f"{g['mean_max_diff']:.3f}, float32 margins of the flips {g['flip_margins']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
