"""Walking a million files (issue 25): how soon the first row comes, how fast the walk goes
and what it holds in memory.

    python benchmarks/walk_scale.py [--dir /tmp] [--files 1000000] [--videos 10000]
                                    [--model MODEL_DIR] [--json FILE]

Builds once, and keeps under ``--dir`` for the next time, a tree of ``--files`` files shaped
like a camera or dataset archive: one flat folder of a tenth of them (100,000 at the default
size) and nested folders of about 1,000 entries (30 folders of 30). Most files are empty
``.jpg`` frames and ``.txt`` sidecars; ``--videos`` of them are ``.mp4`` hard links to one
small video made by ``tools/videogen.py`` (no disk per video: they only need rows).

Then, each in a fresh process so that its peak memory (``VmHWM``) is its own:

* ``walk``: the walk alone (``discovery.iter_video_paths``): files passed per second, the
  videos found, peak memory; ``walk_old`` is the same with the walk as it was
  (every ``DirEntry`` of a folder sorted), for comparison; ``python`` is a process that
  imports the walk and does nothing.
* ``run``: ``vmae_cli.run`` (what ``vmae classify`` calls) on the tree into a CSV file, the
  model's config read from the tests' tiny model: the time of its first row, of the walk's
  end (``on_total``) and of its end, and the main process's peak memory. The classifier is a
  stub (an ``ok`` row per path, at once) unless ``--model`` is given, so the walk, the
  resume look-ups and the row writing are what is measured, not decoding; ``--model`` runs
  the real pipeline (decoding workers and that model) on the same videos, ``--stop-after``
  rows. Times are seconds since ``run`` was called; the walk starts once the model's config
  is read (``walk_start_s``). ``resume`` is the same run again with ``resume=True``: every
  video skipped. ``one_video`` is a run on a folder of one video (the same imports: the
  memory the tree adds is the difference).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._common import _read_kb, machine_info, machine_summary, write_json  # noqa: E402

#: Entries of a nested folder, and nested folders per parent.
LEAF_ENTRIES = 1_000
LEAVES_PER_PARENT = 30
#: What a finished tree's folder holds, written last: a tree without it is built again.
MARKER = "tree.json"


def build_tree(base: Path, files: int, videos: int) -> Path:
    """The tree of ``files`` files, ``videos`` of them videos, under ``base`` (made once)."""
    folder = base / f"vmae-walk-scale-{files}-{videos}"
    spec = {"files": files, "videos": videos, "leaf_entries": LEAF_ENTRIES, "version": 1}
    marker = folder / MARKER
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return folder
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    from tools.videogen import write_video

    video = write_video(folder / "video.mp4", codec="h264", width=64, height=48, num_frames=24)
    one = folder / "one"
    one.mkdir()
    os.link(video, one / "clip.mp4")
    tree = folder / "tree"
    flat_files, flat_videos = files // 10, videos // 10
    _fill(tree / "flat", flat_files, flat_videos, video)
    rest, rest_videos = files - flat_files, videos - flat_videos
    leaves = -(-rest // LEAF_ENTRIES)
    for leaf in range(leaves):
        start, stop = leaf * rest // leaves, (leaf + 1) * rest // leaves
        v_start, v_stop = leaf * rest_videos // leaves, (leaf + 1) * rest_videos // leaves
        parent = tree / "nested" / f"d{leaf // LEAVES_PER_PARENT:03d}"
        _fill(parent / f"e{leaf % LEAVES_PER_PARENT:03d}", stop - start, v_stop - v_start, video)
    marker.write_text(json.dumps(spec))
    return folder


def _fill(folder: Path, entries: int, videos: int, video: Path) -> None:
    """``entries`` files in ``folder``: ``videos`` hard links to ``video`` spread among
    empty frames (``.jpg``) and sidecars (``.txt``, one in ten)."""
    folder.mkdir(parents=True)
    step = entries / videos if videos else 0
    at = {int(i * step) for i in range(videos)}
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for i in range(entries):
        if i in at:
            os.link(video, folder / f"clip_{i:06d}.mp4")
        else:
            name = f"notes_{i:06d}.txt" if i % 10 == 9 else f"frame_{i:06d}.jpg"
            os.close(os.open(folder / name, flags, 0o644))


def _old_walk(top: str) -> Iterator[str]:
    """The walk as it was before issue 25 (``discovery._walk`` then): every entry of a folder
    sorted, held while its subfolders are walked."""
    from vmae_cli.discovery import is_video_name

    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        path = os.path.join(top, entry.name)
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _old_walk(path)
            continue
        try:
            if entry.is_symlink() and os.path.isdir(path):
                continue
        except OSError:
            pass
        if is_video_name(entry.name):
            yield path


def _peak_mib() -> float:
    # VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
    return round(_read_kb("/proc/self/status", ("VmHWM",))["VmHWM"] / 1024, 1)


def measure_walk(tree: Path, old: bool) -> dict:
    from vmae_cli.discovery import iter_video_paths

    walk: Callable[[], Iterator[str]] = (
        (lambda: _old_walk(str(tree))) if old else (lambda: iter_video_paths([str(tree)]))
    )
    t0 = time.perf_counter()
    found = sum(1 for _ in walk())
    return {"videos": found, "walk_s": round(time.perf_counter() - t0, 2), "peak_mib": _peak_mib()}


def _stub_classifier() -> None:
    """Replace the classifier's pipeline by an ``ok`` row per path, made at once."""
    from vmae_cli.pipeline import Classifier, ClassifyOptions
    from vmae_cli.results import LabelScore, Prediction, file_stamp

    def classify_files(self, paths, options=None, *, stop=None, on_windows=None):
        protocol = (options or ClassifyOptions()).protocol.for_model(self.spec.frames_per_clip)
        for path in paths:
            if stop is not None and stop.is_set():
                return
            yield Prediction(
                path=path,
                status="ok",
                top_k=[LabelScore("stub", 1.0)],
                model=self.spec.name,
                protocol=protocol.name,
                stamp=file_stamp(path),
                model_revision=self.spec.revision,
            )

    Classifier.classify_files = classify_files


