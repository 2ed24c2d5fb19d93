"""Coding-prior attention (CPGD-Net eq. 6-7) as a diffusers attention processor.

In every self-attention (``attn1``) of the control branch's transformer blocks the query becomes::

    A  = L_m(cp)                          # cp = [MVx/max, MVy/max, |residual|] resized to the level
    Q' = to_q(F) + L_qm(F * A)

``L_m`` is ``Linear(3 -> dim, bias=False)`` initialised to zero (registered on the attention module
as ``cp_mask``), so an untrained CPC branch computes exactly what the branch without it computes.

Paper vs code: the paper (eq. 6) has a separate query projection ``L_qm``; the authors' code
(``CPC/cpc/model/attention_c.py``) reuses ``to_q`` for both terms. We follow the code by default;
``separate_qm=True`` adds ``to_qm``, a trainable copy of ``to_q`` (a copy, not zeros: with ``A = 0``
a zero ``L_qm`` would receive no gradient and neither would ``L_m``).

The authors' control branch also runs self-attention jointly over the frames of a chunk
(tokens ``(t h w)``), which the paper does not describe; ``num_frames`` (passed with the coding
prior in ``cross_attention_kwargs``) turns that on. Cross-attention (``attn2``) stays per frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn


def level_prior(prior: torch.Tensor, tokens: int) -> torch.Tensor:
    """Resize ``prior`` (N, 3, H, W) bilinearly to the level whose token count is ``tokens``: (N, tokens, 3).

    Levels are the UNet's stride-2 (padding 1) downsamplings of H x W, i.e. ceil(H / 2**k) x ceil(W / 2**k).
    """
    height, width = prior.shape[-2:]
    h, w = height, width
    while h * w > tokens:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    if h * w != tokens:
        raise ValueError(f"coding prior {height}x{width} does not match an attention level of {tokens} tokens")
    if (h, w) != (height, width):
        prior = F.interpolate(prior, size=(h, w), mode="bilinear", align_corners=False)
    return prior.flatten(2).transpose(1, 2)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


class CPAttnProcessor:
    """Scaled-dot-product attention with the coding-prior query and optional joint-frame self-attention.

    Accepts ``coding_prior`` ((B*T, 3, h, w) at latent resolution, or None) and ``num_frames`` (T;
    consecutive batch entries are frames of one clip) through ``cross_attention_kwargs``, so it can
    be set on every attention of the branch: modules without ``cp_mask`` ignore the prior.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        coding_prior: torch.Tensor | None = None,
        num_frames: int = 1,
    ) -> torch.Tensor:
        if attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("CPAttnProcessor supports transformer-block attention without attention masks only")
        query = attn.to_q(hidden_states)
        mask_layer = getattr(attn, "cp_mask", None)
        if mask_layer is not None and coding_prior is not None:
            a = mask_layer(level_prior(coding_prior, hidden_states.shape[1]).to(hidden_states.dtype))
            to_qm = getattr(attn, "to_qm", attn.to_q)
            query = query + to_qm(hidden_states * a)
        self_attention = encoder_hidden_states is None
        context = hidden_states if self_attention else encoder_hidden_states
        key, value = attn.to_k(context), attn.to_v(context)
        batch, tokens, _ = query.shape
        joint = self_attention and num_frames > 1
        if joint:
            if batch % num_frames:
                raise ValueError(f"batch of {batch} is not a whole number of {num_frames}-frame clips")
            query, key, value = (t.reshape(batch // num_frames, num_frames * tokens, -1) for t in (query, key, value))
        q, k, v = (_heads(x, attn.heads) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).flatten(2).reshape(batch, tokens, -1).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def self_attentions(model: nn.Module) -> list[Attention]:
    """The self-attention (``attn1``) modules of every transformer block in ``model``, in module order."""
    return [m for name, m in model.named_modules() if isinstance(m, Attention) and name.endswith(".attn1")]


def add_coding_prior_attention(model: nn.Module, separate_qm: bool = False) -> int:
    """Give every ``attn1`` of ``model`` a zero ``cp_mask`` (and ``to_qm`` if asked); set CPAttnProcessor.

    Returns the number of attention layers that got a mask (7 for SD 2.1: 2 per cross-attention level + mid).
    """
    layers = self_attentions(model)
    for attn in layers:
        mask = nn.Linear(3, attn.query_dim, bias=False)
        nn.init.zeros_(mask.weight)
        attn.add_module("cp_mask", mask.to(attn.to_q.weight))
        if separate_qm:
            to_qm = nn.Linear(attn.to_q.in_features, attn.to_q.out_features, bias=attn.to_q.bias is not None)
            to_qm.load_state_dict(attn.to_q.state_dict())
            attn.add_module("to_qm", to_qm.to(attn.to_q.weight))
    set_cp_processor(model)
    return len(layers)


def set_cp_processor(model: nn.Module) -> None:
    """Use :class:`CPAttnProcessor` for every attention module of ``model``."""
    processor = CPAttnProcessor()
    for m in model.modules():
        if isinstance(m, Attention):
            m.set_processor(processor)
