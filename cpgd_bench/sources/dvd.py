"""DVD (DeepVideoDeblurring, Su et al. 2017): ``quantitative_datasets/<video>/{input,GT}/*.jpg``.

``root`` may be the ``quantitative_datasets`` folder or any folder above it that the manifest's
``root_dirs`` name. The test split is the manifest's ``test_sequences`` (10 videos); every other
video is training data. Frames are JPEG as distributed (the store keeps them as decoded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceRef
from cpgd_bench.sources.options import manifest_ref, store_names
from cpgd_bench.sources.paired import PairedImageSource

QUANTITATIVE = "quantitative_datasets"


class DVDSource(PairedImageSource):
    """The DVD quantitative videos with their ground truth; ``splits`` limits which splits are built."""

    name = "dvd"

    def __init__(
        self,
        root: str | Path,
        splits: tuple[str, ...] | list[str] = ("train", "test"),
        manifest: str | Path = "dvd",
    ) -> None:
        super().__init__(root, manifest_ref(self.name, manifest))
        splits = store_names(self.name, "splits", splits)
        assert self.manifest is not None
        self.fps = self.manifest.fps
        base = self.manifest.find_root(self.root) or self.root
        self.root = base / QUANTITATIVE if (base / QUANTITATIVE).is_dir() else base
        videos = sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "input").is_dir())
        if not videos:
            raise SourceError(
                f"{self.root}: no <video>/input/ folders; expected the DeepVideoDeblurring layout "
                f"{QUANTITATIVE}/<video>/{{input,GT}}/ (see `cpgd-bench dataset download dvd`)"
            )
        test = set(self.manifest.raw.get("test_sequences") or [])
        for video in videos:
            split = "test" if video.name in test else "train"
            if split in splits:
                self._folders[SequenceRef(split, video.name)] = (video / "input", video / "GT")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "input": "input", "ground_truth": "GT"}
