"""The values the library's options may take, and their defaults: one home for each, importing
nothing.

The command line offers these as its options' choices and defaults. They live here, not in
the modules that use them (:mod:`vmae_cli.runner`, :mod:`vmae_cli.model`,
:mod:`vmae_cli.formats`, ...), because importing those modules imports most of the package
(0.09 s on a 2-core machine), and ``vmae --help`` needs only these names (issue 26: it must
print in 0.2 s). Each owning module re-exports its values (``runner.ENGINES`` is
``choices.ENGINES``), so callers name them where they are used.

The registries keyed by some of these names (:data:`vmae_cli.formats.FORMATS`,
:data:`vmae_cli.protocol.PROTOCOLS`) stay in their modules; ``tests/test_choices.py`` holds
them to the names here.
"""

from __future__ import annotations

# Model (vmae_cli.model, vmae_cli.backends).

#: The model used when none is given: VideoMAE-base fine-tuned on Kinetics-400 (400 classes,
#: 16 frames of 224x224; its card reports top-1 80.9 / top-5 94.7).
DEFAULT_MODEL = "MCG-NJU/videomae-base-finetuned-kinetics"
#: Where the model runs: ``auto`` prefers CUDA; ``cuda:N`` is accepted too.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # plus "cuda:N"
#: The ``dtype`` of a model quantized to 8-bit integers (OpenVINO only).
INT8 = "int8"
#: The model's precision: ``auto`` is bf16 on CUDA and bf16-capable CPUs, else float32.
#: ``int8``: the model quantized with NNCF, on the OpenVINO backend only (``calibration``).
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", INT8)
#: The model runtimes. ``auto`` is OpenVINO on the CPU when its extra is installed (1.47x the
#: clips/s of torch bf16 for ViT-B on a 2-core AVX-512 BF16 CPU), torch everywhere else.
BACKEND_AUTO = "auto"
BACKEND_TORCH = "torch"
BACKEND_OPENVINO = "openvino"
BACKEND_CHOICES = (BACKEND_AUTO, BACKEND_TORCH, BACKEND_OPENVINO)

# Protocol (vmae_cli.protocol).

#: Crops per clip that the protocol supports: the centre crop, or start/centre/end.
CROP_CHOICES = (1, 3)
#: The named protocols (the keys of ``protocol.PROTOCOLS``); the first is the default.
PROTOCOL_UNIFORM = "uniform"
PROTOCOL_VIDEOMAE = "videomae"
PROTOCOL_NAMES = (PROTOCOL_UNIFORM, PROTOCOL_VIDEOMAE)
#: Decode exactly the frames the protocol names (the default).
SAMPLING_EXACT = "exact"
#: Decode the keyframe nearest each frame the protocol names: no decoding between keyframes.
SAMPLING_KEYFRAMES = "keyframes"
#: How the frames are fetched (``--sampling``); the first is the default.
SAMPLING_CHOICES = (SAMPLING_EXACT, SAMPLING_KEYFRAMES)

# Rows and vectors (vmae_cli.formats, vmae_cli.embeddings).

#: The row formats (the keys of ``formats.FORMATS``, each its class's ``name``).
FORMAT_CSV = "csv"
FORMAT_JSONL = "jsonl"
FORMAT_PARQUET = "parquet"
FORMAT_NAMES = (FORMAT_CSV, FORMAT_JSONL, FORMAT_PARQUET)
#: The element types a vector can be stored as (``--embeddings-dtype``). float16 halves the
#: file; its 3 significant digits are plenty for similarity search and clustering.
EMBEDDING_DTYPES = ("float16", "float32")
DEFAULT_EMBEDDING_DTYPE = "float16"

#: ``vmae fit-head``: the L2 penalty on a head's standardised weights (``fitting``). With a
#: few dozen examples of 768 values the labels are separable and an unpenalised fit has no
#: finite optimum; 1e-2 (scikit-learn's default C=1 at 100 examples) keeps it well posed.
DEFAULT_HEAD_L2 = 1e-2

# A run (vmae_cli.runner, vmae_cli.ray_engine).

#: Per-video decoding limit of a run when none is given (seconds): a file that hangs a
#: decoder (a stuck network mount, a pathological stream) must not hang a cron job for ever,
#: while a long 4K video read sequentially still fits.
DEFAULT_TIMEOUT_S = 600.0
#: Ways to spread the work: ``local`` (this machine's cores, or its GPU) and ``ray`` (the
#: nodes of a Ray cluster, :mod:`vmae_cli.ray_engine`; the optional extra ``vmae-cli[ray]``).
ENGINE_LOCAL = "local"
ENGINE_RAY = "ray"
ENGINES = (ENGINE_LOCAL, ENGINE_RAY)
#: Videos per Ray task (one ``map_batches`` batch). An actor takes one batch at a time, and
#: at the end of each its decoding workers wait while the last videos go through the model:
#: on 2 cores with ViT-B, 23 videos took 73-74 s in batches of 8 against 56-60 s locally.
#: Larger batches pay that wait less often; smaller ones spread work more evenly, stream rows
#: sooner and lose less when a node fails. (Two batches at once per actor, through Ray
#: Data's max_concurrent_calls_per_actor, failed a run with an error in the actor.)
DEFAULT_VIDEOS_PER_TASK = 16

# The report (vmae_cli.report) and inspect (vmae_cli.inspection).

#: Videos shown per label when ``per_label`` is not given (half the highest scores, half
#: the lowest).
DEFAULT_REPORT_PER_LABEL = 8
#: The size a report stays under when ``max_bytes`` is not given (bytes): opens quickly,
#: mails as an attachment.
DEFAULT_REPORT_MAX_BYTES = 20 * 1024 * 1024
#: Seconds a video may take to decode again for the report when ``timeout_s`` is not given.
DEFAULT_REPORT_TIMEOUT_S = 120.0
#: Windows of `vmae inspect --segments` whose frames are kept, for ``--sheet`` (one row per
#: window, per crop with ``--crops 3``) and ``--npz``: the others are only listed, so memory
#: does not grow with the video.
SHEET_WINDOWS = 8
