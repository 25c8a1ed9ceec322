"""Shared helpers of the benchmark scripts: process-tree memory sampling, running a command
under measurement, machine information, video listing and small formatting helpers.

Only the standard library is imported at module level, so a script that merely orchestrates
subprocesses stays light (its own memory and CPU do not disturb what it measures).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Extensions treated as videos when vmae_cli cannot be imported (vmae's own list otherwise).
_FALLBACK_VIDEO_EXTENSIONS = frozenset(
    {".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".webm", ".wmv"}
)

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------
# /proc readers
# --------------------------------------------------------------------------------------


def _read_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    """Values in kB of the ``key:  N kB`` lines of a /proc file (missing keys are absent)."""
    found: dict[str, int] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in keys:
                    found[name] = int(rest.split()[0])
                    if len(found) == len(keys):
                        break
    except (OSError, ValueError, IndexError):
        pass
    return found


def _children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc/PID/task/*/children (needs CONFIG_PROC_CHILDREN)."""
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return kids


def _children_by_scan(root: int) -> list[int]:
    """All descendants of ``root`` by reading the parent pid of every process in /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parent[int(entry)] = ppid
    tree, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        for pid, ppid in parent.items():
            if ppid == current:
                tree.append(pid)
                frontier.append(pid)
    return tree


_HAS_CHILDREN_FILE = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    if not _HAS_CHILDREN_FILE:
        return [root, *_children_by_scan(root)]
    tree, frontier = [root], [root]
    while frontier:
        kids = _children_of(frontier.pop())
        tree.extend(kids)
        frontier.extend(kids)
    return tree


# --------------------------------------------------------------------------------------
# Process-tree memory sampler
# --------------------------------------------------------------------------------------


@dataclass
class MemoryPeak:
    """What a :class:`TreeSampler` saw. Sizes in bytes; 0 when nothing could be read."""

    #: max over samples of the sum of VmRSS over the tree (shared pages count once per process)
    peak_rss_sum: int = 0
    #: max over samples of the sum of Pss over the tree (shared pages split between processes)
    peak_pss_sum: int = 0
    #: max VmRSS of the root process alone
    peak_root_rss: int = 0
    #: VmHWM of the root process at its last sample (the kernel's own high-water mark)
    root_hwm: int = 0
    max_processes: int = 0
    samples: int = 0
    interval_s: float = 0.0
    #: (seconds since start, rss_sum, root rss, processes), thinned to at most ~400 points
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)

    def as_dict(self, with_timeline: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_timeline:
            d.pop("timeline")
        return d


class TreeSampler:
    """Sample the memory of a process and all its descendants in a background thread.

    Every ``interval_s`` (default 50 ms) the VmRSS of each process of the tree is read from
    /proc/PID/status (cheap: kernel counters) and summed; every ``pss_every``-th sample the Pss
    is read from /proc/PID/smaps_rollup too (it walks the page tables, so it costs more; set
    ``pss_every=0`` to never read it). The peaks of the sums are kept.

    The sum of RSS counts pages shared between processes (libraries, fork copy-on-write
    pages, shared-memory tensors) once per process; the sum of Pss splits them and is the
    better estimate of what the tree really occupies. Both are reported.
    """

    def __init__(
        self,
        pid: int,
        interval_s: float = 0.05,
        pss_every: int = 10,
        on_tick: Callable[[float], None] | None = None,
    ):
        self.pid = pid
        self.on_tick = on_tick
        self.interval_s = interval_s
        self.pss_every = pss_every
        self.result = MemoryPeak(interval_s=interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> TreeSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> MemoryPeak:
        self._stop.set()
        self._thread.join()
        self._thin_timeline(400)
        return self.result

    def __enter__(self) -> TreeSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def sample_once(self, with_pss: bool) -> None:
        r = self.result
        pids = process_tree(self.pid)
        rss_sum = pss_sum = root_rss = 0
        alive = 0
        for pid in pids:
            status = _read_kb(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))
            if "VmRSS" not in status:
                continue  # gone, or a zombie (no memory left)
            alive += 1
            rss = status["VmRSS"] * 1024
            rss_sum += rss
            if pid == self.pid:
                root_rss = rss
                r.peak_root_rss = max(r.peak_root_rss, rss)
                r.root_hwm = max(r.root_hwm, status.get("VmHWM", 0) * 1024)
            if with_pss:
                pss_sum += _read_kb(f"/proc/{pid}/smaps_rollup", ("Pss",)).get("Pss", 0) * 1024
        if not alive:
            return
        r.samples += 1
        r.peak_rss_sum = max(r.peak_rss_sum, rss_sum)
        if with_pss:
            r.peak_pss_sum = max(r.peak_pss_sum, pss_sum)
        r.max_processes = max(r.max_processes, alive)
        r.timeline.append((round(time.perf_counter() - self._t0, 3), rss_sum, root_rss, alive))

    def _run(self) -> None:
        n = 0
        while True:
            with_pss = self.pss_every > 0 and n % self.pss_every == 0
            self.sample_once(with_pss)
            if self.on_tick is not None:
                self.on_tick(time.perf_counter() - self._t0)
            n += 1
            if self._stop.wait(self.interval_s):
                break

    def _thin_timeline(self, points: int) -> None:
        tl = self.result.timeline
        if len(tl) > points:
            step = len(tl) / points
            # Keep the peak sample so the thinned timeline still shows it.
            peak = max(tl, key=lambda s: s[1])
            kept = [tl[int(i * step)] for i in range(points)] + [tl[-1], peak]
            self.result.timeline = sorted(set(kept))


@dataclass
class Measured:
    """A command run under :func:`run_measured`."""

    cmd: list[str]
    returncode: int
    wall_s: float
    memory: MemoryPeak
    stdout: str
    stderr: str


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    interval_s: float = 0.05,
    pss_every: int = 10,
    timeout_s: float | None = None,
    capture_stdout: bool = True,
    on_tick: Callable[[float], None] | None = None,
) -> Measured:
    """Run ``cmd``; return its exit code, wall time and the peak memory of its process tree.

    The wall time runs from just before the process is started until it has exited, so it
    includes interpreter start-up, imports and model loading. stdout and stderr are captured
    through temporary files (pipes could fill up and block the child). ``on_tick`` is called
    from the sampling thread after every sample with the seconds since the start.
    """
    import tempfile

    with tempfile.TemporaryFile("w+b") as out, tempfile.TemporaryFile("w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out if capture_stdout else subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        sampler = TreeSampler(proc.pid, interval_s, pss_every, on_tick).start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        wall = time.perf_counter() - start
        memory = sampler.stop()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return Measured(cmd, rc, wall, memory, stdout, stderr)


# --------------------------------------------------------------------------------------
# Commands and inputs
# --------------------------------------------------------------------------------------


def vmae_command() -> list[str]:
    """How to start ``vmae``: the console script next to this interpreter, else on PATH,
    else ``python -m vmae_cli.cli``."""
    here = Path(sys.executable).parent / "vmae"
    if here.is_file() and os.access(here, os.X_OK):
        return [str(here)]
    found = shutil.which("vmae")
    if found:
        return [found]
    return [sys.executable, "-m", "vmae_cli.cli"]


def list_videos(folder: str | os.PathLike[str]) -> list[str]:
    """The video files vmae would classify under ``folder``, in vmae's own order."""
    try:
        from vmae_cli.discovery import iter_video_paths

        return list(iter_video_paths([str(folder)]))
    except ImportError:
        paths = []
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if os.path.splitext(name)[1].lower() in _FALLBACK_VIDEO_EXTENSIONS:
                    paths.append(os.path.join(root, name))
        return paths


