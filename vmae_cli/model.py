"""Stage 5: load a VideoMAE video classifier and turn batches of clips into probabilities."""

from __future__ import annotations

import json
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from .backends import (
    BACKEND_AUTO,
    BACKEND_CHOICES,
    BACKEND_OPENVINO,
    BACKEND_TORCH,
    INT8,
    NNCF_MODULE,
    OPENVINO_EXTRA,
    OPTIONAL_RUNTIMES,
    Calibration,
    ConversionError,
)
from .checkpoint import load_report, pretrained, quiet_transformers

# The default model and the choices of device and dtype live in `choices` (what `vmae --help`
# imports); re-exported (`X as X`) where they are not used here.
from .choices import DEFAULT_MODEL, DTYPE_CHOICES
from .choices import DEVICE_CHOICES as DEVICE_CHOICES
from .errors import VmaeError
from .preprocessing import PreprocessConfig, normalize, parse_preprocess_config

if TYPE_CHECKING:
    import torch

    from .heads import Head
    from .labelsource import TextLabel

#: Debug messages (``vmae classify --debug`` shows them on stderr).
log = logging.getLogger(__name__)

#: ``problem_type`` of a checkpoint whose classes are independent (sigmoid scores).
MULTI_LABEL = "multi_label_classification"

#: The model types transformers maps to ``AutoModelForVideoClassification``, and the
#: zero-shot ones (:data:`ZERO_SHOT_TYPES`), with the config key holding the frames per clip
#: and the forward argument the clips go to.
MODEL_TYPES = {
    "videomae": ("num_frames", "pixel_values"),
    "timesformer": ("num_frames", "pixel_values"),
    "vivit": ("num_frames", "pixel_values"),
    "vjepa2": ("frames_per_clip", "pixel_values_videos"),
    "xclip": ("num_frames", "pixel_values"),
}
#: Model types that score a video against text labels the run gives (zero-shot: ``text_labels``),
#: not against labels of their own.
ZERO_SHOT_TYPES = ("xclip",)
#: The nested configs a zero-shot model's vision keys are read from, the later winning as in
#: transformers' ``XCLIPConfig`` (checkpoints saved before 2023 have both, the second holding
#: only the values that differ from the defaults).
VISION_CONFIG_KEYS = ("vision_config", "vision_config_dict")
#: ``XCLIPVisionConfig``'s frames per clip, for a config that leaves them out.
XCLIP_DEFAULT_FRAMES = 8
#: ``XCLIPConfig``'s ``projection_dim`` (its video embedding's values), for a config without it.
XCLIP_DEFAULT_PROJECTION = 512
#: What the class name of a checkpoint with a classification head ends with.
CLASSIFIER_SUFFIX = "ForVideoClassification"
#: Processor config files, the video processor's first: Hugging Face's video classification
#: pipeline prefers a video processor when a checkpoint has both.
PROCESSOR_FILES = (("video_preprocessor_config.json", True), ("preprocessor_config.json", False))

#: Gets one line meant for a person (a notice or a warning) while the model loads.
Say = Callable[[str], None]

