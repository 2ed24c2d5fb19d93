"""Frame sources for dataset builds: one adapter per dataset layout behind :class:`Source`.

``get_source("sample")`` gives the synthetic sample; adapters taking a directory get ``root``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source

# name -> "module:class"; the class is called as cls(root=..., **options) (root omitted when None).
_SOURCES = {
    "sample": "cpgd_bench.sources.synthetic:SampleSource",
    "gopro": "cpgd_bench.sources.gopro:GoProSource",
    "dvd": "cpgd_bench.sources.dvd:DVDSource",
    "hqvideo": "cpgd_bench.sources.hqvideo:HQVideoSource",
    "folder": "cpgd_bench.sources.folder:FolderSource",
    "realclips": "cpgd_bench.sources.realclips:RealClipsSource",
}


class SourceError(CpgdBenchError, ValueError):
    """Unknown source name or unusable source options (one-line message)."""


def source_names() -> list[str]:
    """Names accepted by :func:`get_source`."""
    return sorted(_SOURCES)


def get_source(name: str, root: str | Path | None = None, **options: Any) -> Source:
    """Instantiate the source registered as ``name``."""
    if name not in _SOURCES:
        raise SourceError(f"unknown dataset source {name!r}; choose one of: {', '.join(source_names())}")
    module, attr = _SOURCES[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    if root is not None:
        options["root"] = Path(root)
    try:
        return cls(**options)
    except TypeError as e:
        raise SourceError(f"source {name!r} does not take these options ({e}); see its docs") from None


__all__ = ["SequenceFrames", "SequenceRef", "Source", "SourceError", "get_source", "source_names"]
