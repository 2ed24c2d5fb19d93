"""``cpgd``: CPGD-Net end to end -- stage 1 (CPFP) then stage 2 (CPC on SD 2.1), as a registry Restorer.

Stage 2 per chunk of ``chunk`` frames (the authors use 6 at test): VAE latent of the stage-1 output,
coding prior on the latent grid, fixed prompt, 50-step spaced DDPM over 64-latent tiles (512 px) with
stride 32 and Gaussian blending, VAE decode, wavelet colour correction against stage 1. Without SD
weights it logs one line and returns the stage-1 result, labelled "cpgd (stage 1 only: no SD weights)".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from cpgd_bench.models.cpgd.cpc.configs import ARCHS, PROMPT, VAE_FACTOR
from cpgd_bench.models.cpgd.cpc.weights import cpgd_files, load_control, load_sd, read_state_dict
from cpgd_bench.models.registry import ModelError, Restorer
from cpgd_bench.weights import Resolved, WeightsError, find, missing_message

if TYPE_CHECKING:
    from cpgd_bench.models.cpgd.cpc.model import CPCModel

log = logging.getLogger(__name__)
STAGE1_ONLY = "cpgd (stage 1 only: no SD weights)"
PAD = VAE_FACTOR * 8  # pixels: the latent must pass the UNet's three /2 levels


@dataclass(frozen=True)
class SamplingOptions:
    """Stage-2 inference settings (defaults: the authors' test settings)."""

    steps: int = 50
    cfg: float = 1.0
    tile: int | None = 64  # latent cells (512 px); None = whole frame
    stride: int = 32
    chunk: int = 6  # frames per joint-attention chunk
    seed: int = 0
    prompt: str = PROMPT
    color_fix: bool = True


@torch.no_grad()
def cpc_restore(
    model: CPCModel, stage1: torch.Tensor, clip: dict[str, torch.Tensor], opts: SamplingOptions
) -> torch.Tensor:
    """Stage 2 on one clip: ``stage1`` (T, 3, H, W) in [0, 1] plus the clip's priors -> (T, 3, H, W)."""
    from cpgd_bench.models.cpgd.cpc.model import coding_prior  # stage-2 code (diffusers): imported only when used
    from cpgd_bench.models.cpgd.cpc.sampler import make_scheduler, pad_to, sample, wavelet_color_fix

    device, dtype = model.unet.device, model.dtype
    frames, _, height, width = stage1.shape
    cp_full = coding_prior(clip["flow_prev"], clip["flow_valid"], clip["residual"])
    image, _ = pad_to(stage1, PAD)
    cp_full, _ = pad_to(cp_full, PAD)
    latent_size = (image.shape[-2] // VAE_FACTOR, image.shape[-1] // VAE_FACTOR)
    cp_latent = F.interpolate(cp_full, size=latent_size, mode="bilinear", align_corners=False)
    text = model.encode_text([opts.prompt])
    uncond = model.encode_text([""]) if opts.cfg != 1.0 else None
    scheduler = make_scheduler(model.arch, opts.steps)
    generator = torch.Generator(device).manual_seed(opts.seed)
    out = []
    for start in range(0, frames, opts.chunk):
        stop = min(start + opts.chunk, frames)
        n = stop - start
        cond = torch.cat([model.encode_image(f[None].to(device)) for f in image[start:stop]])
        cp = cp_latent[start:stop].to(device, dtype)

        def eps_fn(
            x: torch.Tensor, t: torch.Tensor, rows: slice, cols: slice, n: int = n, cond: torch.Tensor = cond,
            cp: torch.Tensor = cp,
        ) -> torch.Tensor:
            c, p = cond[..., rows, cols], cp[..., rows, cols]
            eps = model(x, t, text.expand(n, -1, -1), c, p, num_frames=n)
            if uncond is None:
                return eps
            eps_u = model(x, t, uncond.expand(n, -1, -1), c, p, num_frames=n)
            return eps_u + opts.cfg * (eps - eps_u)

        z = sample(eps_fn, (n, 4, *latent_size), scheduler, opts.tile, opts.stride, generator, device, dtype)
        decoded = torch.cat([model.decode_latent(zi[None]) for zi in z]).float().cpu()
        if opts.color_fix:
            decoded = wavelet_color_fix(decoded, image[start:stop].float().cpu())
        out.append(decoded[..., :height, :width].clamp(0, 1))
    return torch.cat(out)


def _default_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class CPGDRestorer(Restorer):
    """CPGD-Net: ``cpfp`` (stage 1) then CPC (stage 2).

    ``weights``: a trained CPC control branch (``cpgd-bench train --stage cpc``); without it the branch
    starts from DiffBIR's ``v2.pth`` (CPC layers at zero = IRControlNet). ``sd``/``diffbir``: explicit
    paths, else looked up by name (``manifests/weights.yaml``, model ``cpgd``) in the lookup order of
    :mod:`cpgd_bench.weights` (``weights_dir``, ``$CPGD_BENCH_WEIGHTS``, ``./weights``, ...).
    ``stage1`` / ``model`` inject ready-made parts (tests, notebooks).
    """

    name = "cpgd"

    def __init__(
        self,
        weights: Path | None = None,
        device: str | None = None,
        sd: Path | None = None,
        diffbir: Path | None = None,
        stage1_weights: Path | None = None,
        weights_dir: Path | None = None,
        arch: str = "sd21-base",
        separate_qm: bool = False,
        stage1: Restorer | None = None,
        model: CPCModel | None = None,
        **sampling: Any,
    ) -> None:
        self.device = _default_device(device)
        self.options = SamplingOptions(**sampling)
        if stage1 is None:
            from cpgd_bench.models.cpgd.cpfp.restorer import CPFPRestorer  # stage-1 code, imported only when used

            stage1 = CPFPRestorer(weights=stage1_weights, device=str(self.device))
        self.stage1 = stage1
        self.window, self.overlap = stage1.window, stage1.overlap
        self.files: dict[str, Resolved] = {}
        self.model = model
        if model is None:
            self.model = self._load(weights, sd, diffbir, weights_dir, arch, separate_qm)
        if self.model is not None:
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            self.model.to(self.device, dtype).eval()

    def _load(
        self, weights: Path | None, sd: Path | None, diffbir: Path | None, weights_dir: Path | None, arch: str,
        separate_qm: bool,
    ) -> CPCModel | None:
        if arch not in ARCHS:
            raise ModelError(f"unknown CPC architecture {arch!r}; use one of {sorted(ARCHS)}")
        sd_names, control_names = cpgd_files()
        sd_file = find(sd_names, sd, weights_dir)
        if sd_file is None:
            log.warning("cpgd: %s; running stage 1 only", missing_message(sd_names, weights_dir))
            return None
        control = find(control_names, weights or diffbir, weights_dir)
        if control is None:
            raise WeightsError(missing_message(control_names, weights_dir) + " (or pass --weights <cpc.pt>)")
        from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet  # diffusers: only with SD weights
        from cpgd_bench.models.cpgd.cpc.model import CPCModel

        self.files = {"sd": sd_file, "control": control}
        state = read_state_dict(control.path)
        separate_qm = separate_qm or any(".to_qm." in k for k in state)  # a branch trained with the paper's L_qm
        unet, vae, text, tokenizer = load_sd(sd_file.path, ARCHS[arch])
        controlnet = build_controlnet(unet, coding_prior=True, separate_qm=separate_qm)
        load_control(controlnet, state, dict(unet.config))
        return CPCModel(unet, vae, text, controlnet, ARCHS[arch], tokenizer_folder=tokenizer)

    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        first = self.stage1.restore(clip).clamp(0, 1)
        if self.model is None:
            return first
        return cpc_restore(self.model, first, clip, self.options)

    def provenance(self) -> dict[str, Any]:
        base = super().provenance()
        stage1 = self.stage1.provenance()
        if self.model is None:
            return {**base, "label": STAGE1_ONLY, "weights": stage1.get("weights"),
                    "weights_sha256": stage1.get("weights_sha256"), "notes": f"stage 1: {stage1.get('label')}"}
        control, sd = self.files.get("control"), self.files.get("sd")
        notes = [f"stage 1: {stage1.get('label')} ({stage1.get('weights_sha256')})", f"options: {self.options}"]
        if sd is not None:
            notes.append(f"sd: {sd.path.name} sha256={sd.sha256} verified={sd.verified}")
        return {
            **base,
            "label": "cpgd",
            "weights": str(control.path) if control else None,
            "weights_sha256": control.sha256 if control else None,
            "notes": "; ".join(notes),
        }
