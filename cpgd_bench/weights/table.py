"""The one weights table (``manifests/weights.yaml``), the one lookup order, sha256 checks and ``torch.load``.

Nothing is ever downloaded. A file is looked up by name, first match wins (:func:`search_dirs`):

1. an explicit path (``--sd``, ``--diffbir``, ``--weights``, ``raft_weights``, a baseline checkout's own file),
2. ``--weights-dir``, 3. ``$CPGD_BENCH_WEIGHTS``, 4. ``./weights``,
5. the torch hub caches pyiqa and torchvision use (``<hub>/pyiqa``, ``<hub>/checkpoints``),
6. the files bundled with the package (``cpgd_bench/weights/``).

A file whose entry has a sha256 is used only if it matches; an entry with ``sha256: null`` says why
(``unverified``), and such a file's computed sha256 is reported as unverified. Every problem is a one-line
:class:`WeightsError` naming the file and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.provenance import sha256_file
from cpgd_bench.resources import manifest

TABLE_FILE = manifest("weights.yaml")
ENV_VAR = "CPGD_BENCH_WEIGHTS"


class WeightsError(CpgdBenchError, RuntimeError):
    """A weight file is missing, unreadable, or present with the wrong sha256; the message says which and the fix."""


@dataclass(frozen=True)
class WeightFile:
    """One entry of the table (``sha256`` None: no known digest, ``unverified`` says why)."""

    name: str
    sha256: str | None
    size: int | None
    source: str
    licence: str = ""
    note: str = ""
    unverified: str = ""


@dataclass(frozen=True)
class WeightsTable:
    """Every weight file by name; per metric and per model its slots: slot -> acceptable names, preferred first."""

    files: dict[str, WeightFile]
    metrics: dict[str, dict[str, list[str]]]
    models: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def slots(self, user: str) -> dict[str, list[str]]:
        """The slots of metric or model ``user`` (empty for one that needs no weights)."""
        return self.metrics.get(user) or self.models.get(user, {})

    def users(self, name: str) -> list[str]:
        """``user.slot`` for every slot that accepts file ``name``."""
        return [f"{user}.{slot}" for group in (self.metrics, self.models) for user, slots in group.items()
                for slot, names in slots.items() if name in names]


def _slots(raw: dict[str, Any], key: str) -> dict[str, dict[str, list[str]]]:
    return {user: {slot: list(names) for slot, names in slots.items()} for user, slots in (raw.get(key) or {}).items()}


def load_table(path: Path | None = None) -> WeightsTable:
    """Parse the weights table; one-line error if it is malformed."""
    path = path or TABLE_FILE
    try:
        raw = yaml.safe_load(path.read_text())
        table = WeightsTable({name: WeightFile(name=name, **spec) for name, spec in raw["files"].items()},
                             _slots(raw, "metrics"), _slots(raw, "models"))
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
        raise WeightsError(f"weights table {path} is unreadable or malformed ({e}); restore it from git") from None
    for group in (table.metrics, table.models):
        for user, slots in group.items():
            for slot, names in slots.items():
                if unknown := [n for n in names if n not in table.files]:
                    raise WeightsError(f"weights table {path}: {user}.{slot} names unlisted files {unknown}")
    return table


def bundled_dir() -> Path:
    """The folder of the weights bundled with the package (``cpgd_bench/weights/``)."""
    return Path(str(files("cpgd_bench.weights")))


def search_dirs(weights_dir: Path | None = None) -> list[Path]:
    """Folders searched, in order: ``weights_dir``, ``$CPGD_BENCH_WEIGHTS``, ``./weights``, hub caches, bundled."""
    import torch.hub

    hub = Path(torch.hub.get_dir())
    env = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    return [*([Path(weights_dir)] if weights_dir else []), *env, Path("weights"), hub / "pyiqa", hub / "checkpoints",
            bundled_dir()]


@dataclass(frozen=True)
class Resolved:
    """A weight file found on disk: its path, computed sha256 (None for a folder), whether it matched the table."""

    path: Path
    sha256: str | None
    verified: bool


def check_file(path: Path, entry: WeightFile | None) -> Resolved:
    """Hash ``path`` and compare with its entry's sha256 (if it has one); a mismatch is a one-line error."""
    if path.is_dir():
        return Resolved(path, None, False)
    digest = sha256_file(path)
    if entry is None or entry.sha256 is None:
        return Resolved(path, digest, False)
    if digest != entry.sha256:
        raise WeightsError(f"weights file {path} has sha256 {digest}, expected {entry.sha256}; "
                           f"replace it with a good copy from {entry.source}")
    return Resolved(path, digest, True)


