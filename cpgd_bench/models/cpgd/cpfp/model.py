"""CPFP: CPGD-Net stage 1, coding-prior feature propagation (paper section III-B).

Frames are encoded to features at 1/``scale`` resolution. Cascaded CPFA blocks then propagate
features through the clip, BasicVSR++-style: each round runs a backward pass (t+1 -> t) and a
forward pass (t-1 -> t). At frame t, a CPFA block takes the feature propagated from the neighbour
(the paper's F_{t-1}), the alignment flow V (the MVs for ``alignment="mv"``) and the coding residual
term R, and

1. warps the neighbour feature with V: F~ = W(V, F_{t-1})                                    (eq. 1)
2. predicts DCN offsets O = V + C_o(V, F~, R)                                                (eq. 2)
   and the modulation mask M = R + C_m(V, F~, R)                                             (eq. 3)
3. aligns F' = DCN(F_{t-1}, O, M) (``torchvision.ops.deform_conv2d``)                        (eq. 4)
4. fuses F' with the neighbour's MV-warped feature F~ and the frame's own feature into F*_t.

C_o and C_m are two heads on one small conv trunk; their last layers start at zero, so an untrained
block aligns exactly with V and weights the DCN by R: the DCN acts where MV compensation failed,
and F~ carries the rest. A reconstruction head turns the frame's feature and every pass's output
into a residual image added to the input frame; its last conv starts at zero, so training starts
from the identity (the input frames' PSNR) rather than from noise.

R is the magnitude of the normalised luma residual, ``clip(gain * |2 r - 1|, 0, 1)`` averaged over
each feature pixel (r = 0.5 is no residual); the residual of frame t serves both directions.
``use_residual=False`` (Table III "w/o CRs") drops R from C_o/C_m and replaces it by 1 in M.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from cpgd_bench.data.flow import backward_warp
from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.models.cpgd.cpfp.alignment import FlowProvider, check_alignment

KERNEL = 3


class ConfigError(CpgdBenchError, ValueError):
    """A CPFP architecture option is unknown, of the wrong type or out of range; the message names it."""


#: Accepted value types per annotation of a CPFPConfig field.
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "int | None": (int, type(None)),
}
#: Lowest value of the numeric options, and whether that value itself is allowed.
_LOWEST: dict[str, tuple[float, bool]] = {
    "channels": (1, True), "deform_groups": (1, True), "encoder_blocks": (0, True), "fusion_blocks": (0, True),
    "decoder_blocks": (0, True), "rounds": (0, True), "raft_iters": (1, True), "residual_gain": (0, True),
    "raft_scale": (0, False),
}


def _check_option(name: str, value: object, kinds: tuple[type, ...]) -> None:
    """One-line ConfigError unless ``value`` is of ``kinds`` and, for numbers, in the option's range."""
    shown = repr(value)[:60]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        want = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ConfigError(f"CPFP model option {name} must be {want}, got {shown}")
    if name in _LOWEST and isinstance(value, (int, float)):
        low, inclusive = _LOWEST[name]
        if (isinstance(value, float) and not math.isfinite(value)) or value < low or (value == low and not inclusive):
            raise ConfigError(f"CPFP model option {name} must be {'>=' if inclusive else '>'} {low}, got {shown}")


@dataclass(frozen=True)
class CPFPConfig:
    """Architecture of a CPFP network (saved with every checkpoint)."""

    channels: int = 32  # feature channels
    scale: int = 4  # features at 1/scale resolution (1, 2 or 4)
    encoder_blocks: int = 2  # residual blocks after the frame encoder
    fusion_blocks: int = 2  # residual blocks in each CPFA fusion
    decoder_blocks: int = 2  # residual blocks in the reconstruction head
    rounds: int = 1  # bidirectional rounds (each a backward and a forward pass of CPFA blocks)
    deform_groups: int = 4
    alignment: str = "mv"  # mv | raft-mv-init | raft | none
    use_residual: bool = True
    residual_gain: float = 8.0  # |2r - 1| * gain, clipped to [0, 1], is the residual term R
    raft_iters: int | None = None  # None: 4 for raft-mv-init, 20 for raft
    raft_scale: float = 0.5  # RAFT runs on frames resized by this factor (the authors: 0.5)
    raft_small: bool = False  # torchvision raft_small instead of raft_large (tests)

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> CPFPConfig:
        """Checked options: known names, each of its field's type (a bool is not an int), numbers in range."""
        types = {f.name: _TYPES[str(f.type)] for f in fields(cls)}
        unknown = sorted(map(str, set(options) - set(types)))
        if unknown:
            raise ConfigError(f"unknown CPFP model option(s) {', '.join(unknown)}; known: {', '.join(sorted(types))}")
        for name, value in options.items():
            _check_option(name, value, types[name])
        config = cls(**options)
        check_alignment(config.alignment)
        if config.scale not in (1, 2, 4):
            raise ConfigError(f"CPFP scale must be 1, 2 or 4, got {config.scale}")
        if config.channels % config.deform_groups:
            raise ConfigError(f"channels ({config.channels}) must be a multiple of deform_groups")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, KERNEL, padding=KERNEL // 2)


