"""``--engine ray``: the same classification spread over the nodes of a Ray cluster with Ray
Data (the optional extra ``vmae-cli[ray]``; ray is imported only when this engine runs).

Only paths and rows cross Ray. The driver (the ``vmae`` process) hands numbered paths to
``Dataset.map_batches`` with a pool of actors; each actor is vmae's own local pipeline
(:meth:`~vmae_cli.pipeline.Classifier.classify_files`: its decoding worker processes,
timeouts, crash isolation, the model on its device) and returns exactly one pickled
:class:`~vmae_cli.results.Prediction` per path. Decoded frames never leave the node that
decoded them (a 16x224x224x3 clip is 2.4 MB; a GPU node classifies hundreds per second).
The driver keeps the output file, resume and the report (:mod:`vmae_cli.runner`).

Nothing is dropped silently: Ray Data's ``max_errored_blocks`` stays 0 (above 0 it drops
whole blocks, good videos included), every per-file failure is a row made inside an actor,
and an actor that dies (a lost node, the out-of-memory killer, a decoder that crashes with
``--workers 0``) is restarted a bounded number of times (Ray Data's default is for ever,
which hung a test job on a video that killed its actor every time). A batch whose actor died
is redone one video at a time; a video whose actor dies while it is classified alone gets a
``crashed`` row and the others of its batch their own rows (:class:`_Ledger` remembers).

A local Ray that vmae starts is vmae's to stop: ``ray.shutdown`` at the end, and a
:class:`~vmae_cli.reaper.Reaper` for a driver killed with SIGKILL. Ray's log lines go to its
session folder (named with ``--debug``), never to the terminal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import signal
import socket
import sys
import threading
import warnings
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

# Videos per task by default lives in `choices` (what `vmae --help` imports).
from .choices import DEFAULT_VIDEOS_PER_TASK
from .errors import VmaeError
from .extras import require
from .identity import video_path
from .model import ModelRef, RunLabels
from .pipeline import ClassifyOptions
from .results import STATUS_CRASHED, STATUS_ERROR, STATUS_OK, Prediction, file_stamp

log = logging.getLogger(__name__)

#: The optional extra that installs this engine.
EXTRA = "ray"
#: How often Ray restarts an actor that died, and retries the task it had. Actors only die
#: of something outside vmae's control (decoding runs in worker processes), except with
#: ``--workers 0``, where each video that crashes its decoder costs two restarts.
MAX_ACTOR_RESTARTS = 8
#: How long the driver waits for the first actor to be placed and started (seconds): the
#: model loads there, but an actor that cannot be placed must not wait for ever.
ACTOR_START_TIMEOUT_S = 300.0
#: How long a node has to answer the shared-storage check (seconds).
NODE_CHECK_TIMEOUT_S = 120.0
#: How long a --ray-address HOST:PORT has to accept a connection (seconds).
CONNECT_TIMEOUT_S = 10.0
#: How long the cluster's node table may take to come (seconds) before it is asked again on
#: a new connection to the GCS, and how many times: with Ray 2.60 the driver's own state
#: connection once stopped answering ``ray.nodes()`` for good after a run whose actors were
#: killed, while a new connection got the table at once (a test, 2026-12-07).
NODE_TABLE_WAIT_S = 20.0
NODE_TABLE_TRIES = 3
#: How often the driver looks at a stop request while no row arrives (seconds).
STOP_POLL_S = 0.2
#: How long the driver waits for its reading thread to leave Ray Data when it stops (s).
READER_JOIN_S = 30.0
#: Output blocks (one per task) waiting for the driver to write their rows.
PREFETCH_BLOCKS = 2


class EngineError(VmaeError, RuntimeError):
    """Ray could not run the classification (not a video's fault: those are rows)."""


class PlacementError(EngineError):
    """No node of the cluster can host an actor with the resources asked for."""


class SharedStorageError(EngineError):
    """A node cannot see the videos (or the model folder) at the paths the driver sees."""


@dataclass
class RayOptions:
    """Where and how ``--engine ray`` runs (ignored by the local engine)."""

    ray_address: str | None = None  # None: start a local Ray; "auto" or "HOST:PORT"
    actors: int | None = None  # None: as many as the cluster has room for
    cpus_per_actor: float | None = None  # None: a whole node's CPUs (CPU) or its share (GPU)
    gpus_per_actor: float | None = None  # None: 1 with --device cuda, else 0
    videos_per_task: int = DEFAULT_VIDEOS_PER_TASK


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, with which resources, and how many decoding workers each."""

    actors: int
    cpus: float
    gpus: float
    workers: int
    nodes: int


def classify_on_ray(
    paths: Iterable[str],
    settled: RunLabels,
    ref: ModelRef,
    *,
    classify: ClassifyOptions,
    ray_options: RayOptions,
    stop: threading.Event,
    on_status: Callable[[str], None],
    on_warning: Callable[[str], None],
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per path, in completion order, classified by Ray actors,
    each loading the model ``ref`` says (``settled`` is its config with the run's labels,
    settled by the driver: :func:`~vmae_cli.model.run_labels`).

    Starts a local Ray (``ray_address`` None) or joins a cluster, checks placement and shared
    storage, and stops what it started when the generator ends or is closed. Raises
    :class:`~vmae_cli.extras.MissingExtraError`, :class:`EngineError` (and its kinds) or a
    model error an actor met (:class:`~vmae_cli.model.ModelLoadError`, ...).

    ``paths`` is read to its end before Ray starts: Ray Data's ``from_items`` takes a list
    (numbered, so that a block delivered twice gives one row and a lost one still gets its
    row), and the storage check needs the first and the last video. The local engine
    streams them instead. Nothing starts when ``paths`` is empty.
    """
    paths = list(paths)
    if not paths:
        return
    ray = require("ray", EXTRA, engine="ray")
    require("ray.data", EXTRA, engine="ray")
    session = _Session(ray, ray_options.ray_address, on_status)
    try:
        wants_gpu = _wants_gpu(ref.device)
        plan = plan_actors(_node_resources(ray), ray_options, classify.workers, wants_gpu)
        if ray_options.actors is not None and plan.actors < ray_options.actors:
            on_warning(f"actors={ray_options.actors}, but the cluster has room for {plan.actors}")
        spec = settled.spec
        model = os.path.abspath(spec.name) if os.path.isdir(spec.name) else spec.name
        head = os.path.abspath(ref.head) if ref.head is not None else None
        absolute = [video_path(p) for p in paths]  # a URL stays one: each actor fetches it
        probes = _probe_dirs(absolute, model)
        # Held here for the whole run: Ray ends an actor once its creator drops the handle,
        # whatever the handles pickled into the actors' arguments.
        ledger = ray.remote(num_cpus=0)(_Ledger).remote()
        on_status("checking that every node sees the videos")
        _check_shared_storage(ray, probes)
        on_status(
            f"starting {plan.actors} actor{'s' if plan.actors != 1 else ''} "
            f"on {plan.nodes} node{'s' if plan.nodes != 1 else ''}"
        )
        dataset = _dataset(
            ray,
            absolute,
            plan,
            ray_options.videos_per_task,
            actor_args={
                "ref": replace(ref, name=model, head=head),
                "classify": replace(classify, workers=plan.workers),
                "probes": probes,
                "ledger": ledger,
            },
        )
        for prediction in _rows(dataset, paths, stop, spec.name, classify.protocol.name):
            prediction.model_revision = spec.revision  # the driver's, as for the model name
            prediction.labels_from = settled.labels_from
            yield prediction
    finally:
        session.close()


def plan_actors(
    nodes: list[dict[str, float]],
    options: RayOptions,
    workers: int | None,
    wants_gpu: bool,
) -> ActorPlan:
    """The actor pool for a cluster whose nodes have the given ``CPU``/``GPU`` totals.

    Defaults: on CPUs one actor per node with all of its CPUs; with GPUs one actor per
    ``gpus_per_actor`` GPUs with the node's CPUs shared between them. Decoding workers per
    actor: ``workers``, else one per CPU of the actor. Raises :class:`PlacementError` when no
    node can host one actor.
    """
    gpus = options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if wants_gpu else 0.0
    if gpus > 0:
        hosts = [n for n in nodes if n.get("GPU", 0) >= gpus]
        cpus = options.cpus_per_actor
        if cpus is None:
            shares = [n.get("CPU", 0) / (n["GPU"] // gpus) for n in hosts]
            cpus = float(max(1, int(min(shares)))) if shares else 1.0
    else:
        cpus = options.cpus_per_actor
        if cpus is None:
            cpus = float(max(1, int(min((n.get("CPU", 0) for n in nodes), default=1))))
        hosts = nodes
    room = {
        i: int(min(n.get("CPU", 0) // cpus, n.get("GPU", 0) // gpus if gpus > 0 else 1 << 30))
        for i, n in enumerate(hosts)
    }
    fits = sum(room.values())
    if fits == 0:
        have = (
            "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU" for n in nodes)
            or "no nodes"
        )
        raise PlacementError(
            f"no Ray node can host an actor with {cpus:g} CPU and {gpus:g} GPU "
            f"(the nodes have: {have}); lower cpus_per_actor/gpus_per_actor",
            options=("cpus_per_actor", "gpus_per_actor"),
        )
    actors = min(options.actors or fits, fits)
    used = sum(1 for r in room.values() if r > 0)
    return ActorPlan(
        actors=actors,
        cpus=cpus,
        gpus=gpus,
        workers=workers if workers is not None else max(1, int(cpus)),
        nodes=min(used, actors),
    )


def _wants_gpu(device: str) -> bool:
    return device.startswith("cuda")


def _node_resources(ray: Any) -> list[dict[str, float]]:
    return [dict(n["Resources"]) for n in _alive_nodes(ray)]


def _alive_nodes(ray: Any) -> list[dict[str, Any]]:
    """The live nodes of ``ray.nodes()``, asked of the GCS at most :data:`NODE_TABLE_TRIES`
    times, each on a new state connection after one that did not answer in
    :data:`NODE_TABLE_WAIT_S`; :class:`EngineError` if none did."""
    for _ in range(NODE_TABLE_TRIES):
        got: dict[str, Any] = {}
        asker = threading.Thread(
            target=_ask_nodes, args=(ray, got), name="vmae-ray-nodes", daemon=True
        )
        asker.start()
        asker.join(NODE_TABLE_WAIT_S)
        if "error" in got:
            raise got["error"]
        if "nodes" in got:
            return [n for n in got["nodes"] if n.get("Alive")]
        _new_state_connection()
    raise EngineError(
        f"the Ray cluster did not give its list of nodes within {NODE_TABLE_WAIT_S:.0f} s, "
        f"{NODE_TABLE_TRIES} times"
    )


def _ask_nodes(ray: Any, got: dict[str, Any]) -> None:
    """``ray.nodes()`` into ``got["nodes"]``, or its exception into ``got["error"]``."""
    try:
        got["nodes"] = ray.nodes()
    except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
        got["error"] = exc


def _new_state_connection() -> None:
    """Make Ray's next state query (``ray.nodes()``) open a new connection to the GCS, the
    one that did not answer left to its thread. Ray keeps it in its module-level
    ``GlobalState``; without that attribute (another Ray version) nothing is done."""
    from ray._private import state

    holder = getattr(state, "state", None)
    lock = getattr(holder, "_init_lock", None)
    if holder is None or lock is None or not hasattr(holder, "_global_state_accessor"):
        return
    with lock:
        holder._global_state_accessor = None


def _probe_dirs(paths: list[str], model: str) -> list[str]:
    """Folders every node must see: those of the first and last video, and a model folder;
    only those the driver sees (a folder gone meanwhile makes ``not_found`` rows, as in a
    local run, not a storage error)."""
    dirs = list(dict.fromkeys(os.path.dirname(p) for p in (paths[0], paths[-1])))
    return [d for d in [*dirs, model] if os.path.isdir(d)]


def node_label() -> str:
    """This Ray node as rows and the summary name it: its IP and the start of its id."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def _missing_dirs(dirs: list[str]) -> tuple[str, list[str]]:
    return node_label(), [d for d in dirs if not os.path.isdir(d)]


class _StorageProbe:
    """An actor pinned to one node that answers which of some folders that node lacks."""

    def missing(self, dirs: list[str]) -> tuple[str, list[str]]:
        return _missing_dirs(dirs)


def _shared_storage_error(node: str, missing: list[str]) -> SharedStorageError:
    return SharedStorageError(
        f"shared storage needed: {missing[0]} is not visible on Ray node {node}; every node "
        "must see the videos (and a model folder) at the same path",
        path=missing[0],
    )


def _check_shared_storage(ray: Any, dirs: list[str]) -> None:
    """Ask every other alive node whether it sees ``dirs``; raise for the first that does
    not. The driver's own node needs no asking (a local run costs nothing).

    Each node is asked by an actor placed on it, not by a task: Ray 2.60's driver dies
    (exit 1, "Check failed: address.node_id() != \"\"" in ``RayletClientPool::
    GetOrConnectByAddress``, from ``NormalTaskSubmitter::RequestNewWorkerIfNeeded``) when
    the lease of a task pinned to another node comes back from its raylet as a spillback:
    now and then, twice in this project's full test runs on a two-node local cluster.
    Actors are placed by the GCS, never through that path.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    probe = ray.remote(num_cpus=0)(_StorageProbe)
    actors = [
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in _alive_nodes(ray)
        if n["NodeID"] != here
    ]
    try:
        answers = ray.get([a.missing.remote(dirs) for a in actors], timeout=NODE_CHECK_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise EngineError(
            f"a Ray node did not answer within {NODE_CHECK_TIMEOUT_S:g} s whether it sees {dirs[0]}"
        ) from None
    finally:
        for actor in actors:
            ray.kill(actor)
    for node, missing in answers:
        if missing:
            raise _shared_storage_error(node, missing)


class _Session:
    """A connection to Ray: a local Ray started for this run (and stopped, even when the
    driver is killed), or an existing cluster joined (left at the end)."""

    def __init__(self, ray: Any, address: str | None, on_status: Callable[[str], None]):
        from .reaper import Reaper, children, command_name

        self.ray = ray
        self.reaper: Reaper | None = None
        self.joined_existing = ray.is_initialized()
        if self.joined_existing:  # a caller's own Ray (a notebook, tests): use it as it is
            return
        common = {
            "include_dashboard": False,
            "log_to_driver": False,  # workers' prints and logs stay in the session folder
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        quiet = log.getEffectiveLevel() > logging.DEBUG
        if quiet:
            # Ray's C++ core logs errors to the driver's stderr as well as to its files, among
            # them one that Ray Data's own actor arguments always trigger with bounded restarts
            # (ray-project/ray#53727, #57838): fatal ones only, unless --debug asks for all.
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        with _signal_handlers_kept():
            if address is None:
                on_status("starting a local Ray")
                self.reaper = Reaper()
                before = set(children(os.getpid()))
                with _stderr_silenced(quiet):
                    context = _init(ray, "local", common)
                started = [p for p in children(os.getpid()) if p not in before]
                raylets = [p for p in started if command_name(p) == "raylet"]
                agents = [p for raylet in raylets for p in children(raylet)]
                self.reaper.kill_later(started + agents, [f"RAY_RAYLET_PID={p}" for p in raylets])
            else:
                on_status(f"connecting to Ray at {address}")
                with _stderr_silenced(quiet):
                    context = _init(ray, address, common)
        _quiet_ray_data()
        self._unrouted = _route_ray_messages()
        session_dir = getattr(context, "address_info", {}).get("session_dir")
        if session_dir:
            log.debug("Ray's logs: %s", os.path.join(session_dir, "logs"))

    def close(self) -> None:
        if not self.joined_existing:
            self.ray.shutdown()
            self._unrouted()
        if self.reaper is not None:
            self.reaper.close()


def _init(ray: Any, address: str, options: dict[str, Any]) -> Any:
    """``ray.init``, its failures (no cluster at that address, ...) as one line."""
    _check_reachable(address)
    try:
        return ray.init(address=address, **options)
    except Exception as exc:  # whatever Ray raises, the user gets one line
        where = "a local Ray" if address == "local" else f"Ray at {address}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if address != "local" and "RAY_AUTH_MODE" not in os.environ:
            # ray 2.60's `ray start` turns token authentication on, and a driver without
            # RAY_AUTH_MODE=token is refused with only "Failed to connect to Ray cluster".
            # Setting it here would not do: Ray reads it when imported, and a driver in token
            # mode on a cluster without authentication gets its actors cancelled.
            hint = (
                "; if the cluster uses token authentication (ray start's default since ray "
                "2.60), run vmae with RAY_AUTH_MODE=token and the cluster's token"
            )
        raise EngineError(f"cannot start or reach {where}: {first}{hint}") from exc


def _check_reachable(address: str) -> None:
    """Refuse at once an address where nothing listens: ``ray.init`` keeps retrying such a
    HOST:PORT for minutes (seen with ray 2.60)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local": Ray finds the cluster itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineError(
            f"nothing answers at {address} ({exc.strerror or exc}): is the Ray cluster "
            "started (`ray start --head`), and is the address its head's?",
            options=("ray_address",),
            value=address,
        ) from None


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Keep the caller's SIGINT and SIGTERM handlers: ``ray.init`` installs its own in the
    driver (ray 2.60), which exit at once instead of letting vmae write the rows it has and
    stop Ray."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set, and are only replaced, in the main thread
        return
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in kept.items():
            if handler is not None:
                signal.signal(s, handler)


@contextmanager
def _stderr_silenced(silence: bool) -> Iterator[None]:
    """File descriptor 2 on /dev/null for a moment: Ray's C++ core announces a log level set
    from the environment on stderr, whatever that level is."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _route_ray_messages() -> Callable[[], None]:
    """Send the messages Ray's driver thread prints for the raylet ("a worker died...",
    "the task will be retried") to the debug log instead of stdout, where they would land in
    the middle of the rows (ray 2.60 prints them with ``print_to_stdstream`` to
    ``sys.stdout``, whatever ``log_to_driver`` says). Returns what undoes it."""
    try:
        from ray._private import worker
    except ImportError:  # another Ray layout: nothing to reroute
        return lambda: None
    original = getattr(worker, "print_to_stdstream", None)
    if original is None:
        return lambda: None

    def to_debug_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        del ignore_prefix
        for line in data.get("lines", ()):
            log.debug("ray (%s): %s", data.get("pid", "?"), line)

    worker.print_to_stdstream = to_debug_log

    def undo() -> None:
        worker.print_to_stdstream = original

    return undo


def _quiet_ray_data() -> None:
    """No Ray Data progress bars or execution banners on the terminal: stderr carries vmae's
    own progress and summary."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = 0  # never drop a block (its videos would get no row)
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    for name in ("ray", "ray.data"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                logger.removeHandler(handler)
        logger.propagate = False


def _dataset(
    ray: Any, paths: list[str], plan: ActorPlan, per_task: int, actor_args: dict[str, Any]
) -> Any:
    """The Ray Data pipeline: numbered paths (as bytes: a file name need not be UTF-8) ->
    actors -> rows."""
    import ray.data

    _quiet_ray_data()
    items = [{"index": i, "path": os.fsencode(p)} for i, p in enumerate(paths)]
    blocks = max(1, min(len(items), -(-len(items) // per_task)))  # at most per_task each
    with warnings.catch_warnings():
        # Ray 2.60 deprecates ray_remote_args, but map_batches has no named parameter for
        # max_restarts and max_task_retries yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        return ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _Actor,
            # One block, one task, one call: with batch_size=per_task Ray Data bundled the
            # blocks up to per_task rows first (23 videos in blocks of 12 and 11 became one
            # task of two calls, whose rows all came at the end).
            batch_size=None,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                min_size=1,
                max_size=plan.actors,
                initial_size=plan.actors,
            ),
            num_cpus=plan.cpus,
            num_gpus=plan.gpus or None,
            fn_constructor_kwargs=actor_args,
            max_restarts=MAX_ACTOR_RESTARTS,
            max_task_retries=MAX_ACTOR_RESTARTS,
        )


def _rows(
    dataset: Any, paths: list[str], stop: threading.Event, model: str, protocol: str
) -> Iterator[Prediction]:
    """The dataset's rows as predictions (with the driver's spelling of each path), as they
    arrive. A stop request ends the stream within :data:`STOP_POLL_S`; the batches still in
    the actors get no row. Every path gets exactly one row when the dataset completes."""
    done: set[int] = set()
    arrived: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_BLOCKS)
    finished = object()
    # Set when the driver stops reading (a stop request, or the caller closed this
    # generator): the reading thread then ends Ray Data's execution instead of going on.
    abandoned = threading.Event()

    def pump() -> None:
        # iter(): iter_batches gives an iterable; its generator is what can be closed.
        # prefetch_batches=0: with prefetching, Ray Data 2.60 held every block back until
        # the last task was done (23 videos: all rows at once after 74 s); without it each
        # task's rows arrive when it ends, and the queue below is the only buffer.
        batches = iter(
            dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)
        )
        try:
            for batch in batches:
                if not _put(arrived, batch, abandoned):
                    return
            _put(arrived, finished, abandoned)
        except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread
            _put(arrived, exc, abandoned)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    pumper = threading.Thread(target=pump, name="vmae-ray-rows", daemon=True)
    pumper.start()
    try:
        while True:
            if stop.is_set():
                return
            try:
                item = arrived.get(timeout=STOP_POLL_S)
            except queue.Empty:
                continue
            if item is finished:
                break
            if isinstance(item, BaseException):
                log.debug("Ray Data failed", exc_info=item)
                raise _translate(item) from item
            for index, row in zip(item["index"].tolist(), item["row"], strict=True):
                if index in done:  # a block delivered twice must not give a second row
                    continue
                done.add(index)
                prediction = pickle.loads(row)
                # The driver's spelling: actors got absolute paths (their working folder is
                # not the driver's), and the model as the user named it is what resume
                # compares.
                prediction.path = paths[index]
                prediction.model = model
                yield prediction
    finally:
        abandoned.set()
        _end_reading(dataset, pumper)
    for index, path in enumerate(paths):  # never a lost row, whatever Ray did
        if index not in done:
            yield _failure_row(
                path, STATUS_ERROR, "the Ray engine returned no row for it", model, protocol
            )


def _failure_row(path: str, status: str, error: str, model: str, protocol: str) -> Prediction:
    """The row of a video that got none from the pipeline (stamped now, for --resume)."""
    return Prediction(
        path=path,
        status=status,
        error=error,
        model=model,
        protocol=protocol,
        stamp=file_stamp(path),
    )


def _end_reading(dataset: Any, pumper: threading.Thread) -> None:
    """Stop Ray Data's execution and wait for the reading thread, before Ray is shut down.

    A reading thread still inside Ray Data after ``ray.shutdown`` calls Ray again when its
    iterator closes, and Ray then starts a new local instance from that thread, whose agents
    nobody stops (seen with ray 2.60 after a SIGTERM). The thread waits for the next block,
    which can take a whole batch: shutting the executor down (``Dataset._current_executor``,
    ray 2.60) ends that wait, and its actors, at once.
    """
    if not pumper.is_alive():
        return
    executor = getattr(dataset, "_current_executor", None)
    if executor is not None:
        try:
            executor.shutdown(force=True)
        except Exception as exc:  # noqa: BLE001 - the join below still bounds the wait
            log.debug("stopping Ray Data's executor: %r", exc)
    pumper.join(timeout=READER_JOIN_S)


def _put(q: queue.Queue[Any], item: Any, abandoned: threading.Event) -> bool:
    """Put ``item`` unless the driver stopped reading; whether it was put."""
    while not abandoned.is_set():
        try:
            q.put(item, timeout=STOP_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _translate(exc: BaseException) -> BaseException:
    """The error to report for a failed Ray execution: vmae's own error from an actor when
    there is one (a model that cannot load, a node without the videos), else one line."""
    from .model import DeviceError, ModelLoadError

    ours = (SharedStorageError, ModelLoadError, DeviceError)
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        # Ray re-raises an actor's exception as a class deriving from both RayTaskError and
        # the original: report the original, found as its cause.
        if isinstance(e, ours) and type(e).__module__.startswith("vmae_cli"):
            return e
        for attr in ("cause", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EngineError(
        f"the Ray engine failed: {first} (Ray's logs: its session folder, which vmae_cli's "
        "debug log names)"
    )


class _Ledger:
    """What the actors remember across their deaths (a Ray actor on the driver's node):
    how often each batch began, and the videos being classified alone when an actor died."""

    def __init__(self) -> None:
        self.begun: Counter[str] = Counter()
        self.alone: Counter[str] = Counter()

    def begin(self, batch: str) -> int:
        """Count a start of ``batch``; return how many starts came before."""
        self.begun[batch] += 1
        return self.begun[batch] - 1

    def start_alone(self, path: str) -> int:
        """Count a start of ``path`` alone; return how many such starts never finished."""
        self.alone[path] += 1
        return self.alone[path] - 1

    def finish_alone(self, path: str) -> None:
        self.alone.pop(path, None)


class _Actor:
    """One Ray actor: vmae's local pipeline on the paths of each batch it is given."""

    def __init__(self, ref: ModelRef, classify: ClassifyOptions, probes: list[str], ledger: Any):
        from .pipeline import Classifier

        self.node = node_label()
        node, missing = _missing_dirs(probes)
        if missing:
            raise _shared_storage_error(node, missing)
        # Lazy: the weights load while the first batch's videos decode, as in a local run.
        # A conversion notice or an OpenVINO fallback goes to the actor's log (--debug).
        self.classifier = Classifier(ref, lazy=True)
        self.options = classify
        self.ledger = ledger

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import ray

        index = batch["index"]
        paths = [os.fsdecode(bytes(p)) for p in batch["path"]]
        key = hashlib.sha1(np.ascontiguousarray(index).tobytes()).hexdigest()
        if ray.get(self.ledger.begin.remote(key)) == 0:
            rows = self._in_order(paths, self.classifier.classify_files(paths, self.options))
        else:
            rows = [self._alone(path) for path in paths]
        runtime = self.classifier.runtime or ""  # None until the first batch loaded it
        for row in rows:
            row.node = self.node
            row.runtime = runtime if row.status == STATUS_OK else ""  # as the local engine
        return {"index": index, "row": np.array([pickle.dumps(r) for r in rows], dtype=object)}

    def _alone(self, path: str) -> Prediction:
        """Classify ``path`` by itself, after an actor died on its batch; ``crashed`` if an
        actor already died while it was classified alone."""
        import ray

        if ray.get(self.ledger.start_alone.remote(path)) > 0:
            row = self._failure_row(
                path,
                STATUS_CRASHED,
                "its Ray actor died while classifying it (a decoder crash with workers=0, "
                "out of memory, or a lost node)",
            )
        else:
            row = self._in_order([path], self.classifier.classify_files([path], self.options))[0]
        ray.get(self.ledger.finish_alone.remote(path))
        return row

    def _in_order(self, paths: list[str], rows: Iterator[Prediction]) -> list[Prediction]:
        """``rows`` (in completion order) in the order of ``paths``, exactly one each."""
        by_path: dict[str, deque[Prediction]] = defaultdict(deque)
        for row in rows:
            by_path[row.path].append(row)
        ordered = []
        for path in paths:
            if by_path[path]:
                ordered.append(by_path[path].popleft())
            else:
                ordered.append(
                    self._failure_row(path, STATUS_ERROR, "the pipeline returned no row for it")
                )
        return ordered

    def _failure_row(self, path: str, status: str, error: str) -> Prediction:
        return _failure_row(
            path, status, error, self.classifier.spec.name, self.options.protocol.name
        )
