"""OpenVINO as the model runtime on CPUs (``backend="openvino"``, the optional extra
``vmae-cli[openvino]``): convert the Hugging Face model once, cache the result, compile it.

Converting ViT-B takes about 40 s on two cores, so the converted model is a cache entry, like
the Hugging Face cache: a folder named by a key made of what it was converted from (the
hashes of the model's config and weight files, the input shape, the OpenVINO version and
:data:`CACHE_FORMAT`), written under a temporary name and renamed into place, under a lock
file so that two runs starting together convert once (the second waits for the first, at
most :data:`CONVERSION_WAIT_S`, and reads its result). An entry records the sha256 of each of
its files (:data:`ENTRY_MANIFEST`) and is checked against it each time it is read (about
0.3 s for ViT-B's 335 MB, against 40 s to convert; ``benchmarks/openvino_cache_verify.py``):
an entry whose files or recorded key do not match, or that cannot be compiled, is converted
again, with one warning line. The entry keeps float32 weights and the precision is chosen
when it is compiled (about 0.3 s), so one entry serves ``dtype="float32"`` and
``"bfloat16"`` alike. A temporary folder left by a killed conversion is removed by the next
load, once no live process holds its entry's lock.

Precision: the classifier head (a final ``Linear``) stays out of OpenVINO and runs in float32
in torch on OpenVINO's output, the pooled features. Measured on the benchmark mix with a
ViT-B whose head was scaled to give trained-like confidence (mean top-1 probability 0.66),
the largest probability difference from torch float32 over 23 videos was 0.024 with the
whole model in bf16 and f16-stored weights, and 0.013 with f32-stored weights and the head
in float32 (torch bf16: 0.023); speed did not change (a 768x400 product per view).

Nothing here is imported unless the OpenVINO backend is chosen (``openvino`` itself only
inside functions).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends
from .backends import (
    BACKEND_OPENVINO,
    INT8,
    NNCF_MODULE,
    OPENVINO_EXTRA,
    OPENVINO_MODULE,
    Calibration,
    ConversionError,
)
from .checkpoint import load_report, pretrained
from .extras import require
from .provenance import CACHE_DIR_ENV, cache_base, file_digest, model_files, sha256_file

log = logging.getLogger(__name__)


#: Part of every cache key: raise it when the conversion or the entry's layout changes, so
#: that entries written by an older vmae are converted again instead of trusted (4: entries
#: carry :data:`ENTRY_MANIFEST`).
CACHE_FORMAT = 4
#: OpenVINO's names for the precisions ``dtype`` can ask for.
PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
#: And back: what ``INFERENCE_PRECISION_HINT`` of a compiled model reports.
_DTYPE_OF = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}

#: Part of the key of every quantized entry: raise it when :func:`quantize` changes (its
#: settings, what it keeps in float).
QUANTIZATION_FORMAT = 2
#: SmoothQuant's strength for the matrix products (NNCF's ``AdvancedSmoothQuantParameters``;
#: -1 turns it off). Off: on a ViT-B calibrated on 8 clips, with it on, the probabilities of
#: videos unlike the calibration clips moved up to 0.555 from float32's and top-1 flipped on
#: 6 of 49 videos; off, at most 0.086 and none flipped, and quantizing took 46 s instead of
#: 74 s (benchmarks/RESULTS.md, "INT8": ``int8_settings.py``).
SMOOTH_QUANT_ALPHA = -1
#: What a quantization takes, for the line that says one starts (statistics of the
#: calibration clips in float32, then NNCF's passes over the graph).
QUANTIZATION_TIME = "about 1 min for ViT-B on 2 cores"
#: The videos a quantized entry was calibrated on (informational: the key holds the
#: calibration's identity).
ENTRY_CALIBRATION = "calibration.json"

#: Compile settings. One inference runs at a time (a batch of views), so the LATENCY hint:
#: one stream over all cores. No thread pinning: the decoding workers share these cores, and
#: a thread pinned to a core that a worker holds waits instead of moving.
COMPILE_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}

ENTRY_XML = "model.xml"
#: The weights OpenVINO writes beside ``model.xml``.
ENTRY_BIN = "model.bin"
ENTRY_KEY = "key.json"
#: The classifier head kept out of OpenVINO (``weight`` and, if any, ``bias``), float32.
ENTRY_HEAD = "head.npz"
#: What transformers' load report said when the model was converted (``checkpoint.load_report``):
#: a cached entry skips loading the checkpoint, and vmae must still refuse an untrained one.
ENTRY_LOAD_REPORT = "load_report.json"
#: The size and sha256 of every other file of the entry, written last: an entry is used only
#: when its files are exactly these (flipped bytes, another ``head.npz``, a torn ``model.xml``
#: are found before OpenVINO reads them).
ENTRY_MANIFEST = "manifest.json"
#: What a temporary entry folder is named (``.<entry>.<random>``, by :func:`_write_entry`).
_TEMPORARY = re.compile(r"^\.([0-9a-f]{32})\.")

#: How long a load waits for another process converting the same model (ViT-B takes about
#: 40 s on 2 cores; a larger model or a busy machine several times that). After it, the run
#: converts in memory: a converting process that was stopped (SIGSTOP) or hangs must not
#: hold every later run, which may itself hold its output's lock.
CONVERSION_WAIT_S = 180.0
#: How often a waiting load tries the lock again.
LOCK_POLL_S = 0.25
#: What a conversion takes, for the line that says one starts.
CONVERSION_TIME = "about 40 s for ViT-B on 2 cores"


def available() -> bool:
    """True when the OpenVINO extra is installed (checked without importing it)."""
    return backends.available(BACKEND_OPENVINO)


def cache_root() -> Path:
    """The folder holding the converted models: ``openvino`` under vmae's cache folder
    (:func:`vmae_cli.provenance.cache_base`, moved by :data:`CACHE_DIR_ENV`)."""
    return cache_base() / "openvino"


def cache_key(files: list[Path], frames_per_clip: int, crop_hw: tuple[int, int]) -> dict[str, Any]:
    """Everything a converted model depends on, as a JSON-ready dict (its hash names the
    cache entry; the entry stores the dict itself and is trusted only when it matches)."""
    import openvino

    return {
        "format": CACHE_FORMAT,
        "openvino": openvino.__version__,
        # Dynamic batch: any number of views per call.
        "input_shape": [-1, frames_per_clip, 3, *crop_hw],
        "files": {p.name: file_digest(p) for p in files},
    }


def int8_key(key: dict[str, Any], calibration: Calibration) -> dict[str, Any]:
    """The key of the int8 entry quantized from the float entry of ``key``: that key, NNCF's
    version, :data:`QUANTIZATION_FORMAT` and what it is calibrated on. NNCF's version is read
    from its package's metadata: importing it takes seconds, and a cached entry needs none."""
    from importlib import metadata

    try:
        version = metadata.version(NNCF_MODULE)
    except metadata.PackageNotFoundError:
        require(NNCF_MODULE, OPENVINO_EXTRA, dtype=INT8)  # raises, naming the extra
        raise
    quantized = {"format": QUANTIZATION_FORMAT, "nncf": version}
    return {**key, "int8": quantized | {"calibration": calibration.identity}}


