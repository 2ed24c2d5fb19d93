"""Read-only access to a coding-prior store: splits, sequences, groups and attributes.

>>> store = open_store("data/stores/sample.zarr")      # doctest: +SKIP
>>> for split in store.splits():                       # doctest: +SKIP
...     for seq in store.sequences(split):
...         g = store.group(split, seq)                  # a zarr.Group: g["mv"][0:7], g.attrs["fps"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zarr

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.schema import FORMAT_VERSION


def _node_type(directory: Path) -> str | None:
    meta = directory / "zarr.json"
    try:
        return json.loads(meta.read_text()).get("node_type")
    except (OSError, ValueError):
        return None


def is_group_dir(directory: Path) -> bool:
    """Whether ``directory`` is a finished, visible group (temporary names start with ``.``)."""
    return not directory.name.startswith(".") and _node_type(directory) == "group"


def read_root_attrs(path: Path) -> dict[str, Any]:
    """The root group's attributes, or a one-line StoreError if ``path`` is not a store."""
    if not path.exists():
        raise StoreError(f"no store at {path}; build one with `cpgd-bench dataset build sample --out {path}`")
    if _node_type(path) != "group":
        raise StoreError(f"{path} is not a coding-prior store (no Zarr v3 group metadata); check the path")
    return dict(json.loads((path / "zarr.json").read_text()).get("attributes", {}))


def check_format(path: Path, attrs: dict[str, Any]) -> None:
    """Raise a one-line StoreError unless the store has this package's format version."""
    version = attrs.get("format_version")
    dataset = attrs.get("dataset", "<dataset>")
    if version == FORMAT_VERSION:
        return
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise StoreError(
            f"store {path} has format version {version}, newer than this cpgd-bench reads "
            f"({FORMAT_VERSION}); upgrade cpgd-bench"
        )
    raise StoreError(
        f"store {path} has format version {version}, this cpgd-bench reads version {FORMAT_VERSION}; "
        f"rebuild it: delete it and run `cpgd-bench dataset build {dataset} --out {path}`"
    )


class CodingPriorStore:
    """An opened store. Cheap to create; holds no open file handles (safe to pickle by path)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.attrs: dict[str, Any] = read_root_attrs(self.path)
        check_format(self.path, self.attrs)
        self._root: zarr.Group | None = None

    @property
    def dataset(self) -> str:
        """Dataset name recorded at creation (e.g. ``sample``)."""
        return str(self.attrs.get("dataset", ""))

    @property
    def root(self) -> zarr.Group:
        """The root Zarr group, opened read-only on first use."""
        if self._root is None:
            self._root = zarr.open_group(self.path, mode="r", zarr_format=3, use_consolidated=False)
        return self._root

    def splits(self) -> list[str]:
        """Split names, sorted."""
        return sorted(d.name for d in self.path.iterdir() if d.is_dir() and is_group_dir(d))

    def sequences(self, split: str) -> list[str]:
        """Finished sequences of ``split``, sorted (in-progress temporary groups are not listed)."""
        split_dir = self.path / split
        if split.startswith(".") or not is_group_dir(split_dir):
            have = ", ".join(self.splits()) or "none"
            raise StoreError(f"store {self.path} has no split {split!r} (splits: {have}); pick one of those")
        return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and is_group_dir(d))

    def group(self, split: str, sequence: str) -> zarr.Group:
        """The Zarr group of one sequence (arrays ``decoded``, ``mv``, ...; see ``store.schema``)."""
        if sequence not in self.sequences(split):
            raise StoreError(
                f"store {self.path} has no sequence {sequence!r} in split {split!r}; "
                "list them with `cpgd-bench dataset info`"
            )
        return self.root[f"{split}/{sequence}"]  # type: ignore[return-value]

    def sequence_attrs(self, split: str, sequence: str) -> dict[str, Any]:
        """Attributes of one sequence group (fps, frame_names, codec, checksums, ...)."""
        return dict(self.group(split, sequence).attrs)


def open_store(path: str | Path) -> CodingPriorStore:
    """Open an existing store read-only; one-line StoreError if missing or of another format."""
    return CodingPriorStore(path)