#: CPU flags that mean native bf16 matrix instructions (Intel AMX, AVX-512 BF16).
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: CPU flags that mean int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, Intel AMX):
#: what ``dtype="int8"`` is meant for (issue 26: about twice the bf16 rate). Without them a
#: run falls back to float (:func:`int8_fallback`): on an AVX2-only CPU OpenVINO's int8 ViT-B
#: measured no faster than float32 on a calm machine (benchmarks/RESULTS.md, "INT8").
_INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Set to 1 to quantize with ``dtype="int8"`` even on a CPU without int8 dot products (tests
#: and benchmarks: accuracy can be checked anywhere, speed only where the CPU has them).
FORCE_INT8_ENV = "VMAE_FORCE_INT8"


class ModelLoadError(VmaeError, RuntimeError):
    """The model (or its preprocessor config) could not be loaded; the message says why."""


class UntrainedModelError(ModelLoadError):
    """A checkpoint that would classify at random: no classification head, or weights its
    load report says were missing, unexpected or mis-shaped (``allow_untrained_head``)."""


class DeviceError(VmaeError, ValueError):
    """The requested device, dtype or backend is not available on this machine (or not
    together: OpenVINO runs on the CPU only)."""


class DtypeOptionError(DeviceError):
    """Options of the precision that cannot go together, whatever the machine: ``dtype="int8"``
    with torch, ``calibration`` without ``dtype="int8"`` or naming no folder of videos."""


@dataclass(frozen=True)
class ModelRef:
    """Which model to load, and how: one value that travels whole from the command line to
    the run, the :class:`~vmae_cli.pipeline.Classifier`, the Ray actors (it pickles) and
    :func:`load_model`.

    ``name`` is a Hub id or a local folder, ``revision`` a Hub branch, tag or commit;
    ``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``), ``dtype`` (:data:`DTYPE_CHOICES`)
    and ``backend`` (:data:`BACKEND_CHOICES`) are checked when the model is loaded;
    ``allow_untrained_head`` runs a checkpoint without a trained head (or whose weights do
    not all load) with a warning instead of refusing it. ``calibration`` (with
    ``dtype="int8"`` only) is a folder whose first :data:`~vmae_cli.pipeline.CALIBRATION_VIDEOS`
    videos calibrate the quantization, instead of the first videos of the run that quantizes.

    Where a run's labels come from (:mod:`vmae_cli.labelsource`): the checkpoint's own head,
    or ``text_labels`` (each a :class:`~vmae_cli.labelsource.TextLabel`, in order) that a
    zero-shot model (:data:`ZERO_SHOT_TYPES`) scores a video against, or ``head``, the folder
    of a head fitted on the model's embeddings (``vmae fit-head``).
    """

    name: str = DEFAULT_MODEL
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    backend: str = BACKEND_AUTO
    allow_untrained_head: bool = False
    calibration: str | None = None
    text_labels: tuple[TextLabel, ...] = ()
    head: str | None = None

    @classmethod
    def of(cls, model: ModelRef | str | os.PathLike[str] = DEFAULT_MODEL, **flat: Any) -> ModelRef:
        """A ref from the flat keywords of :data:`MODEL_KEYWORDS` (``model`` a name or a
        ref, the others its fields: ``ModelRef.of("m", device="cpu")``); raises
        :class:`TypeError` for any other keyword."""
        unknown = set(flat) - set(MODEL_KEYWORDS)
        if unknown:
            raise TypeError(f"unknown model option(s): {', '.join(sorted(unknown))}")
        ref = model if isinstance(model, ModelRef) else cls(name=os.fspath(model))
        return replace(ref, **flat) if flat else ref

    def flat(self) -> dict[str, Any]:
        """The ref as the flat keywords :meth:`of` takes (``model`` for its name)."""
        return {"model": self.name} | {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"
        }


#: The flat keywords that make a :class:`ModelRef` (in a run's options and elsewhere):
#: ``model`` (its name) and its other fields.
MODEL_KEYWORDS = ("model", *(f.name for f in fields(ModelRef) if f.name != "name"))


@dataclass
class ModelOutput:
    """What one model call gives for a batch of views: the class scores and, when asked for,
    the vectors the classifier head received (the embeddings)."""

    #: ``(B, classes)`` float32 on the CPU: softmax probabilities, or for a multi-label
    #: model (``problem_type: multi_label_classification``) one sigmoid per class.
    probs: torch.Tensor
    #: ``(B, hidden)`` float32 on the CPU (768 for ViT-B), or ``None`` when not asked for.
    embeddings: torch.Tensor | None = None


class EmbeddingsUnavailableError(ModelLoadError):
    """Embeddings were asked for, but this model (or its runtime) has no classifier head to
    take them from."""


@dataclass
class LoadedModel:
    """A model ready for inference, with what the other stages need to know about it."""

    name: str
    model: Any
    device: torch.device
    dtype: torch.dtype
    frames_per_clip: int  # T: the frames of one clip the model takes (config num_frames)
    preprocess: PreprocessConfig
    id2label: dict[int, str]
    backend: str = BACKEND_TORCH  # the runtime ``model`` belongs to
    #: What the model computes in (float32, bfloat16, float16). With torch the same as
    #: ``dtype``; OpenVINO takes float32 input and computes in the precision it was given.
    precision: str = "float32"
    #: Scores are independent sigmoids (``problem_type: multi_label_classification`` in the
    #: config), not a softmax over the classes.
    multi_label: bool = False
    input_name: str = "pixel_values"  # the forward argument the clips go to (ModelSpec)
    revision: str = ""  # the checkpoint's revision (ModelSpec.revision)
    #: What produced the labels when they are not the checkpoint's own
    #: (:func:`vmae_cli.labelsource.labels_from`), as rows record it.
    labels_from: str = ""
    #: A fitted head (``ModelRef.head``) that scores the classifier head's input in place of
    #: the checkpoint's own head; ``id2label`` is then its labels.
    head: Head | None = None

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """Class scores (float32, on CPU) for uint8 clips ``(B, T, 3, H, W)``: see
        :meth:`infer`."""
        return self.infer(frames).probs

    def infer(self, frames: torch.Tensor, *, embeddings: bool = False) -> ModelOutput:
        """Class scores for uint8 clips ``(B, T, 3, H, W)`` and, with ``embeddings``, the
        input of the classifier head (for VideoMAE the mean-pooled, ``fc_norm``-ed last hidden
        state), taken from the same model call. With a fitted :attr:`head` the scores are its
        softmax over that same input (the checkpoint's own logits are not used).

        Normalisation happens on the model's device in float32, then the input is cast to
        ``dtype``; softmax (or sigmoid, for a multi-label model) is computed in float32.
        Raises :class:`EmbeddingsUnavailableError` when ``embeddings`` (or a head) is asked
        of a model without a classifier head.
        """
        import torch

        pooled_needed = embeddings or self.head is not None
        with torch.inference_mode():
            x = frames.to(self.device, non_blocking=True)
            pixel_values = normalize(x, self.preprocess, dtype=self.dtype)
            pooled = None
            if self.backend == BACKEND_OPENVINO:
                logits, pooled = self.model.run(pixel_values)
                if pooled_needed and pooled is None:
                    what = "a fitted head's input" if self.head is not None else "embeddings"
                    raise EmbeddingsUnavailableError(
                        f"OpenVINO runs {self.name!r} without a separate classifier head, so it "
                        f"cannot give {what}: use backend='torch'",
                        options=("backend",),
                        value=BACKEND_OPENVINO,
                    )
            elif pooled_needed:
                with _head_input(self.model, self.name) as captured:
                    logits = self.model(**{self.input_name: pixel_values}).logits
                pooled = captured[0]
            else:
                logits = self.model(**{self.input_name: pixel_values}).logits
            if self.head is not None:
                # The head was fitted on these vectors as float32 (stored as float16 or 32).
                logits = self.head.logits(pooled.float())
            logits = logits.float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            return ModelOutput(
                probs.cpu(), pooled.float().cpu() if embeddings and pooled is not None else None
            )


@contextmanager
def _head_input(model: Any, name: str) -> Iterator[list[Any]]:
    """Capture what ``model.classifier`` receives during one call (a forward pre-hook on the
    head: the vector is the model's own, not recomputed)."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise EmbeddingsUnavailableError(
            f"{name!r} has no classifier head (model.classifier) to take embeddings from"
        )
    captured: list[Any] = []

    def keep(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured.append(args[0] if args else next(iter(kwargs.values())))

    handle = head.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


def cpu_flags() -> set[str]:
    """This CPU's flags as ``/proc/cpuinfo`` lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AMX or AVX-512 BF16)."""
    flags = cpu_flags()
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def cpu_has_int8_dot() -> bool:
    """True when this CPU has int8 dot-product instructions (:data:`_INT8_CPU_FLAGS`)."""
    flags = cpu_flags()
    return any(flag in flags for flag in _INT8_CPU_FLAGS)


def int8_fallback() -> str | None:
    """What ``dtype="int8"`` runs instead on this CPU: ``None`` where it has int8 dot
    products (or :data:`FORCE_INT8_ENV` is set to 1), else bfloat16 where the CPU has it
    natively, float32 elsewhere."""
    if cpu_has_int8_dot() or os.environ.get(FORCE_INT8_ENV, "") == "1":
        return None
    return "bfloat16" if cpu_has_native_bf16() else "float32"


#: What a GPU that torch could use leaves on Linux (NVIDIA's, ROCm's and WSL's device nodes,
#: NVIDIA's driver): without any of them ``device="auto"`` is the CPU, known without importing
#: torch (1 to 3 s of a cron job's run that finds nothing to do; issue 26).
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def known_cpu(device: str) -> bool:
    """True when ``device`` is the CPU for certain, known without importing torch: ``cpu``,
    or ``auto`` on a Linux machine without a GPU (:data:`GPU_NODES`). Where it is ``False``,
    :func:`resolve_device` says (it asks torch)."""
    if device == "cpu":
        return True
    return (
        device == "auto"
        and sys.platform.startswith("linux")
        and not any(os.path.exists(node) for node in GPU_NODES)
    )


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device`` that exists here.

    ``auto`` prefers CUDA, then Apple's MPS, then the CPU.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceError(
            f"unknown device {device!r}: use auto, cpu, cuda[:N] or mps",
            options=("device",),
            value=device,
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "CUDA is not available on this machine (use device='cpu')",
                options=("device",),
                value=device,
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"no GPU {dev.index}: {torch.cuda.device_count()} visible",
                options=("device",),
                value=device,
            )
    elif dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise DeviceError(
            "MPS is not available on this machine (use device='cpu')",
            options=("device",),
            value=device,
        )
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {device!r}", options=("device",), value=device)
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn ``auto|float32|bfloat16|float16|int8`` into a torch dtype for ``device``.

    ``auto`` is bfloat16 on CUDA and on CPUs with native bf16 (3.7x faster than float32 on a
    2-core AMX CPU for ViT-B at 16x224x224), float32 elsewhere. ``int8`` is float32: what
    the quantized OpenVINO model takes (it quantizes its input itself).
    """
    check_dtype(dtype)
    import torch

    if dtype == INT8:
        return torch.float32
    if dtype == "auto":
        if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def check_dtype(dtype: str) -> None:
    """Refuse a ``dtype`` that :func:`resolve_dtype` does not know (:class:`DeviceError`),
    without importing torch."""
    if dtype not in DTYPE_CHOICES:
        raise DeviceError(
            f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_CHOICES)}",
            options=("dtype",),
            value=dtype,
        )


def resolve_backend(
    backend: str, device: torch.device | str, dtype: str = "auto", calibration: str | None = None
) -> str:
    """Turn ``auto|torch|openvino`` into the runtime that runs on ``device`` (a device, or
    its type: ``"cpu"``) here.

    ``auto`` is OpenVINO on the CPU when the extra is installed, torch otherwise (and always
    on CUDA and MPS); with ``dtype="int8"`` it is OpenVINO. ``openvino`` without the extra
    raises :class:`~vmae_cli.extras.MissingExtraError`; on another device than the CPU,
    :class:`DeviceError`. ``dtype="int8"`` with torch, and ``calibration`` without
    ``dtype="int8"``, raise :class:`DtypeOptionError`.
    """
    from . import backends

    if calibration is not None and dtype != INT8:
        raise DtypeOptionError(
            f"calibration={calibration!r} is for dtype='int8' (the quantization's clips), not "
            f"dtype={dtype!r}",
            options=("calibration", "dtype"),
            value=calibration,
        )
    if dtype == INT8:
        if backend == BACKEND_TORCH:
            raise DtypeOptionError(
                "dtype='int8' runs on backend='openvino' only (the model quantized with NNCF): "
                "use backend='openvino' or 'auto'",
                options=("dtype", "backend"),
                value=backend,
            )
        if backend == BACKEND_AUTO:
            backend = BACKEND_OPENVINO
        if not backends.available_module(NNCF_MODULE):
            from .extras import require

            require(NNCF_MODULE, OPENVINO_EXTRA, dtype=INT8)  # raises, naming the extra
    kind = device if isinstance(device, str) else device.type
    if backend == BACKEND_AUTO:
        cpu = kind == "cpu"
        return BACKEND_OPENVINO if cpu and backends.available(BACKEND_OPENVINO) else BACKEND_TORCH
    if backend == BACKEND_TORCH:
        return backend
    if backend not in OPTIONAL_RUNTIMES:
        raise DeviceError(
            f"unknown backend {backend!r}: use {', '.join(BACKEND_CHOICES)}",
            options=("backend",),
            value=backend,
        )
    if kind != "cpu":
        raise DeviceError(
            f"backend={backend!r} runs on the CPU, not on {kind}: use device='cpu', or "
            "backend='torch' (or 'auto') for the GPU",
            options=("backend", "device"),
            value=backend,
        )
    if not backends.available(backend):
        from .extras import require

        runtime = OPTIONAL_RUNTIMES[backend]
        require(runtime.module, runtime.extra, backend=backend)
    return backend


def backend_device(backend: str, device: str, dtype: str = "auto") -> str:
    """The device to resolve for ``backend``: ``backend="openvino"`` (and ``dtype="int8"``,
    which runs on OpenVINO) means the CPU, so ``device="auto"`` is the CPU with it even where
    a GPU exists."""
    on_cpu = backend == BACKEND_OPENVINO or dtype == INT8
    return "cpu" if on_cpu and device == "auto" else device


def _offline_hint(name: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    if offline not in ("", "0"):
        why = f"HF_HUB_OFFLINE={offline} is set and it is not in the local Hugging Face cache"
    else:
        why = "the Hugging Face Hub cannot be reached and it is not in the local cache"
    return (
        f"cannot load model {name!r}: {why}. Download it once where the Hub is reachable "
        f"(`hf download {name} --local-dir DIR`) and pass model=DIR"
    )


def dtype_warning(device: torch.device, dtype: torch.dtype) -> str | None:
    """A one-line warning for a device/dtype pair that works but is slow, else ``None``."""
    import torch

    if device.type == "cpu" and dtype == torch.float16:
        # Without float16 matrix units torch converts on the fly: ViT-B ran about 2x slower
        # than float32 on the 2-core EPYC (AVX-512 BF16) where this was reported (issue 9).
        return (
            "float16 on a CPU is emulated and about 2x slower than float32; "
            "use dtype='auto' (bfloat16 where the CPU supports it, else float32)"
        )
    return None


#: How long to wait for the Hub before treating it as unreachable; without this check
#: huggingface_hub retries with back-off for ~15 s per file, printing a line each time.
HUB_PROBE_TIMEOUT_S = 3.0
#: HTTP statuses from which on the Hub counts as out of reach: an outage (503) or a proxy's
#: error page would otherwise cost huggingface_hub's retries, about 30 s per file.
HUB_FAILING_STATUS = 500


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when the Hub endpoint (``HF_ENDPOINT``) answers an HTTP request in time, through
    the proxy the environment names, with a status below :data:`HUB_FAILING_STATUS` (a 404
    or 401 is an answer; a refused connection, a failed TLS check or a 503 is not)."""
    import urllib.error
    import urllib.request

    url = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/") + "/api/whoami-v2"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < HUB_FAILING_STATUS
    except (OSError, ValueError):  # URLError, timeouts, TLS errors; a malformed HF_ENDPOINT
        return False