def probe_duration_s(path: str) -> float | None:
    """Duration from the container header (PyAV), or ``None``; nothing is decoded."""
    try:
        import av

        with av.open(path) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            if container.streams.video:
                stream = container.streams.video[0]
                if stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
    except Exception:  # noqa: BLE001 - any unreadable file simply has no duration
        return None
    return None


def describe_videos(paths: list[str]) -> dict[str, Any]:
    """Count, total bytes and total header duration of ``paths``."""
    total_bytes = 0
    durations = []
    for p in paths:
        try:
            total_bytes += os.stat(p).st_size
        except OSError:
            pass
        d = probe_duration_s(p)
        if d is not None:
            durations.append(d)
    return {
        "videos": len(paths),
        "total_bytes": total_bytes,
        "total_duration_s": round(sum(durations), 2),
        "with_duration": len(durations),
    }


# --------------------------------------------------------------------------------------
# Machine information
# --------------------------------------------------------------------------------------

_INTERESTING_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def machine_info() -> dict[str, Any]:
    """CPU model and flags, cores, memory, load and library versions, for the record."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": platform.processor() or "",
        "logical_cpus": os.cpu_count(),
    }
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
        flags: set[str] = set()
        model_seen = False
        for line in text.splitlines():
            if line.startswith("model name") and not model_seen:
                info["cpu_model"] = line.split(":", 1)[1].strip()
                model_seen = True
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
        info["cpu_flags"] = {flag: flag in flags for flag in _INTERESTING_FLAGS}
    except OSError:
        info["cpu_flags"] = {}
    mem = _read_kb("/proc/meminfo", ("MemTotal", "MemAvailable"))
    if mem:
        info["mem_total_gib"] = round(mem.get("MemTotal", 0) / 2**20, 1)
        info["mem_available_gib"] = round(mem.get("MemAvailable", 0) / 2**20, 1)
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    info["versions"] = library_versions()
    return info


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (nothing is imported)."""
    from importlib import metadata

    versions = {}
    for dist in ("torch", "transformers", "av", "opencv-python-headless", "numpy", "vmae-cli"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_summary(info: dict[str, Any]) -> str:
    """One line of :func:`machine_info` for printed reports."""
    flags = " ".join(f for f, on in info.get("cpu_flags", {}).items() if on) or "-"
    v = info.get("versions", {})
    return (
        f"{info.get('cpu_model') or '?'}; {info.get('usable_cpus')} usable of "
        f"{info.get('logical_cpus')} logical CPUs; flags: {flags}; "
        f"{info.get('mem_total_gib', '?')} GiB RAM; load {info.get('loadavg', '?')}; "
        f"torch {v.get('torch', '?')}, transformers {v.get('transformers', '?')}, "
        f"av {v.get('av', '?')}, opencv {v.get('opencv-python-headless', '?')}; "
        f"python {info.get('python')}; {info.get('date')}"
    )


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def fmt_bytes(n: float | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def fmt_rate(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def print_table(rows: list[list[str]], header: list[str], file: Any = None) -> None:
    """A plain aligned text table (first column left-aligned, the others right-aligned)."""
    out = file or sys.stdout
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


class FirstRowWatch:
    """An ``on_tick`` callback for :func:`run_measured` noting when a CSV output gets its first
    data row (after the header): start-up, model load, first decode and first batch."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = path
        self.seconds: float | None = None

    def __call__(self, elapsed: float) -> None:
        if self.seconds is not None:
            return
        try:
            with open(self.path, "rb") as f:
                if f.read(1 << 16).count(b"\n") >= 2:
                    self.seconds = elapsed
        except OSError:
            pass


def count_csv_rows(path: str | os.PathLike[str], column: str = "status") -> dict[str, int]:
    """Rows per value of ``column`` in a vmae CSV file (``{}`` when the file is missing)."""
    import csv
    from collections import Counter

    counts: Counter[str] = Counter()
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                counts[row.get(column) or "-"] += 1
    except OSError:
        return {}
    return dict(counts)
