"""Architecture configs for stage 2: Stable Diffusion 2.1-base (512 px, eps) and a tiny random stand-in.

``SD21_BASE`` is the diffusers form of ``v2-inference.yaml`` (the config of ``v2-1_512-ema-pruned.ckpt``,
which the authors load); ``TINY`` keeps every structural feature (3 cross-attention levels + a
plain level, linear transformer projections, a cross-attention mid block, the 4-channel /8 VAE, an
OpenCLIP-shaped text encoder with the full vocabulary) at widths that run in milliseconds on a CPU.
Tests and ``manifests/train/cpc-tiny.yaml`` use ``TINY``; the benchmark builds ``SD21_BASE`` with
random weights. Both go through the same code path as the real weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LATENT_SCALE = 0.18215  # SD 1.x/2.x VAE latent scale factor (ldm ``scale_factor``)
VAE_FACTOR = 8  # pixels per latent cell
PROMPT = (
    "high-quality, clear, fine details, sharp edges, realistic textures, detailed enhancement, "
    "high resolution, high fidelity, fine-grained details."
)  # the authors' fixed positive prompt (no negative prompt)


@dataclass(frozen=True)
class CPCArch:
    """diffusers constructor kwargs of the three frozen SD parts plus the noise schedule."""

    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any]
    beta_start: float = 0.00085
    beta_end: float = 0.012
    train_timesteps: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)


SD21_BASE = CPCArch(
    name="sd21-base",
    unet=dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20),  # heads per level (diffusers' historical name), 64 channels each
        cross_attention_dim=1024,
        use_linear_projection=True,
    ),
    vae=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
        scaling_factor=LATENT_SCALE,
    ),
    text=dict(
        vocab_size=49408,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,  # OpenCLIP ViT-H/14 text tower, penultimate layer (SD 2.x)
        num_attention_heads=16,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=512,
        pad_token_id=0,
        bos_token_id=49406,
        eos_token_id=49407,
    ),
)

TINY = CPCArch(
    name="tiny-random",
    unet=dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        attention_head_dim=(2, 2, 4, 4),
        cross_attention_dim=32,
        norm_num_groups=8,
        use_linear_projection=True,
    ),
    vae=dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=LATENT_SCALE,
    ),
    text=dict(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
        pad_token_id=0,
        bos_token_id=49406,
        eos_token_id=49407,
    ),
)

ARCHS = {a.name: a for a in (SD21_BASE, TINY)}
