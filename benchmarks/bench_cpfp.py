"""CPFP per-frame forward FLOPs at 1280x720 and forward time, for alignment mv vs raft-mv-init vs raft (20 iters).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (exact op shapes, no
compute), plus a formula for ``torchvision::deform_conv2d`` (2 * MACs of the equivalent conv), which
the counter does not know. A per-frame cost is the marginal cost of one more frame in a clip
(FLOPs(T=3) - FLOPs(T=2)): the frame's own work plus one flow per propagation direction. Alignment
FLOPs are the flow provider's alone (0 for ``mv``). Timings: CUDA at 1280x720 when a GPU is present;
on CPU a full-HD-ish forward with 20 RAFT iterations takes minutes, so CPU times are taken at
``CPU_SIZE`` and say so. Architectures: the bundled demo network and the paper-size config
(manifests/train/cpfp-gopro.yaml); weights do not change FLOPs or time, so RAFT is untrained here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from cpgd_bench.models.cpgd.cpfp.model import CPFP, CPFPConfig

SIZE = (720, 1280)
CPU_SIZE = (192, 320)
ALIGNMENTS = {"mv": {}, "raft-mv-init": {"raft_iters": 4}, "raft": {"raft_iters": 20}}
PAPER_ALIGNMENT_GFLOPS = {"mv": 0, "raft-mv-init": 307, "raft": 908}
ROOT = Path(__file__).resolve().parents[1]


def _deform_conv_flops(input_shape: Any, weight_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """2 * N * Cout * Cin/groups * kh * kw * Hout * Wout (bilinear sampling not counted)."""
    n, cout, hout, wout = out_shape
    _, cin_g, kh, kw = weight_shape
    return 2 * n * cout * cin_g * kh * kw * hout * wout


FLOP_RULES = {torch.ops.torchvision.deform_conv2d.default: _deform_conv_flops}


def _clip(t: int, size: tuple[int, int], device: str | torch.device) -> dict[str, torch.Tensor]:
    h, w = size
    return {
        "lq": torch.rand(1, t, 3, h, w, device=device),
        "flow_prev": torch.zeros(1, t, 2, h, w, device=device),
        "flow_next": torch.zeros(1, t, 2, h, w, device=device),
        "flow_valid": torch.ones(1, t, 2, h, w, device=device),
        "residual": torch.full((1, t, 1, h, w), 0.5, device=device),
    }


def _flops(fn: Any) -> int:
    with FlopCounterMode(display=False, custom_mapping=FLOP_RULES) as counter:
        fn()
    return counter.get_total_flops()


def _meta_model(arch: dict[str, Any]) -> CPFP:
    with torch.device("meta"):
        return CPFP(CPFPConfig.from_dict(arch))


def gflops_per_frame(arch: dict[str, Any]) -> tuple[float, float]:
    """(whole network, alignment only) GFLOPs per frame at SIZE."""
    model = _meta_model(arch)
    total = [_flops(lambda t=t: model(**_clip(t, SIZE, "meta"))) for t in (2, 3)]
    frame = torch.empty(1, 3, *SIZE, device="meta")
    flow, valid = torch.empty(1, 2, *SIZE, device="meta"), torch.empty(1, 1, *SIZE, device="meta")
    align = _flops(lambda: model.flow(frame, frame, flow, valid))
    return (total[1] - total[0]) / 1e9, 2 * align / 1e9  # one flow per direction and frame


@torch.no_grad()
def seconds_per_frame(arch: dict[str, Any], device: torch.device, size: tuple[int, int], frames: int = 5) -> float:
    model = CPFP(CPFPConfig.from_dict(arch)).to(device).eval()
    clip = _clip(frames, size, device)
    model(**clip)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model(**clip)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / frames


def architectures() -> dict[str, dict[str, Any]]:
    from cpgd_bench.models.cpgd.cpfp.checkpoint import read_payload
    from cpgd_bench.models.cpgd.cpfp.restorer import demo_weights

    paper = yaml.safe_load((ROOT / "manifests" / "train" / "cpfp-gopro.yaml").read_text())["model"]
    return {"demo": dict(read_payload(demo_weights())["arch"]), "paper-size": paper}


def run() -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = SIZE if device.type == "cuda" else CPU_SIZE
    result: dict[str, Any] = {
        "flops_at": f"{SIZE[1]}x{SIZE[0]}, per frame, meta device",
        "time_at": f"{size[1]}x{size[0]} on {device.type} ({torch.get_num_threads()} threads), demo network, 5 frames",
        "paper_alignment_gflops": PAPER_ALIGNMENT_GFLOPS,
    }
    for name, arch in architectures().items():
        for alignment, extra in ALIGNMENTS.items():
            config = {**arch, "alignment": alignment, **extra}
            total, align = gflops_per_frame(config)
            key = f"{name}/{alignment}"
            result[f"{key}/gflops_per_frame"] = round(total, 1)
            result[f"{key}/alignment_gflops_per_frame"] = round(align, 1)
            result[f"{key}/alignment_gflops_per_flow"] = round(align / 2, 1)
            if name == "demo":
                result[f"{key}/ms_per_frame"] = round(1000 * seconds_per_frame(config, device, size), 1)
    return result


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k}: {v}")
