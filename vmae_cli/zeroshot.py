"""An X-CLIP checkpoint as a zero-shot video classifier over labels given as text.

X-CLIP (``XCLIPModel``: ``microsoft/xclip-base-patch32``, ``...-patch16-zero-shot``) scores
how well a video goes with each of some texts. :class:`ZeroShotClassifier` makes it a
classifier like the others vmae runs: its text side (the prompts tokenized, encoded and
projected) is computed once, when it is built; each call takes ``pixel_values``
``(B, T, 3, H, W)`` and returns ``.logits`` ``(B, labels)``, the model's own
``logits_per_video``. Its last step is the submodule ``classifier``, whose first argument is
the video embedding (``XCLIPModel``'s ``video_embeds``: projected, through the multi-frame
integration transformer, L2-normalised), so vmae's embeddings, taken by a forward pre-hook on
``model.classifier``, are that vector.

What follows the encoders is ``XCLIPModel.forward``'s code (transformers 5), step for step:
the prompts generator conditions the text embeddings on each video's patch features, both
sides are L2-normalised, and the cosine similarities are scaled by ``logit_scale.exp()``.
Float32 scores equal ``XCLIPModel(...).logits_per_video.softmax(-1)`` to about 1e-6
(``tests/test_zeroshot.py``).

The prompt of a label is the text given for it, as is: X-CLIP was trained on Kinetics-400's
bare class names (no "a video of ..." template), and no prompt ensembling is done.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .checkpoint import pretrained, quiet_transformers

#: The files a CLIP BPE tokenizer is read from, either set: without them transformers builds
#: a tokenizer of three special tokens that reads every label as unknown tokens, silently.
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"))
#: Tokens of a prompt X-CLIP's text encoder takes when its config does not say (CLIP's 77):
#: a longer prompt is cut, keeping its end-of-text token.
DEFAULT_TEXT_TOKENS = 77


@dataclass
class ZeroShotOutput:
    """What one call gives: ``logits`` ``(B, labels)``, ``XCLIPModel``'s ``logits_per_video``,
    and ``video_embeds`` ``(B, projection_dim)``, its L2-normalised video embeddings."""

    logits: torch.Tensor
    video_embeds: torch.Tensor


class TextLabelHead(nn.Module):
    """The last step of X-CLIP's forward: the video embedding against the labels' text
    embeddings (computed once), made video-specific by the prompts generator.

    Its inputs are the L2-normalised video embeddings ``(B, D)`` and the videos' patch
    features ``(B, patches, D)`` (X-CLIP's ``img_features``); it returns the logits
    ``(B, labels)``.
    """

    def __init__(self, model: Any, text_embeds: torch.Tensor):
        super().__init__()
        self.prompts_generator = model.prompts_generator
        self.logit_scale = model.logit_scale
        #: ``(labels, D)``: each prompt through the text encoder and ``text_projection``.
        self.register_buffer("text_embeds", text_embeds, persistent=False)

    def forward(self, video_embeds: torch.Tensor, img_features: torch.Tensor) -> torch.Tensor:
        """``logits_per_video`` as ``XCLIPModel.forward`` computes it from here on."""
        text_embeds = self.text_embeds.unsqueeze(0).expand(video_embeds.shape[0], -1, -1)
        text_embeds = text_embeds + self.prompts_generator(text_embeds, img_features)
        text_embeds = text_embeds / text_embeds.norm(p=2, dim=-1, keepdim=True)
        logit_scale = self.logit_scale.exp()
        return torch.einsum("bd,bkd->bk", video_embeds, logit_scale * text_embeds)


class ZeroShotClassifier(nn.Module):
    """An ``XCLIPModel`` with its text side fixed to some labels: ``pixel_values`` ``(B, T,
    3, H, W)`` -> :class:`ZeroShotOutput`. Built by :meth:`build`; holds the vision side of the
    model and :class:`TextLabelHead` as ``classifier``, not the text encoder (no longer
    needed once the labels are encoded)."""

    def __init__(self, model: Any, text_embeds: torch.Tensor):
        super().__init__()
        self.config = model.config
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection
        self.mit = model.mit
        self.prompts_visual_layernorm = model.prompts_visual_layernorm
        self.prompts_visual_projection = model.prompts_visual_projection
        self.classifier = TextLabelHead(model, text_embeds)

    @classmethod
    def build(cls, model: Any, tokenizer: Any, prompts: Sequence[str]) -> ZeroShotClassifier:
        """The classifier of ``prompts`` (one per label, in the labels' order) with ``model``
        (an ``XCLIPModel``, already on its device and in its dtype) and its ``tokenizer``:
        the prompts are tokenized (padded to the longest, cut at the text encoder's
        positions) and encoded here, once."""
        if not prompts:
            raise ValueError("a zero-shot classifier needs at least one label")
        device = model.logit_scale.device
        tokens = tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=text_positions(model.config),
            return_tensors="pt",
        )
        with torch.no_grad():
            text = model.text_model(
                input_ids=tokens["input_ids"].to(device),
                attention_mask=tokens["attention_mask"].to(device),
            )
            text_embeds = model.text_projection(text[1])
        return cls(model, text_embeds.detach())

    def forward(self, pixel_values: torch.Tensor) -> ZeroShotOutput:
        """``XCLIPModel.forward``'s video side, then :attr:`classifier`."""
        batch_size, num_frames, num_channels, height, width = pixel_values.shape
        pixel_values = pixel_values.reshape(-1, num_channels, height, width)
        vision_outputs = self.vision_model(pixel_values=pixel_values)

        video_embeds = self.visual_projection(vision_outputs[1])
        cls_features = video_embeds.view(batch_size, num_frames, -1)
        video_embeds = self.mit(cls_features)[1]

        img_features = vision_outputs[0][:, 1:, :]
        img_features = self.prompts_visual_layernorm(img_features)
        img_features = img_features @ self.prompts_visual_projection
        img_features = img_features.view(batch_size, num_frames, -1, video_embeds.shape[-1])
        img_features = img_features.mean(dim=1, keepdim=False)

        # Normalised here (XCLIPModel normalises both sides just before its einsum): the
        # head's input, vmae's embeddings, is then XCLIPModel's own video_embeds.
        video_embeds = video_embeds / video_embeds.norm(p=2, dim=-1, keepdim=True)
        logits = self.classifier(video_embeds, img_features)
        return ZeroShotOutput(logits=logits, video_embeds=video_embeds)


def text_positions(config: Any) -> int:
    """The most tokens a prompt may have: the text encoder's position embeddings."""
    text_config = getattr(config, "text_config", None)
    return int(getattr(text_config, "max_position_embeddings", 0) or DEFAULT_TEXT_TOKENS)


def load_tokenizer(name: str, *, revision: str | None, offline: bool) -> Any:
    """The checkpoint's own tokenizer (``AutoTokenizer``: CLIP's BPE for X-CLIP). Raises
    :class:`OSError` when the checkpoint has none (:data:`TOKENIZER_FILE_SETS`)."""
    from transformers import AutoTokenizer

    quiet_transformers()
    if not _has_tokenizer(name, revision=revision, offline=offline):
        wanted = " or ".join(" and ".join(files) for files in TOKENIZER_FILE_SETS)
        raise OSError(f"no tokenizer ({wanted}) to read the text labels with")
    return AutoTokenizer.from_pretrained(name, revision=revision, local_files_only=offline)


def _has_tokenizer(name: str, *, revision: str | None, offline: bool) -> bool:
    """Whether the folder or Hub model ``name`` has one of :data:`TOKENIZER_FILE_SETS`."""
    if os.path.isdir(name):

        def found(filename: str) -> bool:
            return os.path.isfile(os.path.join(name, filename))

    else:
        from .provenance import hub_file

        def found(filename: str) -> bool:
            return hub_file(name, filename, revision=revision, offline=offline) is not None

    return any(all(found(f) for f in files) for files in TOKENIZER_FILE_SETS)


def load_zero_shot(
    name: str,
    prompts: Sequence[str],
    *,
    revision: str | None,
    dtype: torch.dtype,
    device: torch.device,
    offline: bool,
) -> tuple[ZeroShotClassifier, dict[str, Any]]:
    """Load the X-CLIP checkpoint ``name`` (a Hub id or a folder) in ``dtype`` on ``device``
    and fix its labels to ``prompts`` (:meth:`ZeroShotClassifier.build`); returns the
    classifier, in eval mode, and transformers' loading info (missing, unexpected and
    mismatched weights). Errors are transformers' (:class:`OSError` for missing files)."""
    from transformers import XCLIPModel

    tokenizer = load_tokenizer(name, revision=revision, offline=offline)
    model, info = pretrained(
        name, revision=revision, dtype=dtype, offline=offline, model_class=XCLIPModel
    )
    model.eval().to(device)
    return ZeroShotClassifier.build(model, tokenizer, prompts).eval(), info