def entry_name(key: dict[str, Any]) -> str:
    """The cache entry's folder name for ``key``."""
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Head:
    """A classifier head run in float32 outside OpenVINO: ``logits = x @ weight.T + bias``."""

    weight: Any  # numpy float32 (classes, features)
    bias: Any | None  # numpy float32 (classes,)

    def save(self, path: Path) -> None:
        """Write the head as an ``.npz`` file."""
        import numpy as np

        arrays = {"weight": self.weight} | ({"bias": self.bias} if self.bias is not None else {})
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> Head:
        """Read a head written by :meth:`save`."""
        import numpy as np

        with np.load(path) as data:
            return cls(data["weight"], data["bias"] if "bias" in data.files else None)


@dataclass
class Converted:
    """A model as OpenVINO has it: ``pixel_values`` to logits, or to the input of ``head``;
    with the load report of the checkpoint it was converted from."""

    model: Any  # an ov.Model, or the path of its .xml
    head: Head | None
    load_report: dict[str, list[str]] = field(default_factory=dict)
    #: For a quantized model: the videos its calibration clips came from.
    calibrated_on: list[str] | None = None


@dataclass
class OpenVINOModel:
    """A compiled OpenVINO model (plus its float32 head, if kept apart): normalised float32
    ``pixel_values`` in, logits out.

    One inference at a time (a lock), like a torch module called from one thread.
    """

    compiled: Any
    precision: str  # what OpenVINO really uses: float32, bfloat16, float16, or int8
    entry: Path | None  # the cache entry it was compiled from (None: not cached)
    head: Head | None = None
    #: The checkpoint's load report when it was converted (``checkpoint.load_report``).
    load_report: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import torch

        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self._weight = self._bias = None
        if self.head is not None:
            self._weight = torch.from_numpy(self.head.weight).float()
            if self.head.bias is not None:
                self._bias = torch.from_numpy(self.head.bias).float()

    def __call__(self, pixel_values: Any) -> Any:
        """Logits (a float32 torch tensor) for ``(B, T, 3, H, W)`` float32 pixel values."""
        return self.run(pixel_values)[0]

    def run(self, pixel_values: Any) -> tuple[Any, Any | None]:
        """Logits and the input of the head (the pooled features, float32) for ``(B, T, 3,
        H, W)`` float32 pixel values; the features are ``None`` when the head is inside the
        OpenVINO model (a model whose head is not a final ``Linear``)."""
        import torch

        array = pixel_values.detach().cpu().contiguous().numpy()
        with self._lock:
            self._request.infer({0: array})
            out = torch.from_numpy(self._request.get_output_tensor(0).data.copy())
        if self._weight is None:
            return out, None
        pooled = out.float()
        return torch.nn.functional.linear(pooled, self._weight, self._bias), pooled