def measure_run(tree: Path, out: Path, model: Path, real: bool, resume: bool, stop_after: int):
    import vmae_cli
    from vmae_cli.runner import RunHooks, StopRequest

    if not real:
        _stub_classifier()
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    rows = [0]
    stop = StopRequest()

    def row(_p) -> None:
        marks.setdefault("first_row_s", time.perf_counter() - t0)
        rows[0] += 1
        if stop_after and rows[0] >= stop_after:
            stop.request("stop_after")

    def total(_n) -> None:
        marks["walk_end_s"] = time.perf_counter() - t0

    def skip(_p) -> None:
        marks.setdefault("first_skip_s", time.perf_counter() - t0)

    def status(text: str) -> None:
        if text == "listing the videos":
            marks["walk_start_s"] = time.perf_counter() - t0

    report = vmae_cli.run(
        [str(tree)],
        out,
        model=str(model),
        device="cpu",
        resume=resume,
        hooks=RunHooks(on_row=row, on_total=total, on_skip=skip, on_status=status),
        stop=stop,
    )
    figures = {k: round(v, 2) for k, v in marks.items()}
    figures["total_s"] = round(time.perf_counter() - t0, 2)
    figures |= {"found": report.found, "rows": report.videos, "skipped": report.skipped}
    figures["peak_mib"] = _peak_mib()
    return figures


def _child(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def child(args: list[str]) -> dict:
    what = args[0]
    if what == "python":
        import vmae_cli.discovery  # noqa: F401

        return {"peak_mib": _peak_mib()}
    if what in ("walk", "walk-old"):
        return measure_walk(Path(args[1]), old=what == "walk-old")
    tree, out, model, real, resume, stop_after = args[1:]
    return measure_run(
        Path(tree), Path(out), Path(model), real == "1", resume == "1", int(stop_after)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the tree is kept")
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--model", type=Path, help="run the real pipeline with this model")
    parser.add_argument("--stop-after", type=int, default=0, help="rows, with --model")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    t0 = time.perf_counter()
    folder = build_tree(args.dir, args.files, args.videos)
    info = machine_info()
    print(machine_summary(info))
    took = time.perf_counter() - t0
    print(
        f"tree: {folder} ({args.files} files, {args.videos} videos; {took:.0f} s to make or find)"
    )
    figures: dict = {"files": args.files, "videos": args.videos, "machine": info}
    tree = folder / "tree"
    figures["python"] = _child("python")
    figures["walk"] = _child("walk", str(tree))
    figures["walk_old"] = _child("walk-old", str(tree))
    for name in ("walk", "walk_old"):
        figures[name]["files_per_s"] = round(args.files / figures[name]["walk_s"])
    with tempfile.TemporaryDirectory() as tmp:
        from tiny_model import make_tiny_model

        model = args.model or make_tiny_model(Path(tmp) / "model")
        real, stop_after = "1" if args.model else "0", str(args.stop_after)
        out = Path(tmp) / "labels.csv"
        figures["one_video"] = _child(
            "run", str(folder / "one"), str(Path(tmp) / "one.csv"), str(model), real, "0", "0"
        )
        figures["run"] = _child("run", str(tree), str(out), str(model), real, "0", stop_after)
        figures["resume"] = _child("run", str(tree), str(out), str(model), real, "1", stop_after)
    figures["classifier"] = "model" if args.model else "stub"
    for name in ("python", "walk", "walk_old", "one_video", "run", "resume"):
        print(f"{name + ':':11} {json.dumps(figures[name])}")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