@dataclass(frozen=True)
class ModelSpec:
    """What the decoding stage needs to know about a model, read from its small config files
    without loading the weights: decoding can start while the model loads."""

    name: str
    #: T: the frames of one clip the model takes (``num_frames``; V-JEPA 2's
    #: ``frames_per_clip``).
    frames_per_clip: int
    preprocess: PreprocessConfig
    offline: bool  # whether the Hub is out of reach (or not needed: a local folder)
    num_labels: int | None = None  # classes of the head, when config.json says
    #: ``problem_type: multi_label_classification``: one sigmoid per class, not a softmax.
    multi_label: bool = False
    model_type: str = "videomae"  # config.json's model_type: one of MODEL_TYPES
    input_name: str = "pixel_values"  # the forward argument the clips go to
    architectures: tuple[str, ...] = ()  # config.json's architectures (what was saved)
    #: The checkpoint's revision: the Hub commit, or ``sha256:...`` of a folder's files
    #: (``provenance.model_revision``); rows carry it as ``model_revision``.
    revision: str = ""
    #: Values of the vector the classifier head takes (config.json's ``hidden_size``): what a
    #: fitted head (``head``) must take; ``None`` when the config does not say.
    embedding_dim: int | None = None

    @property
    def zero_shot(self) -> bool:
        """Whether the model scores videos against text labels the run gives
        (:data:`ZERO_SHOT_TYPES`) rather than labels of its own."""
        return self.model_type in ZERO_SHOT_TYPES

    def head_problem(self) -> str | None:
        """Why this checkpoint has no trained classification head, judged from its config
        (a pre-training checkpoint: ``VideoMAEForPreTraining``), or ``None``. A zero-shot
        model has none to have: its labels are the run's text labels."""
        if self.zero_shot:
            return None
        if self.architectures and not any(
            a.endswith(CLASSIFIER_SUFFIX) for a in self.architectures
        ):
            return (
                f"{self.name!r} is a {', '.join(self.architectures)} checkpoint, not a video "
                "classifier: it has no trained classification head, so its labels would be "
                "random (use a fine-tuned checkpoint, or allow_untrained_head=True)"
            )
        return None


