"""``vmae classify --engine ray`` as a real process that starts its own local Ray: killed with
SIGKILL or stopped with SIGTERM mid-run it leaves no Ray process behind and ``--resume``
finishes the job; its stdout carries rows only."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from conftest import read_rows

from vmae_cli import reaper
from vmae_cli.formats import CSV_HEAD

# Real `vmae --engine ray` processes, killed and stopped: tens of seconds each.
pytestmark = [
    pytest.mark.skipif(not reaper.supported(), reason="reads /proc (Linux only)"),
    pytest.mark.slow,
]

#: Videos of the killed and stopped runs: enough that a run is still busy a few seconds
#: after its first rows (about 3 s on 2 cores), few enough to keep each run short.
VIDEOS = 36
#: The environment variable that marks the processes descended from one run.
RUN_MARK = "VMAE_TEST_RUN"
#: How long a run's Ray may take to disappear after its driver is killed or stopped: the
#: reaper's sweep (reaper.SWEEP_S) plus slack for a loaded machine.
GONE_S = 15.0


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory, test_videos) -> Path:
    """:data:`VIDEOS` small videos (hard links of four clips under distinct names)."""
    root = tmp_path_factory.mktemp("many")
    sources = [test_videos[k] for k in ("h264", "vp9", "mjpeg", "hevc")]
    for i in range(VIDEOS):
        src = sources[i % len(sources)]
        os.link(src, root / f"v{i:03d}{src.suffix}")
    return root


def _start(model: Path, folder: Path, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``vmae classify FOLDER --engine ray ARGS`` in its own session, its stderr appended to
    ``log`` (a file: a pipe could be held open by a process that outlives the driver).
    Returns the process and the ``NAME=VALUE`` entry that marks its environment, which every
    process it starts inherits (Ray's included, even one it should not have started)."""
    cmd = [sys.executable, "-m", "vmae_cli.cli", "classify", str(folder), "--engine", "ray"]
    cmd += ["--model", str(model), "--device", "cpu", "--workers", "1", "-q", *args]
    token = secrets.token_hex(8)
    env = {**os.environ, RUN_MARK: token}
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True
        )
    return proc, f"{RUN_MARK}={token}"


def _alive(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X") and reaper.start_time(pid) == started


def _with_env(entry: str) -> list[int]:
    """The processes (zombies have no environment) whose environment holds ``entry``."""
    wanted = entry.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if wanted in env:
            found.append(int(name))
    return found


class RayOfRun:
    """The Ray processes of one vmae run, learnt while it runs: the driver's children
    (GCS, raylet, the reaper), the raylet's children (agents, workers, actors) and, through
    the raylet's PID, everything the raylet started (Ray gives each of them
    ``RAY_RAYLET_PID=<pid>``: also the decoding processes forked by actors); ``mark`` (see
    :func:`_start`) finds the rest."""

    def __init__(self, proc: subprocess.Popen, mark: str) -> None:
        self.proc = proc
        self.mark = mark
        self.procs: dict[int, int] = {}  # pid -> start time
        self.names: dict[int, str] = {}

    def look(self) -> None:
        """Record the driver's current children, the raylets' children (Ray's agents and
        workers: the agents outlive a killed raylet, and Ray's renaming of a process can
        overwrite the environment entry that names its raylet) and the processes carrying
        the run's mark (a Ray the driver starts late, say), with their names (again each
        time: a child is named ``python`` between its fork and its exec)."""
        seen = {*reaper.children(self.proc.pid), *_with_env(self.mark)}
        seen.update(child for raylet in self.raylets for child in reaper.children(raylet))
        for pid in seen:
            started = reaper.start_time(pid)
            if started is None or pid == self.proc.pid:
                continue
            self.procs.setdefault(pid, started)
            self.names[pid] = reaper.command_name(pid) or self.names.get(pid, "")

    @property
    def raylets(self) -> list[int]:
        """The raylets seen (each names itself, as ``RAY_RAYLET_PID``, in the environment of
        the processes it starts)."""
        return [pid for pid, name in self.names.items() if name == "raylet"]

    def left_pids(self) -> set[int]:
        """The recorded processes still alive, the processes that carry one of the raylets'
        PIDs, and any other process descended from the run (its mark): one the driver
        started after its last look, say."""
        alive = {p for p, started in self.procs.items() if _alive(p, started)}
        for raylet in self.raylets:
            alive.update(_with_env(f"RAY_RAYLET_PID={raylet}"))
        alive.update(_with_env(self.mark))
        alive.discard(self.proc.pid)  # the driver itself, if the caller did not end it
        return alive

    def left(self) -> list[str]:
        """What is still alive, as ``"PID NAME"``."""
        return [
            f"{p} {reaper.command_name(p) or self.names.get(p, '?')}"
            for p in sorted(self.left_pids())
        ]

    def wait_gone(self, limit_s: float = GONE_S) -> list[str]:
        """Poll until nothing of this run's Ray is left; return what still is at the end."""
        deadline = time.monotonic() + limit_s
        while (left := self.left()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def _lines(out: Path) -> int:
    """Lines in ``out`` so far (JSONL: rows, the last one perhaps torn)."""
    return out.read_bytes().count(b"\n") if out.exists() else 0


def _wait_for_rows(out: Path, n: int, ray_procs: RayOfRun, limit_s: float = 90) -> None:
    """Wait until ``out`` has ``n`` lines while the run goes on, watching its processes;
    fail if the run ends first (then nothing could be killed mid-run)."""
    proc = ray_procs.proc
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        ray_procs.look()
        if _lines(out) >= n:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {n} rows"
    assert _lines(out) >= n, f"fewer than {n} rows after {limit_s} s"
    assert ray_procs.raylets, f"no raylet among the driver's children: {ray_procs.names}"


def _finish(ray_procs: RayOfRun, limit_s: float = 120) -> int:
    """Wait for the run to end, watching its processes; its exit code."""
    proc = ray_procs.proc
    deadline = time.monotonic() + limit_s
    while proc.poll() is None and time.monotonic() < deadline:
        ray_procs.look()
        time.sleep(0.05)
    return proc.wait(timeout=1)


def _exactly_once(out: Path, folder: Path) -> list[dict]:
    """The rows of ``out``, asserting one per video of ``folder``."""
    rows = read_rows(out)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in folder.iterdir())
    return rows


@pytest.fixture()
def runs() -> Iterator[list[RayOfRun]]:
    """The runs a test starts. At its end, whatever of them still runs is killed: a test
    that failed (on a leak, say) must not leave a Ray behind on the machine."""
    started: list[RayOfRun] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=10)
        for pid in run.left_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _classify_into(
    runs: list[RayOfRun], out: Path, model: Path, folder: Path, *args: str
) -> RayOfRun:
    """Start a run writing ``out`` two videos a task (rows arrive soon and often), its
    stderr in ``out``'s folder, and watch its processes."""
    log = out.with_name("stderr.txt")
    run = RayOfRun(*_start(model, folder, log, "-o", str(out), "--videos-per-task", "2", *args))
    runs.append(run)
    return run