def load_openvino(
    name: str,
    *,
    revision: str | None,
    offline: bool,
    frames_per_clip: int,
    crop_hw: tuple[int, int],
    dtype: str,
    on_notice: Callable[[str], None],
    on_warning: Callable[[str], None],
    input_name: str = "pixel_values",
    calibration: Calibration | None = None,
) -> OpenVINOModel:
    """Compile model ``name`` with OpenVINO on the CPU, converting it first when the cache
    has no entry for it.

    ``dtype`` is ``float32``, ``bfloat16`` or ``float16`` (OpenVINO falls back to what the
    CPU supports: :attr:`OpenVINOModel.precision` says what it chose), or ``int8``: the
    converted model quantized with NNCF on ``calibration``'s clips (:func:`quantize`; an
    entry of its own, keyed by the float entry's key, NNCF's version and
    ``calibration.identity``), whatever the CPU (whether int8 pays on it is the caller's
    call: :func:`vmae_cli.model.load_model` decides). ``on_notice`` gets one line when a
    conversion (or quantization) starts, or when it waits for another process's (at most
    :data:`CONVERSION_WAIT_S`, then it converts in memory, with a line to ``on_warning``);
    ``on_warning`` one line when the cache cannot be written (the model is then converted in
    memory, each run) and when a cached entry is damaged (it is converted again). Raises
    :class:`ConversionError` for a model that cannot be converted, quantized or compiled.
    """
    ov = require(OPENVINO_MODULE, OPENVINO_EXTRA, backend=BACKEND_OPENVINO)
    try:
        key = cache_key(model_files(name, revision, offline), frames_per_clip, crop_hw)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - the files could not be found or read
        raise ConversionError(f"cannot read the model's files: {_first_line(exc)}") from None
    core = ov.Core()
    _remove_stale_temporaries(cache_root())
    conversion = _Job(
        f"converting {name} to OpenVINO",
        "converted",
        CONVERSION_TIME,
        lambda: convert(name, revision, offline, frames_per_clip, crop_hw, input_name),
    )
    say = (on_notice, on_warning)
    if dtype != INT8:
        precision = PRECISIONS[dtype]
        return _cached(ov, core, key, conversion, _compiler(core, precision), *say)
    if calibration is None:
        raise ConversionError("dtype='int8' needs calibration clips")
    quantization = _Job(
        f"quantizing {name} to int8",
        "quantized",
        QUANTIZATION_TIME,
        lambda: quantize(_cached(ov, core, key, conversion, _reader(), *say), calibration),
    )
    return _cached(ov, core, int8_key(key, calibration), quantization, _compiler(core, INT8), *say)


@dataclass(frozen=True)
class _Job:
    """What makes a cache entry: its words for the lines that say it runs (``doing``: "converting
    NAME to OpenVINO", ``made``: "converted", ``took``: how long it takes) and the function
    that does it."""

    doing: str
    made: str
    took: str
    make: Callable[[], Converted]


