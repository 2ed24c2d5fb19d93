"""Shared base of the on-disk adapters: manifest lookup, cheap frame counts, blur/sharp image folders.

:class:`DiskSource` is a :class:`Source` reading files under ``root`` that can count frames without
decoding them (for :meth:`DiskSource.check` against the manifest). :class:`PairedImageSource` serves
layouts where each sequence is a folder of blurred frames plus an optional folder of sharp frames
with the same file names (GoPro, DVD, generic folders).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source
from cpgd_bench.sources.images import list_frames, read_frames, sequence_size
from cpgd_bench.sources.limits import check_sequence_bytes
from cpgd_bench.sources.manifest import CheckReport, DatasetManifest, check_counts, load_manifest


class DiskSource(Source):
    """A source of files under ``root``, optionally described by a manifest."""

    def __init__(self, root: str | Path, manifest: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise SourceError(f"{self.name} root {self.root} does not exist")
        self.manifest: DatasetManifest | None = load_manifest(manifest) if manifest else None

    @abstractmethod
    def count_frames(self, ref: SequenceRef) -> int:
        """Frames of ``ref`` without decoding them (raises SourceError when they cannot be counted)."""

    def check(self) -> CheckReport:
        """Sequences and frames on disk compared with the manifest (see ``check_counts``)."""
        found: dict[tuple[str, str], int] = {}
        problems: list[str] = []
        for ref in self.sequences():
            try:
                found[(ref.split, ref.name)] = self.count_frames(ref)
            except SourceError as e:
                problems.append(str(e))
        return check_counts(self.manifest, found, problems)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.name, "root": str(self.root.resolve())}
        if self.manifest is not None:
            out["manifest"] = self.manifest.describe()
        return out


def check_names(ref: SequenceRef, where: Path) -> None:
    """Raise SourceError naming ``where`` (the folder or file behind ``ref``) when a name cannot be a store group."""
    from cpgd_bench.store.errors import StoreError
    from cpgd_bench.store.schema import check_name

    try:
        check_name("split", ref.split)
        check_name("sequence", ref.name)
    except StoreError as e:
        raise SourceError(f"{where}: {e}; rename it") from None


def pair_frames(blur_dir: Path, sharp_dir: Path | None) -> tuple[list[Path], list[Path] | None]:
    """Blur frame paths and their sharp counterparts (same stems), checked; raises SourceError naming the file."""
    if not blur_dir.is_dir():
        raise SourceError(f"{blur_dir}: missing frame folder")
    blur = list_frames(blur_dir)
    if not blur:
        raise SourceError(f"{blur_dir}: no PNG/JPEG frames")
    if sharp_dir is None:
        return blur, None
    if not sharp_dir.is_dir():
        raise SourceError(f"{sharp_dir}: missing sharp frame folder")
    sharp = {p.stem: p for p in list_frames(sharp_dir)}
    missing = [p for p in blur if p.stem not in sharp]
    if missing:
        raise SourceError(
            f"{sharp_dir / missing[0].name}: missing sharp frame ({len(missing)} of {len(blur)} blur frames "
            "have no sharp counterpart)"
        )
    if len(sharp) != len(blur):
        extra = sorted(set(sharp) - {p.stem for p in blur})
        raise SourceError(
            f"{sharp_dir}: mismatched frame counts, {len(sharp)} sharp vs {len(blur)} blur frames in {blur_dir} "
            f"(extra sharp frame {sharp[extra[0]].name})"
        )
    return blur, [sharp[p.stem] for p in blur]


class PairedImageSource(DiskSource):
    """Sequences stored as a blur folder and an optional sharp folder of identically named images.

    Subclasses fill ``self._folders`` (ref -> (blur folder, sharp folder or None)) in ``__init__``.
    """

    fps: float = 30.0

    def __init__(self, root: str | Path, manifest: str | Path | None = None) -> None:
        super().__init__(root, manifest)
        self._folders: dict[SequenceRef, tuple[Path, Path | None]] = {}

    def sequences(self) -> list[SequenceRef]:
        return list(self._folders)

    def count_frames(self, ref: SequenceRef) -> int:
        blur, _ = pair_frames(*self._folders[ref])
        return len(blur)

    def load(self, ref: SequenceRef) -> SequenceFrames:
        blur_dir, sharp_dir = self._folders[ref]
        check_names(ref, blur_dir.parent)
        blur, sharp = pair_frames(blur_dir, sharp_dir)
        size = sequence_size(blur)
        if sharp is not None and (sharp_size := sequence_size(sharp)) != size:
            raise SourceError(
                f"{sharp[0]}: sharp frames are {sharp_size[0]}x{sharp_size[1]}, blur frames {size[0]}x{size[1]}"
            )
        check_sequence_bytes(str(blur_dir), len(blur), *size, arrays=1 if sharp is None else 2)
        blur_frames = read_frames(blur, size)
        sharp_frames = None if sharp is None else read_frames(sharp, size)
        attrs = {"blur_dir": self._relative(blur_dir), "sharp_dir": self._relative(sharp_dir) if sharp_dir else None}
        return SequenceFrames(
            blur=blur_frames,
            sharp=sharp_frames,
            fps=self.fps,
            frame_names=[p.name for p in blur],
            attrs=attrs,
        )

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
