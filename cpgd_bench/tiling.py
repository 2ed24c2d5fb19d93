"""Split long sequences into overlapping temporal windows and large frames into overlapping spatial tiles.

The one window rule of the project is :func:`window_starts` (windows cover ``[0, size)``, one every
``step``, the last one flush with the end); the dataset, the models, the runner and the evaluation
protocols all use it. Both splitters return plans, not data, so callers decide how to read and where to
run each piece.
Overlaps are blended back: temporal windows keep the central part of each window (each output frame
comes from exactly one window, the one where it sits furthest from an edge); spatial tiles are
averaged with linear ramps over the overlap, so seams do not show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def window_starts(size: int, length: int, step: int) -> list[int]:
    """Starts of windows of ``length`` covering ``[0, size)``, one every ``step``; the last ends flush at ``size``.

    ``length >= size`` gives the single start 0.
    """
    if length >= size:
        return [0]
    starts = list(range(0, size - length + 1, max(1, step)))
    if starts[-1] != size - length:
        starts.append(size - length)
    return starts


@dataclass(frozen=True)
class Window:
    """Frames ``[start, end)`` are fed to the model; frames ``[keep_start, keep_end)`` are kept."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def temporal_windows(frames: int, window: int | None, overlap: int = 0) -> list[Window]:
    """Cover ``frames`` frames with windows of ``window`` frames overlapping by ``overlap``.

    ``window=None`` (or a window at least as long as the sequence) gives one window. The kept ranges
    tile ``[0, frames)`` exactly; each overlap is split at its middle between the two windows.
    """
    if frames < 1:
        raise ValueError(f"a sequence needs at least one frame, got {frames}")
    if window is None or window >= frames:
        return [Window(0, frames, 0, frames)]
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    starts = window_starts(frames, window, window - overlap)
    out = []
    for i, s in enumerate(starts):
        keep_start = 0 if i == 0 else (starts[i - 1] + window + s) // 2
        keep_end = frames if i == len(starts) - 1 else (s + window + starts[i + 1]) // 2
        out.append(Window(s, s + window, keep_start, keep_end))
    return out


def _aligned_spans(size: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """Tile spans along one axis with origins on the ``multiple`` grid; the last one reaches the edge."""
    starts = sorted({s // multiple * multiple for s in window_starts(size, tile, tile - overlap)})
    return [(s, size if i == len(starts) - 1 else min(s + tile, size)) for i, s in enumerate(starts)]


def _ramp(length: int, start: int, size: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Blend weights along one axis: ramps up over ``overlap`` at inner edges, flat elsewhere."""
    w = torch.ones(length, device=device)
    if overlap > 0:
        ramp = torch.linspace(1.0 / (overlap + 1), overlap / (overlap + 1), overlap, device=device)
        if start > 0:
            w[:overlap] = ramp[: min(overlap, length)]
        if start + length < size:
            w[-overlap:] = ramp.flip(0)[-min(overlap, length):]
    return w


def restore_tiled(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    clip: dict[str, torch.Tensor],
    tile: int | None,
    overlap: int = 32,
    multiple: int = 4,
) -> torch.Tensor:
    """Run ``fn`` on overlapping spatial tiles of ``clip`` and blend the outputs.

    ``clip`` maps names to tensors shaped (..., H, W) (one clip of a CodingPriorDataset item);
    ``fn`` returns (T, C, h, w) for a tile of size h x w. Tile origins are multiples of ``multiple``
    (4 keeps the MV block grid aligned). ``tile=None`` runs ``fn`` once on the whole frame.
    """
    height, width = clip["lq"].shape[-2:]
    if tile is None or (tile >= height and tile >= width):
        return fn(clip)
    if tile % multiple or overlap % multiple or overlap >= tile:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {multiple}, overlap < tile")
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    for y0, y1 in _aligned_spans(height, tile, overlap, multiple):
        for x0, x1 in _aligned_spans(width, tile, overlap, multiple):
            part = {k: v[..., y0:y1, x0:x1] for k, v in clip.items()}
            result = fn(part)
            th, tw = result.shape[-2:]
            wy = _ramp(th, y0, height, overlap, result.device)
            wx = _ramp(tw, x0, width, overlap, result.device)
            w2 = wy[:, None] * wx[None, :]
            if out is None:
                out = result.new_zeros(*result.shape[:-2], height, width)
                weight = result.new_zeros(height, width)
            out[..., y0:y0 + th, x0:x0 + tw] += result * w2
            weight[y0:y0 + th, x0:x0 + tw] += w2  # type: ignore[index]
    assert out is not None and weight is not None
    return out / weight
