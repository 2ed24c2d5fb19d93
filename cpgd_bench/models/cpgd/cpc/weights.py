"""Stage-2 weights: SD 2.1-base (diffusers folder or one ldm .ckpt/.safetensors) and DiffBIR's IRControlNet.

The files are found and checked by :mod:`cpgd_bench.weights` (``manifests/weights.yaml``, model ``cpgd``);
this module reads them. Every problem is a one-line :class:`~cpgd_bench.weights.WeightsError`.

IRControlNet (ldm) -> diffusers ``ControlNetModel`` key mapping (see :func:`ldm_to_diffusers`)::

    time_embed.0 / .2                  -> time_embedding.linear_1 / linear_2
    input_blocks.0.0 (C, 8, 3, 3)      -> conv_in (weight[:, :4], bias) + controlnet_cond_embedding (weight[:, 4:])
    input_blocks.K.0 (ResBlock)        -> down_blocks.L.resnets.R   with in_layers.0/.2 -> norm1/conv1,
                                          emb_layers.1 -> time_emb_proj, out_layers.0/.3 -> norm2/conv2,
                                          skip_connection -> conv_shortcut
    input_blocks.K.1 (SpatialTransf.)  -> down_blocks.L.attentions.R (same sub-keys;
                                          the authors' CPC ``attn1.mask`` -> ``attn1.cp_mask``)
    input_blocks.K.0.op                -> down_blocks.L.downsamplers.0.conv
    middle_block.0 / .1 / .2           -> mid_block.resnets.0 / attentions.0 / resnets.1
    zero_convs.K.0                     -> controlnet_down_blocks.K
    middle_block_out.0                 -> controlnet_mid_block

with K = 1 + L * (R_per_level + 1) + R walking the levels L and resnets R (the downsample takes the
last K of a level). The CPC-only layers (``cp_mask``, and ``to_qm`` when used) are absent from
IRControlNet and start at zero (a copy of ``to_q``), so an untrained CPC equals IRControlNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cpgd_bench.models.cpgd.cpc.configs import CPCArch
from cpgd_bench.weights import WeightsError, load_table, load_torch

if TYPE_CHECKING:  # diffusers/transformers take seconds to import: only load_sd needs them at run time
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

_RESNET = (
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
)
_ATTN_MASK = (".attn1.mask.", ".attn1.cp_mask.")  # the authors' CPC mask layer name -> ours


def cpgd_files() -> tuple[list[str], list[str]]:
    """File names that fill model ``cpgd``'s slots in the weights table, preferred first: (SD 2.1, control branch)."""
    slots = load_table().slots("cpgd")
    return slots["sd"], slots["control"]


