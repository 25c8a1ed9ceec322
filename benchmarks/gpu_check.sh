#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step_* functions are called as "step_$2"
# gpu_check.sh: one run on a lent NVIDIA H200 machine (issue 12, requirement 4) that measures
# what the CPU machines cannot, in under 8 minutes, every part under its own timeout.
#
#   0. setup       install carried wheels (PyAV, torchcodec) with --no-index --no-deps, then
#                  `pip install --no-deps -e .`; torch is never touched (checked before/after)
#   1. tests       the CUDA tests: pytest -k "cuda or gpu" (tests/test_model.py::test_cuda_path
#                  skips without a GPU; on the device it must pass)
#   2. model       model-only clips/s of vmae_cli.model.load_model(...).predict on a random-weight
#                  ViT-B (benchmarks/make_model.py), bf16, batch 8/32/64, input already on the GPU
#                  and from pinned host memory; peak GPU memory per batch size
#   3. e2e         `vmae classify --device cuda` over generated videos (make_mix.py, hard-linked
#                  into more paths), default workers (one per core) and --workers 8: videos/s,
#                  time to the first row, rows per status and decoder, GPU utilisation (nvidia-smi)
#   4. segments    `vmae classify VIDEO --segments --device cuda` (default window and workers) on
#                  one generated 120 s 1920x1080 30 fps H.264 MP4 (gpu_check.py gen-long: PyAV,
#                  stretches encoded in parallel, remuxed), after the same command on its first
#                  64 frames (start-up): wall s, windows/s, minutes per hour of video (with and
#                  without start-up), CPU minutes per hour, GPU utilisation; the outputs checked
#                  (one ok row, `windows` = window rows, frames 0 .. frames_decoded - 1 tiled).
#                  Needs PyAV (vmae decodes windows with it): skipped without the av wheel
#   5. gpu_decode  if torchcodec imports and finds FFmpeg: NVDEC frames/s on H.264 and HEVC 1080p
#                  clips, and the 16 sampled frames (vmae_cli.decoding.sample_indices) against a
#                  CPU full decode: max/mean abs pixel difference (limit 3), index mismatches,
#                  CPU fallback; otherwise "no GPU decoder available" and why
#
# A part that fails or times out is recorded and the next one runs. Everything goes to $OUT:
#   gpu_check.log               all output           gpu_check.json   every figure
#   gpu_check.md                tables to paste into benchmarks/RESULTS.md
#   gpu_check_details.tar.gz    per-part JSON, e2e and segments CSVs, the pytest XML, pip freeze
# The summary is rewritten after every part, so a run killed from outside still leaves one.
# Exit code: 0 all parts ok, 3 some part failed/timed out/was skipped, 1 no summary written.
#
# USAGE
#   bash benchmarks/gpu_check.sh                  # on the device (the run tool sets $OUT)
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # or --cpu: every part on the CPU with
#                                                 # tiny sizes (tiny model, 3 tiny videos), ~2 min
#   options: --wheels DIR (or WHEELS=DIR, default .whl), --budget SECONDS (default 420),
#            --cpu / --dry-run; PYTHON=python3 picks the interpreter. For trying the script
#            out: GPU_CHECK_NO_INSTALL=1 (no pip install into the environment),
#            GPU_CHECK_MAX_<part>=S (shorter part timeouts), GPU_CHECK_MIX_COUNT,
#            GPU_CHECK_COPIES, GPU_CHECK_FORCE_CV2=1, GPU_CHECK_DECODE_DEVICE=cpu,
#            GPU_CHECK_SEG_SECONDS / GPU_CHECK_SEG_SIZE (the segments video: 120, 1920x1080).
#
# PREPARING THE WHEELS (here, before the device call)
#   The device (per the device tool's KINDS.md) has Python 3.12.3 at
#   /opt/torch/.venv/bin/python3 with torch 2.11.0+cu130, transformers, opencv-python-headless,
#   typer, rich, pandas, pytest, setuptools; no PyAV, no torchcodec, no network. The setup part
#   prints that Python's wheel tags and says which carried wheel does not fit and what to fetch.
#   In the repository root (/.whl/ is already in .gitignore, so .whl must be carried):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#         av==18.1.0 torchcodec==0.16.0
#
#   av 18.1.0 is the version of our venv; its wheel is abi3 (cp311-abi3, fits 3.12):
#   av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl, 35,786,210 bytes (34.1 MiB), FFmpeg 8
#   (libavcodec 62) and x264/x265/libvpx bundled in av.libs/.
#   torchcodec-0.16.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl, 9,471,149
#   bytes (9.0 MiB). Both together 43.2 MiB; with the working tree (~1 MiB) under the 64 MiB
#   that travels. Without them: PyAV-less fallbacks (OpenCV-written AVI videos, no GPU decode).
#
# WHY torchcodec 0.16.0 (checked 2026-12-01 with pip download and the wheels' own README)
#   * torchcodec 0.11 is built for torch 2.11 exactly; 0.12 and later declare torch >= 2.11
#     (PyTorch's stable ABI). PyPI wheels 0.11-0.13 are CPU-only (no CUDA library linked);
#     from 0.14 on, the PyPI wheel for Linux x86_64 is CUDA 13 (links libcudart.so.13,
#     libnvrtc.so.13, libtorch_cuda.so, libc10_cuda.so; bundles libnvjpeg 13), i.e. it matches
#     torch 2.11+cu130. 0.16.0 is the newest its README lists for torch >= 2.11 (0.17.0 exists
#     but is not in that table yet).
#   * It does NOT bundle FFmpeg: it needs the shared libraries of a system FFmpeg 4-9
#     (libavcodec/avformat/avutil/avdevice/avfilter/swscale/swresample with their plain
#     sonames). The device's CUDA image very likely has none (no ffmpeg in its package list).
#     The script therefore links the FFmpeg 8 libraries bundled in the PyAV wheel under those
#     sonames in a shim folder on LD_LIBRARY_PATH (tried here on the CPU: torchcodec 0.13
#     decodes H.264/HEVC/VP9 through it).
#   * Its default CUDA backend ("nvdec") uses FFmpeg only to demux and calls NVDEC through the
#     driver's libnvcuvid.so.1, which a container has only when the driver's "video"
#     capability is mounted. Without it torchcodec silently decodes on the CPU: the script reads
#     VideoDecoder.cpu_fallback and reports that instead of a GPU figure.
#   * Its CUDA libraries link libnvrtc.so.13 and libcudart.so.13 with no RUNPATH: the decode
#     part puts torch's site-packages/nvidia/*/lib folders (and the shim, and libnvcuvid's
#     folder if the loader cache lacks it) on LD_LIBRARY_PATH, and lists any library still
#     missing in gpu_check.json (gpu_decode.probe).
#
# THE DEVICE CALL (run tool; nothing else is needed, the command runs in the repo root)
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   The check ends by itself within about 450 s (budget 420 s + summary + tar); timeout_s 540
#   leaves margin for the start of the command. Call give_back afterwards: 15 minutes of device
#   time do not allow a second full run. Wheels kept in shared/wheels travel without carry:
#   run(command="WHEELS=shared/wheels bash benchmarks/gpu_check.sh", timeout_s=540).