#: What :func:`_cached` does with an entry (or, ``None``, the model made in memory): raises
#: :class:`ConversionError` when OpenVINO cannot use it.
_Use = Callable[[Converted, "Path | None"], Any]


def _compiler(core: Any, precision: str) -> _Use:
    """An entry compiled in ``precision`` (or ``int8``): an :class:`OpenVINOModel`."""
    return lambda converted, entry: _compile(core, converted, precision, entry)


def _reader() -> _Use:
    """An entry as it is (the model it holds, uncompiled): what quantization starts from."""
    return lambda converted, entry: converted


def _cached(
    ov: Any,
    core: Any,
    key: dict[str, Any],
    job: _Job,
    use: _Use,
    on_notice: Callable[[str], None],
    on_warning: Callable[[str], None],
) -> Any:
    """``use`` of the cache entry for ``key``, made by ``job`` first when there is none (or it
    is damaged): written aside and renamed into place under the entry's lock, waiting at most
    :data:`CONVERSION_WAIT_S` for another process making it. Without a writable cache, or
    after that wait, ``use`` of the model ``job`` makes in memory, for this run only."""
    root = cache_root()
    entry = root / entry_name(key)

    def in_memory(made: Converted | None = None) -> Any:
        """Make (unless done) and use from memory: the run's own, not cached."""
        return use(made if made is not None else job.make(), None)

    def uncached(exc: Exception, made: Converted | None = None, damage: str | None = None) -> Any:
        """Without a writable cache: say so, then :func:`in_memory`."""
        why = getattr(exc, "strerror", None) or _first_line(exc)
        if damage:
            on_warning(
                f"the OpenVINO cache entry {entry} is damaged ({damage}) and {root} cannot be "
                f"written ({why}): {job.doing} again, for this run only ({job.took}"
                f"; set {CACHE_DIR_ENV} to a writable folder)"
            )
        else:
            on_warning(
                f"cannot write the OpenVINO cache {root} ({why}): the "
                f"{job.made} model serves this run only (set {CACHE_DIR_ENV} to a writable "
                "folder)"
            )
        if made is None and not damage:  # with damage, the line above said it converts
            on_notice(_starting(job, None))
        return in_memory(made)

    # Entries are renamed into place whole, so reading one needs no lock (and works in a
    # read-only cache filled elsewhere).
    result, damage = _use_entry(core, entry, key, use, remove_broken=False)
    if result is not None:
        return result
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock_file = open(_lock_path(entry), "a+b")  # noqa: SIM115 - held below
    except OSError as exc:
        return uncached(exc, damage=damage)
    with lock_file:
        wait_s = CONVERSION_WAIT_S  # read now: tests shorten it

        def on_wait(pid: int) -> None:
            on_notice(_waiting(job, entry, pid, wait_s))

        holder = _lock(lock_file, wait_s, on_wait)
        if holder is not None:
            on_warning(_gave_up(job, entry, holder, wait_s))
            return in_memory()
        try:
            # Another run may have made it while this one waited for the lock.
            result, damage = _use_entry(core, entry, key, use, remove_broken=True)
            if result is not None:
                return result
            if damage:
                on_warning(
                    f"the OpenVINO cache entry {entry} is damaged ({damage}): "
                    f"{job.doing} again ({job.took})"
                )
            else:
                on_notice(_starting(job, root))
            made = job.make()
            try:
                _write_entry(ov, made, entry, key)
            except Exception as exc:  # noqa: BLE001 - any failure to write: serve from memory
                # A full disk or a read-only cache; on a full disk OpenVINO's own writer raises
                # RuntimeError ("basic_ios::clear"), not OSError.
                return uncached(exc, made)
            result, _ = _use_entry(core, entry, key, use, remove_broken=True)
        finally:
            _unlock(lock_file)
    if result is None:
        raise ConversionError(f"OpenVINO cannot compile the model it made ({job.doing})")
    return result


def _starting(job: _Job, root: Path | None) -> str:
    where = f"cached in {root}" if root else "not cached"
    return f"{job.doing} (once per model and machine, {job.took}; {where})"


