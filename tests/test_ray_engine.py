"""The Ray engine (``engine="ray"``): its pure helpers and the CLI's refusals first, then real
runs on a two-node local Ray cluster whose workers carry decoder faults on demand
(tests/ray_faults.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from conftest import read_rows, read_vectors  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import vmae_cli  # noqa: E402
from vmae_cli.cli import EXIT_USAGE, app  # noqa: E402
from vmae_cli.model import ModelLoadError  # noqa: E402
from vmae_cli.protocol import Protocol  # noqa: E402
from vmae_cli.ray_engine import (  # noqa: E402
    ActorPlan,
    EngineError,
    PlacementError,
    RayOptions,
    SharedStorageError,
    _check_shared_storage,
    _translate,
    plan_actors,
)
from vmae_cli.scoring import LabelMap  # noqa: E402
from vmae_cli.segments import Segments, Span  # noqa: E402

TESTS = Path(__file__).resolve().parent
PYTHONPATH = os.environ.get("PYTHONPATH", "")
#: Object store of each test node: Ray's default is 30 % of the memory, per node; only paths
#: and rows cross Ray here.
OBJECT_STORE_BYTES = 100 * 1024 * 1024

# ---------------------------------------------------------------------------------------
# Pure helpers (no Ray started)
# ---------------------------------------------------------------------------------------


def test_plan_on_cpu_nodes_is_one_actor_per_node_with_all_its_cpus() -> None:
    plan = plan_actors([{"CPU": 4.0}, {"CPU": 4.0}], RayOptions(), None, wants_gpu=False)
    assert plan == ActorPlan(actors=2, cpus=4.0, gpus=0.0, workers=4, nodes=2)


def test_plan_on_unequal_cpu_nodes_sizes_actors_by_the_smallest_node() -> None:
    # Actors of the smallest node's size: the 8-CPU node has room for two of them.
    plan = plan_actors([{"CPU": 8.0}, {"CPU": 4.0}], RayOptions(), None, wants_gpu=False)
    assert plan == ActorPlan(actors=3, cpus=4.0, gpus=0.0, workers=4, nodes=2)


def test_plan_caps_actors_by_room_and_sizes_workers_from_cpus() -> None:
    nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    assert plan_actors(nodes, RayOptions(actors=10), None, False).actors == 2
    one = plan_actors(nodes, RayOptions(actors=1), None, False)
    assert (one.actors, one.nodes) == (1, 1)
    # Workers: one per whole CPU of the actor (at least one), unless given.
    plan = plan_actors([{"CPU": 8.0}], RayOptions(cpus_per_actor=2.5), None, False)
    assert (plan.actors, plan.cpus, plan.workers) == (3, 2.5, 2)
    assert plan_actors([{"CPU": 8.0}], RayOptions(cpus_per_actor=0.5), None, False).workers == 1
    assert plan_actors([{"CPU": 8.0}], RayOptions(), 3, False).workers == 3


def test_plan_on_gpu_nodes_is_one_actor_per_gpu_share_with_the_cpus_split() -> None:
    nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 2.0}, {"CPU": 32.0}]
    plan = plan_actors(nodes, RayOptions(), None, wants_gpu=True)
    # 6 GPUs, one actor each; each node's CPUs shared by its actors; the CPU node hosts none.
    assert plan == ActorPlan(actors=6, cpus=4.0, gpus=1.0, workers=4, nodes=2)
    pairs = plan_actors(nodes, RayOptions(gpus_per_actor=2), None, wants_gpu=False)
    assert (pairs.actors, pairs.cpus, pairs.gpus) == (3, 8.0, 2.0)


def test_plan_refuses_a_cluster_where_no_node_fits() -> None:
    with pytest.raises(PlacementError, match="4 CPU and 0 GPU"):
        plan_actors([{"CPU": 2.0}], RayOptions(cpus_per_actor=4), None, False)
    with pytest.raises(PlacementError, match="1 GPU .*2 CPU, 0 GPU"):
        plan_actors([{"CPU": 2.0}], RayOptions(), None, wants_gpu=True)
    with pytest.raises(PlacementError, match="no nodes"):
        plan_actors([], RayOptions(), None, False)


class _FakeRay:
    """Just enough of the ``ray`` module for :func:`_check_shared_storage`: three nodes (the
    driver's, another alive one and a dead one); each asked node reports the folders of
    ``missing`` it is given as missing. ``asked`` records the nodes asked."""

    DRIVER, OTHER, DEAD = "d" * 56, "a" * 56, "f" * 56

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = set(missing)
        self.asked: list[str] = []
        self.started: list[Any] = []
        self.killed: list[Any] = []

    def get_runtime_context(self) -> Any:
        return SimpleNamespace(get_node_id=lambda: self.DRIVER)

    def nodes(self) -> list[dict[str, Any]]:
        return [
            {"NodeID": self.DRIVER, "Alive": True},
            {"NodeID": self.OTHER, "Alive": True},
            {"NodeID": self.DEAD, "Alive": False},
        ]

    def remote(self, **_resources: Any) -> Any:
        def wrap(actor_class: Any) -> Any:
            def options(scheduling_strategy: Any) -> Any:
                node = scheduling_strategy.node_id

                def start() -> Any:
                    def missing(dirs: list[str]) -> tuple[str, list[str]]:
                        self.asked.append(node)
                        return f"10.0.0.2/{node[:8]}", [d for d in dirs if d in self.missing]

                    actor = SimpleNamespace(missing=SimpleNamespace(remote=missing), node=node)
                    self.started.append(actor)
                    return actor

                return SimpleNamespace(remote=start)

            assert isinstance(actor_class, type)  # an actor, not a task (see the check)
            return SimpleNamespace(options=options)

        return wrap

    def get(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        del timeout
        return refs  # the fake's "references" are already the results

    def kill(self, actor: Any) -> None:
        self.killed.append(actor)


def test_shared_storage_check_names_the_missing_folder_and_the_node() -> None:
    fake = _FakeRay(missing=["/data/videos"])
    with pytest.raises(SharedStorageError) as info:
        _check_shared_storage(fake, ["/models/tiny", "/data/videos"])
    message = str(info.value)
    assert "/data/videos" in message
    assert "/models/tiny" not in message
    assert f"10.0.0.2/{_FakeRay.OTHER[:8]}" in message
    # Only the other alive node is asked: the driver's own sees what the driver sees.
    assert fake.asked == [_FakeRay.OTHER]
    assert fake.killed == fake.started  # its probe is gone, even when the check fails


def test_shared_storage_check_passes_when_every_node_sees_the_folders() -> None:
    fake = _FakeRay(missing=[])
    _check_shared_storage(fake, ["/data/videos"])
    assert fake.asked == [_FakeRay.OTHER]
    assert [a.node for a in fake.killed] == [_FakeRay.OTHER]


class _StuckNodeTable:
    """A Ray whose ``nodes()`` never answers on its first ``stuck`` connections."""

    def __init__(self, stuck: int) -> None:
        self.stuck, self.calls = stuck, 0
        self.release = threading.Event()

    def nodes(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls <= self.stuck:
            self.release.wait()  # as Ray's call that never returns
        return [
            {"NodeID": "a", "Alive": True, "Resources": {"CPU": 2.0}},
            {"NodeID": "b", "Alive": False, "Resources": {"CPU": 2.0}},
        ]


def test_a_node_table_that_does_not_come_is_asked_again_on_a_new_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vmae_cli import ray_engine

    renewed = []
    monkeypatch.setattr(ray_engine, "NODE_TABLE_WAIT_S", 0.2)
    monkeypatch.setattr(ray_engine, "_new_state_connection", lambda: renewed.append(1))
    fake, never = _StuckNodeTable(stuck=1), _StuckNodeTable(stuck=99)
    try:
        assert ray_engine._node_resources(fake) == [{"CPU": 2.0}]
        assert (fake.calls, len(renewed)) == (2, 1)
        with pytest.raises(ray_engine.EngineError, match="did not give its list of nodes"):
            ray_engine._node_resources(never)
        assert never.calls == ray_engine.NODE_TABLE_TRIES
    finally:
        fake.release.set()
        never.release.set()


def test_a_new_state_connection_is_made_on_the_next_query() -> None:
    from ray._private import state

    from vmae_cli import ray_engine

    saved = state.state._global_state_accessor
    state.state._global_state_accessor = object()
    try:
        ray_engine._new_state_connection()
        assert state.state._global_state_accessor is None
    finally:
        state.state._global_state_accessor = saved


class _TaskError(Exception):
    """Stands for Ray's RayTaskError."""


class _RayTaskErrorModelLoadError(_TaskError, ModelLoadError):
    """How Ray re-raises an actor's ModelLoadError in the driver: a class of its own making
    (not vmae's) deriving from both its task error and the original, caused by the
    original."""


def test_translate_reports_our_own_error_from_an_actor_and_shortens_ray_ones() -> None:
    original = ModelLoadError("cannot load /models/tiny: no config.json")
    try:
        try:
            raise original
        except ModelLoadError as inner:
            raise _RayTaskErrorModelLoadError("ray's long text\n  traceback...") from inner
    except _TaskError as outer:
        ours = _translate(outer)
    assert ours is original  # the original, not Ray's hybrid that also is a ModelLoadError
    other = _translate(RuntimeError("Ray Data failed\nlong traceback"))
    assert type(other) is EngineError
    assert "Ray Data failed" in str(other)
    assert "long traceback" not in str(other)


def _cli(*args: str) -> Any:
    """``vmae classify ARGS`` through Typer's test runner."""
    return CliRunner().invoke(app, ["classify", *args], catch_exceptions=False)


def test_engine_ray_without_the_extra_exits_2_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if absent
    result = _cli(str(tmp_path), "--engine", "ray", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == EXIT_USAGE
    lines = [line for line in result.stderr.splitlines() if "pip install" in line]
    assert lines, result.stderr
    assert "pip install 'vmae-cli[ray]'" in lines[0]
    assert not (tmp_path / "out.csv").exists()  # refused before the output was touched


def test_ray_options_without_the_ray_engine_exit_2(tmp_path: Path) -> None:
    result = _cli(str(tmp_path), "--actors", "2", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == EXIT_USAGE
    assert "--actors 2 applies only with --engine ray" in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_ray_client_address_exits_2_before_any_ray_starts(tmp_path: Path) -> None:
    args = ["--engine", "ray", "--ray-address", "ray://head:10001"]
    result = _cli(str(tmp_path), *args, "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == EXIT_USAGE
    assert "Ray Client" in result.stderr
    assert not ray.is_initialized()


# ---------------------------------------------------------------------------------------
# Runs on a two-node local cluster
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(moto_server, tmp_path_factory) -> Iterator[Any]:
    """An S3-compatible store (moto behind a counting proxy) that this process and every
    Ray node find through the environment, set before the cluster starts: the nodes'
    processes inherit it, as nodes of a real cluster have their own credentials."""
    from servers import S3, RangeHTTPServer, forget_filesystems

    moto_server.reset()
    proxy = RangeHTTPServer(upstream=moto_server.url).start()
    found = S3(moto_server, proxy, tmp_path_factory.mktemp("aws-config"))
    saved = {name: os.environ.get(name) for name in found.env}
    for name, value in found.env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    forget_filesystems()
    try:
        yield found
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_filesystems()
        proxy.stop()


@pytest.fixture(scope="module")
def cluster(store: Any) -> Iterator[Any]:
    """Two Ray nodes of one CPU each on this machine, joined by this process; every Ray
    worker runs ``ray_faults.install`` (decoder faults by file name) and finds ``store``."""
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "another test left Ray running in this process"
    nodes = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": OBJECT_STORE_BYTES,
            "include_dashboard": False,
        },
    )
    try:
        nodes.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
        nodes.wait_for_nodes()
        ray.init(
            address=nodes.address,
            log_to_driver=False,
            runtime_env={
                "worker_process_setup_hook": "ray_faults.install",
                # The caller's PYTHONPATH kept: the workers import the vmae_cli under test.
                "env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), PYTHONPATH]))},
            },
        )
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def _folder(root: Path, files: dict[str, Path]) -> Path:
    """``root`` holding a hard link of each file under its new name (names must differ)."""
    root.mkdir(parents=True)
    for name, src in files.items():
        os.link(src, root / name)
    return root


def _run(folder: Path, out: Path, model: Path, **options: Any) -> vmae_cli.RunReport:
    """One run on CPU in float32 (scores comparable across engines) into ``out``."""
    return vmae_cli.run([folder], out, model=str(model), device="cpu", dtype="float32", **options)


def _once_each(rows: list[dict], folder: Path) -> dict[str, dict]:
    """``rows`` by path, asserting that every file of ``folder`` has exactly one."""
    counts = Counter(r["path"] for r in rows)
    assert {p for p, n in counts.items() if n > 1} == set()
    assert set(counts) == {str(p) for p in folder.iterdir()}
    return {r["path"]: r for r in rows}


@pytest.mark.slow
def test_ray_gives_the_local_rows_from_both_nodes_and_a_resume_adds_none(
    cluster: Any, tmp_path: Path, tiny_model_dir: Path, test_videos, bad_files
) -> None:
    # One Ray run serves three checks (each run costs seconds of actor start-up): its rows
    # are the local engine's, both nodes made some, and resuming its output does nothing.
    files = {p.name: p for p in [*test_videos.values(), *bad_files.values()]}
    assert len(files) == len(test_videos) + len(bad_files)  # no two share a name
    folder = _folder(tmp_path / "videos", files)
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local_emb, ray_emb = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    local = _run(
        folder, local_out, tiny_model_dir, engine="local", workers=1, embeddings_output=local_emb
    )
    # Two videos a task: enough tasks for both actors.
    report = _run(
        folder,
        ray_out,
        tiny_model_dir,
        engine="ray",
        workers=1,
        videos_per_task=2,
        embeddings_output=ray_emb,
    )
    assert report.engine == "ray"
    assert report.by_status == local.by_status
    # The actors' runtime is the report's, as a local run's is (it was None: issue 24).
    assert local.runtime is not None and local.runtime.endswith(" float32")
    assert report.runtime == local.runtime
    assert report.to_dict()["runtime"] == local.runtime
    expected = _once_each(read_rows(local_out), folder)
    got = _once_each(read_rows(ray_out), folder)
    assert {r["status"] for r in got.values()} > {"ok", "not_video"}  # both kinds compared
    for path, want in expected.items():
        row = got[path]
        for key in ("status", "label", "error", "decoder", "frame_indices"):
            assert row[key] == want[key], (path, key)
        if want["score"] is None:
            assert row["score"] is None, path
        else:
            assert row["score"] == pytest.approx(want["score"], abs=1e-3), path
    # The vectors come back through the driver with their rows: one per ok video, as local.
    want_vectors, got_vectors = read_vectors(local_emb), read_vectors(ray_emb)
    ok_paths = {p for p, r in expected.items() if r["status"] == "ok"}
    assert set(got_vectors) == set(want_vectors) == {(p, None) for p in ok_paths}
    for key, vector in want_vectors.items():
        assert np.abs(got_vectors[key] - vector).max() <= 1e-2, key
    assert report.embeddings == len(ok_paths)
    # Spread: each node's actor classified some of the videos.
    assert len(report.by_node) == 2, report.by_node
    assert sum(report.by_node.values()) == len(files)
    # Resume: every video has its row (failed ones included), so nothing is redone.
    assert ray.is_initialized()  # a run on the caller's Ray does not shut it down
    written = ray_out.read_bytes()
    again = _run(folder, ray_out, tiny_model_dir, engine="ray", workers=1, resume=True)
    assert (again.skipped, again.videos) == (len(files), 0)
    assert ray_out.read_bytes() == written
    # Retry the failed ones: Ray takes the paths once the walk ended (the ones to redo held
    # back to its end), their old rows go before their first new one, each video once.
    failed = len(files) - len(ok_paths)
    retried = _run(folder, ray_out, tiny_model_dir, engine="ray", workers=1, retry_failed=True)
    assert (retried.skipped, retried.videos, retried.found) == (len(ok_paths), failed, len(files))
    assert _once_each(read_rows(ray_out), folder).keys() == expected.keys()


@pytest.mark.slow
def test_ray_classifies_s3_urls_that_no_node_has_on_disk(
    cluster: Any, store: Any, tmp_path: Path, tiny_model_dir: Path, test_videos
) -> None:
    # The videos are objects only: each actor fetches its own from the store, only URLs and
    # rows cross Ray, and no folder of videos is checked for on the nodes.
    files = [test_videos[n] for n in ("h264", "hevc", "vp9", "h264_bframes", "mpegts", "vfr")]
    urls = store.upload("videos", files, prefix="ray")
    prefix = "s3://videos/ray/"
    options = {"model": str(tiny_model_dir), "device": "cpu", "dtype": "float32", "workers": 1}
    local = vmae_cli.run([prefix], tmp_path / "local.csv", engine="local", **options)
    report = vmae_cli.run(
        [prefix], tmp_path / "ray.csv", engine="ray", videos_per_task=1, **options
    )
    assert report.by_status == local.by_status == {"ok": len(files)}
    assert len(report.by_node) == 2, report.by_node
    want = {r["path"]: r for r in read_rows(tmp_path / "local.csv")}
    got = {r["path"]: r for r in read_rows(tmp_path / "ray.csv")}
    assert set(got) == set(want) == set(urls)
    for url, row in got.items():
        for key in ("status", "label", "decoder", "frame_indices", "size_bytes", "mtime_ns"):
            assert row[key] == want[url][key], (url, key)
        assert float(row["score"]) == pytest.approx(float(want[url]["score"]), abs=1e-3)
        assert "fetched " in row["notes"]
        assert store.proxy.traffic(url).requests >= 2  # fetched by the local run and an actor
    again = vmae_cli.run([prefix], tmp_path / "ray.csv", engine="ray", resume=True, **options)
    assert (again.skipped, again.videos) == (len(files), 0)


@pytest.mark.slow
def test_corrupt_crashing_and_hanging_files_each_get_their_row(
    cluster: Any, tmp_path: Path, tiny_model_dir: Path, test_videos
) -> None:
    good = {test_videos[k].name: test_videos[k] for k in ("h264", "vp9")}
    folder = _folder(
        tmp_path / "videos",
        {**good, "x_segfault.mp4": test_videos["h264"], "y_hang.mp4": test_videos["h264"]},
    )
    (folder / "notes.mp4").write_text("a text file named like a video\n")
    out = tmp_path / "out.jsonl"
    # One video a task: the crash and the hang (seconds each) can run on both actors at once.
    report = _run(
        folder, out, tiny_model_dir, engine="ray", workers=1, timeout_s=3, videos_per_task=1
    )
    rows = _once_each(read_rows(out), folder)
    status = {Path(p).name: r["status"] for p, r in rows.items()}
    assert status == {
        **dict.fromkeys(good, "ok"),
        "x_segfault.mp4": "crashed",
        "y_hang.mp4": "timeout",
        "notes.mp4": "not_video",
    }
    assert "3 s" in rows[str(folder / "y_hang.mp4")]["error"]
    assert report.by_status == {"ok": 2, "crashed": 1, "timeout": 1, "not_video": 1}


@pytest.mark.slow
def test_a_video_that_kills_its_actor_is_crashed_and_the_others_ok(
    cluster: Any, tmp_path: Path, tiny_model_dir: Path, test_videos
) -> None:
    # workers=0 decodes inside the actor: the segfault kills the Ray actor itself, each time
    # the video is tried. Two videos a task: the crashing one shares its task with mjpeg,
    # which must get its own row when the task is redone one video at a time.
    good = {test_videos[k].name: test_videos[k] for k in ("h264", "hevc", "mjpeg")}
    folder = _folder(tmp_path / "videos", {**good, "x_segfault.mp4": test_videos["h264"]})
    out = tmp_path / "out.jsonl"
    report = _run(folder, out, tiny_model_dir, engine="ray", workers=0, videos_per_task=2)
    rows = _once_each(read_rows(out), folder)
    crashed = rows.pop(str(folder / "x_segfault.mp4"))
    assert crashed["status"] == "crashed"
    assert "actor died" in crashed["error"]
    assert {Path(p).name: r["status"] for p, r in rows.items()} == dict.fromkeys(good, "ok")
    assert report.by_status == {"ok": 3, "crashed": 1}


@pytest.mark.slow
def test_an_actor_no_node_can_host_is_refused_within_seconds(
    cluster: Any, tmp_path: Path, tiny_model_dir: Path, test_videos
) -> None:
    folder = _folder(tmp_path / "videos", {"a.mp4": test_videos["h264"]})
    started = time.monotonic()
    with pytest.raises(PlacementError, match="1 GPU"):
        _run(folder, tmp_path / "out.csv", tiny_model_dir, engine="ray", gpus_per_actor=1)
    assert time.monotonic() - started < 10
    assert ray.is_initialized()  # the caller's Ray is left as it was


@pytest.mark.slow
def test_segments_on_ray_bring_window_rows_back_through_the_driver(
    cluster: Any, tmp_path: Path, tiny_model_dir: Path, test_videos
) -> None:
    good = {test_videos[k].name: test_videos[k] for k in ("h264", "mjpeg")}
    folder = _folder(tmp_path / "videos", {**good, "x_segfault.mp4": test_videos["h264"]})
    out, windows = tmp_path / "out.csv", tmp_path / "windows.jsonl"
    report = _run(
        folder,
        out,
        tiny_model_dir,
        engine="ray",
        workers=1,
        videos_per_task=1,
        protocol=Protocol(segments=Segments(Span(8, "f"), Span(5, "f"))),
        segments_output=str(windows),
        embeddings_output=tmp_path / "emb.parquet",
        label_map=LabelMap({"dancing": "moves", "running": "moves"}),
        min_score=0.99,
    )
    rows = _once_each(read_rows(out), folder)
    window_rows = read_rows(windows)
    assert rows.pop(str(folder / "x_segfault.mp4"))["windows"] == "0"
    vectors = read_vectors(tmp_path / "emb.parquet")
    for path, row in rows.items():
        mine = [w for w in window_rows if w["path"] == path]
        assert row["status"] == "ok" and int(row["windows"]) == len(mine) == 5
        assert [w["window"] for w in mine] == list(range(5))
        assert (mine[0]["start_frame"], mine[-1]["end_frame"]) == (0, 23)
        # Label groups and the threshold are applied in the actors, windows included.
        for r in (row, *mine):
            assert r["group"] in ("moves", "other") and float(r["group_score"]) > 0
            assert (r["label"], str(r["low_confidence"])) == ("", "True")  # CSV and JSONL
        # A vector per window and the video's, their mean, from the actors.
        window_vectors = [vectors[(path, i)] for i in range(5)]
        assert np.abs(vectors[(path, None)] - np.mean(window_vectors, axis=0)).max() < 1e-2
    assert len(vectors) == 2 * (5 + 1)
    assert report.windows == 10 and len(window_rows) == 10
