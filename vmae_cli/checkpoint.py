"""A checkpoint loaded with transformers, as vmae loads every one: in the precision asked
for, with the fastest attention its architecture has, and with the load report that says
whether its weights are all the checkpoint's.

Shared by the torch runtime (:func:`vmae_cli.model.load_model`) and the OpenVINO conversion
(:mod:`vmae_cli.openvino_backend`); transformers is imported only inside the functions.
"""

from __future__ import annotations

from typing import Any


def quiet_transformers() -> None:
    """No transformers or huggingface_hub warnings or progress bars on stderr: it shows
    vmae's progress, and a failure is vmae's one line (huggingface_hub logs each retry of a
    failing request: "HTTP Error 503 thrown while requesting HEAD ...")."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()


def pretrained(
    name: str, *, revision: str | None, dtype: Any, offline: bool, model_class: Any = None
) -> tuple[Any, dict]:
    """``AutoModelForVideoClassification.from_pretrained`` (or ``model_class``'s:
    ``XCLIPModel`` for a zero-shot model) as vmae loads every model: in ``dtype``, with
    PyTorch's fused attention (``sdpa``) where the architecture has it and the plain one
    where it does not (TimeSformer), and the load report; returns ``(model, loading info)``."""
    # Imported here: transformers takes seconds to import and `vmae --help` must not wait.
    if model_class is None:
        from transformers import AutoModelForVideoClassification as model_class

    quiet_transformers()
    kwargs = {"revision": revision, "dtype": dtype, "local_files_only": offline}
    try:
        return model_class.from_pretrained(
            name, attn_implementation="sdpa", output_loading_info=True, **kwargs
        )
    except ValueError as exc:
        if "attention implementation" not in str(exc):
            raise
        return model_class.from_pretrained(
            name, attn_implementation="eager", output_loading_info=True, **kwargs
        )


def load_report(info: dict[str, Any]) -> dict[str, list[str]]:
    """The parts of transformers' loading info that mean the weights are not the
    checkpoint's: keys ``missing`` (left at their random start), ``unexpected`` (in the file,
    not used) and ``mismatched`` (another shape), each sorted."""
    report = {}
    for kind in ("missing", "unexpected", "mismatched"):
        keys = info.get(f"{kind}_keys") or ()
        # mismatched_keys holds (key, shape in the file, shape in the model) tuples.
        report[kind] = sorted(str(k[0] if isinstance(k, (tuple, list)) else k) for k in keys)
    return report