def check_label_source(spec: ModelSpec, ref: ModelRef) -> Head | None:
    """Refuse labels that do not fit the model (:class:`~vmae_cli.labelsource.
    LabelsOptionError`): text labels with a classifier (it has labels of its own), a zero-shot
    model with neither text labels nor a head, text labels and a head together. Returns the
    fitted head of ``ref.head``, read and checked against the model (:func:`fitted_head`)."""
    from .labelsource import LabelsOptionError, check_sources

    check_sources(ref)
    if ref.text_labels and not spec.zero_shot:
        raise LabelsOptionError(
            f"text_labels are for a zero-shot model ({', '.join(ZERO_SHOT_TYPES)}); "
            f"{spec.name!r} is a {spec.model_type} classifier with labels of its own (a head "
            "fitted on its embeddings gives it others: head=FOLDER)",
            options=("text_labels", "model", "head"),
            value=spec.name,
        )
    if spec.zero_shot and not ref.text_labels and ref.head is None:
        raise LabelsOptionError(
            f"{spec.name!r} is a zero-shot {spec.model_type} model: it has no labels of its "
            "own; give it text_labels (the labels to score each video against)",
            options=("text_labels",),
            value=spec.name,
        )
    return fitted_head(spec, ref.head)


def fitted_head(spec: ModelSpec, folder: str | None) -> Head | None:
    """The head in ``folder`` (``None``: none asked for), read with its checks
    (:func:`~vmae_cli.heads.read_head`) and refused on a backbone it was not fitted on:
    another revision, or vectors of another length
    (:class:`~vmae_cli.heads.HeadMismatchError`)."""
    if folder is None:
        return None
    from .heads import read_head

    head = read_head(folder)
    head.check_backbone(spec.name, spec.revision, spec.embedding_dim, folder)
    return head