class ResBlock(nn.Module):
    """conv - LeakyReLU - conv, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.LeakyReLU(0.1, inplace=True), conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def res_stack(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))


class CPFA(nn.Module):
    """One coding-prior feature alignment block (paper Fig. 4) with its fusion (see module doc)."""

    def __init__(self, channels: int, deform_groups: int, fusion_blocks: int, use_residual: bool) -> None:
        super().__init__()
        self.groups = deform_groups
        self.use_residual = use_residual
        taps = deform_groups * KERNEL * KERNEL
        # condition: warped neighbour feature, own feature, flow (2), flow validity, residual term
        self.trunk = nn.Sequential(
            conv(2 * channels + 4, channels), nn.LeakyReLU(0.1, inplace=True),
            conv(channels, channels), nn.LeakyReLU(0.1, inplace=True),
        )  # fmt: skip
        self.c_o = conv(channels, 2 * taps)  # offset correction, (dy, dx) per tap
        self.c_m = conv(channels, taps)  # mask correction
        for head in (self.c_o, self.c_m):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.dcn_weight = nn.Parameter(torch.empty(channels, channels, KERNEL, KERNEL))
        self.dcn_bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.dcn_weight, a=5**0.5)
        self.fuse = nn.Sequential(conv(3 * channels, channels), nn.LeakyReLU(0.1, inplace=True))
        self.refine = res_stack(channels, fusion_blocks)

    def align_params(
        self, neighbour: torch.Tensor, own: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, res: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Warped neighbour F~ (eq. 1), DCN offsets O (eq. 2) and mask M (eq. 3), all at feature resolution.

        ``flow`` (N, 2, h, w) in feature pixels (x, y); ``valid`` and ``res`` (N, 1, h, w).
        """
        warped = backward_warp(neighbour, flow)
        res_in = res if self.use_residual else torch.zeros_like(res)
        cond = self.trunk(torch.cat([warped, own, flow, valid, res_in], dim=1))
        taps = self.groups * KERNEL * KERNEL
        offset = flow.flip(1).repeat(1, taps, 1, 1) + self.c_o(cond)  # deform_conv2d wants (dy, dx) pairs
        base = res if self.use_residual else torch.ones_like(res)
        mask = base.expand(-1, taps, -1, -1) + self.c_m(cond)
        return warped, offset, mask

    def forward(
        self, neighbour: torch.Tensor, own: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, res: torch.Tensor
    ) -> torch.Tensor:
        warped, offset, mask = self.align_params(neighbour, own, flow, valid, res)
        aligned = deform_conv2d(neighbour, offset, self.dcn_weight, self.dcn_bias, padding=KERNEL // 2, mask=mask)
        fused = self.fuse(torch.cat([own, warped, aligned], dim=1))
        return own + self.refine(fused)


class CPFP(nn.Module):
    """The stage-1 network: encoder, cascaded bidirectional CPFA passes, reconstruction head."""

    def __init__(self, config: CPFPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CPFPConfig()
        c, s = cfg.channels, cfg.scale
        self.flow = FlowProvider(cfg.alignment, cfg.raft_iters, cfg.raft_scale, cfg.raft_small)
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(s), conv(3 * s * s, c), nn.LeakyReLU(0.1, inplace=True), res_stack(c, cfg.encoder_blocks)
        )
        self.passes = nn.ModuleList(
            CPFA(c, cfg.deform_groups, cfg.fusion_blocks, cfg.use_residual) for _ in range(2 * cfg.rounds)
        )
        self.decoder = nn.Sequential(
            conv((1 + 2 * cfg.rounds) * c, c), nn.LeakyReLU(0.1, inplace=True), res_stack(c, cfg.decoder_blocks),
            conv(c, 3 * s * s), nn.PixelShuffle(s),
        )  # fmt: skip
        nn.init.zeros_(self.decoder[-2].weight)  # an untrained network returns its input frames
        nn.init.zeros_(self.decoder[-2].bias)

    def residual_term(self, residual: torch.Tensor) -> torch.Tensor:
        """R at feature resolution (N, 1, h, w) in [0, 1] from the normalised residual (N, 1, H, W)."""
        magnitude = ((2.0 * residual - 1.0).abs() * self.config.residual_gain).clamp(0.0, 1.0)
        return F.avg_pool2d(magnitude, self.config.scale)

    def to_features(self, flow: torch.Tensor) -> torch.Tensor:
        """Full-resolution pixel flow (N, 2, H, W) -> feature-resolution pixel flow (N, 2, h, w)."""
        return F.avg_pool2d(flow, self.config.scale) / self.config.scale

    def forward(
        self,
        lq: torch.Tensor,
        flow_prev: torch.Tensor,
        flow_next: torch.Tensor,
        flow_valid: torch.Tensor,
        residual: torch.Tensor,
    ) -> torch.Tensor:
        """Restore clips: lq (B, T, 3, H, W) in [0, 1] and the dataset's priors -> (B, T, 3, H, W)."""
        b, t, _, h, w = lq.shape
        s = self.config.scale
        ph, pw = -h % s, -w % s
        if ph or pw:  # pad to whole feature pixels; padded priors mean "no MV, no residual"
            lq = _pad(lq, ph, pw, "replicate")
            flow_prev, flow_next = _pad(flow_prev, ph, pw, "replicate"), _pad(flow_next, ph, pw, "replicate")
            flow_valid, residual = _pad(flow_valid, ph, pw, 0.0), _pad(residual, ph, pw, 0.5)
        frames = lq.flatten(0, 1)
        feats = self.encoder(frames)
        hf, wf = feats.shape[-2:]
        feats = feats.view(b, t, -1, hf, wf)
        res = self.residual_term(residual.flatten(0, 1)).view(b, t, 1, hf, wf)
        flows = {  # direction -> (flow, valid) of frame i towards frame i + step, at feature resolution
            step: self._flows(lq, mv, flow_valid[:, :, channel : channel + 1], step)
            for step, mv, channel in ((1, flow_next, 1), (-1, flow_prev, 0))
        }
        outputs = [feats]
        current = feats
        for i, block in enumerate(self.passes):
            step = 1 if i % 2 == 0 else -1  # backward pass (propagate from t+1) first, as BasicVSR++
            current = self._propagate(block, current, *flows[step], res, step)
            outputs.append(current)
        decoded = self.decoder(torch.cat(outputs, dim=2).flatten(0, 1))
        out = frames + decoded
        return out.view(b, t, 3, h + ph, w + pw)[..., :h, :w]

    def _flows(
        self, lq: torch.Tensor, mv: torch.Tensor, valid: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature-resolution flow and validity (B, T, C, h, w) of each frame towards its neighbour at ``step``."""
        b, t = lq.shape[:2]
        flow = torch.zeros_like(mv)
        ok = valid.clone()
        if t > 1:
            cur = slice(0, t - 1) if step == 1 else slice(1, t)
            ref = slice(1, t) if step == 1 else slice(0, t - 1)
            got = self.flow(lq[:, cur].flatten(0, 1), lq[:, ref].flatten(0, 1), mv[:, cur].flatten(0, 1),
                            valid[:, cur].flatten(0, 1))  # fmt: skip
            flow[:, cur] = got.view(b, t - 1, *got.shape[1:])
            if self.flow.alignment != "mv":  # a flow network or a zero flow exists wherever a neighbour does
                ok[:, cur] = 1.0
        end = t - 1 if step == 1 else 0
        ok[:, end] = 0.0  # no neighbour beyond the clip
        flow_f = self.to_features(flow.flatten(0, 1))
        ok_f = F.avg_pool2d(ok.flatten(0, 1), self.config.scale)
        return flow_f.view(b, t, 2, *flow_f.shape[-2:]), ok_f.view(b, t, 1, *ok_f.shape[-2:])

    def _propagate(
        self, block: CPFA, feats: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor, res: torch.Tensor, step: int
    ) -> torch.Tensor:
        """One pass over time; frame i receives the feature propagated from frame i + ``step``."""
        t = feats.shape[1]
        order = range(t - 1, -1, -1) if step == 1 else range(t)
        out: list[torch.Tensor | None] = [None] * t
        carried = torch.zeros_like(feats[:, 0])
        for i in order:  # the first frame of the pass gets a zero neighbour feature
            carried = block(carried, feats[:, i], flow[:, i], valid[:, i], res[:, i])
            out[i] = carried
        return torch.stack(out, dim=1)  # type: ignore[arg-type]


def _pad(x: torch.Tensor, ph: int, pw: int, value: str | float) -> torch.Tensor:
    """Pad the last two dims of a (B, T, C, H, W) tensor at the bottom/right."""
    b, t = x.shape[:2]
    flat = x.flatten(0, 1)
    if isinstance(value, str):
        flat = F.pad(flat, (0, pw, 0, ph), mode=value)
    else:
        flat = F.pad(flat, (0, pw, 0, ph), value=value)
    return flat.view(b, t, *flat.shape[1:])