def _converter(pid: int) -> str:
    return f"another process (pid {pid})" if pid > 0 else "another process"


def _waiting(job: _Job, entry: Path, pid: int, wait_s: float) -> str:
    return f"waiting up to {wait_s:g} s for {_converter(pid)} {job.doing} into {entry}"


def _gave_up(job: _Job, entry: Path, pid: int, wait_s: float) -> str:
    verb = job.doing.split()[0]
    return (
        f"{_converter(pid)} has been {job.doing} into {entry} for over {wait_s:g} s "
        f"(stopped or stuck?): {verb} it in memory for this run only"
    )


def _lock_path(entry: Path) -> Path:
    """The lock file of cache entry ``entry``, held while it is written."""
    return entry.parent / f"{entry.name}.lock"


def _lock(lock_file: Any, wait_s: float, on_wait: Callable[[int], None]) -> int | None:
    """Take an exclusive ``flock`` on ``lock_file`` and write this process's id in it, waiting
    at most ``wait_s`` seconds (``on_wait`` is told the holder's pid, 0 if unknown, when it
    must wait). ``None`` once it is held; the holder's pid when the wait ran out."""
    deadline = None
    while True:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(lock_file)
            if deadline is None:
                deadline = time.monotonic() + wait_s
                on_wait(holder)
            elif time.monotonic() >= deadline:
                return holder
            time.sleep(LOCK_POLL_S)
    try:  # who converts, for whoever waits; only a message depends on it
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n".encode())
        lock_file.flush()
    except OSError:
        pass
    return None


def _unlock(lock_file: Any) -> None:
    """Release :func:`_lock`'s lock, clearing the pid it wrote first."""
    try:
        lock_file.truncate(0)
    except OSError:
        pass
    fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _holder(lock_file: Any) -> int:
    """The pid written in a lock file by the process holding it, 0 if unknown."""
    try:
        lock_file.seek(0)
        return int(lock_file.read(32).strip() or 0)
    except (OSError, ValueError):
        return 0


def _remove_stale_temporaries(root: Path) -> None:
    """Remove the temporary entry folders that killed conversions left in ``root`` (about
    335 MB each for ViT-B): those whose entry's lock no process holds (a live conversion
    holds it while its folder exists). Best effort: a cache that cannot be read or written
    keeps them."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    by_entry: dict[str, list[Path]] = {}
    for name in names:
        match = _TEMPORARY.match(name)
        if match is not None and (root / name).is_dir():
            by_entry.setdefault(match.group(1), []).append(root / name)
    for entry, folders in by_entry.items():
        try:
            lock_file = open(_lock_path(root / entry), "a+b")  # noqa: SIM115 - closed below
        except OSError:
            continue
        with lock_file:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live conversion's folder
            try:
                for folder in folders:
                    log.debug("removing %s, left by a conversion that did not finish", folder)
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _manifest(folder: Path) -> dict[str, Any]:
    """The size and sha256 of every file in ``folder`` but the manifest itself."""
    return {
        path.name: {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(folder.iterdir())
        if path.name != ENTRY_MANIFEST
    }


def entry_damage(entry: Path, key: dict[str, Any]) -> str | None:
    """Why cache entry ``entry`` cannot be trusted for ``key`` (its files are not those its
    manifest records, byte for byte, or it was converted from something else), or ``None``.
    Reads every file: about 0.3 s for ViT-B's 335 MB."""
    try:
        recorded = json.loads((entry / ENTRY_MANIFEST).read_text(encoding="utf-8"))
        present = {p.name: p for p in entry.iterdir() if p.name != ENTRY_MANIFEST}
    except (OSError, ValueError):
        return f"no readable {ENTRY_MANIFEST}"
    if not isinstance(recorded, dict) or set(recorded) != set(present):
        return f"its files are not those {ENTRY_MANIFEST} lists"
    # The small files first: a wrong one is found before model.bin is read.
    for name in sorted(present, key=lambda n: (n == ENTRY_BIN, n)):
        want = recorded[name]
        try:
            if not isinstance(want, dict) or present[name].stat().st_size != want.get("size"):
                return f"{name} is not the size it was written with"
            if sha256_file(present[name]) != want.get("sha256"):
                return f"{name} is not the file it was written as"
        except OSError as exc:
            return f"{name} cannot be read: {exc.strerror or exc}"
    try:
        if json.loads((entry / ENTRY_KEY).read_text(encoding="utf-8")) != key:
            return "it was converted from other files"
    except (OSError, ValueError):
        return f"no readable {ENTRY_KEY}"
    return None


