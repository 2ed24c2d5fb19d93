"""HQ-Video: raw YUV 4:2:0 sequences (JVET CTC and MCML), sharp only, for the stage-2 training mix.

Every ``*.yuv`` under ``root`` (recursively) is one video. Width, height, bit depth and frame rate
come from the manifest entry whose ``file`` matches, else from the name convention (see
:mod:`cpgd_bench.sources.yuv`); an unnamed bit depth means 8 bit, an unnamed rate the manifest's
``fps``. Long videos are cut into segments of ``segment_frames`` frames (``<name>_s000``, ...) so a
build holds one segment in memory (a 300-frame 4K video is 7.5 GB as RGB); ``segment_frames=None``
keeps whole videos. A file whose geometry or length is outside :data:`cpgd_bench.sources.limits.LIMITS`
(e.g. ``Zero_0x0.yuv``) is listed and fails only its own sequence, with one line naming it. The
frames are sharp: the store's ``blur`` and ``sharp`` both hold them, so the
coding degradation (``decoded``) is the only one, and ``CodingPriorDataset`` finds its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef
from cpgd_bench.sources.limits import check_sequence_bytes
from cpgd_bench.sources.manifest import CheckReport, check_counts
from cpgd_bench.sources.options import manifest_ref, store_name, whole_number
from cpgd_bench.sources.paired import DiskSource, check_names
from cpgd_bench.sources.yuv import YuvSpec, count_yuv_frames, parse_yuv_name, read_yuv_rgb


@dataclass(frozen=True)
class _Item:
    """Where one sequence (a whole video or a segment) comes from; ``error`` is raised on use."""

    path: Path
    spec: YuvSpec | None
    start: int = 0
    count: int = 0
    segment: int | None = None
    error: SourceError | None = None


class HQVideoSource(DiskSource):
    """Raw ``.yuv`` videos under ``root``, all in split ``split``."""

    name = "hqvideo"

    def __init__(
        self,
        root: str | Path,
        segment_frames: int | None = -1,
        split: str = "train",
        manifest: str | Path = "hqvideo",
    ) -> None:
        super().__init__(root, manifest_ref(self.name, manifest))
        assert self.manifest is not None
        if segment_frames == -1:
            segment_frames = self.manifest.options.get("segment_frames")
        if segment_frames is not None:
            segment_frames = whole_number(self.name, "segment_frames", segment_frames, 1)
        self.segment_frames = segment_frames
        self.split = store_name(self.name, "split", split)
        self.root = self.manifest.find_root(self.root) or self.root
        files = sorted(self.root.rglob("*.yuv")) if self.root.is_dir() else [self.root]
        if not files:
            raise SourceError(
                f"{self.root}: no .yuv files; put the raw sequences there, named like Name_1920x1080_50.yuv "
                "(see `cpgd-bench dataset download hqvideo`)"
            )
        self._items: dict[SequenceRef, _Item] = {}
        for path in files:
            self._add(path)

    def _spec(self, path: Path) -> tuple[str, YuvSpec]:
        entry = next((s for s in self.manifest.sequences if s.file == path.name), None) if self.manifest else None
        try:
            name, facts = parse_yuv_name(path)
        except SourceError:
            if entry is None or entry.width is None or entry.height is None:
                raise
            name, facts = entry.name, {}
        if entry is not None:
            name = entry.name
            facts.update({k: getattr(entry, k) for k in ("width", "height", "fps", "bit_depth") if getattr(entry, k)})
        fps = float(facts.get("fps") or (self.manifest.fps if self.manifest else 30.0))
        spec = YuvSpec(int(facts["width"]), int(facts["height"]), int(facts.get("bit_depth", 8)), fps)
        return name, spec

    def _add(self, path: Path) -> None:
        """List ``path`` as one or more sequences; a problem becomes the error of the one sequence it names."""
        ref = SequenceRef(self.split, path.stem)
        spec = None
        try:
            name, spec = self._spec(path)
            ref = SequenceRef(self.split, name)
            total = count_yuv_frames(path, spec)
            check_names(ref, path)
            seg = self.segment_frames
            longest = total if seg is None else min(seg, total)
            check_sequence_bytes(str(path), longest, spec.width, spec.height,
                                 fix="build it in shorter segments (-o segment_frames=100)")  # fmt: skip
        except SourceError as e:
            self._items[ref] = _Item(path, spec, error=e)
            return
        if seg is None or total <= seg:
            self._items[ref] = _Item(path, spec, 0, total)
            return
        for k, start in enumerate(range(0, total, seg)):
            self._items[SequenceRef(self.split, f"{name}_s{k:03d}")] = _Item(
                path, spec, start, min(seg, total - start), segment=k
            )

    def sequences(self) -> list[SequenceRef]:
        return list(self._items)

    def _item(self, ref: SequenceRef) -> _Item:
        item = self._items[ref]
        if item.error is not None:
            raise item.error
        return item

    def count_frames(self, ref: SequenceRef) -> int:
        return self._item(ref).count

    def check(self) -> CheckReport:
        """As :meth:`DiskSource.check`, with segments counted as their whole video."""
        problems = [str(i.error) for i in self._items.values() if i.error is not None]
        found: dict[tuple[str, str], int] = {}
        for ref, item in self._items.items():
            if item.error is None:
                name = ref.name if item.segment is None else ref.name.rsplit("_s", 1)[0]
                found[(ref.split, name)] = found.get((ref.split, name), 0) + item.count
        return check_counts(self.manifest, found, problems)

    def load(self, ref: SequenceRef) -> SequenceFrames:
        item = self._item(ref)
        assert item.spec is not None
        frames = read_yuv_rgb(item.path, item.spec, item.start, item.count)
        return SequenceFrames(
            blur=frames,
            sharp=frames,
            fps=float(item.spec.fps or 30.0),
            frame_names=[f"{item.start + i:05d}" for i in range(item.count)],
            attrs={
                "file": str(item.path.relative_to(self.root)) if item.path != self.root else item.path.name,
                "width": item.spec.width,
                "height": item.spec.height,
                "bit_depth": item.spec.bit_depth,
                "first_frame": item.start,
                "segment": item.segment,
                "content": "sharp video: blur and sharp both hold the original frames",
            },
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "segment_frames": self.segment_frames, "split": self.split}
