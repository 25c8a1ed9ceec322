"""Decoding workers that cannot start: the stdin-script stress test of the user report
("ImportError ... libgfortran: undefined symbol: __floatunditf" in DataLoader worker 0, 4 runs
in 36, with `python - < script.py`) and injected start failures. Every path must still get
exactly one outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import by_path

from vmae_cli import views, workerpool
from vmae_cli.results import STATUS_ERROR, STATUS_OK, DecodeOutcome, Failure
from vmae_cli.views import iter_decoded

#: Real `python - < script` runs. 4 failures in 36 runs is p = 1/9 per run: 27 runs catch it
#: with probability 1 - (8/9)**27 = 96%.
STRESS_RUNS = 27
#: Of these, runs of the full library call of the report (classify_paths: transformers and the
#: model are loaded before the workers fork); the others decode only, at a third of the cost.
FULL_RUNS = 1
STRESS_VIDEOS = ("h264", "vp9", "mjpeg", "tiny")

# Fed on stdin. Prints one JSON line: the rows, and at each fork whether the decoding
# libraries were already loaded (a worker must never dlopen them after the fork).
_SCRIPT = """
import json, os, sys
forks = []
os.register_at_fork(before=lambda: forks.append(all(m in sys.modules for m in ("cv2", "av"))))
PATHS, MODEL, FULL = {paths!r}, {model!r}, {full!r}
if FULL:
    import vmae_cli
    rows = [(p.path, p.status, p.error) for p in
            vmae_cli.classify_paths(PATHS, model=MODEL, device="cpu", workers=2)]
else:
    from vmae_cli.views import ViewMaker, iter_decoded
    from vmae_cli.model import read_model_spec
    spec = read_model_spec(MODEL)
    job = ViewMaker(spec.frames_per_clip, spec.preprocess)
    rows = [(o.path, o.failure.status if o.failure else "ok", o.failure.error if o.failure else "")
            for o in iter_decoded(PATHS, job, workers=2)]
print("RESULT " + json.dumps({{"rows": rows, "forks": forks}}))
"""


def _run_stdin_script(script: Path, cwd: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(script, "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-"],
            stdin=stdin,
            capture_output=True,
            cwd=cwd,
            env=env,
            timeout=180,
        )
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("RESULT ")]
    result = json.loads(lines[-1][len("RESULT ") :]) if lines else {}
    return {"rc": proc.returncode, "stderr": proc.stderr.decode(errors="replace"), **result}


@pytest.mark.slow
def test_stdin_scripts_start_their_workers_every_time(
    tiny_model_dir: Path, test_videos: dict[str, Path], tmp_path: Path
) -> None:
    paths = [str(test_videos[name]) for name in STRESS_VIDEOS]
    scripts = []
    for full in (True, False):
        script = tmp_path / f"script_{'full' if full else 'decode'}.py"
        script.write_text(_SCRIPT.format(paths=paths, model=str(tiny_model_dir), full=full))
        scripts.append(script)
    runs = [scripts[0]] * FULL_RUNS + [scripts[1]] * (STRESS_RUNS - FULL_RUNS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _run_stdin_script(s, tmp_path), runs))

    failures = []
    for i, r in enumerate(results):
        rows = r.get("rows", [])
        problems = []
        if r["rc"] != 0:
            problems.append(f"exit status {r['rc']}")
        if sorted(p for p, _, _ in rows) != sorted(paths):
            problems.append(f"{len(rows)} rows for {len(paths)} videos")
        problems += [f"{p}: {status} {error}" for p, status, error in rows if status != STATUS_OK]
        if not r.get("forks"):
            problems.append("no worker was forked")
        elif not all(r["forks"]):
            problems.append("a worker was forked before cv2 and av were loaded")
        if problems:
            failures.append(f"run {i}: {'; '.join(problems)}\n{r['stderr'][-1500:]}")
    assert not failures, f"{len(failures)}/{len(results)} runs failed:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------------------
# Injected start failures (fork start method: the patched worker_init_fn is inherited)
# ---------------------------------------------------------------------------------------

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers are forked on Linux only"
)


class _Done:
    """A job that succeeds at once (its outcome says which path it did)."""

    def __call__(self, path: str) -> DecodeOutcome:
        return DecodeOutcome(path, failure=Failure("done", path))


class _Raises:
    """A job with a bug: it raises on one path."""

    def __call__(self, path: str) -> DecodeOutcome:
        if "bug" in path:
            raise ValueError(f"a bug decoding {path}")
        return DecodeOutcome(path, failure=Failure("done", path))


def _failing_init(log: Path, only_first_pool: bool = False):
    def init() -> None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        flag = log.with_suffix(".once")
        if only_first_pool and flag.exists():
            return
        flag.touch()
        raise ImportError(
            "/venv/opencv_python_headless.libs/libgfortran-83c28eba.so.5.0.0: "
            "undefined symbol: __floatunditf"
        )

    return init


@linux_only
def test_workers_that_cannot_start_give_an_error_row_per_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "starts.log"
    monkeypatch.setattr(views, "prepare_worker", _failing_init(log))
    paths = [f"v{i:02d}.mp4" for i in range(20)]
    got = by_path(iter_decoded(paths, _Done(), workers=2))
    assert sorted(got) == paths
    for o in got.values():
        assert o.views is None and o.failure.status == STATUS_ERROR
        assert o.failure.error.startswith("decoding worker could not start: ImportError: ")
        assert "undefined symbol: __floatunditf" in o.failure.error
        assert "\n" not in o.failure.error
    # A fresh loader was tried for each of the allowed restarts.
    assert len(log.read_text().split()) >= workerpool.MAX_UNEXPLAINED_RESTARTS


@linux_only
def test_a_worker_start_that_fails_once_is_retried_with_a_fresh_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        views, "prepare_worker", _failing_init(tmp_path / "starts.log", only_first_pool=True)
    )
    paths = [f"v{i:02d}.mp4" for i in range(20)]
    got = by_path(iter_decoded(paths, _Done(), workers=2))
    assert sorted(got) == paths
    assert all(o.failure.status == "done" for o in got.values())


@pytest.mark.slow
@linux_only
def test_workers_that_die_before_taking_a_video_give_error_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def die() -> None:
        os._exit(3)

    monkeypatch.setattr(views, "prepare_worker", die)
    # torch notices dead idle workers every 5 s: one loader is enough to show the give-up.
    monkeypatch.setattr(workerpool, "MAX_UNEXPLAINED_RESTARTS", 1)
    paths = [f"v{i:02d}.mp4" for i in range(12)]
    got = by_path(iter_decoded(paths, _Done(), workers=2))
    assert sorted(got) == paths
    for o in got.values():
        assert o.failure.status == STATUS_ERROR
        assert o.failure.error.startswith("decoding worker could not start: ")
        assert "exited unexpectedly" in o.failure.error


@linux_only
def test_an_exception_raised_by_the_job_itself_still_propagates() -> None:
    paths = ["a.mp4", "bug.mp4", "b.mp4"]
    with pytest.raises(ValueError, match="a bug decoding bug.mp4"):
        list(iter_decoded(paths, _Raises(), workers=2))


def test_torch_worker_count_warning_is_silenced() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = (cores or 1) + 1  # more than torch suggests: it would warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = by_path(iter_decoded(["a.mp4", "b.mp4"], _Done(), workers=workers))
    assert sorted(got) == ["a.mp4", "b.mp4"]
    assert not [w for w in caught if "worker processes in total" in str(w.message)]
    # ... and only inside iter_decoded: the caller's filters are as they were.
    assert not any("worker processes in total" in str(f[1]) for f in warnings.filters)