def _use_entry(
    core: Any, entry: Path, key: dict[str, Any], use: _Use, *, remove_broken: bool
) -> tuple[Any, str | None]:
    """``use`` of the cache entry, or ``None`` and why it cannot be used (``None`` when there
    is no entry). Its files are checked against its manifest first (:func:`entry_damage`), so
    that OpenVINO never reads a damaged file; with ``remove_broken`` (only under the lock) a
    damaged entry is removed, so that it is made again."""
    if not entry.is_dir():
        return None, None
    damage = entry_damage(entry, key)
    if damage is None:
        try:
            head = Head.load(entry / ENTRY_HEAD) if (entry / ENTRY_HEAD).exists() else None
            report = json.loads((entry / ENTRY_LOAD_REPORT).read_text(encoding="utf-8"))
            # The weights named, so that only the IR reader sees model.xml: given a path
            # alone, OpenVINO tries every frontend on a file its IR reader refuses, and
            # TensorFlow's prints absl lines ("Error parsing text-format tensorflow.GraphDef")
            # straight to stderr.
            weights = entry / ENTRY_BIN
            files = [str(entry / ENTRY_XML), *([str(weights)] if weights.is_file() else [])]
            model = core.read_model(*files)
            return use(Converted(model, head, report), entry), None
        except Exception as exc:  # noqa: BLE001 - an entry OpenVINO refuses: make it again
            damage = f"OpenVINO cannot read it: {_first_line(exc)}"
    log.debug("OpenVINO cache entry %s cannot be used: %s", entry, damage)
    if remove_broken:
        shutil.rmtree(entry, ignore_errors=True)
    return None, damage


def _compile(core: Any, converted: Converted, precision: str, entry: Path | None) -> OpenVINOModel:
    import torch

    config: dict[str, Any] = {
        **COMPILE_CONFIG,
        # As many threads as torch would use: the cores this process may run on, or the
        # OMP_NUM_THREADS that Ray gives each actor (OpenVINO reads neither by itself).
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
    }
    if precision != INT8:
        # A quantized model's int8 operations are its own; what stays in float runs in
        # OpenVINO's default for the CPU (bf16 where it is native, else f32).
        config["INFERENCE_PRECISION_HINT"] = precision
    try:
        compiled = core.compile_model(converted.model, "CPU", config)
        chosen = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        chosen = INT8 if precision == INT8 else chosen
    except Exception as exc:  # noqa: BLE001 - any OpenVINO failure is a conversion failure
        raise ConversionError(f"OpenVINO cannot compile it: {_first_line(exc)}") from None
    log.debug("compiled %s for the CPU in %s", entry or "the model", chosen)
    return OpenVINOModel(
        compiled, _DTYPE_OF.get(chosen, chosen), entry, converted.head, converted.load_report
    )


def convert(
    name: str,
    revision: str | None,
    offline: bool,
    frames_per_clip: int,
    crop_hw: tuple[int, int],
    input_name: str = "pixel_values",
) -> Converted:
    """The Hugging Face model ``name`` as an OpenVINO model with a dynamic batch dimension,
    fed through its forward argument ``input_name``, with its load report
    (:func:`vmae_cli.checkpoint.load_report`).

    A final ``Linear`` head (``model.classifier``, as Hugging Face's video classifiers have)
    is kept apart, to run in float32 (see the module's docstring). Raises
    :class:`ConversionError` (with OpenVINO's or transformers' reason) when it cannot be
    loaded or converted.
    """
    import openvino as ov
    import torch

    try:
        model, info = pretrained(name, revision=revision, dtype=torch.float32, offline=offline)
        model.eval()
        head = None
        linear = getattr(model, "classifier", None)
        if isinstance(linear, torch.nn.Linear):
            bias = linear.bias
            head = Head(
                linear.weight.detach().float().numpy().copy(),
                None if bias is None else bias.detach().float().numpy().copy(),
            )
            model.classifier = torch.nn.Identity()  # OpenVINO gives the head's input
        # Two views as the example: a batch of one could be traced as a constant.
        example = torch.zeros((2, frames_per_clip, 3, *crop_hw), dtype=torch.float32)
        with torch.no_grad(), warnings_silenced():
            converted = ov.convert_model(
                _logits_only(model, input_name),
                example_input=(example,),
                input=[ov.PartialShape([-1, frames_per_clip, 3, *crop_hw])],
            )
        return Converted(converted, head, load_report(info))
    except Exception as exc:  # noqa: BLE001 - an architecture OpenVINO cannot convert
        raise ConversionError(f"{type(exc).__name__}: {_first_line(exc)}") from None