set -u -o pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)

# ------------------------------------------------------------------------------------------
# Steps: each runs as `bash gpu_check.sh --_step NAME` under `timeout`, with the exported
# settings of the main run.
# ------------------------------------------------------------------------------------------

note() { echo "$*" | tee -a "$WORK/setup_notes.txt"; }

step_setup() {
    cd "$REPO" || return 1
    note "python: $(command -v "$PY") $("$PY" -c 'import sys; print(sys.version.split()[0])')"
    command -v nvidia-smi >/dev/null && nvidia-smi
    local torch_before torch_after
    torch_before=$("$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -n 1)
    note "torch before: $torch_before"
    local wheels=() ok=()
    if [ -d "$WHEELS" ]; then
        mapfile -t wheels < <(find "$WHEELS" -maxdepth 1 -name '*.whl' | sort)
    fi
    "$PY" benchmarks/gpu_check.py wheels "${wheels[@]}" --json "$WORK/wheels.json" \
        --ok-list "$WORK/wheels_ok.txt"
    [ -f "$WORK/wheels_ok.txt" ] && mapfile -t ok <"$WORK/wheels_ok.txt"
    local pipi=("$PY" -m pip install --no-index --no-deps --no-compile --no-cache-dir
        --disable-pip-version-check)
    if [ "${#ok[@]}" -eq 0 ]; then
        note "wheels: none to install from '$WHEELS' (no PyAV/torchcodec: fallbacks apply)"
    elif [ "$DRY" != 1 ] && [ -z "${GPU_CHECK_NO_INSTALL:-}" ] && "${pipi[@]}" "${ok[@]}"; then
        note "wheels: installed into the environment: ${ok[*]}"
    else
        # The dry run never changes the shared venv; on the device this is the fallback for a
        # read-only environment.
        if "${pipi[@]}" --target "$WORK/site" "${ok[@]}"; then
            echo "export PYTHONPATH=\"$WORK/site\${PYTHONPATH:+:\$PYTHONPATH}\"" >>"$ENV_FILE"
            note "wheels: installed with --target $WORK/site (on PYTHONPATH): ${ok[*]}"
        else
            note "wheels: install FAILED: ${ok[*]}"
        fi
    fi
    if [ "$DRY" = 1 ] || [ -n "${GPU_CHECK_NO_INSTALL:-}" ]; then
        note "editable install: skipped (dry run or GPU_CHECK_NO_INSTALL: vmae-cli is there)"
    elif "$PY" -m pip install -q --no-index --no-deps --no-build-isolation \
        --disable-pip-version-check -e .; then
        note "editable install: pip install --no-deps -e . done"
    else
        echo "export PYTHONPATH=\"$REPO\${PYTHONPATH:+:\$PYTHONPATH}\"" >>"$ENV_FILE"
        note "editable install: FAILED; using PYTHONPATH=$REPO and python -m vmae_cli.cli"
    fi
    # shellcheck disable=SC1090
    [ -f "$ENV_FILE" ] && . "$ENV_FILE"
    torch_after=$("$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -n 1)
    note "torch after: $torch_after"
    "$PY" -m pip freeze >"$WORK/pip_freeze.txt" 2>/dev/null
    "$PY" benchmarks/gpu_check.py env --json "$WORK/env.json" || return 1
    if [ "$torch_before" != "$torch_after" ]; then
        note "ERROR: torch changed from $torch_before to $torch_after"
        return 1
    fi
}

step_tests() {
    cd "$REPO" || return 1
    "$PY" -m pytest -q -p no:cacheprovider -rs -k "cuda or gpu" \
        --continue-on-collection-errors --junitxml="$WORK/cuda_tests.xml" tests
    local rc=$?
    if [ "$DRY" != 1 ] && grep -q 'name="test_cuda_path"[^>]*>[[:space:]]*<skipped' \
        "$WORK/cuda_tests.xml" 2>/dev/null; then
        echo "test_cuda_path was SKIPPED on the GPU machine: torch sees no CUDA device"
        return 1
    fi
    return "$rc"
}

step_model_build() {
    cd "$REPO" || return 1
    if [ "$DRY" = 1 ]; then
        "$PY" tests/tiny_model.py "$WORK/model"
    else
        "$PY" benchmarks/make_model.py "$WORK/model"
    fi
}

step_model_only() {
    cd "$REPO" || return 1
    "$PY" benchmarks/gpu_check.py model --model "$WORK/model" --device "$DEVICE" \
        --dtype "$DTYPE" --batch-sizes "$BATCHES" --seconds "$MODEL_SECONDS" \
        --min-iters "$MODEL_MIN_ITERS" --warmup "$MODEL_WARMUP" --json "$WORK/model.json"
}

step_e2e_videos() {
    cd "$REPO" || return 1
    if [ -z "${GPU_CHECK_FORCE_CV2:-}" ] && "$PY" -c 'import av' 2>/dev/null; then
        echo "make_mix.py --count $MIX_COUNT --max-duration $MIX_DURATION" \
            "--max-side $MIX_SIDE --seed 0 (PyAV)" >"$WORK/e2e_generator.txt"
        "$PY" benchmarks/make_mix.py "$WORK/mix" --count "$MIX_COUNT" --seed 0 \
            --max-duration "$MIX_DURATION" --max-side "$MIX_SIDE" --jobs "$JOBS" || return 1
    else
        echo "gpu_check.py gen-cv2 --count $MIX_COUNT --seconds $CV2_SECONDS" \
            "--max-side $MIX_SIDE (OpenCV AVI, no PyAV)" >"$WORK/e2e_generator.txt"
        "$PY" benchmarks/gpu_check.py gen-cv2 "$WORK/mix" --count "$MIX_COUNT" \
            --seconds "$CV2_SECONDS" --max-side "$MIX_SIDE" --jobs "$JOBS" || return 1
    fi
    "$PY" benchmarks/gpu_check.py link "$WORK/mix" "$WORK/e2e_videos" --copies "$COPIES" \
        --json "$WORK/e2e_videos.json"
}

inner_timeout() { # seconds for a measured child, leaving time to write its JSON
    local margin=8
    if [ "$PART_TIMEOUT" -lt 32 ]; then margin=$((PART_TIMEOUT / 4 + 1)); fi
    echo $((PART_TIMEOUT - margin))
}

e2e_run() { # LETTER LABEL [vmae --workers N]
    local letter=$1 label=$2
    shift 2
    cd "$REPO" || return 1
    "$PY" benchmarks/gpu_check.py e2e "$WORK/e2e_videos" --model "$WORK/model" \
        --device "$DEVICE" --label "$label" --timeout "$(inner_timeout)" \
        --json "$WORK/e2e_run_$letter.json" "$@"
}

step_e2e_a() { e2e_run a "workers_default"; }
step_e2e_b() { e2e_run b "workers_$WORKERS_B" --workers "$WORKERS_B"; }

step_segments() {
    cd "$REPO" || return 1
    mkdir -p "$WORK/segments"
    # Generation gets at most 40 % of the part: a slow machine fails here, with that reason,
    # rather than leaving vmae too little time.
    local gen_s=$((PART_TIMEOUT * 2 / 5)) rc
    timeout --kill-after=5 "$gen_s" "$PY" benchmarks/gpu_check.py gen-long \
        "$WORK/segments/long.mp4" --seconds "$SEG_SECONDS" --size "$SEG_SIZE" --fps "$SEG_FPS" \
        --jobs "$JOBS" --short "$WORK/segments/short.mp4" --json "$WORK/segments_video.json"
    rc=$?
    case $rc in
    0) ;;
    124 | 137) echo "gen-long: killed after ${gen_s}s (the video took too long to make)" ;;
    *) echo "gen-long: exit $rc" ;;
    esac
    [ "$rc" -eq 0 ] || return 1
    "$PY" benchmarks/gpu_check.py segments "$WORK/segments/long.mp4" \
        --short "$WORK/segments/short.mp4" --video-json "$WORK/segments_video.json" \
        --model "$WORK/model" --device "$DEVICE" --timeout $((PART_TIMEOUT - SECONDS - 8)) \
        --json "$WORK/segments.json"
}

