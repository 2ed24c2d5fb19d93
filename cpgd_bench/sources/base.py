"""The `Source` interface: where a dataset's frames come from, before coding.

A source lists its sequences cheaply (:meth:`Source.sequences`) and loads one at a time
(:meth:`Source.load`), so a build holds a single sequence in memory. To add a dataset layout
(GoPro, DVD, a folder of PNGs...), subclass :class:`Source`, then register it in
``cpgd_bench.sources._SOURCES``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SequenceRef:
    """One sequence of a source: its split and name in the store."""

    split: str
    name: str


@dataclass
class SequenceFrames:
    """A loaded sequence: uint8 RGB frames (T, H, W, 3) in display order, plus metadata.

    ``sharp`` is the ground truth (``None`` where the dataset has none); ``extra`` holds optional
    schema arrays the source knows (e.g. ``camera`` for synthetic data); ``attrs`` extra group
    attributes (JSON-serialisable).
    """

    blur: np.ndarray
    fps: float
    frame_names: list[str]
    sharp: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = len(self.blur)
        if self.blur.dtype != np.uint8 or self.blur.ndim != 4 or self.blur.shape[-1] != 3:
            raise ValueError(f"blur frames must be uint8 (T,H,W,3), got {self.blur.dtype} {self.blur.shape}")
        if self.sharp is not None and self.sharp.shape != self.blur.shape:
            raise ValueError(f"sharp frames {self.sharp.shape} do not match blur frames {self.blur.shape}")
        if len(self.frame_names) != t:
            raise ValueError(f"{len(self.frame_names)} frame names for {t} frames")


class Source(ABC):
    """A dataset's frame source. ``name`` is the dataset name recorded in the store."""

    name: str

    @abstractmethod
    def sequences(self) -> list[SequenceRef]:
        """All sequences, in build order (no frame is read here)."""

    @abstractmethod
    def load(self, ref: SequenceRef) -> SequenceFrames:
        """Read or render one sequence."""

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable provenance recorded in the store's root attributes."""
        return {"source": self.name}
