from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vmae_cli.model import (
    DeviceError,
    ModelLoadError,
    cpu_has_native_bf16,
    load_model,
    resolve_device,
    resolve_dtype,
)
from vmae_cli.preprocessing import PreprocessConfig


def test_loads_a_local_folder_with_its_preprocessor_config(loaded_tiny) -> None:
    assert loaded_tiny.frames_per_clip == 8
    assert loaded_tiny.id2label[0] == "arm wrestling"
    assert loaded_tiny.preprocess.crop_hw == (64, 64)
    assert loaded_tiny.preprocess.mean == (0.485, 0.456, 0.406)
    assert loaded_tiny.model.config._attn_implementation == "sdpa"
    assert not loaded_tiny.model.training


def test_legacy_preprocessor_layout_loads(legacy_model_dir: Path) -> None:
    lm = load_model(str(legacy_model_dir), device="cpu", dtype="float32")
    assert lm.preprocess.shortest_edge == 64
    # Hugging Face's processor falls back to its 224 crop when crop_size is absent.
    assert lm.preprocess.crop_hw == (224, 224)


def test_predict_returns_probabilities(loaded_tiny) -> None:
    frames = torch.randint(0, 256, (3, 8, 3, 64, 64), dtype=torch.uint8)
    probs = loaded_tiny.predict(frames)
    assert probs.shape == (3, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)