step_gpu_decode() {
    cd "$REPO" || return 1
    "$PY" benchmarks/gpu_check.py decode --device "$DEC_DEVICE" --work "$WORK" \
        --size "$DEC_SIZE" --frames "$DEC_FRAMES" --threads "$DEC_THREADS" \
        --seconds "$DEC_SECONDS" --json "$WORK/decode.json"
}

if [ "${1:-}" = "--_step" ]; then
    # shellcheck disable=SC1090
    [ -f "$ENV_FILE" ] && . "$ENV_FILE"
    "step_$2"
    exit $?
fi

# ------------------------------------------------------------------------------------------
# Main run
# ------------------------------------------------------------------------------------------

DRY=${GPU_CHECK_DRY_RUN:-0}
WHEELS=${WHEELS:-.whl}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
while [ $# -gt 0 ]; do
    case "$1" in
    --cpu | --dry-run) DRY=1 ;;
    --wheels) WHEELS=${2:?--wheels needs a folder} && shift ;;
    --wheels=*) WHEELS=${1#*=} ;;
    --budget) BUDGET=${2:?--budget needs seconds} && shift ;;
    --budget=*) BUDGET=${1#*=} ;;
    -h | --help)
        sed -n '3,/^$/p' "$SELF" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "gpu_check.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