@dataclass(frozen=True)
class RunLabels:
    """A run's model before its weights load, with the run's labels settled once
    (:func:`run_labels`): what the runner, the Ray driver and :func:`load_model` share, so
    that a fitted head is read and hashed once."""

    spec: ModelSpec  # as the run sees it (with_head): a fitted head's labels, if any
    head: Head | None  # the fitted head of ModelRef.head, read and checked; None: none
    labels_from: str  # what rows record (vmae_cli.labelsource.labels_from; "": the checkpoint's)


def run_labels(spec: ModelSpec, ref: ModelRef) -> RunLabels:
    """A run's labels, settled before any work: the labels checked against the model
    (:func:`check_label_source`; ``dtype="int8"`` refused for a zero-shot model,
    :func:`check_zero_shot_dtype`), then ``spec`` as the run sees it (:func:`with_head`), the
    fitted head and what rows record as ``labels_from``
    (:func:`vmae_cli.labelsource.labels_from`)."""
    from .labelsource import labels_from

    head = check_label_source(spec, ref)
    check_zero_shot_dtype(spec, ref.dtype)
    return RunLabels(with_head(spec, head), head, labels_from(ref))


def with_head(spec: ModelSpec, head: Head | None) -> ModelSpec:
    """``spec`` as the run sees it with a fitted ``head``: the head's labels (their count)
    and a softmax over them, whatever the checkpoint's own head has."""
    if head is None:
        return spec
    return replace(spec, num_labels=len(head.labels), multi_label=False)


def _num_labels(config: dict[str, Any]) -> int | None:
    """The number of classes config.json declares (``id2label``, else ``num_labels``)."""
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return len(id2label)
    value = config.get("num_labels")
    return int(value) if isinstance(value, int) and value > 0 else None


def _config_json(
    name: str,
    filename: str,
    revision: str | None,
    offline: bool,
    *,
    missing_ok: bool = False,
    path: bool = False,
) -> Any:
    """The JSON file ``filename`` of model ``name`` (a folder or a Hub id); with ``path``,
    also where it was read. A missing file raises :class:`ModelLoadError`, or gives ``None``
    with ``missing_ok``."""
    if os.path.isdir(name):
        # A local folder needs no transformers import (seconds): decoding starts sooner.
        found: str | None = os.path.join(name, filename)
        if not os.path.isfile(found):
            found = None
    else:
        from transformers.utils import cached_file

        quiet_transformers()
        found = cached_file(
            name,
            filename,
            revision=revision,
            local_files_only=offline,
            _raise_exceptions_for_missing_entries=not missing_ok,
        )
    if found is None:
        if missing_ok:
            return None
        where = "model folder" if os.path.isdir(name) else "model"
        raise ModelLoadError(f"{where} {name!r} has no {filename}")
    with open(found, encoding="utf-8") as f:
        data = json.load(f)
    return (data, found) if path else data


def _is_missing_folder(name: str) -> bool:
    return (
        not os.path.isdir(name) and os.sep in name.strip("/") and name.startswith((".", "/", "~"))
    )


def _translate_load_error(exc: Exception, name: str, offline: bool) -> ModelLoadError:
    """One line for a failure of loading ``name`` (a local folder or a Hub id)."""
    local = os.path.isdir(name)
    if isinstance(exc, OSError):
        text = str(exc)
        if local:
            return ModelLoadError(f"cannot load model from folder {name!r}: {text.splitlines()[0]}")
        if offline or any(s in text.lower() for s in ("offline", "connect", "resolve")):
            return ModelLoadError(_offline_hint(name), options=("model",), value=name)
        return ModelLoadError(f"cannot load model {name!r}: {text.splitlines()[0]}")
    if isinstance(exc, (ValueError, KeyError)):
        return ModelLoadError(
            f"{name!r} is not a video classification model: {str(exc).splitlines()[0]}"
        )
    text = f"{type(exc).__name__}: {exc}"
    if "connect" in text.lower() or "offline" in text.lower():
        return ModelLoadError(_offline_hint(name), options=("model",), value=name)
    return ModelLoadError(f"cannot load model {name!r}: {text.splitlines()[0]}")


def read_model_spec(name: str = DEFAULT_MODEL, *, revision: str | None = None) -> ModelSpec:
    """Read ``config.json`` and the processor config of ``name`` (no weights): a video
    processor's ``video_preprocessor_config.json`` if it has one, else
    ``preprocessor_config.json``.

    Raises :class:`ModelLoadError` with a one-line explanation, also for a model type vmae
    cannot feed (:data:`MODEL_TYPES`).
    """
    if _is_missing_folder(name):
        raise ModelLoadError(f"model folder {name!r} does not exist")
    offline = (
        os.path.isdir(name)
        or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        or not hub_reachable()
    )
    if not offline:
        quiet_transformers()  # huggingface_hub's retry lines: vmae says what failed, once
    try:
        config, config_path = _config_json(name, "config.json", revision, offline, path=True)
        model_type = str(config.get("model_type") or "")
        if model_type not in MODEL_TYPES:
            raise ModelLoadError(
                f"{name!r} is a {model_type or 'untyped'} model: vmae feeds the video "
                f"classifiers transformers knows ({', '.join(MODEL_TYPES)})"
            )
        frames_key, input_name = MODEL_TYPES[model_type]
        # The keys that size a clip and the weights: X-CLIP's are its vision encoder's.
        sizes = config
        if model_type in ZERO_SHOT_TYPES:
            sizes = {frames_key: XCLIP_DEFAULT_FRAMES}
            for key in VISION_CONFIG_KEYS:
                nested = config.get(key)
                sizes.update(nested if isinstance(nested, dict) else {})
        preprocess = None
        for filename, video in PROCESSOR_FILES:
            raw = _config_json(name, filename, revision, offline, missing_ok=True)
            if raw is not None:
                preprocess = parse_preprocess_config(raw, model_type, video=video)
                break
        if preprocess is None:
            raise ModelLoadError(
                f"model {name!r} has no preprocessor_config.json or video_preprocessor_config.json"
            )
        from .provenance import model_revision

        found = model_revision(name, config_path)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped to one line; --debug shows the rest
        raise _translate_load_error(exc, name, offline) from None
    architectures = config.get("architectures") or ()
    check_fits(name, sizes, frames_key, preprocess)
    return ModelSpec(
        name,
        int(sizes.get(frames_key, 16)),
        preprocess,
        offline,
        None if model_type in ZERO_SHOT_TYPES else _num_labels(config),
        config.get("problem_type") == MULTI_LABEL,
        model_type,
        input_name,
        tuple(str(a) for a in architectures if isinstance(a, str)),
        found,
        _embedding_dim(config, model_type),
    )


