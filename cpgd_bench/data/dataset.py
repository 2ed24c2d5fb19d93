"""`CodingPriorDataset`: clips of frames with dense MV flows and residuals from a coding-prior store.

By default each item is a dict of float32 tensors (T = ``clip_len``, h x w = crop or full frame):

* ``lq`` (T, 3, h, w) in [0, 1]: the decoded frames (``input="decoded"``) or the uncoded blurry ones
  (``input="blur"``); ``gt`` (T, 3, h, w) in [0, 1]: the sharp frames (only when every sequence of
  the split has them);
* ``flow_prev`` / ``flow_next`` (T, 2, h, w): per-pixel motion in pixels, channels (x, y), to the
  previous / next frame in clip order, ``grid_sample`` direction, by method ``flow`` (default
  ``"composed"``, or ``"scaled"``: see :mod:`cpgd_bench.data.flow`): read from the store's
  ``flow_blocks`` where it holds them for that method at its current rule revision
  (:data:`~cpgd_bench.motion.FLOW_REVISIONS`; derived at build time from the MVs of the whole sequence and
  frame, so near the clip's ends and crop borders they can see more context than the clip), else (or with
  ``stored_flows=False``) derived from the MVs inside the clip (stored flows of older rules: with a warning);
* ``flow_valid`` (T, 2, h, w): 1 where the flow exists (channel 0 prev, 1 next); 0 where the
  bitstream gives none (the method's rules), and at the clip ends (frame 0 has no previous frame in
  the clip, the last frame no next);
* ``residual`` (T, 1, h, w): the luma coding residual r (codec bit depth b) normalised as
  ``clip((r + 2**(b-1)) / 2**b, 0, 1)`` -- signed, 0.5 means no residual (b = 10: (r + 512) / 1024);
* ``key``: ``{"sequence": "split/name", "frames": LongTensor (T,)}`` (frame indices in clip order).

The compact item (fewer bytes per clip, less CPU per item; :func:`expand_item` turns it into the
item above on whatever device its tensors are on, bit-identical on the CPU):

* ``prior_resolution="block"``: ``flow_prev`` / ``flow_next`` (T, 2, ceil(h/4), ceil(w/4)) in pixels
  and ``flow_valid`` (T, 2, ceil(h/4), ceil(w/4)), one value per 4x4 MV block, not upsampled;
* ``dtype="stored"``: ``lq`` / ``gt`` uint8 (T, 3, h, w) as stored, ``residual`` the raw int16 (T, 1,
  h, w), ``flow_valid`` uint8, plus ``bit_depth`` (a 0-dim int64 tensor) to normalise the residual.

Every tensor is C-contiguous (ready for ``DataLoader(pin_memory=True)``).

``mode="train"``: every start frame of every sequence, a random ``crop`` x ``crop`` window (a
multiple of 4; ``None``: the frame rounded down to a multiple of 4) at a 4-pixel-aligned origin, so
the 4x4 MV grid stays aligned, and with ``augment`` random horizontal/vertical flips and
temporal reversal applied to pixels and priors alike. ``mode="test"``: deterministic full frames
in sliding windows (``stride`` frames apart, default ``clip_len``; the last window ends on the
last frame), no augmentation. The store is opened lazily in each process (DataLoader workers).

Reads are checked: the direct shard reader (:mod:`cpgd_bench.store.shard_reader`) verifies every CRC, and
whatever it cannot read is read again through Zarr (:func:`cpgd_bench.store.reader.read_frames`), so
a lost chunk file or a corrupt chunk raises a one-line StoreError naming the store, array and frames,
never zeros.
``checksums=False`` skips the per-chunk CRC-32C verification for speed (lost chunks still fail).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from torch.utils.data import Dataset

from cpgd_bench.data import augment as aug
from cpgd_bench.data.errors import DataError
from cpgd_bench.data.flow import DEFAULT_FLOW, FLOW_METHODS, block_flows, upsample_blocks, upsample_flows
from cpgd_bench.motion import flow_tag, flows_are_current, parse_flow_tag
from cpgd_bench.store import StoreError, open_store
from cpgd_bench.store.reader import open_array, open_root, read_frames
from cpgd_bench.store.schema import FLOW_METHOD_ATTR
from cpgd_bench.store.shard_reader import ChunkReadError, ShardReader
from cpgd_bench.tiling import window_starts

INPUTS = ("decoded", "blur")
MODES = ("train", "test")
PRIOR_RESOLUTIONS = ("full", "block")
DTYPES = ("float32", "stored")


@dataclass(frozen=True)
class _Sequence:
    name: str
    frames: int
    height: int
    width: int
    bit_depth: int
    has_sharp: bool
    has_flows: bool  # flow_blocks stored with the dataset's flow method, current revision
    stale_flows: bool  # flow_blocks of the dataset's flow method, an older revision of its rules


def normalize_residual(residual: np.ndarray, bit_depth: int) -> torch.Tensor:
    """Signed codec residual -> [0, 1]: ``clip((r + 2**(b-1)) / 2**b, 0, 1)``, float32 tensor."""
    scale = float(1 << bit_depth)
    out = np.empty(residual.shape, np.float32)
    np.add(residual, np.float32(scale / 2), out=out, dtype=np.float32)
    out *= np.float32(1.0 / scale)
    return torch.from_numpy(np.clip(out, 0.0, 1.0, out=out))


class CodingPriorDataset(Dataset):
    """Clips of ``clip_len`` frames with coding priors from split ``split`` of a store (see module doc)."""

    def __init__(
        self,
        store: str | Path,
        split: str,
        clip_len: int = 7,
        crop: int | None = 256,
        input: str = "decoded",  # noqa: A002 - the documented public argument name
        augment: bool = True,
        mode: str = "train",
        stride: int | None = None,
        checksums: bool = True,
        flow: str = DEFAULT_FLOW,
        prior_resolution: str = "full",
        dtype: str = "float32",
        stored_flows: bool = True,
    ) -> None:
        opened = open_store(store)  # one-line StoreError: missing store, old format
        self.store_path = opened.path
        self.split = split
        names = opened.sequences(split)  # one-line StoreError: unknown split
        if mode not in MODES:
            raise DataError(f"mode must be one of {MODES}, got {mode!r}")
        if input not in INPUTS:
            raise DataError(f"input must be one of {INPUTS}, got {input!r}")
        if flow not in FLOW_METHODS:
            raise DataError(f"flow must be one of {FLOW_METHODS}, got {flow!r}")
        if prior_resolution not in PRIOR_RESOLUTIONS:
            raise DataError(f"prior_resolution must be one of {PRIOR_RESOLUTIONS}, got {prior_resolution!r}")
        if dtype not in DTYPES:
            raise DataError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if clip_len < 1:
            raise DataError(f"clip_len must be >= 1, got {clip_len}")
        if mode == "train" and crop is not None and (crop < 4 or crop % 4):
            raise DataError(f"crop must be a positive multiple of 4 (the MV block size), got {crop}")
        if not names:
            raise StoreError(f"split {split!r} of store {store} holds no sequences; rebuild the store")
        self.clip_len, self.input, self.mode, self.checksums, self.flow = clip_len, input, mode, checksums, flow
        self.prior_resolution, self.dtype = prior_resolution, dtype
        self.crop = crop if mode == "train" else None
        self.augment = augment and mode == "train"
        self.sequences = [self._describe(opened.group(split, name), name, flow, stored_flows) for name in names]
        for seq in self.sequences:
            where = f"sequence {split}/{seq.name} ({seq.frames} frames, {seq.width}x{seq.height}) in {store}"
            if clip_len > seq.frames:
                raise StoreError(f"clip_len={clip_len} is longer than {where}; use clip_len <= {seq.frames}")
            side = min(seq.height, seq.width)
            if self.crop is not None and self.crop > side:
                raise StoreError(f"crop={self.crop} is larger than {where}; use crop <= {side}")
        stale = [seq.name for seq in self.sequences if stored_flows and seq.stale_flows]
        if stale:
            warnings.warn(f"{store}: {split}/{stale[0]} and {len(stale) - 1} more sequences hold {flow} flows of older "
                          f"rules (this version computes {flow_tag(flow)}): deriving them per item instead (slower); "
                          "rebuild the store to store current ones", stacklevel=2)  # fmt: skip
        self.has_gt = all(seq.has_sharp for seq in self.sequences)
        step = stride or clip_len
        self.index: list[tuple[int, int]] = []
        for i, seq in enumerate(self.sequences):
            starts = window_starts(seq.frames, clip_len, 1 if mode == "train" else step)
            self.index += [(i, t0) for t0 in starts]
        self._arrays: dict[tuple[str, str], tuple[zarr.Array, ShardReader | None]] = {}
        self._root: zarr.Group | None = None
        self._pid = -1

    @staticmethod
    def _describe(group: zarr.Group, name: str, flow: str, stored_flows: bool) -> _Sequence:
        attrs = group.attrs
        tag = attrs.get(FLOW_METHOD_ATTR)
        current = flows_are_current(tag, flow)
        return _Sequence(
            name=name,
            frames=int(attrs["num_frames"]),
            height=int(attrs["height"]),
            width=int(attrs["width"]),
            bit_depth=int(dict(attrs.get("codec", {})).get("bit_depth", 10)),
            has_sharp="sharp" in group,
            has_flows=stored_flows and current and "flow_blocks" in group,
            stale_flows=(parse_flow_tag(tag) or ("",))[0] == flow and not current,
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"], state["_root"], state["_pid"] = {}, None, -1  # reopen in the worker
        return state

    def _array(self, sequence: str, name: str) -> tuple[zarr.Array, ShardReader | None]:
        if self._pid != os.getpid():
            self._arrays, self._root, self._pid = {}, open_root(self.store_path), os.getpid()
        key = (sequence, name)
        if key not in self._arrays:
            array = open_array(self._root, f"{self.split}/{sequence}/{name}", self.checksums)  # type: ignore[arg-type]
            self._arrays[key] = array, ShardReader.open(array, self.checksums)
        return self._arrays[key]

    def _read(
        self, sequence: str, name: str, selection: tuple[slice, ...], out: np.ndarray | None = None
    ) -> np.ndarray:
        """Read ``selection`` of array ``name`` of a sequence, checked, into ``out`` if given (override to read
        another layout).

        The direct chunk reader answers first; on anything it cannot read, Zarr reads it again and gives
        the data or the store's one-line error.
        """
        array, reader = self._array(sequence, name)
        if reader is not None:
            try:
                return reader.read(selection, out)
            except ChunkReadError:
                pass
        data = read_frames(array, *selection)
        if out is None:
            return data
        out[...] = data
        return out

    def _origin(self, seq: _Sequence) -> tuple[int, int, int, int]:
        """Crop (y0, x0, h, w): random and 4-pixel aligned in train mode, the full frame in test mode."""
        if self.mode == "test":
            return 0, 0, seq.height, seq.width
        h = self.crop or seq.height // 4 * 4
        w = self.crop or seq.width // 4 * 4
        y0 = 4 * int(torch.randint(0, (seq.height - h) // 4 + 1, ()))
        x0 = 4 * int(torch.randint(0, (seq.width - w) // 4 + 1, ()))
        return y0, x0, h, w

    def __getitem__(self, index: int) -> dict[str, Any]:
        seq_i, t0 = self.index[index]
        seq = self.sequences[seq_i]
        t1 = t0 + self.clip_len
        y0, x0, h, w = self._origin(seq)
        flips = tuple((torch.rand(3) < 0.5).tolist()) if self.augment else (False, False, False)
        pixels = (slice(t0, t1), slice(y0, y0 + h), slice(x0, x0 + w))
        grid = (slice(t0, t1), slice(None), slice(y0 // 4, -(-(y0 + h) // 4)), slice(x0 // 4, -(-(x0 + w) // 4)))
        if seq.has_flows:
            flows = self._read(seq.name, "flow_blocks", (grid[0], slice(None), *grid[1:]))
            valid = self._read(seq.name, "flow_blocks_valid", grid)
        else:
            mv, mv_ref = self._read(seq.name, "mv", grid), self._read(seq.name, "mv_ref", grid)
            flows, valid = block_flows(mv, mv_ref, self.flow)
        valid[0, 0] = False  # no previous / next frame inside the clip
        valid[-1, 1] = False
        priors = {"flow_prev": flows[:, 0], "flow_next": flows[:, 1], "flow_valid": valid}  # (T, C, h4, w4) views
        frames = torch.arange(t0, t1)
        flip_h, flip_v, backwards = flips  # crops are whole blocks here, so block-grid flips match pixel flips
        priors = aug.hflip(priors) if flip_h else priors
        priors = aug.vflip(priors) if flip_v else priors
        if backwards:
            priors, frames = aug.reverse(priors), frames.flip(0)
        item = self._priors(priors, h, w) | self._pixels(seq, pixels, flips)
        item["key"] = {"sequence": f"{self.split}/{seq.name}", "frames": frames}
        return item

    def _priors(self, clip: dict[str, np.ndarray], h: int, w: int) -> dict[str, torch.Tensor]:
        """Flows and validity at the item's resolution and dtype (one copy each from the block grid)."""
        valid_dtype = np.uint8 if self.dtype == "stored" else np.float32
        if self.prior_resolution == "block":
            return {
                "flow_prev": _tensor(clip["flow_prev"]),
                "flow_next": _tensor(clip["flow_next"]),
                "flow_valid": _tensor(clip["flow_valid"], valid_dtype),
            }
        return {
            "flow_prev": _tensor(upsample_flows(clip["flow_prev"], h, w, self.flow)),
            "flow_next": _tensor(upsample_flows(clip["flow_next"], h, w, self.flow)),
            "flow_valid": _tensor(upsample_blocks(clip["flow_valid"], h, w), valid_dtype),
        }

    def _pixels(self, seq: _Sequence, pixels: tuple[slice, ...], flips: tuple[bool, ...]) -> dict[str, torch.Tensor]:
        """``lq``, ``gt``, ``residual`` (T, C, h, w) with ``flips`` (h, v, time) applied.

        Stored dtypes are read straight into the flipped, channel-first view of the output (one copy from
        each chunk); float32 ones are read, then scaled into the output in one pass.
        """
        names = {"lq": self.input, "gt": "sharp"} if self.has_gt else {"lq": self.input}
        t_len, h, w = (s.stop - s.start for s in pixels)
        item: dict[str, torch.Tensor] = {}
        if self.dtype == "stored":
            for key, name in names.items():
                out = np.empty((t_len, 3, h, w), np.uint8)
                self._read(seq.name, name, pixels, _flipped(out, flips).transpose(0, 2, 3, 1))
                item[key] = torch.from_numpy(out)
            residual = np.empty((t_len, 1, h, w), np.int16)
            self._read(seq.name, "residual", pixels, _flipped(residual, flips)[:, 0])
            return item | {"residual": torch.from_numpy(residual), "bit_depth": torch.tensor(seq.bit_depth)}
        for key, name in names.items():
            item[key] = _scaled(_flipped(self._read(seq.name, name, pixels).transpose(0, 3, 1, 2), flips), 1 / 255)
        residual = _flipped(self._read(seq.name, "residual", pixels)[:, None], flips)
        return item | {"residual": normalize_residual(residual, seq.bit_depth)}

    def expand(self, batch: dict[str, Any]) -> dict[str, Any]:
        """:func:`expand_item` with this dataset's flow method."""
        return expand_item(batch, self.flow)


