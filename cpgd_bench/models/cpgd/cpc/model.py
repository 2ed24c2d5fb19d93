"""CPC (CPGD-Net stage 2): frozen SD 2.1 UNet + VAE + OpenCLIP text encoder, trainable CPControlNet.

The control branch sees the noisy latent, the VAE latent (mode x 0.18215) of the stage-1 output
(IRControlNet-style, see :mod:`cpc_controlnet`) and the coding prior ``cp`` (see
:func:`coding_prior`) in every self-attention (see :mod:`cpc_attention`); its residuals are added
to the frozen UNet at control scale 1.0. The model predicts eps.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from cpgd_bench.models.cpgd.cpc.configs import LATENT_SCALE, VAE_FACTOR, CPCArch
from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet, control_residuals
from cpgd_bench.models.cpgd.cpc.tokenizer import tokenize


def coding_prior(
    flow_prev: torch.Tensor, flow_valid: torch.Tensor, residual: torch.Tensor, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """The CPC prior cp = [MVx/max, MVy/max, |residual|] for a clip, (T, 3, h, w).

    ``flow_prev`` (T, 2, H, W) pixels (the MV flow to the previous frame, the authors' ``mv_f``), masked by
    ``flow_valid[:, :1]``; ``residual`` (T, 1, H, W) normalised as the dataset gives it ((r + 512) / 1024 at
    10 bit), so ``|r| / 512 = 2 |residual - 0.5|`` (the authors' stage-2 ``|x / 512|``). ``max`` is the
    largest |MV| component over the clip (the authors divide by the signed maximum, which flips signs when
    every MV is negative; we take the absolute one). ``size``: resize bilinearly to (h, w), e.g. the
    latent grid (the authors' ``x 0.125`` variant).
    """
    flow = flow_prev * flow_valid[:, :1]
    peak = flow.abs().amax()
    flow = flow / peak if peak > 0 else flow
    cp = torch.cat([flow, (residual - 0.5).abs() * 2], dim=1)
    if size is not None and tuple(cp.shape[-2:]) != tuple(size):
        cp = F.interpolate(cp, size=size, mode="bilinear", align_corners=False)
    return cp


class CPCModel(nn.Module):
    """Stage 2 model: ``unet``, ``vae``, ``text_encoder`` frozen; ``controlnet`` the only trainable part."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        controlnet: ControlNetModel,
        arch: CPCArch,
        tokenizer_folder: Path | None = None,
    ) -> None:
        super().__init__()
        self.unet, self.vae, self.text_encoder, self.controlnet, self.arch = unet, vae, text_encoder, controlnet, arch
        self.tokenizer_folder = tokenizer_folder
        for frozen in (unet, vae, text_encoder):
            frozen.requires_grad_(False)
            frozen.eval()

    @classmethod
    def random(cls, arch: CPCArch, coding_prior: bool = True, separate_qm: bool = False, seed: int = 0) -> CPCModel:
        """``arch`` with random weights (tests, benchmarks); the control branch copies the UNet encoder."""
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**arch.unet)
        vae = AutoencoderKL(**arch.vae)
        text_encoder = CLIPTextModel(CLIPTextConfig(**arch.text))
        return cls(unet, vae, text_encoder, build_controlnet(unet, coding_prior, separate_qm), arch)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute UNet and control-branch activations in the backward pass (training memory)."""
        self.unet.enable_gradient_checkpointing()
        self.controlnet.enable_gradient_checkpointing()

    def train(self, mode: bool = True) -> CPCModel:
        """Only the control branch switches mode; the frozen SD parts stay in eval."""
        self.training = mode
        self.controlnet.train(mode)
        return self

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings (N, 77, D): the text encoder's last hidden state after its final layer norm."""
        ids = tokenize(prompts, self.tokenizer_folder).to(self.text_encoder.device)
        return self.text_encoder(ids).last_hidden_state.to(self.dtype)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> latent mode x 0.18215, (N, 4, H/8, W/8); H, W multiples of 8."""
        if image.shape[-1] % VAE_FACTOR or image.shape[-2] % VAE_FACTOR:
            raise ValueError(f"image size {tuple(image.shape[-2:])} is not a multiple of {VAE_FACTOR}; pad it first")
        latent = self.vae.encode((image * 2 - 1).to(self.vae.dtype)).latent_dist.mode()
        return latent * LATENT_SCALE

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> image (N, 3, 8h, 8w) in [0, 1]."""
        image = self.vae.decode((latent / LATENT_SCALE).to(self.vae.dtype)).sample
        return ((image.float() + 1) / 2).clamp(0, 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        text: torch.Tensor,
        cond_latent: torch.Tensor,
        cp: torch.Tensor | None = None,
        num_frames: int = 1,
    ) -> torch.Tensor:
        """Predicted eps for ``noisy`` (B*T, 4, h, w) at ``timesteps`` (B*T,) given text/cond latent/prior."""
        down, mid = control_residuals(self.controlnet, noisy, timesteps, text, cond_latent, cp, num_frames)
        return self.unet(
            noisy,
            timesteps,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
