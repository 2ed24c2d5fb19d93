"""LPIPS (via ``lpips``), NIQE and MUSIQ (via pyiqa), built offline from verified local weight files.

pyiqa and torchvision would download weights on construction; here every file comes from
:func:`cpgd_bench.weights.resolve` (sha256-checked) and is handed to the library explicitly:
LPIPS is built with a random backbone (``pnet_rand=True``, no download) whose AlexNet feature layers are
then loaded from the verified backbone file; NIQE/MUSIQ get ``pretrained_model_path``.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from pathlib import Path

import torch

from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import MetricInputError
from cpgd_bench.provenance import sha256_file
from cpgd_bench.weights import WeightsError, load_torch, resolve

# torchvision AlexNet ``features`` index -> LPIPS slice holding it (slices [0:2],[2:5],[5:8],[8:10],[10:12]).
_ALEX_SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


class _WeightedMetric(Metric):
    """A metric whose weights are resolved (and sha256-verified) at construction."""

    def __init__(self, weights_dir: Path | None, device: str | torch.device | None) -> None:
        super().__init__(device)
        self.weights = resolve(self.name, weights_dir)

    def weights_sha256(self) -> dict[str, str]:
        return {p.name: sha256_file(p) for p in self.weights.values()}


def load_alexnet_features(net: torch.nn.Module, path: Path) -> None:
    """Load torchvision-named AlexNet ``features.*`` weights into an LPIPS alexnet's ``slice*`` modules."""
    state = load_torch(path)
    mapped = {}
    for key, value in state.items():
        m = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
        if m and int(m.group(1)) in _ALEX_SLICE:
            mapped[f"slice{_ALEX_SLICE[int(m.group(1))]}.{m.group(1)}.{m.group(2)}"] = value
    missing = set(net.state_dict()) - set(mapped)
    if missing:
        raise WeightsError(f"AlexNet weights {path} lack {sorted(missing)[0]} (and {len(missing) - 1} more keys)")
    net.load_state_dict(mapped, strict=True)


class LPIPS(_WeightedMetric):
    """LPIPS v0.1, AlexNet backbone (the ``lpips`` package's network), inputs in [0,1]. Lower is better."""

    name = "lpips"
    higher_better = False
    range = (0.0, 1.0)
    channels = (3,)

    def __init__(self, weights_dir: Path | None = None, device: str | torch.device | None = None) -> None:
        super().__init__(weights_dir, device)
        import lpips

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's notice about `pretrained=False`
            net = lpips.LPIPS(
                net="alex", version="0.1", pnet_rand=True, model_path=str(self.weights["linear"]), verbose=False
            )
        load_alexnet_features(net.net, self.weights["backbone"])
        self.net = net.eval().to(self.device)

    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        return self.net(pred.float(), gt.float(), normalize=True).flatten()


class _PyiqaNR(_WeightedMetric):
    """A no-reference pyiqa metric built with ``pretrained_model_path`` set to the verified file."""

    full_reference = False
    channels = (3,)
    pyiqa_name: str

    def __init__(self, weights_dir: Path | None = None, device: str | torch.device | None = None) -> None:
        super().__init__(weights_dir, device)
        import pyiqa

        with contextlib.redirect_stdout(io.StringIO()):
            self.net = pyiqa.create_metric(
                self.pyiqa_name, device=self.device, pretrained_model_path=str(self.weights["model"])
            )

    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        return self.net(pred.float()).flatten()


class NIQE(_PyiqaNR):
    """NIQE with the original MATLAB pristine model (pyiqa ``niqe``). Lower is better."""

    name = "niqe"
    pyiqa_name = "niqe"
    higher_better = False
    range = (0.0, math.inf)
    min_size = 96  # pyiqa's block size: a smaller frame holds no block

    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        h, w = pred.shape[-2:]
        if min(h, w) < self.min_size:
            raise MetricInputError(
                f"niqe needs frames of at least {self.min_size}x{self.min_size} pixels (its block size), got {h}x{w}"
                "; leave it out with --metrics"
            )
        return super()._compute(pred, gt)


class MUSIQ(_PyiqaNR):
    """MUSIQ trained on KonIQ-10k (pyiqa ``musiq``), about 0-100. Higher is better."""

    name = "musiq"
    pyiqa_name = "musiq"
    higher_better = True
    range = (0.0, 100.0)