def expand_item(batch: dict[str, Any], flow: str = DEFAULT_FLOW) -> dict[str, Any]:
    """An item or collated batch of any ``prior_resolution`` / ``dtype`` -> the default item, on its own device.

    Block-grid flows and validity (spatial size differs from ``lq``'s) are upsampled as
    :func:`~cpgd_bench.data.flow.upsample_flows` / ``upsample_blocks`` do (``flow``: the dataset's method);
    uint8 ``lq``/``gt`` become ``x / 255`` and int16 ``residual`` is normalised with ``bit_depth`` (which is
    dropped), all float32. On the CPU the result equals the default item bit for bit; on CUDA the bilinear
    flow upsampling is CUDA's (equal up to float32 rounding). Full float32 entries pass through unchanged.
    """
    out = dict(batch)
    height, width = batch["lq"].shape[-2:]
    for key in ("lq", "gt"):
        if key in out and out[key].dtype == torch.uint8:
            out[key] = out[key].to(torch.float32).mul_(1.0 / 255.0)
    if out["residual"].dtype != torch.float32:
        residual = out["residual"]
        bits = out.pop("bit_depth").to(residual.device, torch.float64)
        scale = torch.exp2(bits).to(torch.float32).reshape(bits.shape + (1,) * (residual.ndim - bits.ndim))
        out["residual"] = residual.to(torch.float32).add_(scale / 2).mul_(1.0 / scale).clamp_(0.0, 1.0)
    for key in ("flow_prev", "flow_next"):
        if out[key].shape[-2:] != (height, width):
            out[key] = upsample_flow_tensor(out[key], height, width, flow)
    valid = out["flow_valid"]
    if valid.shape[-2:] != (height, width):
        valid = valid.repeat_interleave(4, -2).repeat_interleave(4, -1)[..., :height, :width]
    out["flow_valid"] = valid.to(torch.float32).contiguous()
    return out