def _hf_pooled(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """What Hugging Face's VideoMAE hands its classifier, computed here from its parts."""
    hidden = model.videomae(pixel_values).last_hidden_state
    return model.fc_norm(hidden.mean(1)) if model.fc_norm is not None else hidden[:, 0]


def test_embeddings_are_what_the_head_receives_from_the_same_call(loaded_tiny) -> None:
    from vmae_cli.preprocessing import normalize

    frames = torch.randint(0, 256, (3, 8, 3, 64, 64), dtype=torch.uint8)
    out = loaded_tiny.infer(frames, embeddings=True)
    with torch.inference_mode():
        pixel_values = normalize(frames, loaded_tiny.preprocess, dtype=torch.float32)
        want = _hf_pooled(loaded_tiny.model, pixel_values)
        logits = loaded_tiny.model.classifier(want)
    assert out.embeddings.shape == (3, loaded_tiny.model.config.hidden_size)
    assert out.embeddings.dtype == torch.float32
    assert (out.embeddings - want).abs().max().item() <= 1e-5
    assert torch.allclose(out.probs, torch.softmax(logits, -1), atol=1e-6)
    # One model call gives both.
    calls = []
    handle = loaded_tiny.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        loaded_tiny.infer(frames, embeddings=True)
    finally:
        handle.remove()
    assert len(calls) == 1
    # Asked for nothing, nothing comes, and the hook is gone.
    assert loaded_tiny.infer(frames).embeddings is None
    assert not loaded_tiny.model.classifier._forward_pre_hooks


def test_a_multi_label_checkpoint_gets_sigmoids(tmp_path: Path) -> None:
    from tiny_model import make_tiny_model

    model_dir = make_tiny_model(tmp_path, multi_label=True)
    lm = load_model(str(model_dir), device="cpu", dtype="float32", backend="torch")
    assert lm.multi_label
    frames = torch.randint(0, 256, (2, 8, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        pixel_values = normalize_for(lm, frames)
        logits = lm.model(pixel_values=pixel_values).logits
    assert torch.allclose(lm.predict(frames), torch.sigmoid(logits), atol=1e-6)


def normalize_for(lm, frames: torch.Tensor) -> torch.Tensor:
    from vmae_cli.preprocessing import normalize

    return normalize(frames, lm.preprocess, dtype=lm.dtype)


def test_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope"), device="cpu")


def test_folder_without_weights_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": 224}))
    with pytest.raises(ModelLoadError) as info:
        load_model(str(tmp_path), device="cpu")
    assert "\n" not in str(info.value)


def test_unreachable_hub_says_how_to_use_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_model("someone/not-cached-videomae", device="cpu")
    message = str(info.value)
    assert "someone/not-cached-videomae" in message
    assert "model=DIR" in message and "--" not in message.split("`")[-1]
    assert "HF_HUB_OFFLINE=1" in message
    assert "\n" not in message


@pytest.mark.parametrize("status", [503, 502])
def test_a_failing_hub_is_one_line_without_retries(
    status: int, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Found by re-running the README (issue 24): a Hub endpoint that accepts connections
    but fails (an outage, a proxy's error page) cost 30 s of huggingface_hub retries and 11
    stderr lines before vmae's one. The probe asks once and takes the 5xx for an answer."""
    import http.server
    import threading

    asked: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            asked.append(self.path)
            self.send_response(status)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        with pytest.raises(ModelLoadError, match="the Hugging Face Hub cannot be reached"):
            load_model("someone/not-cached-videomae", device="cpu")
    finally:
        server.shutdown()
        server.server_close()
    assert len(asked) == 1  # the probe alone: no download was tried, so nothing retried
    assert capfd.readouterr().err == ""


def test_devices_and_dtypes() -> None:
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(DeviceError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            resolve_device("cuda:0")
    cpu = torch.device("cpu")
    assert resolve_dtype("float32", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", cpu) == (
        torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    )
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32
    # int8 is OpenVINO's: the quantized model takes float32 and quantizes it itself.
    assert resolve_dtype("int8", cpu) == torch.float32
    with pytest.raises(DeviceError):
        resolve_dtype("int4", cpu)


def test_default_config_is_videomae_base() -> None:
    c = PreprocessConfig()
    assert (c.shortest_edge, c.crop_hw) == (224, (224, 224))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path(tiny_model_dir: Path) -> None:
    lm = load_model(str(tiny_model_dir), device="cuda", dtype="auto")
    assert lm.dtype == torch.bfloat16
    probs = lm.predict(torch.randint(0, 256, (2, 8, 3, 64, 64), dtype=torch.uint8))
    assert probs.device.type == "cpu"
    assert probs.shape == (2, 10)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(
    cuda: bool, mps: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_on_cpu_follows_native_bf16(
    native_bf16: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vmae_cli.model.cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_dtype("auto", torch.device("cpu")) == getattr(torch, expected)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16


def test_this_machine_cpu_flags_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cpu_has_native_bf16 reads /proc/cpuinfo: AVX-512 BF16 (this machine) or AMX count."""
    import builtins

    real_open = builtins.open
    for flags, expected in (
        ("fpu avx512f avx512_bf16", True),
        ("fpu amx_bf16", True),
        ("fpu avx2", False),
    ):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")

        def fake_open(path, *args, _cpuinfo=cpuinfo, **kwargs):
            return real_open(_cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        assert cpu_has_native_bf16() is expected
        monkeypatch.setattr(builtins, "open", real_open)


@pytest.mark.parametrize(
    ("flags", "force", "expected"),
    [
        ({"avx2", "avx512_vnni"}, "", None),  # int8 dot products: int8
        ({"avx2", "avx_vnni"}, "", None),
        ({"amx_int8", "amx_bf16"}, "", None),
        ({"avx2", "avx512_bf16"}, "", "bfloat16"),  # none: the best float the CPU has
        ({"avx2"}, "", "float32"),
        ({"avx2"}, "1", None),  # VMAE_FORCE_INT8=1: int8 anyway
        ({"avx2"}, "0", "float32"),
    ],
)
def test_int8_falls_back_to_float_without_int8_dot_products(
    flags: set[str], force: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vmae_cli import model

    monkeypatch.setattr(model, "cpu_flags", lambda: flags)
    monkeypatch.setenv(model.FORCE_INT8_ENV, force)
    assert model.int8_fallback() == expected
    assert model.cpu_has_int8_dot() is (expected is None and force != "1")


@pytest.mark.parametrize(
    ("file", "key", "value", "named"),
    [
        ("config.json", "num_frames", 100_000_000, "num_frames 100000000"),
        ("config.json", "image_size", 100_000, "image_size 100000"),
        ("config.json", "hidden_size", 1_000_000, "hidden_size 1000000"),
        ("config.json", "num_hidden_layers", 1_000_000, "num_hidden_layers 1000000"),
        (
            "preprocessor_config.json",
            "crop_size",
            {"height": 100_000, "width": 100_000},
            "crop_size 100000x100000",
        ),
    ],
)
def test_a_config_that_cannot_fit_is_refused_before_any_weight(
    file: str, key: str, value: object, named: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 24, 8: a hostile or broken config is refused from its numbers, in one line."""
    import json
    import shutil

    from vmae_cli.model import ModelLoadError, read_model_spec

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / file).read_text())
    config[key] = value
    (model / file).write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=named) as refused:
        read_model_spec(str(model))
    assert "GiB" in str(refused.value) and "\n" not in str(refused.value)
    assert read_model_spec(str(tiny_model_dir)).frames_per_clip == 8  # a sane one passes