def quantize(converted: Converted, calibration: Calibration) -> Converted:
    """``converted`` quantized to int8 with NNCF's post-training quantization, its
    statistics taken on ``calibration``'s clips (:class:`~vmae_cli.backends.Calibration`).

    ``ModelType.TRANSFORMER`` keeps what quantization harms in a transformer in float
    (softmax, LayerNorm, GELU, the additions of the residual stream) and quantizes the
    matrix products; the classifier head is not in the OpenVINO model at all (it runs in
    float32 in torch). SmoothQuant, which that mode turns on, is left off
    (:data:`SMOOTH_QUANT_ALPHA`). Raises :class:`ConversionError` when there are no clips or
    NNCF fails.
    """
    nncf = require(NNCF_MODULE, OPENVINO_EXTRA, dtype=INT8)
    clips, videos = calibration.clips()
    if not clips:
        raise ConversionError(
            f"no calibration clip could be decoded ({calibration.describe}) to quantize with"
        )
    try:
        with warnings_silenced(), _nncf_quiet():
            quantized = nncf.quantize(
                converted.model,
                nncf.Dataset(clips),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(clips),
                advanced_parameters=nncf.AdvancedQuantizationParameters(
                    smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(
                        matmul=SMOOTH_QUANT_ALPHA
                    )
                ),
            )
    except Exception as exc:  # noqa: BLE001 - NNCF's failures, one line
        raise ConversionError(f"NNCF cannot quantize it: {_first_line(exc)}") from None
    return Converted(quantized, converted.head, converted.load_report, videos)


@contextlib.contextmanager
def _nncf_quiet() -> Iterator[None]:
    """No NNCF INFO lines or progress bars while quantizing: the run said one line when
    quantization started, and stdout may be the rows."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            open(os.devnull, "w", encoding="utf-8") as devnull,
            contextlib.redirect_stdout(devnull),
        ):
            yield
    finally:
        logger.setLevel(level)


def _write_entry(ov: Any, converted: Converted, entry: Path, key: dict[str, Any]) -> None:
    """Save ``converted`` as the cache entry ``entry``: written aside, then renamed into
    place. Weights stay float32: compressed to f16 they added as much error again in bf16."""
    # Called under the entry's lock; a killed run's temporary folder is removed by the next
    # load (_remove_stale_temporaries).
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        ov.save_model(converted.model, str(tmp / ENTRY_XML), compress_to_fp16=False)
        if converted.head is not None:
            converted.head.save(tmp / ENTRY_HEAD)
        (tmp / ENTRY_LOAD_REPORT).write_text(json.dumps(converted.load_report), encoding="utf-8")
        if converted.calibrated_on is not None:
            videos = json.dumps({"videos": converted.calibrated_on}, indent=2)
            (tmp / ENTRY_CALIBRATION).write_text(videos, encoding="utf-8")
        (tmp / ENTRY_KEY).write_text(json.dumps(key, indent=2, sort_keys=True), encoding="utf-8")
        manifest = json.dumps(_manifest(tmp), indent=2, sort_keys=True)
        (tmp / ENTRY_MANIFEST).write_text(manifest, encoding="utf-8")
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        shutil.rmtree(entry, ignore_errors=True)  # a stale entry (under the lock)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _logits_only(model: Any, input_name: str = "pixel_values") -> Any:
    """``model`` (a Hugging Face classifier) as a module mapping its input (the forward
    argument ``input_name``) to logits, which is what the tracer must see."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(**{input_name: pixel_values}).logits

    return LogitsOnly(model).eval()


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    """No tracer warnings on stderr while converting (``TracerWarning: Converting a tensor
    to a Python boolean...`` from the model's shape checks): vmae's stderr is for people."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
