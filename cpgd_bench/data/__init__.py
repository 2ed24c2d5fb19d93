"""PyTorch access to coding-prior stores: :class:`CodingPriorDataset`, MV flows, prior-aware augmentation."""

from cpgd_bench.data.dataset import CodingPriorDataset, expand_item, normalize_residual, upsample_flow_tensor
from cpgd_bench.data.flow import backward_warp, block_flows, dense_flows

__all__ = [
    "CodingPriorDataset",
    "backward_warp",
    "block_flows",
    "dense_flows",
    "expand_item",
    "normalize_residual",
    "upsample_flow_tensor",
]
