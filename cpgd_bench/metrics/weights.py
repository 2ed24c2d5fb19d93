"""Offline weight files of the metrics: one table (``manifests/weights.yaml``), local lookup, sha256 checks.

Nothing is ever downloaded. A file is looked up by name in ``--weights-dir``, then ``$CPGD_BENCH_WEIGHTS``,
then the torch hub cache pyiqa and torchvision use (``<hub>/pyiqa``, ``<hub>/checkpoints``); it is used
only if its sha256 matches the table. A missing or corrupt file is a one-line :class:`WeightsError`
naming the file, its sha256 and where to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cpgd_bench.metrics.errors import WeightsError
from cpgd_bench.provenance import WEIGHTS_ENV, sha256_file, user_weight_dirs
from cpgd_bench.resources import manifest

WEIGHTS_FILE = manifest("weights.yaml")
ENV_VAR = WEIGHTS_ENV


@dataclass(frozen=True)
class WeightFile:
    """One entry of the table."""

    name: str
    sha256: str
    size: int | None
    source: str
    note: str = ""


@dataclass(frozen=True)
class WeightsTable:
    """Every weight file (by name) and, per metric, its slots: slot -> acceptable file names, preferred first."""

    files: dict[str, WeightFile]
    metrics: dict[str, dict[str, list[str]]]

    def slots(self, metric: str) -> dict[str, list[str]]:
        """The slots of ``metric`` (empty for metrics that need no weights)."""
        return self.metrics.get(metric, {})


def load_table(path: Path | None = None) -> WeightsTable:
    """Parse the weights table; one-line error if it is malformed."""
    path = path or WEIGHTS_FILE
    try:
        raw = yaml.safe_load(path.read_text())
        files = {name: WeightFile(name=name, **spec) for name, spec in raw["files"].items()}
        metrics = {m: {slot: list(names) for slot, names in slots.items()} for m, slots in raw["metrics"].items()}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
        raise WeightsError(f"weights table {path} is unreadable or malformed ({e}); restore it from git") from None
    for metric, slots in metrics.items():
        for slot, names in slots.items():
            unknown = [n for n in names if n not in files]
            if unknown:
                raise WeightsError(f"weights table {path}: {metric}.{slot} names unlisted files {unknown}")
    return WeightsTable(files, metrics)


def search_dirs(weights_dir: Path | None = None) -> list[Path]:
    """Directories searched, in order: ``weights_dir``, ``$CPGD_BENCH_WEIGHTS``, the torch hub caches."""
    import torch.hub

    hub = Path(torch.hub.get_dir())
    return [*user_weight_dirs(weights_dir), hub / "pyiqa", hub / "checkpoints"]


def _describe(entry: WeightFile) -> str:
    return f"{entry.name} (sha256 {entry.sha256}); get it from {entry.source}"


def find_file(entry: WeightFile, dirs: list[Path]) -> Path | None:
    """The first verified copy of ``entry`` in ``dirs``; a copy with the wrong sha256 is an error."""
    for d in dirs:
        candidate = d / entry.name
        if candidate.is_file():
            actual = sha256_file(candidate)
            if actual != entry.sha256:
                raise WeightsError(
                    f"weights file {candidate} has sha256 {actual}, expected {entry.sha256}; "
                    f"replace it with a good copy from {entry.source}"
                )
            return candidate
    return None


def resolve(metric: str, weights_dir: Path | None = None, table: WeightsTable | None = None) -> dict[str, Path]:
    """Verified paths of every slot ``metric`` needs: ``{slot: path}``; one-line WeightsError if one is missing."""
    table = table or load_table()
    dirs = search_dirs(weights_dir)
    out: dict[str, Path] = {}
    for slot, names in table.slots(metric).items():
        for name in names:
            found = find_file(table.files[name], dirs)
            if found is not None:
                out[slot] = found
                break
        else:
            first = table.files[names[0]]
            alternatives = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            where = ", ".join(str(d) for d in dirs)
            raise WeightsError(
                f"metric {metric!r} needs weights file {_describe(first)}{alternatives}; "
                f"put it in --weights-dir or ${ENV_VAR} (searched: {where})"
            )
    return out


@dataclass(frozen=True)
class FileStatus:
    """Where (if anywhere) one table entry was found, and whether its sha256 matched."""

    entry: WeightFile
    metrics: list[str]
    status: str  # "ok", "missing" or "bad sha256"
    path: Path | None
    detail: str = ""


def file_status(weights_dir: Path | None = None, table: WeightsTable | None = None) -> list[FileStatus]:
    """Status of every file in the table (what `cpgd-bench weights list|verify` prints)."""
    table = table or load_table()
    dirs = search_dirs(weights_dir)
    users: dict[str, list[str]] = {name: [] for name in table.files}
    for metric, slots in table.metrics.items():
        for names in slots.values():
            for name in names:
                users[name].append(metric)
    out = []
    for name, entry in table.files.items():
        try:
            path = find_file(entry, dirs)
        except WeightsError as e:
            out.append(FileStatus(entry, users[name], "bad sha256", None, str(e)))
            continue
        out.append(FileStatus(entry, users[name], "ok" if path else "missing", path))
    return out


def metric_available(metric: str, weights_dir: Path | None = None, table: WeightsTable | None = None) -> str | None:
    """None if every slot of ``metric`` resolves, else the one-line reason it does not."""
    try:
        resolve(metric, weights_dir, table)
    except WeightsError as e:
        return str(e)
    return None