# --- checkpoint reading -------------------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors/.ckpt/.pth/.pt file, unwrapping ``state_dict``/``params`` and ``module.``."""
    if path.suffix != ".safetensors":
        sd: Any = load_torch(path)
    else:
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except (OSError, ValueError, RuntimeError) as e:
            raise WeightsError(f"{path}: cannot read it as safetensors ({str(e).splitlines()[0]})") from None
    for key in ("state_dict", "params_ema", "params", "controlnet"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: not a state dict (got {type(sd).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


# --- IRControlNet (ldm) <-> diffusers ControlNetModel ----------------------------------------------------------------


def _prefix_pairs(config: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(ldm prefix, diffusers prefix, is_resnet) for every module of a ControlNet with ``config``."""
    pairs = [
        ("time_embed.0.", "time_embedding.linear_1.", False),
        ("time_embed.2.", "time_embedding.linear_2.", False),
        ("middle_block_out.0.", "controlnet_mid_block.", False),
        ("zero_convs.0.0.", "controlnet_down_blocks.0.", False),
        ("middle_block.0.", "mid_block.resnets.0.", True),
        ("middle_block.1.", "mid_block.attentions.0.", False),
        ("middle_block.2.", "mid_block.resnets.1.", True),
    ]
    levels, per = len(config["block_out_channels"]), config["layers_per_block"]
    k = 1
    for level, block in enumerate(config["down_block_types"]):
        for r in range(per):
            pairs.append((f"input_blocks.{k}.0.", f"down_blocks.{level}.resnets.{r}.", True))
            if block.startswith("CrossAttn"):
                pairs.append((f"input_blocks.{k}.1.", f"down_blocks.{level}.attentions.{r}.", False))
            pairs.append((f"zero_convs.{k}.0.", f"controlnet_down_blocks.{k}.", False))
            k += 1
        if level != levels - 1:
            pairs.append((f"input_blocks.{k}.0.op.", f"down_blocks.{level}.downsamplers.0.conv.", False))
            pairs.append((f"zero_convs.{k}.0.", f"controlnet_down_blocks.{k}.", False))
            k += 1
    return pairs


def _rename(key: str, pairs: list[tuple[str, str, bool]], forward: bool) -> str | None:
    for ldm, dif, resnet in pairs:
        src, dst = (ldm, dif) if forward else (dif, ldm)
        if not key.startswith(src):
            continue
        tail = key[len(src):]
        if resnet:
            for a, b in _RESNET:
                old, new = (a, b) if forward else (b, a)
                if tail.startswith(old + "."):
                    tail = new + tail[len(old):]
        else:
            old, new = _ATTN_MASK if forward else _ATTN_MASK[::-1]
            tail = tail.replace(old, new)
        return dst + tail
    return None


def ldm_to_diffusers(state: dict[str, torch.Tensor], config: dict[str, Any], latent_channels: int = 4):
    """IRControlNet / CPControlNet ldm state dict -> our diffusers ControlNetModel keys (see module doc)."""
    pairs = _prefix_pairs(config)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("input_blocks.0.0."):
            if key.endswith("weight"):
                if value.shape[1] != 2 * latent_channels:
                    raise WeightsError(
                        f"control checkpoint: input_blocks.0.0.weight has {value.shape[1]} input channels, expected "
                        f"{2 * latent_channels} (noisy + condition latent, IRControlNet); is this DiffBIR v2.pth?"
                    )
                out["conv_in.weight"] = value[:, :latent_channels].clone()
                out["controlnet_cond_embedding.weight"] = value[:, latent_channels:].clone()
            else:
                out["conv_in.bias"] = value
            continue
        new = _rename(key, pairs, forward=True)
        if new is None:
            raise WeightsError(f"control checkpoint: unexpected key {key!r}; is this an IRControlNet (DiffBIR v2)?")
        out[new] = value
    return out


def diffusers_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`ldm_to_diffusers` (CPC masks as the authors name them: ``attn1.mask``)."""
    pairs = _prefix_pairs(config)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "conv_in.weight":
            out["input_blocks.0.0.weight"] = torch.cat([value, state["controlnet_cond_embedding.weight"]], dim=1)
        elif key == "conv_in.bias":
            out["input_blocks.0.0.bias"] = value
        elif key != "controlnet_cond_embedding.weight":
            new = _rename(key, pairs, forward=False)
            if new is None:
                raise WeightsError(f"control branch: no ldm name for key {key!r}")
            out[new] = value
    return out


def load_control(
    controlnet: ControlNetModel, source: Path | dict[str, torch.Tensor], unet_config: dict[str, Any]
) -> list[str]:
    """Load an IRControlNet (ldm keys) or a trained CPC branch (diffusers keys) into ``controlnet``.

    ``source``: a file or its :func:`read_state_dict`. Returns the keys left at their initial values: only
    the CPC-specific layers may be missing.
    """
    path = source if isinstance(source, Path | str) else "control state dict"
    state = read_state_dict(Path(source)) if isinstance(source, Path | str) else source
    if "time_embed.0.weight" in state:
        state = ldm_to_diffusers(state, unet_config, unet_config["in_channels"])
    result = controlnet.load_state_dict(state, strict=False)
    bad = [k for k in result.missing_keys if ".cp_mask." not in k and ".to_qm." not in k]
    if bad or result.unexpected_keys:
        raise WeightsError(
            f"{path}: does not fit the control branch (missing {bad[:3]}, unexpected {result.unexpected_keys[:3]}); "
            "use DiffBIR v2.pth or a checkpoint written by `cpgd-bench train --stage cpc`"
        )
    if any(".to_qm." in k for k in result.missing_keys):  # separate L_qm starts as a copy of to_q
        for m in controlnet.modules():
            if hasattr(m, "to_qm"):
                m.to_qm.load_state_dict(m.to_q.state_dict())
    return list(result.missing_keys)


# --- Stable Diffusion 2.1 ---------------------------------------------------------------------------------------------


def load_sd(path: Path, arch: CPCArch) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel, Path | None]:
    """UNet, VAE and text encoder from a diffusers folder or one ldm checkpoint; also the tokenizer folder if any.

    A folder is read with ``from_pretrained(local_files_only=True)``. A single file goes through diffusers'
    single-file converters (the ones ``from_single_file`` uses) with the configs of ``arch`` -- no config
    is fetched from the network.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    if path.is_dir():
        if not (path / "unet").is_dir():
            raise WeightsError(f"{path} is not a diffusers SD folder (no unet/); point --sd at the folder root")
        kw = {"local_files_only": True}
        return (
            UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kw),
            AutoencoderKL.from_pretrained(path, subfolder="vae", **kw),
            CLIPTextModel.from_pretrained(path, subfolder="text_encoder", **kw),
            path,
        )
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    state = read_state_dict(path)
    if "model.diffusion_model.input_blocks.0.0.weight" not in state:
        raise WeightsError(f"{path}: no ldm UNet keys (model.diffusion_model.*); is it an SD 2.1 checkpoint?")
    unet = UNet2DConditionModel(**arch.unet)
    unet.load_state_dict(convert_ldm_unet_checkpoint(state, dict(unet.config)), strict=True)
    vae = AutoencoderKL(**arch.vae)
    vae.load_state_dict(convert_ldm_vae_checkpoint(state, dict(vae.config)), strict=True)
    text = CLIPTextModel(CLIPTextConfig(**arch.text))
    text_state = convert_open_clip_checkpoint(text, state)
    result = text.load_state_dict(text_state, strict=False)
    if [k for k in result.missing_keys if "position_ids" not in k]:
        raise WeightsError(f"{path}: OpenCLIP text encoder keys missing ({result.missing_keys[:3]})")
    return unet, vae, text, None