def upsample_flow_tensor(blocks: torch.Tensor, height: int, width: int, flow: str = DEFAULT_FLOW) -> torch.Tensor:
    """:func:`~cpgd_bench.data.flow.upsample_flows` on a tensor (..., h4, w4), on its device: float32 (..., H, W)."""
    if flow not in FLOW_METHODS:
        raise DataError(f"flow must be one of {FLOW_METHODS}, got {flow!r}")
    blocks = blocks.to(torch.float32)
    if flow == "scaled":
        dense = blocks.repeat_interleave(4, -2).repeat_interleave(4, -1)
        return dense[..., :height, :width].contiguous()
    lead, (h4, w4) = blocks.shape[:-2], blocks.shape[-2:]
    dense = F.interpolate(blocks.reshape(-1, 1, h4, w4), scale_factor=4, mode="bilinear", align_corners=False)
    return dense[..., :height, :width].reshape(*lead, height, width).contiguous()


def _flipped(array: np.ndarray, flips: tuple[bool, ...]) -> np.ndarray:
    """A (T, C, H, W) view mirrored left-right, top-bottom and in time as ``flips`` says."""
    flip_h, flip_v, backwards = flips
    return array[:: -1 if backwards else 1, :, :: -1 if flip_v else 1, :: -1 if flip_h else 1]


def _tensor(array: np.ndarray, dtype: type | None = None) -> torch.Tensor:
    """A C-contiguous tensor sharing ``array``'s memory where it already is one (else one copy, cast to ``dtype``)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype))


def _scaled(array: np.ndarray, scale: float) -> torch.Tensor:
    """A C-contiguous float32 tensor of ``array * scale`` (one pass over any strided view)."""
    out = np.empty(array.shape, np.float32)
    np.multiply(array, np.float32(scale), out=out, dtype=np.float32)
    return torch.from_numpy(out)
