"""CPControlNet: a ControlNet copy of the SD UNet encoder conditioned on a VAE latent (as DiffBIR's IRControlNet).

diffusers' ``ControlNetModel`` adds ``controlnet_cond_embedding(cond)`` to ``conv_in(sample)``; its
stock embedding is a pixel-space conv stack (/8, SiLU). IRControlNet instead feeds
``conv(cat(noisy_latent, cond_latent))`` -- a single 3x3 conv over 8 channels -- which equals
``conv_in(noisy) + conv_cond(cond)`` with the conv's input channels split 4 + 4. So we use
``ControlNetModel`` unchanged except for that embedding: :class:`LatentConditionEmbedding`, one
bias-free 3x3 conv (the conv bias lives in ``conv_in``). Everything else (down blocks, mid block,
zero convs, ``conditioning_scale``) is diffusers' code, and the residuals go into the frozen
``UNet2DConditionModel`` through ``down_block_additional_residuals`` exactly as ldm's
``ControlledUnetModel`` adds them (``hs.pop() + control.pop()``).
"""

from __future__ import annotations

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from torch import nn

from cpgd_bench.models.cpgd.cpc.attention import add_coding_prior_attention, set_cp_processor


class LatentConditionEmbedding(nn.Conv2d):
    """Bias-free 3x3 conv from the 4-channel condition latent to the first block width (zero-initialised)."""

    def __init__(self, latent_channels: int, out_channels: int) -> None:
        super().__init__(latent_channels, out_channels, kernel_size=3, padding=1, bias=False)
        nn.init.zeros_(self.weight)


def build_controlnet(
    unet: UNet2DConditionModel, coding_prior: bool = True, separate_qm: bool = False
) -> ControlNetModel:
    """A control branch shaped like ``unet``'s encoder, initialised from it (ControlNet practice).

    ``coding_prior=True`` adds the CPC attention (zero masks); False gives the plain IRControlNet. Both use
    :class:`~cpgd_bench.models.cpgd.cpc_attention.CPAttnProcessor`, so both take ``num_frames``.
    """
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16,))
    controlnet.controlnet_cond_embedding = LatentConditionEmbedding(
        unet.config.in_channels, unet.config.block_out_channels[0]
    ).to(unet.conv_in.weight)
    if coding_prior:
        add_coding_prior_attention(controlnet, separate_qm=separate_qm)
    else:
        set_cp_processor(controlnet)
    return controlnet


def control_residuals(
    controlnet: ControlNetModel,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    text: torch.Tensor,
    cond_latent: torch.Tensor,
    coding_prior: torch.Tensor | None = None,
    num_frames: int = 1,
    scale: float = 1.0,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run the control branch: (down-block residuals, mid-block residual), all scaled by ``scale``.

    ``noisy``/``cond_latent`` (B*T, 4, h, w); ``text`` (B*T, L, D); ``coding_prior`` (B*T, 3, h, w) or None
    (None or a plain branch: IRControlNet behaviour). ``num_frames`` > 1 makes self-attention joint over
    each clip's T consecutive batch entries (the authors' cross-frame attention).
    """
    down, mid = controlnet(
        noisy,
        timesteps,
        encoder_hidden_states=text,
        controlnet_cond=cond_latent,
        conditioning_scale=scale,
        cross_attention_kwargs={"coding_prior": coding_prior, "num_frames": num_frames},
        return_dict=False,
    )
    return list(down), mid

