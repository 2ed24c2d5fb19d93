"""Where CPFA blocks get their alignment flow: coding MVs (paper), RAFT warm-started by MVs, RAFT, none.

The four options are the paper's Table III ablations:

* ``mv``: the decoder's motion vectors, no flow network (the paper's CPFP, 0 extra FLOPs);
* ``raft-mv-init``: torchvision's RAFT on half-resolution frames, 4 iterations, initialised with the
  MVs (what the authors' public code runs);
* ``raft``: the same RAFT from a zero flow, 20 iterations;
* ``none``: a zero flow; the deformable convolution must find the motion alone.

All flows are in full-resolution pixels, channels (x, y), ``grid_sample`` direction: pixel p of the
current frame is found at p + flow(p) in the reference frame (the dataset's convention). RAFT is
frozen; its weights come from a local file (:func:`load_raft_weights`), never from the network.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.optical_flow import raft_large, raft_small
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.weights import find, load_torch

ALIGNMENTS = ("mv", "raft-mv-init", "raft", "none")
DEFAULT_RAFT_ITERS = {"raft-mv-init": 4, "raft": 20}
RAFT_STRIDE = 8  # RAFT works on a 1/8-resolution grid of its input
RAFT_WEIGHTS = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"  # torchvision's file, listed in manifests/weights.yaml


class AlignmentError(CpgdBenchError, ValueError):
    """An alignment option or its RAFT weight file is wrong; the message names it and the fix."""


def check_alignment(alignment: str) -> None:
    if alignment not in ALIGNMENTS:
        raise AlignmentError(f"unknown alignment {alignment!r}; use one of {', '.join(ALIGNMENTS)}")


def load_raft_weights(raft: nn.Module, path: Path) -> None:
    """Load a RAFT state dict (torchvision layout, ``raft_large_C_T_SKHT_V2-ff5fadd5.pth``) from ``path``."""
    path = Path(path)
    find((RAFT_WEIGHTS,), path)  # must exist; checked against the weights table
    state = load_torch(path)
    try:
        raft.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AlignmentError(f"RAFT weights {path} do not fit torchvision's RAFT ({first}); use raft_large") from None


class FlowProvider(nn.Module):
    """Flow from ``cur`` to ``ref`` frames for one alignment option (see module doc)."""

    def __init__(
        self, alignment: str, raft_iters: int | None = None, raft_scale: float = 0.5, raft_small_net: bool = False
    ) -> None:
        super().__init__()
        check_alignment(alignment)
        self.alignment = alignment
        self.raft_scale = raft_scale
        self.raft_iters = DEFAULT_RAFT_ITERS.get(alignment, 0) if raft_iters is None else raft_iters
        self.raft: nn.Module | None = None
        if alignment.startswith("raft"):
            self.raft = (raft_small if raft_small_net else raft_large)(weights=None, progress=False)
            self.raft.requires_grad_(False)
            self.raft.eval()

    def train(self, mode: bool = True) -> FlowProvider:
        super().train(mode)
        if self.raft is not None:
            self.raft.eval()  # frozen: batch statistics never update
        return self

    def forward(self, cur: torch.Tensor, ref: torch.Tensor, mv: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Flow (N, 2, H, W) from frames ``cur``/``ref`` (N, 3, H, W) in [0, 1], MV flow and validity (N, 1, H, W)."""
        mv = mv * valid
        if self.alignment == "mv":
            return mv
        if self.alignment == "none":
            return torch.zeros_like(mv)
        init = mv if self.alignment == "raft-mv-init" else None
        with torch.no_grad():
            return self._raft(cur, ref, init)

    def _raft(self, cur: torch.Tensor, ref: torch.Tensor, init: torch.Tensor | None) -> torch.Tensor:
        """RAFT at ``raft_scale`` of the frame size, warm-started by ``init`` (full-res pixels) when given."""
        assert self.raft is not None
        h, w = cur.shape[-2:]
        sh, sw = round(h * self.raft_scale), round(w * self.raft_scale)
        smallest = RAFT_STRIDE * 2 ** self.raft.corr_block.num_levels  # its correlation pyramid needs this
        ph, pw = max(-sh % RAFT_STRIDE, smallest - sh), max(-sw % RAFT_STRIDE, smallest - sw)

        def prepare(frame: torch.Tensor) -> torch.Tensor:
            small = F.interpolate(frame, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
            return F.pad(small * 2.0 - 1.0, (0, pw, 0, ph), mode="replicate")

        coarse_init = None
        if init is not None:  # full-res pixels -> pixels on RAFT's 1/8 grid of the scaled frame
            step = RAFT_STRIDE / self.raft_scale
            coarse_init = F.interpolate(init, size=((sh + ph) // RAFT_STRIDE, (sw + pw) // RAFT_STRIDE), mode="area")
            coarse_init = coarse_init / step
        flow = raft_flow(self.raft, prepare(cur), prepare(ref), self.raft_iters, coarse_init)
        flow = flow[..., :sh, :sw]
        return F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False) / self.raft_scale


def raft_flow(
    raft: nn.Module, image1: torch.Tensor, image2: torch.Tensor, iters: int, flow_init: torch.Tensor | None = None
) -> torch.Tensor:
    """torchvision RAFT's refinement loop with an optional initial flow on its 1/8 grid; returns the final flow.

    Same steps as ``torchvision.models.optical_flow.RAFT.forward`` (which has no ``flow_init``), but only
    the last prediction is upsampled. Images are (N, 3, H, W) in [-1, 1], H and W multiples of 8.
    """
    n, _, h, w = image1.shape
    fmap1, fmap2 = torch.chunk(raft.feature_encoder(torch.cat([image1, image2], dim=0)), 2, dim=0)
    raft.corr_block.build_pyramid(fmap1, fmap2)
    hidden_size = raft.update_block.hidden_state_size
    context_out = raft.context_encoder(image1)
    hidden, context = torch.split(context_out, [hidden_size, context_out.shape[1] - hidden_size], dim=1)
    hidden, context = torch.tanh(hidden), F.relu(context)
    coords0 = make_coords_grid(n, h // RAFT_STRIDE, w // RAFT_STRIDE).to(image1)
    coords1 = coords0 if flow_init is None else coords0 + flow_init
    for _ in range(iters):
        corr = raft.corr_block.index_pyramid(centroids_coords=coords1)
        hidden, delta = raft.update_block(hidden, context, corr, coords1 - coords0)
        coords1 = coords1 + delta
    up_mask = None if raft.mask_predictor is None else raft.mask_predictor(hidden)
    return upsample_flow(coords1 - coords0, up_mask=up_mask)