def _stderr(out: Path) -> str:
    """What the runs into ``out`` said on stderr."""
    return out.with_name("stderr.txt").read_text(encoding="utf-8", errors="replace")


def test_killed_twice_then_stopped_by_sigterm_leaves_no_ray_and_resume_finishes(
    many: Path, tiny_model_dir: Path, tmp_path: Path, runs: list[RayOfRun]
) -> None:
    # One output through four runs, as a cron job would see it: two drivers killed with
    # SIGKILL, one stopped with SIGTERM, then --resume. One sequence serves both stories:
    # each run costs about 10 s of Ray start-up on 2 cores.
    out = tmp_path / "labels.jsonl"
    for kill in (1, 2):
        run = _classify_into(runs, out, tiny_model_dir, many, "--resume")
        _wait_for_rows(out, _lines(out) + 2, run)
        run.proc.kill()
        run.proc.wait(timeout=10)
        # The reaper's job: a driver killed with SIGKILL cannot stop its Ray itself.
        assert run.wait_gone() == [], f"Ray processes outlived killed driver {kill}"
    killed = _lines(out)
    assert 0 < killed < VIDEOS

    run = _classify_into(runs, out, tiny_model_dir, many, "--resume")
    _wait_for_rows(out, killed + 2, run)
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code = _finish(run, limit_s=30)
    took = time.monotonic() - sent
    assert code == 128 + signal.SIGTERM, _stderr(out)
    assert took < GONE_S
    data = out.read_bytes()
    assert data.endswith(b"\n")  # a stopped run leaves no torn row
    done = [json.loads(line) for line in data.splitlines()]  # nor does a resumed one
    assert killed < len(done) < VIDEOS
    # A stopped run shuts down the Ray it started (and its reaper sweeps what is left).
    assert run.wait_gone() == [], "Ray processes outlived the stopped driver"

    run = _classify_into(runs, out, tiny_model_dir, many, "--resume")
    assert _finish(run) == 0, _stderr(out)
    rows = _exactly_once(out, many)
    assert {r["status"] for r in rows} == {"ok"}
    assert run.wait_gone() == []


#: Lines of Ray's own logging: ``[2026-01-01 12:00:00,000 E 123 456] core_worker.cc...`` from
#: its C++ core, ``2026-01-01 12:00:00,000 INFO worker.py...`` from Python, and the
#: ``(raylet) ...`` messages it forwards from its nodes.
RAY_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\d|\(raylet\)|\(pid=|ray::")


def test_stdout_carries_rows_only_and_stderr_vmae_lines_only(
    test_videos, tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for k in ("h264", "vp9", "mjpeg"):
        os.link(test_videos[k], folder / test_videos[k].name)
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        cmd = [sys.executable, "-m", "vmae_cli.cli", "classify", str(folder), "--engine", "ray"]
        cmd += ["--model", str(tiny_model_dir), "--device", "cpu", "--workers", "1"]
        code = subprocess.run(cmd, stdout=out, stderr=err, timeout=120).returncode
    errors = stderr.read_text(encoding="utf-8", errors="replace")
    assert code == 0, errors
    text = stdout.read_bytes().decode("utf-8-sig")
    lines = text.splitlines()
    assert len(lines) == 1 + 3  # the header and one row per video, nothing else
    records = list(csv.reader(io.StringIO(text, newline="")))
    header = records[0]
    assert tuple(header[: len(CSV_HEAD)]) == CSV_HEAD
    assert all(len(r) == len(header) for r in records[1:])
    rows = [dict(zip(header, r, strict=True)) for r in records[1:]]
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in folder.iterdir())
    assert {r["status"] for r in rows} == {"ok"}
    noise = [line for line in errors.splitlines() if RAY_LINE.search(line)]
    assert noise == []
    assert [line for line in errors.splitlines() if not line.startswith("vmae:")] == []
    assert "3 videos" in errors and "1 Ray node" in errors  # the summary line is there
