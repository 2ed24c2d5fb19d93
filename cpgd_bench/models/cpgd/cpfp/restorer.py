"""The ``cpfp`` model for the runner: CPGD-Net stage 1 in temporal windows and (optionally) spatial tiles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from cpgd_bench.models.cpgd.cpfp.checkpoint import load_cpfp
from cpgd_bench.models.registry import ModelError, Restorer
from cpgd_bench.provenance import sha256_file
from cpgd_bench.tiling import restore_tiled
from cpgd_bench.weights import bundled_dir, find

DEMO_WEIGHTS = "cpfp_demo.pt"
_announced = False


def demo_weights() -> Path:
    """The bundled demo weights (trained by manifests/train/cpfp-demo.yaml on the sample store)."""
    return bundled_dir() / DEMO_WEIGHTS


def demo_record() -> dict[str, Any]:
    """How the demo weights were made (command, seed, store, steps, sha256)."""
    return json.loads(demo_weights().with_suffix(".json").read_text())


class CPFPRestorer(Restorer):
    """CPFP from a weight file; without one, the bundled demo weights (said once on stderr).

    ``window``/``overlap``: temporal windows the runner feeds (the authors test with 48 frames, overlap 4).
    ``tile``/``tile_overlap``: spatial tiles in pixels (None: whole frames), blended by
    :func:`cpgd_bench.tiling.restore_tiled`.
    """

    name = "cpfp"

    def __init__(
        self,
        weights: Path | None = None,
        device: str | None = None,
        window: int | None = 48,
        overlap: int = 4,
        tile: int | None = None,
        tile_overlap: int = 32,
    ) -> None:
        global _announced
        self.demo = weights is None
        path = demo_weights() if weights is None else Path(weights)
        if self.demo and not path.is_file():
            raise ModelError(f"bundled CPFP demo weights {path} are missing; reinstall cpgd-bench or pass --weights")
        if self.demo:
            find((DEMO_WEIGHTS,), path)  # the bundled file's sha256 is in the weights table
        if self.demo and not _announced:
            print(f"cpfp: no --weights given, using the bundled demo weights {path} (sample-data demo, "
                  "not a paper model)", file=sys.stderr)  # fmt: skip
            _announced = True
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, payload = load_cpfp(path, self.device)
        self.weights_path = path
        self.step = int(payload.get("step", 0))
        self.window, self.overlap = window, overlap
        self.tile, self.tile_overlap = tile, tile_overlap

    @torch.no_grad()
    def _run(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {k: clip[k][None].to(self.device) for k in ("lq", "flow_prev", "flow_next", "flow_valid", "residual")}
        return self.model(**batch)[0].clamp(0.0, 1.0)

    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        out = restore_tiled(self._run, clip, self.tile, self.tile_overlap)
        return out.to(clip["lq"].device)

    def provenance(self) -> dict[str, Any]:
        arch = self.model.config
        label = "cpfp (demo weights)" if self.demo else "cpfp"
        notes = (f"alignment={arch.alignment}, use_residual={arch.use_residual}, channels={arch.channels}, "
                 f"step {self.step}; window {self.window}/{self.overlap}, tile {self.tile}")  # fmt: skip
        if self.demo:
            notes += f"; demo weights: {demo_record().get('command', '')}"
        return {
            **super().provenance(),
            "weights": str(self.weights_path),
            "weights_sha256": sha256_file(self.weights_path),
            "label": label,
            "notes": notes,
        }
