"""Where a short run's time goes (issue 26, item 1): ``vmae --help``, a ``--resume`` that finds
nothing to do, and a run of one video with a warm OpenVINO conversion cache, each the median
of ``--runs`` runs, with a per-phase timeline; old code against new where ``--old`` names a
commit (its tree is exported with ``git archive`` and run with the same interpreter).

Each run is a fresh process, ``python -c BOOT ...`` with the code's folder first on
``sys.path``. ``BOOT`` records, as wall-clock offsets from the moment the parent started the
process, when the interpreter was up, when ``vmae_cli.cli`` was imported, and then, through
wrappers put around a few library functions as their modules are imported (a
``sys.meta_path`` hook; the code itself is not changed), when each phase began and ended:

``python``    interpreter and ``site`` up (the parent's ``Popen`` to the first line of BOOT)
``imports``   ``import vmae_cli.cli`` (typer, the command modules and what they import)
``cli``       parsing the options, up to ``runner.run``
``config``    ``model.read_model_spec`` (the model's config files)
``read-back`` ``sinks.Outputs.start`` (truncation, or the output read back for resume)
``model``     ``model.load_model`` (in the loading thread, while the workers decode); within
              it ``ov-verify`` (``openvino_backend.entry_damage``: the entry's sha256),
              ``ov-read`` (``core.read_model``) and ``ov-compile`` (``openvino_backend._compile``)
``decode``    the first decoded video out of the worker pool (``views.iter_decoded``)
``batch``     the first model call (``pipeline._Batches.infer``)
``run``       ``runner.run`` as a whole; ``exit``: from its return to the process's end

Byte code is cached (``PYTHONPYCACHEPREFIX`` in a temporary folder, one untimed run first):
an installed package has its ``.pyc`` files, and a shell with ``PYTHONDONTWRITEBYTECODE=1``
would otherwise compile every module on every run. CPU time is the process tree's user+sys
(the child's ``RUSAGE_CHILDREN`` includes its decoding workers): on a machine other jobs
share, wall time grows with the load, CPU time much less.

Usage::

    python benchmarks/startup.py --model MODEL_DIR --video VIDEO [--old main] [--runs 5]
    python benchmarks/startup.py --model M --video V --parts help,resume --json out.json

``--make WORKDIR`` writes a ViT-B with random weights (``make_model.py``) and a 10 s 720p
H.264 video (``make_mix.py``'s encoder) there first, and uses them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, machine_info, machine_summary, median, write_json

PHASES = (
    "python",
    "imports",
    "cli",
    "config",
    "read-back",
    "model",
    "ov-verify",
    "ov-read",
    "ov-compile",
    "decode",
    "batch",
    "run",
    "exit",
)

#: Run in the child: marks (name, "start"/"end", wall time) into the file $STARTUP_MARKS.
BOOT = r"""
import atexit, functools, importlib.abc, importlib.util, json, os, sys, time
T0 = float(os.environ["STARTUP_T0"]); MARKS = []
EVERY = os.environ.get("STARTUP_EVERY") == "1"  # every model call and decoded video marked
def mark(name, edge, extra=None):
    MARKS.append((name, edge, time.time() - T0, *([extra] if extra is not None else [])))
mark("python", "end")
def dump():
    mark("exit", "start")
    with open(os.environ["STARTUP_MARKS"], "w") as f:
        json.dump(MARKS, f)
atexit.register(dump)
def timed(name, fn, first_only=True):
    seen = []
    @functools.wraps(fn)
    def wrapper(*a, **k):
        if first_only and seen:
            return fn(*a, **k)
        seen.append(1)
        mark(name, "start")
        try:
            return fn(*a, **k)
        finally:
            mark(name, "end")
    return wrapper