def _embedding_dim(config: dict[str, Any], model_type: str) -> int | None:
    """The values of the vector a model's classifier takes (vmae's embeddings): a
    classifier's ``hidden_size``, X-CLIP's ``projection_dim`` (its video embedding; 512 when
    the config does not say, as transformers' default); ``None`` when the config does not
    say."""
    if model_type in ZERO_SHOT_TYPES:
        value = config.get("projection_dim", XCLIP_DEFAULT_PROJECTION)
    else:
        value = config.get("hidden_size")
    return value if isinstance(value, int) and value > 0 else None


#: Bytes per value of a clip and of a weight (float32: the widest vmae computes in).
VALUE_BYTES = 4
#: A config is refused when one clip would take more than this share of the machine's memory
#: (the views of a batch, the workers' copies and the activations come on top of it) ...
CLIP_MEMORY_SHARE = 1 / 8
#: ... or the model's weights more than this share.
WEIGHTS_MEMORY_SHARE = 1 / 2


def check_fits(
    name: str, config: dict[str, Any], frames_key: str, preprocess: PreprocessConfig
) -> None:
    """Refuse, before any weight is read, a config whose one clip or whose weights would not
    fit in this machine's memory (a broken or hostile ``num_frames: 100000000``,
    ``image_size: 100000``, ``hidden_size``, a 100000 px crop): :class:`ModelLoadError`
    naming the key and its value. Estimates from the config alone: a clip is T x 3 x the
    crop, float32; the weights are the layers' matrices (4 H^2 + 2 H x intermediate each)
    and the position embeddings (one H-vector per token of a clip)."""
    memory = _physical_memory()

    def number(key: str, default: float) -> float:
        value = config.get(key, default)
        if isinstance(value, (list, tuple)) and value:
            value = value[0]  # ViViT's tubelet_size is [t, h, w]
        try:
            return max(float(value), 1.0)
        except (TypeError, ValueError):
            return default

    def refuse(key: str, value: Any, need: float, what: str) -> ModelLoadError:
        return ModelLoadError(
            f"{name!r} asks for {key} {value}: {what} would need about {need / 2**30:,.0f} "
            f"GiB, and this machine has {memory / 2**30:,.0f} GiB (a broken or hostile "
            "config?)",
            value=value,
        )

    frames = number(frames_key, 16)
    crop_h, crop_w = preprocess.crop_hw
    clip = frames * 3 * crop_h * crop_w * VALUE_BYTES
    if clip > memory * CLIP_MEMORY_SHARE:
        key, value = (frames_key, config.get(frames_key))
        if frames * 3 * 224 * 224 * VALUE_BYTES <= memory * CLIP_MEMORY_SHARE:
            key, value = ("crop_size", f"{crop_h}x{crop_w}")  # the crop, not T, is at fault
        raise refuse(key, value, clip, "one clip")
    hidden = number("hidden_size", 768)
    layers = number("num_hidden_layers", 12)
    inner = number("intermediate_size", 4 * hidden)
    side = number("image_size", 224) / number("patch_size", 16)
    tokens = frames / number("tubelet_size", 2) * side * side
    weights = (layers * (4 * hidden * hidden + 2 * hidden * inner) + tokens * hidden) * VALUE_BYTES
    if weights > memory * WEIGHTS_MEMORY_SHARE:
        # The key furthest above a ViT-B's value is the one to name.
        typical = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072}
        typical["image_size"] = 224
        key = max(typical, key=lambda k: number(k, typical[k]) / typical[k])
        raise refuse(key, config.get(key), weights, "its weights")


