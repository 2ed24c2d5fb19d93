"""Dataset manifests (``manifests/datasets/<name>.yaml``): downloads, layout, splits and sequences.

A manifest is data: where the official archives live (and their sha256 where published), which
directory names the dataset may have under a data root, the expected totals per split, and every
known sequence with its split, frame count and size. ``verified`` says which facts were checked
against the real data; :func:`check_counts` compares what an adapter found with the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cpgd_bench.resources import manifest
from cpgd_bench.sources import SourceError

MANIFEST_DIR = manifest("datasets")


class ManifestError(SourceError):
    """A missing or malformed dataset manifest (one-line message naming the file)."""


@dataclass(frozen=True)
class Download:
    """One official archive: file name, URL (None where only a web page offers it) and sha256 (None: unpublished)."""

    file: str
    url: str | None
    sha256: str | None
    page: str | None = None


@dataclass(frozen=True)
class SequenceEntry:
    """A sequence the manifest knows: split, frame count and size (None where unknown), raw-file facts."""

    name: str
    split: str
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bit_depth: int | None = None
    file: str | None = None


@dataclass(frozen=True)
class DatasetManifest:
    """A parsed manifest; ``raw`` keeps the whole YAML mapping."""

    name: str
    path: Path
    title: str
    root_dirs: tuple[str, ...]
    fps: float
    downloads: tuple[Download, ...]
    totals: dict[str, dict[str, int]]
    verified: dict[str, bool]
    sequences: tuple[SequenceEntry, ...]
    options: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def entry(self, name: str) -> SequenceEntry | None:
        """The manifest entry of sequence ``name`` (None if the manifest does not list it)."""
        return next((s for s in self.sequences if s.name == name), None)

    def find_root(self, data_root: Path) -> Path | None:
        """The first of ``root_dirs`` present under ``data_root`` (None when the dataset is not there)."""
        for name in self.root_dirs:
            if (Path(data_root) / name).is_dir():
                return Path(data_root) / name
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance recorded in a store: manifest name, file and verification flags."""
        return {"name": self.name, "file": self.path.name, "verified": dict(self.verified)}


def manifest_names() -> list[str]:
    """Names of the manifests in ``manifests/datasets``."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))


def _parse(path: Path, raw: dict[str, Any]) -> DatasetManifest:
    defaults = {k: raw.get(k) for k in ("width", "height", "fps", "bit_depth")}
    sequences = []
    for item in raw.get("sequences") or []:
        merged = {**{k: v for k, v in defaults.items() if v is not None}, **item}
        sequences.append(SequenceEntry(**{k: merged.get(k) for k in SequenceEntry.__dataclass_fields__}))
    downloads = tuple(
        Download(d["file"], d.get("url"), d.get("sha256"), d.get("page")) for d in raw.get("downloads") or []
    )
    return DatasetManifest(
        name=raw["name"],
        path=path,
        title=raw.get("title", raw["name"]),
        root_dirs=tuple(raw.get("root_dirs") or [raw["name"]]),
        fps=float(raw.get("fps", 30.0)),
        downloads=downloads,
        totals={k: dict(v) for k, v in (raw.get("totals") or {}).items()},
        verified=dict(raw.get("verified") or {}),
        sequences=tuple(sequences),
        options=dict(raw.get("options") or {}),
        raw=raw,
    )


@cache
def load_manifest(name_or_path: str | Path) -> DatasetManifest:
    """Load a manifest by dataset name (``gopro``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = MANIFEST_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ManifestError(f"no dataset manifest {path}; known: {', '.join(manifest_names())}")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
        return _parse(path, raw)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise ManifestError(f"{path}: malformed manifest ({type(e).__name__}: {e})") from None


@dataclass
class CheckReport:
    """What a raw dataset holds compared with its manifest: ``problems`` fail the check, ``notes`` do not."""

    sequences: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_counts(manifest: DatasetManifest | None, found: dict[tuple[str, str], int],
                 problems: list[str] | None = None) -> CheckReport:  # fmt: skip
    """Compare ``{(split, sequence): frames}`` found on disk with the manifest (None: just count).

    A problem contradicts a verified fact of the manifest (or is one of the given ``problems``, e.g.
    unreadable sequences); a note reports facts the manifest marks unverified, or sequences it does not list.
    """
    report = CheckReport(len(found), sum(found.values()), list(problems or []))
    if manifest is None:
        return report
    problems, notes = report.problems, report.notes
    for (split, name), frames in sorted(found.items()):
        entry = manifest.entry(name)
        if entry is None:
            notes.append(f"{split}/{name}: {frames} frames, not listed in {manifest.path.name}")
            continue
        if entry.split != split:
            problems.append(f"{split}/{name}: manifest puts it in split {entry.split!r}")
        if entry.frames is not None and entry.frames != frames:
            where = problems if manifest.verified.get("sequences") else notes
            where.append(f"{split}/{name}: {frames} frames, manifest says {entry.frames}")
    for split, want in sorted(manifest.totals.items()):
        got_seq = sum(1 for s, _ in found if s == split)
        got_frames = sum(f for (s, _), f in found.items() if s == split)
        line = (
            f"split {split}: found {got_seq} sequences, {got_frames} frames; "
            f"manifest says {want.get('sequences')} sequences, {want.get('frames')} frames"
        )
        if (got_seq, got_frames) == (want.get("sequences"), want.get("frames")):
            continue
        if got_seq == 0:
            notes.append(f"split {split}: not present (manifest says {want.get('sequences')} sequences)")
            continue
        (problems if manifest.verified.get("totals") else notes).append(line)
    listed = {(s.split, s.name) for s in manifest.sequences}
    missing = [f"{split}/{name}" for split, name in sorted(listed - set(found))]
    if missing:
        notes.append(f"{len(missing)} sequences listed in {manifest.path.name} not found: {', '.join(missing)}")
    return report