def first_item(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        mark(name, "start")
        it = iter(fn(*a, **k))
        first = True
        for x in it:
            if first:
                mark(name, "end"); first = False
            if EVERY:
                mark("decoded", "at")
            yield x
    return wrapper
def every_call(name, fn):
    @functools.wraps(fn)
    def wrapper(self, clips, *a, **k):
        mark(name, "start", len(clips))
        try:
            return fn(self, clips, *a, **k)
        finally:
            mark(name, "end")
    return wrapper
def patch(mod):
    n = mod.__name__
    if n == "vmae_cli.runner":
        mod.run = timed("run", mod.run)
    elif n == "vmae_cli.model":
        mod.read_model_spec = timed("config", mod.read_model_spec)
        mod.load_model = timed("model", mod.load_model)
    elif n == "vmae_cli.sinks":
        mod.Outputs.start = timed("read-back", mod.Outputs.start)
    elif n == "vmae_cli.openvino_backend":
        mod.entry_damage = timed("ov-verify", mod.entry_damage)
        mod._compile = timed("ov-compile", mod._compile)
    elif n == "vmae_cli.views":
        mod.iter_decoded = first_item("decode", mod.iter_decoded)
    elif n == "vmae_cli.pipeline":
        infer = mod._Batches.infer
        mod._Batches.infer = every_call("calls", infer) if EVERY else timed("batch", infer)
    elif n == "openvino":
        core = getattr(mod, "Core", None)
        if core is not None:
            core.read_model = timed("ov-read", core.read_model)
WATCHED = {"vmae_cli.runner", "vmae_cli.model", "vmae_cli.sinks", "vmae_cli.openvino_backend",
           "vmae_cli.views", "vmae_cli.pipeline", "openvino"}
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module
                def exec_module(module, run=run):
                    run(module)
                    patch(module)
                spec.loader.exec_module = exec_module
                return spec
        return None
sys.meta_path.insert(0, Hook())
mark("imports", "start")
import vmae_cli.cli
mark("imports", "end")
mark("cli", "start")
sys.argv = ["vmae", *sys.argv[1:]]
vmae_cli.cli.main()
"""


def child_env(code: Path, cache: Path, pyc: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pyc)
    env["PYTHONPATH"] = str(code)
    env["VMAE_CACHE_DIR"] = str(cache)
    return env


def run_once(args: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """One child run: wall, CPU and the phases' (start, end) offsets in s."""
    marks_file = workdir / "marks.json"
    marks_file.unlink(missing_ok=True)
    env = {**env, "STARTUP_MARKS": str(marks_file)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    env["STARTUP_T0"] = repr(t0)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", BOOT, *args],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phases: dict[str, list[float]] = {"python": [0.0, 0.0]}
    try:
        for name, edge, t in json.loads(marks_file.read_text()):
            span = phases.setdefault(name, [t, t])
            span[0 if edge == "start" else 1] = t
    except (OSError, ValueError):
        pass
    phases.setdefault("exit", [wall, wall])[1] = wall
    if "cli" in phases:  # parsing ends where the run starts (or, for --help, at exit)
        phases["cli"][1] = phases.get("run", phases["exit"])[0]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rc": proc.returncode,
        "stderr": proc.stderr[-2000:],
        "phases": phases,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of wall, CPU and each phase's start, end and duration."""
    out: dict[str, Any] = {
        "wall_s": median([r["wall_s"] for r in runs]),
        "cpu_s": median([r["cpu_s"] for r in runs]),
        "walls_s": [round(r["wall_s"], 3) for r in runs],
        "rc": [r["rc"] for r in runs],
        "phases": {},
    }
    for name in PHASES:
        spans = [r["phases"][name] for r in runs if name in r["phases"]]
        if spans:
            out["phases"][name] = {
                "start_s": median([s[0] for s in spans]),
                "end_s": median([s[1] for s in spans]),
                "duration_s": median([s[1] - s[0] for s in spans]),
            }
    return out


def import_top(code: Path, args: list[str], env: dict[str, str], top: int) -> dict[str, Any]:
    """``python -X importtime`` of the command: heavy libraries imported, slowest imports."""
    boot = "import sys, vmae_cli.cli; sys.argv = ['vmae', *sys.argv[1:]]; vmae_cli.cli.main()"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", boot, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "[us]" not in line:
            try:
                self_us, cum_us, name = line[len("import time:") :].split("|", 2)
                rows.append((name.strip(), int(self_us) / 1e6, int(cum_us) / 1e6))
            except ValueError:
                continue
    tops = {name.split(".")[0] for name, _, _ in rows}
    heavy = [
        m
        for m in ("torch", "transformers", "openvino", "numpy", "pandas", "pyarrow", "rich", "av")
        if m in tops
    ]
    slow = sorted((r for r in rows if r[0].count(".") == 0 or "vmae" in r[0]), key=lambda r: -r[2])
    return {
        "modules": len(rows),
        "self_s": sum(r[1] for r in rows),
        "heavy": heavy,
        "slowest": [{"module": n, "cumulative_s": c} for n, _, c in slow[:top]],
    }


def export_tree(ref: str, dest: Path) -> Path:
    """The repository's tree at ``ref`` in ``dest`` (``git archive``; the repo is untouched)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def make_inputs(workdir: Path) -> tuple[Path, Path]:
    """A ViT-B with random weights and one 10 s 720p H.264 video in ``workdir``."""
    model = workdir / "vitb"
    if not (model / "config.json").exists():
        subprocess.run(
            [sys.executable, str(Path(__file__).parent / "make_model.py"), str(model)], check=True
        )
    from make_mix import MixItem, write_item

    item = MixItem(
        index=0,
        filename="one_h264_1280x720_30fps_10s.mp4",
        codec="h264",
        container="mp4",
        width=1280,
        height=720,
        rotation=0,
        fps="30",
        duration_s=10.0,
        num_frames=300,
        gop_frames=60,
        bframes=3,
        bitrate=int(0.1 * 1280 * 720 * 30),
        audio="aac",
        faststart=False,
    )
    video = workdir / "one" / item.filename
    if not video.exists():
        video.parent.mkdir(parents=True, exist_ok=True)
        write_item(item, video.parent, seed=0)
    return model, video


def measure(
    codes: dict[str, Path], opts: argparse.Namespace, work: Path, parts: list[str]
) -> dict[str, dict[str, Any]]:
    """Each part's runs, old and new alternating (run 1 old, run 1 new, ...): a machine whose
    load changes disturbs both alike."""
    cache = opts.cache or work / "cache"  # one conversion cache: both codes read its entries
    envs, commands = {}, {}
    for label, code in codes.items():
        envs[label] = child_env(code, cache, work / f"pyc-{label}")
        out_csv = work / f"rows-{label}.csv"
        one = ["classify", str(opts.video), "-m", str(opts.model), "-q", "-o", str(out_csv)]
        commands[label] = {
            "help": ["--help"],
            "one-video": [*one, "--overwrite", *opts.vmae_args.split()],
            "resume": [*one, "--resume", *opts.vmae_args.split()],
        }
        # Untimed: byte code compiled, the conversion cache filled, the output written once.
        run_once(["--help"], envs[label], work)
        warm = run_once(commands[label]["one-video"], envs[label], work)
        if warm["rc"] != 0:
            raise SystemExit(f"{label}: vmae failed ({warm['rc']}):\n{warm['stderr']}")
    results: dict[str, dict[str, Any]] = {
        label: {"code": str(code)} for label, code in codes.items()
    }
    for part in parts:
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in codes}
        for _ in range(opts.runs):
            for label in codes:
                r = run_once(commands[label][part], envs[label], work)
                if r["rc"] != 0:
                    raise SystemExit(f"{label} {part}: exit {r['rc']}:\n{r['stderr']}")
                runs[label].append(r)
        for label, code in codes.items():
            results[label][part] = summarize(runs[label])
            if opts.importtime:
                results[label][part]["imports"] = import_top(
                    code, commands[label][part], envs[label], opts.top
                )
    return results


def print_result(label: str, result: dict[str, Any], parts: list[str]) -> None:
    for part in parts:
        r = result[part]
        print(
            f"\n[{label}] {part}: wall {r['wall_s']:.3f} s (runs {r['walls_s']}), "
            f"CPU {r['cpu_s']:.3f} s"
        )
        for name, p in r["phases"].items():
            print(
                f"  {name:11s} {p['start_s']:7.3f} -> {p['end_s']:7.3f}  {p['duration_s']:7.3f} s"
            )
        imports = r.get("imports")
        if imports:
            print(
                f"  imports: {imports['modules']} modules, {imports['self_s']:.3f} s; heavy: "
                f"{', '.join(imports['heavy']) or 'none'}"
            )
            for row in imports["slowest"]:
                print(f"    {row['cumulative_s']:7.3f} s  {row['module']}")


TARGETS = {"help": 0.2, "resume": 1.0, "one-video": 2.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model folder (a ViT-B: make_model.py)")
    parser.add_argument("--video", type=Path, help="one video (10 s 720p)")
    parser.add_argument("--make", type=Path, help="write the model and the video here first")
    parser.add_argument("--old", help="also measure this commit (git archive), e.g. main")
    parser.add_argument("--new", help="measure this commit as the new code (default: this tree)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--parts", default="help,resume,one-video")
    parser.add_argument("--vmae-args", default="", help="more options for the classify runs")
    parser.add_argument("--importtime", action="store_true", help="list the slowest imports")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument(
        "--cache",
        type=Path,
        help="VMAE_CACHE_DIR for the runs (default: a new one; converting "
        "ViT-B takes minutes, so pass a folder to keep it between invocations)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = parser.parse_args(argv)
    if opts.make:
        opts.model, opts.video = make_inputs(opts.make)
    if opts.model is None or opts.video is None:
        parser.error("--model and --video (or --make DIR) are needed")
    opts.model, opts.video = opts.model.resolve(), opts.video.resolve()
    parts = opts.parts.split(",")
    info = machine_info()
    print(f"machine: {machine_summary(info)}; load {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="vmae-startup-"))
    report: dict[str, Any] = {"machine": info, "load_before": os.getloadavg(), "results": {}}
    try:
        codes = {"new": export_tree(opts.new, work / "new") if opts.new else REPO_ROOT}
        if opts.old:
            codes = {"old": export_tree(opts.old, work / "old"), **codes}
            report["old_ref"] = opts.old
        report["results"] = measure(codes, opts, work, parts)
        for label, result in report["results"].items():
            print_result(label, result, parts)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = os.getloadavg()
    print(f"\nload average after: {report['load_after']}")
    print(f"\n{'figure':10s} " + " ".join(f"{k:>22s}" for k in report["results"]) + "  target")
    for part in parts:
        cells = [
            f"{r[part]['wall_s']:7.3f} s ({r[part]['cpu_s']:.3f} CPU)"
            for r in report["results"].values()
        ]
        print(f"{part:10s} " + " ".join(f"{c:>22s}" for c in cells) + f"  <= {TARGETS[part]} s")
    if opts.json:
        write_json(opts.json, report)
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
