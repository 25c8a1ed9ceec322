"""Write a reproducible mix of synthetic videos that resembles what users feed to vmae.

What varies from file to file (drawn from ``--seed``; file ``i`` is the same whatever
``--count`` is):

* duration 3-140 s, log-uniform (median ~20 s: many short clips, a few long ones);
* frame size from 320x240 to 1920x1080, mostly 720p/1080p; ~20 % portrait, half of them
  stored portrait (1080x1920, as screen recordings and downloads are) and half stored
  landscape with a 90 degree display matrix (as phones write them, MP4 only);
* frame rate 23.976, 24, 25, 29.97 or 30;
* codec and container: H.264 (High profile, CABAC, up to 3 B-frames) in MP4 or MKV, HEVC in
  MP4 (``hvc1``) or MKV, VP9 in WebM or MKV, MPEG-4 part 2 (``XVID``, B-frames) in AVI;
* keyframe interval 2 s, or 10 s for one file in five;
* bitrate 0.05-0.14 bits per pixel (H.264 1080p30 ~ 3-9 Mbit/s; HEVC and VP9 0.6x,
  MPEG-4 1.6x), i.e. what phones, cameras and web downloads use, so decoding costs what it
  costs on real files;
* an audio track (AAC, Opus for WebM, MP3 for AVI) on most files, since demuxers must skip
  its packets; some MP4s have their index at the front (``+faststart``).

The picture is not trivially compressible: a textured background (two octaves of smoothed
noise) seen through a slowly panning "camera", a moving colour gradient, an object crossing
the frame, per-frame film grain and a scene cut every 4-20 s. Encoders are run in a
rate-controlled mode, so files have realistic bitrates whatever the content.

Usage::

    python benchmarks/make_mix.py DIR                      # 40 videos, ~21 min of video, ~0.45 GB
    python benchmarks/make_mix.py DIR --count 80 --seed 1 --jobs 4
    python benchmarks/make_mix.py DIR --count 3 --max-duration 4 --max-side 640   # quick
    python benchmarks/make_mix.py DIR --include ~/Videos/a.mp4 ~/Videos/more/   # symlinked

Existing files are kept (a rerun completes an interrupted mix); ``--force`` rewrites them.
``DIR/mix.json`` lists every file with its parameters. Files are byte-identical between runs
with ``--threads 1`` (the default) on the same PyAV/FFmpeg build.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import describe_videos, fmt_bytes, fmt_duration, list_videos

GENERATOR_VERSION = 1

#: (width, height, weight) of landscape sizes.
SIZES = (
    (320, 240, 0.04),
    (640, 360, 0.10),
    (640, 480, 0.08),
    (854, 480, 0.10),
    (960, 540, 0.06),
    (1280, 720, 0.30),
    (1920, 1080, 0.32),
)
FRAME_RATES = ("24000/1001", "24", "25", "30000/1001", "30")
FRAME_RATE_WEIGHTS = (0.10, 0.15, 0.20, 0.25, 0.30)
#: codec -> (weight, [(container, weight)], bitrate factor relative to H.264)
CODECS = {
    "h264": (0.55, (("mp4", 0.75), ("mkv", 0.25)), 1.0),
    "hevc": (0.20, (("mp4", 0.8), ("mkv", 0.2)), 0.6),
    "vp9": (0.15, (("webm", 0.8), ("mkv", 0.2)), 0.6),
    "mpeg4": (0.10, (("avi", 1.0),), 1.6),
}
MUXERS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm", "avi": "avi"}
MIN_DURATION_S, MAX_DURATION_S = 3.0, 140.0


@dataclass(frozen=True)
class MixItem:
    """One file of the mix: everything needed to write it again."""

    index: int
    filename: str
    codec: str
    container: str
    width: int  # as encoded
    height: int
    rotation: int  # display matrix, clockwise degrees (0 or 90)
    fps: str  # a fraction, e.g. "30000/1001"
    duration_s: float
    num_frames: int
    gop_frames: int
    bframes: int
    bitrate: int  # bit/s, video
    audio: str | None  # audio encoder or None
    faststart: bool


def _choice(rng, items, weights):
    p = [w / sum(weights) for w in weights]
    return items[int(rng.choice(len(items), p=p))]


def plan_item(
    seed: int, index: int, max_duration: float | None = None, max_side: int | None = None
) -> MixItem:
    """The parameters of file ``index`` of the mix ``seed`` (independent of the file count)."""
    import numpy as np

    rng = np.random.default_rng([seed, index, 0])
    codec = _choice(rng, list(CODECS), [c[0] for c in CODECS.values()])
    _, containers, bitrate_factor = CODECS[codec]
    container = _choice(rng, [c for c, _ in containers], [w for _, w in containers])
    w, h = _choice(rng, [(s[0], s[1]) for s in SIZES], [s[2] for s in SIZES])
    rotation = 0
    if rng.random() < 0.2:  # portrait
        if container == "mp4" and rng.random() < 0.5:
            rotation = 90  # phone: stored landscape, shown portrait
        else:
            w, h = h, w  # stored portrait
    fps = _choice(rng, FRAME_RATES, FRAME_RATE_WEIGHTS)
    duration = math.exp(rng.uniform(math.log(MIN_DURATION_S), math.log(MAX_DURATION_S)))
    gop_s = 10.0 if rng.random() < 0.2 else 2.0
    bpp = rng.uniform(0.05, 0.14)
    has_audio = rng.random() < 0.75
    faststart = container == "mp4" and rng.random() < 0.3
    # Caps for quick runs are applied after every draw, so they do not change other files.
    if max_duration is not None:
        duration = min(duration, max_duration)
    if max_side is not None and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(16, int(w * scale) // 2 * 2), max(16, int(h * scale) // 2 * 2)
    rate = Fraction(fps)
    num_frames = max(1, round(duration * rate))
    duration = round(num_frames / float(rate), 3)
    bitrate = max(150_000, int(bpp * w * h * float(rate) * bitrate_factor))
    audio = None
    if has_audio:
        audio = {"webm": "libopus", "avi": "libmp3lame"}.get(container, "aac")
    label = {"24000/1001": "23.976", "30000/1001": "29.97"}.get(fps, fps)
    rot = "_rot90" if rotation else ""
    name = f"{index:03d}_{codec}_{w}x{h}{rot}_{label}fps_{duration:.0f}s.{container}"
    return MixItem(
        index=index,
        filename=name,
        codec=codec,
        container=container,
        width=w,
        height=h,
        rotation=rotation,
        fps=fps,
        duration_s=duration,
        num_frames=num_frames,
        gop_frames=max(1, round(gop_s * float(rate))),
        bframes=0 if codec == "vp9" else (2 if codec == "mpeg4" else 3),
        bitrate=bitrate,
        audio=audio,
        faststart=faststart,
    )


# --------------------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------------------


class Scene:
    """Frames (YUV 4:2:0, as one ``(H * 3 / 2, W)`` uint8 array) of a synthetic "shot"."""

    GRAIN_FRAMES = 7  # a prime: the grain never repeats with a short period

    def __init__(self, rng, width: int, height: int, fps: float):
        import numpy as np

        self.np = np
        self.rng = rng
        self.w, self.h, self.fps = width, height, fps
        self.mx, self.my = max(2, width // 10), max(2, height // 10)
        self.grain = [
            rng.normal(0, 5, (height, width)).clip(-20, 20).astype(np.int16)
            for _ in range(self.GRAIN_FRAMES)
        ]
        self.cw, self.ch = width // 2, height // 2
        self.luma = np.empty((height, width), np.int16)
        self.out = np.empty((height * 3 // 2, width), np.uint8)
        self.next_cut = 0
        self._new_shot(0)

    def _smooth_noise(self, h: int, w: int, cell: int):
        import cv2

        np = self.np
        small = self.rng.uniform(0, 1, (h // cell + 3, w // cell + 3)).astype(np.float32)
        big = cv2.resize(small, (w + 3 * cell, h + 3 * cell), interpolation=cv2.INTER_CUBIC)
        return big[cell : cell + h, cell : cell + w]

    def _new_shot(self, t: int) -> None:
        np = self.np
        th, tw = self.h + 2 * self.my, self.w + 2 * self.mx
        tex = 0.55 * self._smooth_noise(th, tw, max(8, tw // 12))
        tex += 0.45 * self._smooth_noise(th, tw, max(2, tw // 160))
        lo, hi = float(tex.min()), float(tex.max())
        self.tex_y = (30 + (tex - lo) * (170 / max(hi - lo, 1e-6))).astype(np.int16)
        ch_h, ch_w = self.ch + self.my, self.cw + self.mx
        self.tex_u = (128 + 60 * (self._smooth_noise(ch_h, ch_w, max(8, ch_w // 6)) - 0.5)).astype(
            np.int16
        )
        self.tex_v = (128 + 60 * (self._smooth_noise(ch_h, ch_w, max(8, ch_w // 6)) - 0.5)).astype(
            np.int16
        )
        self.pan_period = self.rng.uniform(4, 12) * self.fps
        self.pan_phase = self.rng.uniform(0, 2 * math.pi)
        self.obj_w = max(4, int(self.w * self.rng.uniform(0.08, 0.2)))
        self.obj_h = max(4, int(self.h * self.rng.uniform(0.08, 0.2)))
        self.obj_y = int(self.rng.uniform(0, self.h - self.obj_h))
        self.obj_speed = self.rng.uniform(0.15, 0.5) * self.w / self.fps  # px per frame
        self.obj_level = int(self.rng.uniform(60, 230))
        self.shot_start = t
        self.next_cut = t + int(self.rng.uniform(4, 20) * self.fps)

    def frame(self, t: int):
        np = self.np
        if t >= self.next_cut:
            self._new_shot(t)
        a = 2 * math.pi * t / self.pan_period + self.pan_phase
        ox = int(round(self.mx * (1 + math.sin(a))))
        oy = int(round(self.my * (1 + math.sin(0.7 * a + 1.0))))
        luma = self.luma
        np.copyto(luma, self.tex_y[oy : oy + self.h, ox : ox + self.w])
        # A gradient sweeping across the picture (light changes), then grain.
        ramp = (np.arange(self.w, dtype=np.int16) + 3 * t) % 512
        luma += (np.minimum(ramp, 511 - ramp) // 8 - 16)[None, :]
        luma += self.grain[t % self.GRAIN_FRAMES]
        # An object crossing the frame; its own texture comes along with it.
        x = int((t - self.shot_start) * self.obj_speed) % (self.w + self.obj_w) - self.obj_w
        x0, x1 = max(0, x), min(self.w, x + self.obj_w)
        if x1 > x0:
            y0, y1 = self.obj_y, self.obj_y + self.obj_h
            patch = self.tex_y[y0:y1, x0 - x + 0 : x1 - x + 0] // 4 + self.obj_level - 32
            luma[y0:y1, x0:x1] = patch
        y = self.out[: self.h]
        np.clip(luma, 0, 255, out=luma)
        y[:] = luma
        cox, coy = ox // 2, oy // 2
        u = self.tex_u[coy : coy + self.ch, cox : cox + self.cw]
        v = self.tex_v[coy : coy + self.ch, cox : cox + self.cw]
        shift = int(20 * math.sin(t / (3 * self.fps)))
        chroma = self.out[self.h :].reshape(-1)
        n = self.ch * self.cw
        chroma[:n] = np.clip(u + shift, 0, 255).reshape(-1)
        chroma[n:] = np.clip(v - shift, 0, 255).reshape(-1)
        return self.out


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def _video_options(item: MixItem, threads: int) -> tuple[str, dict[str, str]]:
    if item.codec == "h264":
        # superfast keeps CABAC, B-frames and the deblocking filter (what real H.264 has;
        # ultrafast drops them and makes decoding unrealistically cheap).
        return "libx264", {"preset": "superfast", "threads": str(threads)}
    if item.codec == "hevc":
        params = f"log-level=error:pools={threads}:frame-threads={min(threads, 4)}"
        return "libx265", {"preset": "ultrafast", "x265-params": params}
    if item.codec == "vp9":
        return "libvpx-vp9", {
            "deadline": "realtime",
            "cpu-used": "8",
            "threads": str(threads),
            "row-mt": "1" if threads > 1 else "0",
        }
    return "mpeg4", {"threads": str(threads)}


class _AudioTrack:
    """A quiet tone with noise, encoded in fixed-size frames as the video advances."""

    def __init__(self, container, encoder: str, rng):
        import numpy as np

        self.np = np
        self.rate = 48000 if encoder == "libopus" else 44100
        self.stream = container.add_stream(encoder, rate=self.rate, layout="mono")
        self.stream.bit_rate = 96_000
        self.frame_size = {"libopus": 960, "libmp3lame": 1152}.get(encoder, 1024)
        self.written = 0
        self.rng = rng
        self.freq = rng.uniform(150, 600)
        self.fmt = self.stream.format.name
        self.container = container

    def until(self, seconds: float) -> None:
        import av

        np = self.np
        target = int(seconds * self.rate)
        while self.written + self.frame_size <= target:
            n = self.frame_size
            t = (self.written + np.arange(n)) / self.rate
            x = 0.2 * np.sin(2 * np.pi * self.freq * t) + 0.05 * self.rng.standard_normal(n)
            if self.fmt.startswith("s16"):
                data = (x * (2**15 - 1)).astype(np.int16)[None, :]
            elif self.fmt.startswith("s32"):
                data = (x * (2**31 - 1)).astype(np.int32)[None, :]
            elif self.fmt.startswith("dbl"):
                data = x.astype(np.float64)[None, :]
            else:  # flt, fltp
                data = x.astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(data, format=self.fmt, layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.written
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))
            self.written += n

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))


def write_item(item: MixItem, out_dir: Path, seed: int, threads: int = 1) -> Path:
    """Encode ``item`` into ``out_dir`` (through a temporary name, renamed when complete)."""
    import av
    import numpy as np

    path = out_dir / item.filename
    tmp = out_dir / f".{item.filename}.partial"
    rng = np.random.default_rng([seed, item.index, 1])
    rate = Fraction(item.fps)
    encoder, options = _video_options(item, threads)
    muxer_options = {"fflags": "+bitexact"}
    if item.faststart:
        muxer_options["movflags"] = "+faststart"
    try:
        with av.open(
            str(tmp), "w", format=MUXERS[item.container], container_options=muxer_options
        ) as container:
            stream = container.add_stream(encoder, rate=rate)
            stream.width, stream.height = item.width, item.height
            stream.pix_fmt = "yuv420p"
            ctx = stream.codec_context
            ctx.time_base = 1 / rate
            ctx.bit_rate = item.bitrate
            ctx.gop_size = item.gop_frames
            if item.bframes:
                ctx.max_b_frames = item.bframes
            ctx.options = {"flags": "+bitexact", **options}
            if item.codec == "hevc" and item.container == "mp4":
                stream.codec_tag = "hvc1"  # what Apple devices write
            if item.codec == "mpeg4":
                stream.codec_tag = "XVID"
            if item.rotation:
                stream.set_display_rotation(-item.rotation)  # PyAV: counter-clockwise
            audio = _AudioTrack(container, item.audio, rng) if item.audio else None
            scene = Scene(rng, item.width, item.height, float(rate))
            for i in range(item.num_frames):
                frame = av.VideoFrame.from_ndarray(scene.frame(i), format="yuv420p")
                frame.pts = i
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
                if audio is not None:
                    audio.until((i + 1) / float(rate))
            container.mux(stream.encode(None))
            if audio is not None:
                audio.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_job(args: tuple[MixItem, Path, int, int]) -> tuple[MixItem, float, int]:
    item, out_dir, seed, threads = args
    start = time.perf_counter()
    path = write_item(item, out_dir, seed, threads)
    return item, time.perf_counter() - start, path.stat().st_size


def link_includes(paths: list[str], out_dir: Path) -> list[Path]:
    """Symlink the given videos (files, or every video under a folder) into out_dir/included."""
    target_dir = out_dir / "included"
    linked = []
    for arg in paths:
        src = Path(arg).expanduser()
        if not src.exists():
            print(f"make_mix: --include {arg}: no such file or directory", file=sys.stderr)
            continue
        sources = [Path(p) for p in list_videos(src)] if src.is_dir() else [src]
        for s in sources:
            target_dir.mkdir(parents=True, exist_ok=True)
            name, n = s.name, 1
            while (target_dir / name).is_symlink() or (target_dir / name).exists():
                if (target_dir / name).is_symlink() and os.path.realpath(
                    target_dir / name
                ) == os.path.realpath(s):
                    break  # already linked by an earlier run
                n += 1
                name = f"{s.stem}_{n}{s.suffix}"
            link = target_dir / name
            if not link.is_symlink():
                link.symlink_to(s.resolve())
            linked.append(link)
    return linked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=40, help="synthetic videos (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="mix seed (default 0)")
    parser.add_argument(
        "--include", nargs="+", default=[], metavar="PATH", help="videos or folders to symlink in"
    )
    parser.add_argument(
        "--max-duration", type=float, help="cap durations (seconds), for quick trials"
    )
    parser.add_argument("--max-side", type=int, help="cap the long side (pixels), for quick trials")
    parser.add_argument(
        "--jobs", type=int, default=1, help="videos encoded in parallel (default 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per encoder (default 1, reproducible)"
    )
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    args = parser.parse_args(argv)

    out: Path = args.out_dir
    items = [plan_item(args.seed, i, args.max_duration, args.max_side) for i in range(args.count)]
    if args.dry_run:
        for item in items:
            print(json.dumps(asdict(item)))
        total = sum(i.duration_s for i in items)
        print(f"{len(items)} videos, {fmt_duration(total)} of video", file=sys.stderr)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in items if args.force or not (out / i.filename).exists()]
    start = time.perf_counter()
    print(
        f"make_mix: {len(todo)} to write, {len(items) - len(todo)} already there",
        file=sys.stderr,
    )
    jobs = [(item, out, args.seed, args.threads) for item in todo]
    if args.jobs > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            results = pool.map(_write_job, jobs)
            _report_progress(results, len(jobs))
    else:
        _report_progress(map(_write_job, jobs), len(jobs))
    linked = link_includes(args.include, out) if args.include else []

    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": args.seed,
        "count": args.count,
        "max_duration": args.max_duration,
        "max_side": args.max_side,
        "items": [asdict(i) for i in items],
        "included": [str(p.relative_to(out)) for p in linked],
    }
    (out / "mix.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _print_summary(out, items, linked, time.perf_counter() - start)
    return 0


def _report_progress(results, total: int) -> None:
    for n, (item, seconds, size) in enumerate(results, 1):
        print(
            f"[{n}/{total}] {item.filename}: {fmt_bytes(size)}, "
            f"{item.bitrate / 1e6:.2f} Mbit/s target, {seconds:.1f} s to encode",
            file=sys.stderr,
        )


def _print_summary(out: Path, items: list[MixItem], linked: list[Path], seconds: float) -> None:
    from collections import Counter

    synth_bytes = sum((out / i.filename).stat().st_size for i in items)
    synth_s = sum(i.duration_s for i in items)
    frames = sum(i.num_frames for i in items)
    print(f"synthetic: {len(items)} videos, {fmt_duration(synth_s)} ({synth_s:.0f} s), ", end="")
    print(f"{frames} frames, {fmt_bytes(synth_bytes)}")
    for key in ("codec", "container"):
        counts = Counter(getattr(i, key) for i in items)
        print(f"  by {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    sizes = Counter(f"{i.width}x{i.height}" + (" rot90" if i.rotation else "") for i in items)
    print("  by size: " + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items())))
    total_s, total_b = synth_s, synth_bytes
    if linked:
        inc = describe_videos([str(p) for p in linked])
        print(
            f"included: {inc['videos']} videos, {fmt_duration(inc['total_duration_s'])}, "
            f"{fmt_bytes(inc['total_bytes'])} (duration known for {inc['with_duration']})"
        )
        total_s += inc["total_duration_s"]
        total_b += inc["total_bytes"]
    print(
        f"total: {len(items) + len(linked)} videos, {fmt_duration(total_s)} ({total_s:.0f} s), "
        f"{fmt_bytes(total_b)} in {out} (written in {seconds:.0f} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