def _physical_memory() -> float:
    """This machine's memory in bytes (16 GiB where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16.0 * 2**30


def load_model(
    model: ModelRef | str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    spec: ModelSpec | None = None,
    settled: RunLabels | None = None,
    on_notice: Say | None = None,
    on_warning: Say | None = None,
    calibration: Calibration | None = None,
    **flat: Any,
) -> LoadedModel:
    """Load a video classifier (:data:`MODEL_TYPES`) from the Hub or a local folder.

    ``model`` is a :class:`ModelRef`, or its name with the ref's other fields as keywords
    (``load_model("m", device="cpu")``, :meth:`ModelRef.of`). The name is a Hub id
    (``MCG-NJU/videomae-base-finetuned-kinetics``) or a folder written by ``save_pretrained``
    holding ``config.json``, the weights and its processor config.
    ``spec`` is what :func:`read_model_spec` already read, if it was called; ``settled`` what
    :func:`run_labels` already settled for ``model``, if it was called (its ``spec`` is then
    the one used, and a fitted head is not read again).

    A checkpoint that would give garbage is refused with :class:`UntrainedModelError`: one
    without a classification head (:meth:`ModelSpec.head_problem`), and one whose load report
    says weights were missing (left at their random start), unexpected (not used) or of
    another shape. ``allow_untrained_head`` turns that into one line to ``on_warning``.
    ``backend`` picks the runtime (:func:`resolve_backend`); with OpenVINO the model is
    converted once and cached, ``on_notice`` getting one line when that happens. A model
    OpenVINO cannot convert runs on torch instead, with one line to ``on_warning`` (without
    the callbacks, both lines go to this module's logger). With ``dtype="int8"`` the
    converted model is quantized once (cached too) on ``calibration``'s clips
    (:class:`~vmae_cli.backends.Calibration`, needed only when the cache has no entry for
    it); on a CPU without int8 dot products it runs in float instead, with one line to
    ``on_warning`` (:func:`int8_fallback`, :data:`FORCE_INT8_ENV`). Raises
    :class:`ModelLoadError` with a one-line explanation when it cannot be loaded, and
    :class:`DeviceError` for a device, dtype or backend this machine does not have.

    A zero-shot model (:data:`ZERO_SHOT_TYPES`: X-CLIP) scores videos against the ref's
    ``text_labels`` (:mod:`vmae_cli.zeroshot`: each label's prompt encoded once, here); its
    labels are theirs, in order. It runs on torch: silently with ``backend="auto"``, with one
    line to ``on_warning`` with ``backend="openvino"``; ``dtype="int8"`` is refused
    (:func:`check_zero_shot_dtype`).
    """
    import torch

    ref = ModelRef.of(model, **flat)
    name, revision, allow_untrained_head = ref.name, ref.revision, ref.allow_untrained_head
    dev = resolve_device(backend_device(ref.backend, ref.device, ref.dtype))
    torch_dtype = resolve_dtype(ref.dtype, dev)
    dtype_name = str(torch_dtype).removeprefix("torch.")  # float32, bfloat16, float16
    settled = settled or run_labels(spec or read_model_spec(name, revision=revision), ref)
    spec, head, source = settled.spec, settled.head, settled.labels_from
    runtime = resolve_backend(ref.backend, dev, ref.dtype, ref.calibration)
    warn = on_warning or log.warning
    check_head(spec, allow_untrained_head, warn)
    runs_on = zero_shot_runtime(spec, runtime)
    if runs_on != runtime and ref.backend != BACKEND_AUTO:
        # Asked for by name: say that it is not what runs.
        warn(
            f"backend={ref.backend!r} does not run zero-shot {spec.model_type} models "
            "(OpenVINO converts video classifiers only): running it on torch"
        )
    runtime = runs_on
    if ref.dtype == INT8:
        dtype_name = int8_fallback() or INT8
        if dtype_name != INT8:
            warn(
                "dtype='int8': this CPU has no int8 dot-product instructions (AVX-512 VNNI, "
                f"AVX-VNNI or AMX), for which int8 is meant: running {dtype_name} instead "
                f"({FORCE_INT8_ENV}=1 quantizes anyway)"
            )
        elif calibration is None:
            raise DtypeOptionError(
                "dtype='int8' needs the clips to calibrate on (a Calibration: "
                "vmae_cli.Classifier makes one from calibration or the first videos)",
                options=("dtype",),
                value=INT8,
            )
    if runtime in OPTIONAL_RUNTIMES:
        # Imported by name through the registry (vmae_cli.backends): the runtime's module
        # and this one do not import each other.
        load_converted = OPTIONAL_RUNTIMES[runtime].load_function()
        try:
            compiled = load_converted(
                name,
                revision=revision,
                offline=spec.offline,
                frames_per_clip=spec.frames_per_clip,
                crop_hw=spec.preprocess.crop_hw,
                input_name=spec.input_name,
                dtype=dtype_name,
                on_notice=on_notice or log.info,
                on_warning=warn,
                **({"calibration": calibration} if dtype_name == INT8 else {}),
            )
        except ConversionError as exc:
            warn(f"OpenVINO cannot run this model ({exc}); running it on torch instead")
        else:
            # Recorded when it was converted: a cached entry skips loading the checkpoint.
            check_load_report(compiled.load_report, name, allow_untrained_head, warn)
            if compiled.precision != dtype_name and dtype_name != INT8:
                warn(
                    f"dtype={dtype_name!r}: OpenVINO computes in {compiled.precision} on this "
                    f"CPU (it has no native {dtype_name})"
                )
            log.debug("loaded %s with OpenVINO in %s", name, compiled.precision)
            return LoadedModel(
                name=name,
                model=compiled,
                device=dev,
                dtype=torch.float32,  # OpenVINO's input; it computes in compiled.precision
                frames_per_clip=spec.frames_per_clip,
                preprocess=spec.preprocess,
                id2label=head.id2label if head else _id2label(name, revision, spec.offline),
                backend=BACKEND_OPENVINO,
                precision=compiled.precision,
                multi_label=spec.multi_label,  # off with a fitted head (with_head)
                input_name=spec.input_name,
                revision=spec.revision,
                labels_from=source,
                head=head,
            )
    try:
        if spec.zero_shot:
            from .zeroshot import load_zero_shot

            # With a fitted head (fitted on this model's video embeddings) and no text labels,
            # the head's labels are the prompts: the text side is built, the head scores.
            prompts = [t.prompt for t in ref.text_labels] or list(head.labels if head else ())
            model, info = load_zero_shot(
                name,
                prompts,
                revision=revision,
                dtype=torch_dtype,
                device=dev,
                offline=spec.offline,
            )
        else:
            model, info = pretrained(
                name, revision=revision, dtype=torch_dtype, offline=spec.offline
            )
    except Exception as exc:  # noqa: BLE001 - mapped to one line; --debug shows the rest
        raise _translate_load_error(exc, name, spec.offline) from None
    check_load_report(load_report(info), name, allow_untrained_head, warn)
    model.eval().to(dev)
    if head is not None:
        id2label = head.id2label
    elif spec.zero_shot:
        id2label = {i: safe_label(t.label) for i, t in enumerate(ref.text_labels)}
    else:
        id2label = label_table(model.config.id2label or {})
    if dev.type == "cpu":
        # Dropping intermediate autograd state also applies to the weights' storage here.
        torch.set_grad_enabled(False)
    log.debug("loaded %s on %s as %s", name, dev, torch_dtype)
    return LoadedModel(
        name=name,
        model=model,
        device=dev,
        dtype=torch_dtype,
        frames_per_clip=spec.frames_per_clip,  # from the same config.json, read once
        preprocess=spec.preprocess,
        id2label=id2label,
        backend=BACKEND_TORCH,
        precision=dtype_name,
        multi_label=spec.multi_label,  # off with a fitted head (with_head)
        input_name=spec.input_name,
        revision=spec.revision,
        labels_from=source,
        head=head,
    )


#: How many keys of each kind a refusal names.
REPORT_KEYS_SHOWN = 3


def check_zero_shot_dtype(spec: ModelSpec, dtype: str) -> None:
    """Refuse ``dtype="int8"`` for a zero-shot model (:class:`DtypeOptionError`): int8 is
    an OpenVINO quantization, and zero-shot models run on torch."""
    if spec.zero_shot and dtype == INT8:
        raise DtypeOptionError(
            f"dtype='int8' quantizes a video classifier with OpenVINO; {spec.name!r} is a "
            f"zero-shot {spec.model_type} model, which runs on torch: use dtype='auto', "
            "'bfloat16' or 'float32'",
            options=("dtype",),
            value=INT8,
        )


def zero_shot_runtime(spec: ModelSpec, runtime: str) -> str:
    """The runtime that runs ``spec``: torch for a zero-shot model (OpenVINO converts video
    classifiers only; :func:`load_model` says so when ``backend="openvino"`` was asked),
    else ``runtime``."""
    return BACKEND_TORCH if spec.zero_shot else runtime


def check_head(spec: ModelSpec, allow: bool, warn: Say) -> None:
    """Refuse (:class:`UntrainedModelError`) a checkpoint without a classification head, or
    with ``allow`` say so in one warning."""
    problem = spec.head_problem()
    if problem is None:
        return
    if not allow:
        raise UntrainedModelError(problem, options=("allow_untrained_head",))
    warn(f"allow_untrained_head: {problem.split(':')[0]}; its labels mean nothing")


def check_load_report(report: dict[str, list[str]], name: str, allow: bool, warn: Say) -> None:
    """Refuse (:class:`UntrainedModelError`) weights the load report says are not the
    checkpoint's, naming the first few keys; with ``allow`` say so in one warning."""
    parts = []
    for kind, what in (
        ("missing", "missing from the checkpoint (left random)"),
        ("unexpected", "in the checkpoint but unused"),
        ("mismatched", "of another shape than the model's"),
    ):
        keys = report.get(kind) or []
        if keys:
            shown = ", ".join(keys[:REPORT_KEYS_SHOWN])
            more = (
                f" and {len(keys) - REPORT_KEYS_SHOWN} more"
                if len(keys) > REPORT_KEYS_SHOWN
                else ""
            )
            parts.append(f"{len(keys)} weight(s) {what}: {shown}{more}")
    if not parts:
        return
    problem = f"{name!r} does not load as a trained classifier: " + "; ".join(parts)
    if not allow:
        raise UntrainedModelError(
            f"{problem} (a wrong checkpoint or a transformers version that cannot read it; "
            "allow_untrained_head=True runs it anyway)",
            options=("allow_untrained_head",),
        )
    warn(f"allow_untrained_head: {problem}")


def read_labels(
    name: str = DEFAULT_MODEL, *, revision: str | None = None, spec: ModelSpec | None = None
) -> dict[int, str]:
    """The model's class names by index, from its config (no weights): ``vmae labels``.
    ``spec`` is what :func:`read_model_spec` already read, if it was called.

    Raises :class:`ModelLoadError` as :func:`read_model_spec` does, and
    :class:`~vmae_cli.labelsource.LabelsOptionError` for a zero-shot model (no labels of its
    own).
    """
    spec = spec or read_model_spec(name, revision=revision)
    if spec.zero_shot:
        from .labelsource import LabelsOptionError

        raise LabelsOptionError(
            f"{spec.name!r} is a zero-shot {spec.model_type} model: it has no labels of its "
            "own; its labels are the text_labels a run gives it",
            options=("text_labels",),
            value=spec.name,
        )
    try:
        return dict(sorted(_id2label(spec.name, revision, spec.offline).items()))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped to one line; --debug shows the rest
        raise _translate_load_error(exc, spec.name, spec.offline) from None


def _id2label(name: str, revision: str | None, offline: bool) -> dict[int, str]:
    """The class names config.json declares (what ``model.config.id2label`` would hold)."""
    config = _config_json(name, "config.json", revision, offline)
    labels = config.get("id2label") or {}
    if not labels and isinstance(config.get("num_labels"), int):
        labels = {i: f"LABEL_{i}" for i in range(config["num_labels"])}
    return label_table(labels)


def label_table(labels: dict[Any, Any]) -> dict[int, str]:
    """A checkpoint's ``id2label`` as vmae uses it everywhere: int indices, and names safe to
    write in any output (:func:`safe_label`)."""
    return {int(k): safe_label(str(v)) for k, v in labels.items()}


def safe_label(name: str) -> str:
    """A label as text every output can hold: a lone surrogate (not UTF-8) is written
    ``\\udXXX`` and a control character (NUL, newline, ...) ``\\xNN``, so that a hostile or
    broken config cannot abort a run (a UTF-8 file cannot hold a lone surrogate) or split a
    row."""
    if name.isprintable():
        return name
    text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)
