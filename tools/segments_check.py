"""Check ``vmae classify --segments`` window by window, on any videos.

It runs vmae (a subprocess: float32, torch backend, every label) and compares each window
row with references computed independently of vmae's code, from one full PyAV decode of the
video (every frame, in presentation order, with PyAV's ``frame.time``):

* tiling: windows from frame 0 to the last decoded frame, one starting every hop frames (the
  last one placed to end on the last frame), each spanning the window (a video shorter than
  one window: one window over all of it);
* ``start_s`` / ``end_s``: the times of the window's first and last frames in the full
  decode, within one frame (the error is also given in frames, by interpolating the decoded
  times, so it means the same in a variable-frame-rate file; where the decoded times do not
  increase, as in an AVI with packed B-frames, at the nominal rate, with a note);
* ``frame_indices``: ``start + floor(j * span / T)`` for ``j < T``, clamped to the last frame;
* probabilities: Hugging Face's processor (as :mod:`tools.fidelity` uses it) + the same model
  (``VideoMAEForVideoClassification``) on the decoded frames at the window's
  ``frame_indices``, all labels within 1e-3, on a sample of windows (``--prob-windows``);
* the video's row: each label's probability the mean of its windows' (within 1e-3).

Windows in seconds are turned into frames at the stream's average frame rate (else its
guessed rate, else 30 fps), halves rounded up; a window shorter than T frames is widened to
T; the default window is T frames every 4th (64 for a 16-frame model), the default hop the
window.

    python tools/segments_check.py VIDEO [VIDEO ...] --model MODEL_DIR [--window 64f|2s]
        [--hop 64f|2s] [--prob-windows N] [--out-dir DIR [--reuse]] [--vmae CMD]
        [--vmae-args ARGS] [--json OUT]

The table goes to stdout, one JSON line per video to stderr.

Exit status 1 when any check misses its bound (or vmae fails on a video).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.fidelity import hf_pixel_values, model_probs, upright_rgb

#: Bounds of the segments issue.
MAX_PROB_DIFF = 1e-3
MAX_TIME_ERROR_FRAMES = 1.0
#: The default window: T frames every this many (VideoMAE's training clip).
DEFAULT_STRIDE = 4
#: Frame rate for windows in seconds when the stream states none.
FALLBACK_FPS = 30.0
#: Windows whose probabilities are checked per video by default (first, last, evenly
#: spaced ones between).
DEFAULT_PROB_WINDOWS = 10

_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([fs])\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# The expected windows
# --------------------------------------------------------------------------------------


def span_frames(text: str, fps: float) -> int:
    """A window or hop (``64f``, ``2s``) in frames at ``fps`` (seconds: halves round up)."""
    match = _SPAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a length (64f, 2s)")
    value, unit = float(match.group(1)), match.group(2).lower()
    if unit == "f":
        return int(value)
    return max(1, math.floor(value * fps + 0.5))


@dataclass(frozen=True)
class Geometry:
    """Windows in frames: ``span`` frames each, one every ``hop``, T = ``frames`` of each."""

    span: int
    hop: int
    frames: int

    def plan(self, n: int) -> list[tuple[int, int]]:
        """(first, last) frame of every window of a video of ``n`` frames."""
        if n <= 0:
            return []
        if n < self.span:
            return [(0, n - 1)]
        out = [(s, s + self.span - 1) for s in range(0, n - self.span + 1, self.hop)]
        if out[-1][1] < n - 1:
            out.append((n - self.span, n - 1))
        return out

    def indices(self, start: int, n: int) -> list[int]:
        """The T frames the model sees in the window starting at ``start``."""
        last = min(start + self.span - 1, n - 1)
        return [min(start + (j * self.span) // self.frames, last) for j in range(self.frames)]


def geometry(window: str | None, hop: str | None, frames_per_clip: int, fps: float) -> Geometry:
    """The windows vmae promises for ``--window``/``--hop`` (``None``: its defaults) at ``fps``:
    the hop defaults to the window as given, before a window under T frames is widened."""
    span = span_frames(window, fps) if window else frames_per_clip * DEFAULT_STRIDE
    span = max(span, frames_per_clip)
    step = span_frames(hop, fps) if hop else (span_frames(window, fps) if window else span)
    return Geometry(span, step, frames_per_clip)


def sample_windows(count: int, wanted: int) -> list[int]:
    """Window numbers whose probabilities are checked: all when ``wanted`` is 0 or covers
    them, else the first, the last and evenly spaced ones between (``wanted`` in all)."""
    if wanted <= 0 or wanted >= count:
        return list(range(count))
    return sorted({round(x) for x in np.linspace(0, count - 1, max(wanted, 2))})


def frames_off(t: float, times: np.ndarray, i: int) -> float:
    """How many frames time ``t`` lies from frame ``i``: its fractional position among the
    decoded frame times (linear between frames, the edge interval beyond the ends)."""
    n = len(times)
    if n == 1:
        return 0.0 if abs(t - times[0]) < 1e-6 else math.inf  # rows round to 1e-6 s
    pos = np.searchsorted(times, t)
    k = int(min(max(pos, 1), n - 1))  # the interval (k - 1, k) holding or nearest t
    gap = times[k] - times[k - 1]
    where = (k - 1) + ((t - times[k - 1]) / gap if gap > 0 else 0.0)
    return float(abs(where - i))


# --------------------------------------------------------------------------------------
# The reference: one full decode, Hugging Face on the sampled windows
# --------------------------------------------------------------------------------------


@dataclass
class Reference:
    """What a full decode of one video gives: frame count, times, rate, and the reference
    probabilities of the sampled windows (by window number)."""

    n: int
    times: list[float | None]
    fps: float | None
    probs: dict[int, Any]


def reference(path: str, windows: dict[int, list[int]], model_dir: str, model: Any) -> Reference:
    """Decode every frame of ``path`` with PyAV, keeping only the frames of the windows in
    ``windows`` (number -> frame indices) and running each through Hugging Face as soon as
    its frames are decoded, so memory holds a few windows at most."""
    import av

    pending = sorted(windows.items(), key=lambda kv: max(kv[1]))
    needed: dict[int, int] = {}  # frame index -> windows still needing it
    for _, idx in pending:
        for i in set(idx):
            needed[i] = needed.get(i, 0) + 1
    kept: dict[int, Any] = {}
    probs: dict[int, Any] = {}
    times: list[float | None] = []

    def run_ready(upto: int) -> None:
        while pending and max(pending[0][1]) <= upto:
            number, idx = pending.pop(0)
            pv = hf_pixel_values(model_dir, [kept[i] for i in idx])
            probs[number] = model_probs(model, pv)
            for i in set(idx):
                needed[i] -= 1
                if not needed[i]:
                    del kept[i]

    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        n = 0
        for frame in container.decode(stream):
            times.append(frame.time)
            if n in needed:
                kept[n] = upright_rgb(frame)
            run_ready(n)
            n += 1
    return Reference(n, times, float(rate) if rate else None, probs)


# --------------------------------------------------------------------------------------
# Running vmae
# --------------------------------------------------------------------------------------


def vmae_command(given: str | None) -> list[str]:
    """``--vmae`` split, else the ``vmae`` beside this Python, else the one on PATH."""
    if given:
        return shlex.split(given)
    beside = Path(sys.executable).parent / "vmae"
    found = str(beside) if beside.exists() else shutil.which("vmae")
    if found is None:
        raise SystemExit("no vmae command found: install vmae-cli or pass --vmae")
    return [found]


def run_vmae(
    cmd: list[str], videos: list[str], args: argparse.Namespace, labels: int, out: Path
) -> tuple[dict[str, dict], dict[str, list[dict]], int, float]:
    """Run ``vmae classify --segments`` on ``videos``; rows by path: video rows, window rows
    (in window order); also its exit status and wall time."""
    rows_path, windows_path = out / "videos.jsonl", out / "windows.jsonl"
    rc, wall = 0, 0.0
    if not args.reuse:
        rc, wall = _run(cmd, videos, args, labels, rows_path, windows_path)
    videos_rows: dict[str, dict] = {}
    window_rows: dict[str, list[dict]] = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            videos_rows[os.path.abspath(row["path"])] = row
    if windows_path.exists():
        for line in windows_path.read_text().splitlines():
            row = json.loads(line)
            window_rows.setdefault(os.path.abspath(row["path"]), []).append(row)
    return videos_rows, window_rows, rc, wall


def _run(
    cmd: list[str],
    videos: list[str],
    args: argparse.Namespace,
    labels: int,
    rows_path: Path,
    windows_path: Path,
) -> tuple[int, float]:
    for p in (rows_path, windows_path):
        p.unlink(missing_ok=True)
    argv = [*cmd, "classify", *videos, "-m", args.model, "--segments"]
    argv += ["-o", str(rows_path), "--segments-out", str(windows_path), "-k", str(labels)]
    argv += ["--overwrite"]  # a check run again replaces its own outputs
    argv += ["--dtype", "float32", "--backend", "torch", "--device", "cpu", "-q"]
    if args.window:
        argv += ["--window", args.window]
    if args.hop:
        argv += ["--hop", args.hop]
    argv += shlex.split(args.vmae_args or "")
    print("$", shlex.join(argv), file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
    return done.returncode, wall


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------


def check_video(
    path: str,
    video_row: dict | None,
    windows: list[dict],
    args: argparse.Namespace,
    config: dict,
    model: Any,
) -> dict:
    """Every check for one video; a dict of figures, ``problems`` and ``ok``."""
    labels = {int(k): v for k, v in config["id2label"].items()}
    t = int(config["num_frames"])
    row: dict[str, Any] = {"path": path, "problems": []}
    problems: list[str] = row["problems"]
    if video_row is None:
        problems.append("no video row")
    elif video_row.get("status") != "ok":
        problems.append(f"video row status {video_row.get('status')}: {video_row.get('error')}")
    windows = sorted(windows, key=lambda w: w["window"])
    row["windows"] = len(windows)
    if [w["window"] for w in windows] != list(range(len(windows))):
        problems.append("window numbers are not 0..m-1")
    bad_status = [w["window"] for w in windows if w.get("status") != "ok"]
    if bad_status:
        problems.append(f"windows not ok: {bad_status[:10]}")
    sample = sample_windows(len(windows), args.prob_windows)
    started = time.perf_counter()
    ref = reference(
        path,
        {k: windows[k]["frame_indices"] for k in sample if windows[k].get("frame_indices")},
        args.model,
        model,
    )
    row["ref_seconds"] = round(time.perf_counter() - started, 1)
    n = ref.n
    fps = ref.fps or FALLBACK_FPS
    geo = geometry(args.window, args.hop, t, fps)
    row.update(frames=n, fps=round(fps, 3), span=geo.span, hop=geo.hop)
    if video_row is not None and video_row.get("frames_decoded") != n:
        problems.append(f"frames_decoded {video_row.get('frames_decoded')} != full decode {n}")
    if not windows:
        problems.append("no window rows")
        row["ok"] = False
        return row

    # (a) tiling
    got = [(w["start_frame"], w["end_frame"]) for w in windows]
    expected = geo.plan(n)
    tiling: list[str] = []
    if got[0][0] != 0:
        tiling.append(f"first window starts at frame {got[0][0]}")
    if got[-1][1] != n - 1:
        tiling.append(f"last window ends at frame {got[-1][1]}, the last frame is {n - 1}")
    want_span = min(geo.span, n)
    for k, (s, e) in enumerate(got):
        if e - s + 1 != want_span:
            tiling.append(f"window {k} spans {e - s + 1} frames, not {want_span}")
        if k and k < len(got) - 1 and s - got[k - 1][0] != geo.hop:
            tiling.append(f"window {k} starts {s - got[k - 1][0]} after window {k - 1}")
    if len(got) > 1 and not 0 < got[-1][0] - got[-2][0] <= geo.hop:
        tiling.append(f"last window starts {got[-1][0] - got[-2][0]} after the one before")
    if got != expected:
        tiling.append(
            f"{len(got)} windows {got[:3]}..., expected {len(expected)} {expected[:3]}..."
        )
    row["tiling_ok"] = not tiling
    problems += tiling[:5]
    if len(tiling) > 5:
        problems.append(f"... {len(tiling) - 5} more tiling problems")

    # (b) times
    known = [x for x in ref.times if x is not None]
    if len(known) != n:
        problems.append(f"{n - len(known)} decoded frames have no time")
    times = np.asarray([x if x is not None else np.nan for x in ref.times], dtype=np.float64)
    # Not a failure: AVI has no presentation times, and with packed B-frames FFmpeg gives
    # decoded frames the times of the packets, not in display order. The error in frames is
    # then taken at the nominal rate, and the times are also compared with the sorted ones.
    increasing = bool(np.all(np.diff(times) > 0))
    row["times_increasing"] = increasing
    in_order = np.sort(times)
    err_s, err_f, exact, missing_times, sorted_f = 0.0, 0.0, 0, 0, 0.0
    for w in windows:
        for key, i in (("start_s", w["start_frame"]), ("end_s", w["end_frame"])):
            value = w.get(key)
            if value is None or not 0 <= i < n or math.isnan(times[i]):
                missing_times += 1
                continue
            e_s = abs(value - float(times[i]))
            err_s = max(err_s, e_s)
            if increasing:
                err_f = max(err_f, frames_off(value, times, i))
            else:
                err_f = max(err_f, e_s * fps)
                sorted_f = max(sorted_f, abs(value - float(in_order[i])) * fps)
            exact += int(e_s < 1e-6)
    row.update(time_err_s=err_s, time_err_frames=round(err_f, 4), times_exact=exact)
    if not increasing:
        row["time_err_vs_sorted_frames"] = round(sorted_f, 4)
        row["notes"] = [
            "decoded frame times are not in increasing order (the container's); "
            f"window times are {sorted_f:.2f} frames off the sorted times"
        ]
    if missing_times:
        problems.append(f"{missing_times} start_s/end_s missing or for frames outside the video")
    if err_f > MAX_TIME_ERROR_FRAMES:
        problems.append(f"a window time is {err_f:.2f} frames ({err_s:.4f} s) off")

    # (c) frame indices
    mismatched = [
        w["window"] for w in windows if w["frame_indices"] != geo.indices(w["start_frame"], n)
    ]
    row["index_mismatches"] = len(mismatched)
    if mismatched:
        w = windows[mismatched[0]]
        problems.append(
            f"frame_indices of {len(mismatched)} windows, e.g. window {w['window']}: "
            f"{w['frame_indices']} != {geo.indices(w['start_frame'], n)}"
        )

    # (d) probabilities, all labels, on the sampled windows
    diffs = []
    for k in sample:
        scores = {x["label"]: x["score"] for x in windows[k].get("top_k") or []}
        if len(scores) != len(labels):
            problems.append(f"window {k} has {len(scores)} of {len(labels)} labels (-k)")
        if k not in ref.probs:
            problems.append(f"window {k}: no reference (frames outside the full decode)")
            continue
        p = ref.probs[k]
        diffs.append(
            max(abs(scores[name] - float(p[i])) for i, name in labels.items() if name in scores)
        )
    row["prob_windows"] = len(diffs)
    row["prob_diff"] = max(diffs) if diffs else None
    if diffs and max(diffs) > MAX_PROB_DIFF:
        problems.append(f"probabilities {max(diffs):.2e} off the reference")

    # the video row: the mean of its windows
    if video_row is not None and video_row.get("top_k"):
        mean: dict[str, float] = {}
        for w in windows:
            for x in w.get("top_k") or []:
                mean[x["label"]] = mean.get(x["label"], 0.0) + x["score"] / len(windows)
        vid = {x["label"]: x["score"] for x in video_row["top_k"]}
        row["mean_diff"] = max(abs(vid[name] - mean.get(name, 0.0)) for name in vid)
        if row["mean_diff"] > MAX_PROB_DIFF:
            problems.append(f"video row is {row['mean_diff']:.2e} off the mean of its windows")
    if video_row is not None and video_row.get("windows") not in (None, len(windows)):
        problems.append(f"video row says {video_row['windows']} windows, {len(windows)} rows")
    row["ok"] = not problems
    return row


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

COLUMNS = (
    ("video", 34),
    ("frames", 6),
    ("fps", 7),
    ("span/hop", 9),
    ("windows", 7),
    ("tiling", 6),
    ("t_err_s", 8),
    ("t_err_fr", 8),
    ("idx_bad", 7),
    ("p_win", 5),
    ("p_diff", 8),
    ("mean_diff", 9),
    ("ok", 4),
)


def _cells(r: dict) -> list[str]:
    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    name = Path(r["path"]).name
    return [
        name if len(name) <= 34 else "..." + name[-31:],
        num(r.get("frames"), "d"),
        num(r.get("fps"), ".3f"),
        f"{r.get('span', '-')}/{r.get('hop', '-')}",
        num(r.get("windows"), "d"),
        "-" if "tiling_ok" not in r else ("ok" if r["tiling_ok"] else "BAD"),
        num(r.get("time_err_s"), ".1e"),
        num(r.get("time_err_frames"), ".4f"),
        num(r.get("index_mismatches"), "d"),
        num(r.get("prob_windows"), "d"),
        num(r.get("prob_diff"), ".1e"),
        num(r.get("mean_diff"), ".1e"),
        "ok" if r["ok"] else "FAIL",
    ]


def print_table(rows: Sequence[dict]) -> None:
    print("  ".join(f"{name:<{w}}" for name, w in COLUMNS))
    for r in rows:
        print("  ".join(f"{c:<{w}}" for c, (_, w) in zip(_cells(r), COLUMNS, strict=True)))
    for r in rows:
        for p in r["problems"]:
            print(f"  {Path(r['path']).name}: {p}")
        for note in r.get("notes", []):
            print(f"  {Path(r['path']).name} (note): {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--model", required=True, help="a local model folder")
    parser.add_argument("--window", help="--window for vmae (64f, 2s); default: vmae's")
    parser.add_argument("--hop", help="--hop for vmae (64f, 2s); default: the window")
    parser.add_argument(
        "--prob-windows",
        type=int,
        default=DEFAULT_PROB_WINDOWS,
        metavar="N",
        help="windows per video whose probabilities are checked: the first, the last and "
        "evenly spaced ones; 0 = all (default %(default)s)",
    )
    parser.add_argument("--out-dir", help="where vmae writes its rows (default: a temp dir)")
    parser.add_argument("--vmae", help="the vmae command (default: the one beside python)")
    parser.add_argument("--vmae-args", help="more vmae classify options, one string")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="do not run vmae: check the rows it already wrote in --out-dir",
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    from transformers import VideoMAEForVideoClassification

    config = json.loads((Path(args.model) / "config.json").read_text())
    if args.reuse and not args.out_dir:
        parser.error("--reuse needs --out-dir")
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="segments_check_"))
    out.mkdir(parents=True, exist_ok=True)
    videos = [os.path.abspath(v) for v in args.videos]
    video_rows, window_rows, rc, wall = run_vmae(
        vmae_command(args.vmae), videos, args, len(config["id2label"]), out
    )
    print(f"vmae exit status {rc}, rows in {out}", file=sys.stderr, flush=True)
    model = VideoMAEForVideoClassification.from_pretrained(args.model).eval().float()
    rows = []
    for path in videos:
        row = check_video(
            path, video_rows.get(path), window_rows.get(path, []), args, config, model
        )
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print_table(rows)
    bad = [r for r in rows if not r["ok"]]
    windows = sum(r.get("windows", 0) for r in rows)
    checked = sum(r.get("prob_windows") or 0 for r in rows)
    diffs = [r["prob_diff"] for r in rows if r.get("prob_diff") is not None]
    errs = [r["time_err_frames"] for r in rows if "time_err_frames" in r]
    print(
        f"{len(rows) - len(bad)}/{len(rows)} videos pass; {windows} windows (tiling, times, "
        f"indices), {checked} with probabilities; max time error "
        f"{max(errs, default=0):.4f} frames; max prob diff {max(diffs, default=0):.2e} "
        f"(bound {MAX_PROB_DIFF:g}); vmae exit {rc}"
    )
    if args.json:
        summary = {
            "window": args.window,
            "hop": args.hop,
            "prob_windows": args.prob_windows,
            "vmae_exit": rc,
            "vmae_seconds": round(wall, 1),
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 1 if bad or rc else 0


if __name__ == "__main__":
    sys.exit(main())