def find(names: tuple[str, ...] | list[str], explicit: Path | None = None, weights_dir: Path | None = None,
         table: WeightsTable | None = None) -> Resolved | None:
    """``explicit`` if given (it must exist), else the first of ``names`` in :func:`search_dirs`, checked; or None."""
    table = table or load_table()
    if explicit is not None:
        explicit = Path(explicit)
        if not explicit.exists():
            hint = " or ".join(f"{n} ({table.files[n].source})" for n in names if n in table.files)
            raise WeightsError(f"weight file {explicit} does not exist; get {hint or 'the right file'}")
        return check_file(explicit, table.files.get(explicit.name))
    for folder in search_dirs(weights_dir):
        for name in names:
            if (folder / name).exists():
                return check_file(folder / name, table.files.get(name))
    return None


def missing_message(names: tuple[str, ...] | list[str], weights_dir: Path | None = None,
                    table: WeightsTable | None = None) -> str:
    """One line: which file is missing (with its sha256), where to get it, where it was looked for."""
    first = (table or load_table()).files[names[0]]
    digest = f"sha256 {first.sha256}" if first.sha256 else "no published sha256"
    where = ", ".join(str(d) for d in search_dirs(weights_dir))
    return (f"no {' / '.join(names)} in {where}; get {first.name} ({digest}) from {first.source} and put it in "
            f"--weights-dir or ${ENV_VAR}")


def resolve(user: str, weights_dir: Path | None = None, table: WeightsTable | None = None) -> dict[str, Path]:
    """Checked paths of every slot metric or model ``user`` needs, ``{slot: path}``; WeightsError if one is missing."""
    table = table or load_table()
    out: dict[str, Path] = {}
    for slot, names in table.slots(user).items():
        found = find(names, None, weights_dir, table)
        if found is None:
            kind = "metric" if user in table.metrics else "model"
            raise WeightsError(f"{kind} {user!r} needs weights file {names[0]}: "
                               f"{missing_message(names, weights_dir, table)}")
        out[slot] = found.path
    return out


def available(user: str, weights_dir: Path | None = None, table: WeightsTable | None = None) -> str | None:
    """None if every slot of ``user`` resolves, else the one-line reason it does not."""
    try:
        resolve(user, weights_dir, table)
    except WeightsError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class FileStatus:
    """Where (if anywhere) one table entry was found, and its check: ok, unverified, missing or bad sha256."""

    entry: WeightFile
    users: list[str]
    status: str
    path: Path | None
    detail: str = ""


def file_status(weights_dir: Path | None = None, table: WeightsTable | None = None) -> list[FileStatus]:
    """Status of every file in the table (what ``cpgd-bench weights list|verify`` prints)."""
    table = table or load_table()
    out = []
    for name, entry in table.files.items():
        users = table.users(name)
        try:
            found = find((name,), None, weights_dir, table)
        except WeightsError as e:
            out.append(FileStatus(entry, users, "bad sha256", None, str(e)))
            continue
        if found is None:
            out.append(FileStatus(entry, users, "missing", None))
        elif found.verified:
            out.append(FileStatus(entry, users, "ok", found.path))
        else:
            detail = f"sha256 {found.sha256}" if found.sha256 else "a folder"
            out.append(FileStatus(entry, users, "unverified", found.path, f"{detail} ({entry.unverified})"))
    return out


def load_torch(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; any failure is a one-line WeightsError."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle/zip/OS errors differ by torch version; all mean "cannot use it"
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise WeightsError(f"weights file {path} cannot be read as a tensor-only torch file ({type(e).__name__}: "
                           f"{first}); is it the right file, written by torch.save?") from None
