"""Kill what a process started once that process is gone, even when it died of SIGKILL.

A local Ray started by vmae is a dozen processes (GCS, raylet, agents, workers) that would
outlive a driver killed with SIGKILL: seen here with ray 2.60, its dashboard and runtime-env
agents kept running for good. :class:`Reaper` starts this file as a script in its own
session (so a Ctrl-C or a hang-up of the terminal does not reach it), tells it through a pipe
what to kill, and the reaper waits for the pipe to close: at the driver's normal end, or when
the kernel closes it because the driver died. It then kills, with SIGKILL:

- each process given as ``pid PID START``, if it is still the same process (its start time,
  field 22 of ``/proc/PID/stat``, guards against a reused PID);
- every process whose environment holds an entry given as ``env NAME=VALUE`` (Ray gives
  ``RAY_RAYLET_PID=...`` to every process its raylet starts), looking again until none is
  left, since a dying raylet may still be starting workers.

Linux only (``/proc``); elsewhere nothing is started and nothing is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator

#: How long the reaper looks for processes to kill after the pipe closed (seconds).
SWEEP_S = 5.0
#: Pause between two looks (seconds).
SWEEP_INTERVAL_S = 0.2
#: Quiet looks in a row after which the sweep ends early.
QUIET_SWEEPS = 3
#: How long a driver waits for its reaper to finish a sweep at a normal end (seconds).
WAIT_S = SWEEP_S + 5.0

_PROC = "/proc"


def supported() -> bool:
    """Whether this system has the ``/proc`` the reaper reads."""
    return sys.platform.startswith("linux") and os.path.isdir(_PROC)


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), or ``None`` if gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])  # field 22 of the whole line


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir(_PROC):
        if not entry.isdigit():
            continue
        try:
            with open(f"{_PROC}/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(b")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return found


def command_name(pid: int) -> str:
    """The file name of the program ``pid`` runs (``""`` when it is gone)."""
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return ""
    return os.path.basename(os.fsdecode(argv0))


def _with_env(entries: set[bytes]) -> Iterator[int]:
    me = os.getpid()
    for entry in os.listdir(_PROC):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"{_PROC}/{entry}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
        except OSError:
            continue
        if env & entries:
            yield int(entry)


def sweep(pids: dict[int, int], env: set[bytes]) -> int:
    """Kill the listed processes (``pid -> start time``) that still run, then every process
    with one of the ``env`` entries until none is left; return how many were killed."""
    killed = 0
    for pid, started in pids.items():
        if start_time(pid) == started:
            killed += _kill(pid)
    if not env:
        return killed
    quiet = 0
    deadline = time.monotonic() + SWEEP_S
    while quiet < QUIET_SWEEPS and time.monotonic() < deadline:
        found = list(_with_env(env))
        killed += sum(_kill(pid) for pid in found)
        quiet = 0 if found else quiet + 1
        time.sleep(SWEEP_INTERVAL_S)
    return killed


def _kill(pid: int) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
        return 1
    except OSError:
        return 0


class Reaper:
    """The parent's end: tell the reaper what to kill, and :meth:`close` at the end."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        if supported():
            self._proc = subprocess.Popen(
                # -I: stdlib only, whatever the caller's sys.path or environment.
                [sys.executable, "-I", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill_later(self, pids: Iterable[int] = (), env: Iterable[str] = ()) -> None:
        """Add processes (by PID) and environment entries (``NAME=VALUE``) to kill."""
        if self._proc is None or self._proc.stdin is None:
            return
        lines = []
        for pid in pids:
            started = start_time(pid)
            if started is not None:
                lines.append(f"pid {pid} {started}\n")
        lines += [f"env {entry}\n" for entry in env]
        try:
            self._proc.stdin.write("".join(lines).encode())
            self._proc.stdin.flush()
        except OSError:  # the reaper is gone: nothing more can be done here
            pass

    def close(self) -> None:
        """Sweep now and wait for it (the normal end of a run)."""
        if self._proc is None:
            return
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait(timeout=WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
        self._proc = None


def main() -> None:
    """The reaper process: read what to kill from stdin until it closes, then kill it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pids: dict[int, int] = {}
    env: set[bytes] = set()
    for line in sys.stdin.buffer:
        kind, _, rest = line.rstrip(b"\n").partition(b" ")
        if kind == b"pid":
            pid, started = rest.split()
            pids[int(pid)] = int(started)
        elif kind == b"env":
            env.add(rest)
    sweep(pids, env)


if __name__ == "__main__":
    main()