[ "$DRY" = 0 ] || DRY=1

cd "$REPO" || exit 1
case "$WHEELS" in /*) ;; *) WHEELS=$REPO/$WHEELS ;; esac
PY=${PYTHON:-python3}
NPROC=$(nproc 2>/dev/null || echo 2)
if [ "$DRY" = 1 ]; then
    MODE=dry-run
    OUT=${OUT:-/tmp/gpu_check_out}
else
    MODE=device
    OUT=${OUT:-$REPO/gpu_check_out}
fi
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
ENV_FILE=$WORK/env.sh
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT" || exit 1
LOG=$OUT/gpu_check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

if [ "$DRY" = 1 ]; then
    DEVICE=cpu DTYPE=float32 BATCHES=1,2 MODEL_SECONDS=0.5 MODEL_MIN_ITERS=2 MODEL_WARMUP=1
    MIX_COUNT=${GPU_CHECK_MIX_COUNT:-3} MIX_DURATION=2 MIX_SIDE=192 CV2_SECONDS=2 COPIES=1
    JOBS=2 WORKERS_B=1
    DEC_DEVICE=${GPU_CHECK_DECODE_DEVICE:-cuda} DEC_SIZE=320x240 DEC_FRAMES=40
    DEC_THREADS=1 DEC_SECONDS=0.2
    SEG_SECONDS=${GPU_CHECK_SEG_SECONDS:-10} SEG_SIZE=${GPU_CHECK_SEG_SIZE:-320x240} SEG_FPS=30
else
    DEVICE=cuda DTYPE=bfloat16 BATCHES=8,32,64 MODEL_SECONDS=3 MODEL_MIN_ITERS=5 MODEL_WARMUP=3
    # 64 videos of at most 20 s and 1280 px (~25k frames, ~30 s of encoding on 16 cores),
    # each hard-linked 6 times: 384 paths, every one a real decode.
    MIX_COUNT=${GPU_CHECK_MIX_COUNT:-64} MIX_DURATION=20 MIX_SIDE=1280 CV2_SECONDS=8
    COPIES=${GPU_CHECK_COPIES:-6} JOBS=$NPROC WORKERS_B=8
    DEC_DEVICE=${GPU_CHECK_DECODE_DEVICE:-cuda} DEC_SIZE=1920x1080 DEC_FRAMES=150
    DEC_THREADS=4 DEC_SECONDS=1.0
    # 120 s of 1080p at 30 fps: 3600 frames, ~57 windows of the default 64 frames, ~130 MB;
    # ~50 ms of CPU a frame to make (pattern + libx264 ultrafast): ~15 s on 16 cores.
    SEG_SECONDS=${GPU_CHECK_SEG_SECONDS:-120} SEG_SIZE=${GPU_CHECK_SEG_SIZE:-1920x1080} SEG_FPS=30
fi
export SELF REPO DRY WHEELS PY WORK ENV_FILE DEVICE DTYPE BATCHES MODEL_SECONDS MODEL_MIN_ITERS \
    MODEL_WARMUP MIX_COUNT MIX_DURATION MIX_SIDE CV2_SECONDS COPIES JOBS WORKERS_B DEC_DEVICE \
    DEC_SIZE DEC_FRAMES DEC_THREADS DEC_SECONDS SEG_SECONDS SEG_SIZE SEG_FPS
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# Parts in order, with the most seconds each may take and the fewest worth starting with.
# segments' 90 s come from model_only (100 -> 80: ~35 s expected) and gpu_decode (100 -> 90);
# the budget (420 s) is unchanged: a part starts with what is left after keeping the MIN_S
# of the parts after it, and is skipped if that is under its own MIN_S.
PARTS=(setup tests model_build model_only e2e_videos e2e_a e2e_b segments gpu_decode)
declare -A MAX_S=([setup]=90 [tests]=75 [model_build]=60 [model_only]=80 [e2e_videos]=90
    [e2e_a]=75 [e2e_b]=75 [segments]=90 [gpu_decode]=90)
declare -A MIN_S=([setup]=15 [tests]=20 [model_build]=15 [model_only]=30 [e2e_videos]=20
    [e2e_a]=25 [e2e_b]=25 [segments]=40 [gpu_decode]=30)
SUMMARY_RESERVE=10
for p in "${PARTS[@]}"; do # GPU_CHECK_MAX_<part>=SECONDS shortens a part (to try the timeouts)
    v=GPU_CHECK_MAX_$p
    if [ -n "${!v:-}" ]; then
        MAX_S[$p]=${!v}
        if [ "${MIN_S[$p]}" -gt "${!v}" ]; then MIN_S[$p]=${!v}; fi
    fi
done

reserve_after() { # seconds to keep for the parts after $1
    local seen=0 sum=$SUMMARY_RESERVE p
    for p in "${PARTS[@]}"; do
        if [ "$seen" = 1 ]; then sum=$((sum + MIN_S[$p])); fi
        if [ "$p" = "$1" ]; then seen=1; fi
    done
    echo "$sum"
}

record_part() { # NAME STATUS RC SECONDS TIMEOUT NOTE
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$WORK/parts.tsv"
}

summary() { # [--final] [--quiet]
    timeout 30 "$PY" "$REPO/benchmarks/gpu_check.py" summary --work "$WORK" --out "$OUT" \
        --mode "$MODE" --device "$DEVICE" --elapsed "$SECONDS" --budget "$BUDGET" "$@"
}

run_part() { # NAME: run step NAME under its timeout, or record why not
    local name=$1 t left reserve t0 rc status note
    reserve=$(reserve_after "$name")
    left=$((BUDGET - SECONDS - reserve))
    t=${MAX_S[$name]}
    if [ "$left" -lt "$t" ]; then t=$left; fi
    if [ "$t" -lt "${MIN_S[$name]}" ]; then
        echo "===== [$name] skipped: ${t}s left of the ${BUDGET}s budget ====="
        record_part "$name" skipped -1 0 "$t" "out of time (budget ${BUDGET}s)"
        summary --quiet
        return 1
    fi
    echo
    echo "===== [$name] start $(date -u +%H:%M:%S), timeout ${t}s, ${SECONDS}s elapsed ====="
    t0=$SECONDS
    PART_TIMEOUT=$t timeout --kill-after=10 "$t" bash "$SELF" --_step "$name" 2>&1 |
        tee "$WORK/log_$name.txt"
    rc=${PIPESTATUS[0]}
    note=""
    case $rc in
    0) status=ok ;;
    124 | 137) status=timeout note="killed after ${t}s" ;;
    *) status=failed ;;
    esac
    if [ "$status" != ok ]; then # the last line it printed says most often why
        note="$note${note:+; }$(grep -v '^[[:space:]]*$' "$WORK/log_$name.txt" | tail -n 1 |
            tr '\t|' '  ' | cut -c 1-160)"
    fi
    record_part "$name" "$status" "$rc" "$((SECONDS - t0))" "$t" "$note"
    echo "===== [$name] $status (exit $rc) in $((SECONDS - t0))s ====="
    # Later steps see what setup installed (PYTHONPATH fallbacks).
    # shellcheck disable=SC1090
    [ -f "$ENV_FILE" ] && . "$ENV_FILE" && export PYTHONPATH
    summary --quiet
    [ "$status" = ok ]
}

skip_part() { # NAME WHY
    echo "===== [$1] skipped: $2 ====="
    record_part "$1" skipped -1 0 0 "$2"
    summary --quiet
}

echo "gpu_check.sh: mode $MODE, python $PY, wheels $WHEELS, budget ${BUDGET}s, work $WORK," \
    "out $OUT, $NPROC CPUs, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"

run_part setup
run_part tests
model_ok=0
run_part model_build && model_ok=1
if [ "$model_ok" = 1 ]; then run_part model_only; else skip_part model_only "no model"; fi
videos_ok=0
run_part e2e_videos && videos_ok=1
for p in e2e_a e2e_b; do
    if [ "$model_ok" = 1 ] && [ "$videos_ok" = 1 ]; then
        run_part "$p"
    else
        skip_part "$p" "no model or no videos"
    fi
done
if [ "$model_ok" != 1 ]; then
    skip_part segments "no model"
elif ! "$PY" -c 'import av' 2>/dev/null; then
    skip_part segments "no PyAV: vmae --segments decodes with PyAV (carry the av wheel)"
else
    run_part segments
fi
run_part gpu_decode

command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,temperature.gpu,clocks.sm,power.draw --format=csv
(cd "$WORK" && find . -maxdepth 1 -type f \( -name '*.json' -o -name '*.csv' -o -name '*.xml' \
    -o -name '*.txt' -o -name '*.tsv' -o -name '*.sh' \) -size -4M -print0 |
    tar --null -czf "$OUT/gpu_check_details.tar.gz" -T -)

echo
echo "===== summary ($SECONDS s) ====="
rc=0
if summary --final; then
    grep -qv $'\tok\t' "$WORK/parts.tsv" && rc=3
else
    echo "gpu_check.sh: the summary could not be written"
    rc=1
fi
files=("$OUT"/*)
echo "gpu_check.sh: done in ${SECONDS}s, exit $rc; files in $OUT: ${files[*]##*/}"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit "$rc"
