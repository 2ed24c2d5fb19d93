"""GoPro (GOPRO_Large, Nah et al. 2017): ``<root>/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png``.

``blur`` is the blurred variant used as input (``blur``: frames averaged after gamma decoding, what
video deblurring methods commonly read; ``blur_gamma``: averaged in gamma-encoded values). The choice
is recorded in the store. ``root`` may be the ``GOPRO_Large`` folder or a folder containing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceRef
from cpgd_bench.sources.options import manifest_ref, store_names
from cpgd_bench.sources.paired import PairedImageSource

BLUR_VARIANTS = ("blur", "blur_gamma")
SPLITS = ("train", "test")


class GoProSource(PairedImageSource):
    """The GoPro dataset in its official layout; ``splits`` limits which splits are built."""

    name = "gopro"

    def __init__(
        self,
        root: str | Path,
        blur: str = "blur",
        splits: tuple[str, ...] | list[str] = SPLITS,
        manifest: str | Path = "gopro",
    ) -> None:
        super().__init__(root, manifest_ref(self.name, manifest))
        splits = store_names(self.name, "splits", splits)
        if blur not in BLUR_VARIANTS:
            raise SourceError(f"gopro: blur variant {blur!r} is not one of {', '.join(BLUR_VARIANTS)}")
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise SourceError(f"gopro: unknown split {unknown[0]!r}; choose from {', '.join(SPLITS)}")
        self.blur = blur
        assert self.manifest is not None
        self.fps = self.manifest.fps
        self.root = self.manifest.find_root(self.root) or self.root
        present = [s for s in SPLITS if (self.root / s).is_dir()]
        if not present:
            raise SourceError(
                f"{self.root}: no train/ or test/ folder; expected the GOPRO_Large layout "
                "<root>/{train,test}/<sequence>/{blur,blur_gamma,sharp}/ (see `cpgd-bench dataset download gopro`)"
            )
        for split in splits:
            if split not in present:
                continue
            for seq in sorted(p for p in (self.root / split).iterdir() if p.is_dir()):
                self._folders[SequenceRef(split, seq.name)] = (seq / blur, seq / "sharp")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "blur_variant": self.blur}
