"""Read a method's saved frames: a Zarr v3 store ``<pred>/<split>/<sequence>/<array>`` uint8 (T,H,W,3),
or a folder ``<dir>/<sequence>/*.png`` (frames in sorted file-name order).

Every PNG is checked when read: a file that does not decode (empty, truncated, not a PNG) or whose size
differs from the ground truth's is a one-line MetricInputError naming it (the size is read from the
header, before the pixels are decoded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpgd_bench.metrics.errors import MetricInputError
from cpgd_bench.store.reader import open_root, read_frames


def _unreadable(path: Path, error: Exception) -> MetricInputError:
    reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
    return MetricInputError(f"frame {path} is not a readable PNG ({reason}); write it again")


class Predictions:
    """Frames of one method, per sequence, checked against the ground truth's frame count and size."""

    def __init__(self, path: Path, split: str, array: str = "pred") -> None:
        self.path = Path(path)
        self.split = split
        self.array = array
        if not self.path.exists():
            raise MetricInputError(f"no predictions at {self.path}; pass a Zarr store or a folder of PNG folders")
        self.is_zarr = (self.path / "zarr.json").is_file()
        if not self.is_zarr and not self.path.is_dir():
            raise MetricInputError(f"predictions {self.path} is neither a Zarr store nor a folder")
        self._root = None
        self._shape: dict[str, tuple[int, int, int]] = {}  # sequence -> (H, W, 3) of the ground truth

    @property
    def kind(self) -> str:
        """``zarr`` or ``png``."""
        return "zarr" if self.is_zarr else "png"

    def sequences(self) -> list[str]:
        """Sequences present in the predictions."""
        base = self.path / self.split if self.is_zarr else self.path
        if not base.is_dir():
            return []
        return sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))

    def _zarr_array(self, sequence: str):
        if self._root is None:
            self._root = open_root(self.path)  # a lost chunk file is an error, never zeros
        key = f"{self.split}/{sequence}/{self.array}"
        try:
            arr = self._root[key]
        except KeyError:
            raise MetricInputError(f"predictions {self.path} have no array {key}; write it (uint8 T,H,W,3)") from None
        if arr.dtype != np.uint8:
            raise MetricInputError(f"predictions {self.path}/{key} have dtype {arr.dtype}; expected uint8 (T,H,W,3)")
        return arr

    def _png_files(self, sequence: str) -> list[Path]:
        return sorted((self.path / sequence).glob("*.png"))

    def check(self, sequence: str, num_frames: int, height: int, width: int) -> None:
        """One-line MetricInputError unless ``sequence`` has ``num_frames`` frames of ``height`` x ``width`` x 3."""
        where = f"{self.path}/{self.split}/{sequence}/{self.array}" if self.is_zarr else f"{self.path}/{sequence}"
        if self.is_zarr:
            shape = tuple(self._zarr_array(sequence).shape)
            count, frame = (shape[0], shape[1:]) if len(shape) == 4 else (None, shape)
        else:
            files = self._png_files(sequence)
            if not files:
                raise MetricInputError(f"predictions {where} hold no *.png frames; write all {num_frames} of them")
            count, frame = len(files), self._read_png(files[0]).shape
        if count != num_frames:
            raise MetricInputError(
                f"predictions {where} have {count} frames, the ground truth has {num_frames}; write every frame"
            )
        if frame != (height, width, 3):
            raise MetricInputError(
                f"predictions {where} have frames of shape {frame}, the ground truth {(height, width, 3)} (H,W,3)"
            )
        self._shape[sequence] = (height, width, 3)

    @staticmethod
    def _read_png(path: Path, expected: tuple[int, int, int] | None = None) -> np.ndarray:
        import imageio.v3 as iio
        from PIL import Image

        try:
            with Image.open(path) as header:  # lazy: only the header is read here
                size = (header.height, header.width)
        except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            raise _unreadable(path, e) from None
        if expected is not None and size != expected[:2]:
            raise MetricInputError(
                f"frame {path} is {size[1]}x{size[0]}, the ground truth {expected[1]}x{expected[0]} (WxH); "
                "write every frame at the ground truth's size"
            )
        try:
            img = iio.imread(path)
        except Exception as e:  # a truncated or corrupt pixel stream fails only here
            raise _unreadable(path, e) from None
        if img.dtype != np.uint8:
            raise MetricInputError(f"frame {path} has dtype {img.dtype}; save predictions as 8-bit RGB PNG")
        if img.ndim != 3 or img.shape[2] != 3:
            raise MetricInputError(f"frame {path} has shape {img.shape}; save predictions as RGB (H,W,3) PNG")
        return img

    def read(self, sequence: str, frames: list[int]) -> np.ndarray:
        """uint8 (len(frames), H, W, 3) of the given frame indices."""
        if self.is_zarr:
            arr = self._zarr_array(sequence)
            lo, hi = min(frames), max(frames) + 1
            block = read_frames(arr, slice(lo, hi))
            return block[[f - lo for f in frames]]
        files = self._png_files(sequence)
        expected = self._shape.get(sequence)
        return np.stack([self._read_png(files[f], expected) for f in frames])

    def describe(self) -> dict[str, str]:
        """Where the predictions came from (for provenance)."""
        out = {"path": str(self.path.resolve()), "layout": self.kind}
        if self.is_zarr:
            out["array"] = self.array
        return out
