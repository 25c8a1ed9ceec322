"""vmae_cli.reaper: what it kills (marked processes, listed PIDs that are still the same
process), what it spares, and that it still kills when its parent dies of SIGKILL."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmae_cli import reaper
from vmae_cli.reaper import Reaper, children, command_name, start_time, sweep

pytestmark = pytest.mark.skipif(not reaper.supported(), reason="reads /proc (Linux only)")

#: The environment variable that marks the test's sleepers (a random value per test).
MARK = "VMAE_TEST_MARK"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def _gone(pid: int, limit_s: float) -> bool:
    """Poll until ``pid`` no longer runs; False if it still does after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture()
def mark() -> str:
    """A ``NAME=VALUE`` entry no other process on this machine has."""
    return f"{MARK}={secrets.token_hex(8)}"


@pytest.fixture()
def sleepers() -> Iterator[list[subprocess.Popen]]:
    """Where a test puts the sleeping processes it starts; any still running at the end are
    killed."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _sleep(sleepers: list[subprocess.Popen], env_entry: str | None = None) -> subprocess.Popen:
    """Start ``sleep 60``, with ``env_entry`` (``NAME=VALUE``) in its environment if given."""
    env = dict(os.environ)
    if env_entry is not None:
        name, _, value = env_entry.partition("=")
        env[name] = value
    proc = subprocess.Popen(["sleep", "60"], env=env)
    sleepers.append(proc)
    return proc


def test_process_helpers_see_a_child(sleepers: list[subprocess.Popen]) -> None:
    proc = _sleep(sleepers)
    assert proc.pid in children(os.getpid())
    assert command_name(proc.pid) == "sleep"
    assert start_time(proc.pid) is not None
    proc.kill()
    proc.wait(timeout=10)
    assert proc.pid not in children(os.getpid())
    assert start_time(proc.pid) is None
    assert command_name(proc.pid) == ""


def test_close_kills_the_processes_marked_in_their_environment(
    mark: str, sleepers: list[subprocess.Popen]
) -> None:
    marked, other = _sleep(sleepers, mark), _sleep(sleepers)
    r = Reaper()
    r.kill_later(env=[mark])
    r.close()
    assert marked.wait(timeout=10) == -signal.SIGKILL
    assert other.poll() is None  # no mark, not touched


def test_close_kills_a_listed_pid(sleepers: list[subprocess.Popen]) -> None:
    listed, other = _sleep(sleepers), _sleep(sleepers)
    r = Reaper()
    r.kill_later(pids=[listed.pid])
    r.close()
    assert listed.wait(timeout=10) == -signal.SIGKILL
    assert other.poll() is None


def test_a_pid_whose_start_time_differs_is_spared(sleepers: list[subprocess.Popen]) -> None:
    proc = _sleep(sleepers)
    started = start_time(proc.pid)
    assert started is not None
    # The same PID with another start time: another process that reused the number.
    assert sweep({proc.pid: started + 1}, set()) == 0
    assert proc.poll() is None
    assert sweep({proc.pid: started}, set()) == 1
    assert proc.wait(timeout=10) == -signal.SIGKILL


def test_sweep_kills_every_marked_process(mark: str, sleepers: list[subprocess.Popen]) -> None:
    first, second = _sleep(sleepers, mark), _sleep(sleepers, mark)
    assert sweep({}, {mark.encode()}) == 2
    assert first.wait(timeout=10) == second.wait(timeout=10) == -signal.SIGKILL


#: A parent that starts a reaper and a marked sleeper, tells the reaper about both, prints
#: the sleeper's PID and waits to be killed.
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from vmae_cli.reaper import Reaper

    mark = sys.argv[1]
    name, _, value = mark.partition("=")
    reaper = Reaper()
    child = subprocess.Popen(["sleep", "60"], env={**os.environ, name: value})
    reaper.kill_later([child.pid], [mark])
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_the_reaper_sweeps_when_its_parent_dies_of_sigkill(mark: str, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), mark], stdout=subprocess.PIPE, start_new_session=True
    )
    child, started = None, None
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())  # the reaper knows it by now
        started = start_time(child)
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=10)
        # The kernel closes the reaper's pipe with the parent: that alone starts the sweep.
        assert _gone(child, limit_s=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        if child is not None and _alive(child) and start_time(child) == started:
            os.kill(child, signal.SIGKILL)  # the test failed: do not leave it running
