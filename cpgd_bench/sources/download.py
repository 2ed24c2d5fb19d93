"""Fetch, verify (sha256) and safely extract a dataset's official archives into a data root.

Archives go to ``<data_root>/downloads/<file>``; a file already there is used as is (the offline
route: download it by hand and rerun). Extraction refuses archives with absolute paths, ``..``
components, or links that would land outside the target, before writing anything.
"""

from __future__ import annotations

import os
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from cpgd_bench.provenance import sha256_file
from cpgd_bench.sources import SourceError
from cpgd_bench.sources.images import first_line
from cpgd_bench.sources.manifest import Download, load_manifest


class DownloadError(SourceError):
    """A download, checksum or extraction problem (one-line message naming the file and the fix)."""


@dataclass
class DownloadReport:
    """What :func:`download_dataset` did, one line per archive."""

    dataset: str
    lines: list[str] = field(default_factory=list)


def _inside(target: Path, member: str) -> bool:
    """Whether archive member path ``member`` stays inside ``target`` once extracted."""
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and ":" in pure.parts[0]):
        return False
    return (target / pure).resolve().is_relative_to(target.resolve())


def _check_members(archive: Path, target: Path) -> None:
    """Raise DownloadError naming the first member of ``archive`` that would escape ``target``."""

    def refuse(name: str, why: str) -> DownloadError:
        return DownloadError(f"{archive}: member {name!r} {why}; refusing to extract (unsafe or corrupt archive)")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not _inside(target, info.filename):
                    raise refuse(info.filename, f"would be written outside {target}")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise refuse(info.filename, "is a symbolic link")
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if not _inside(target, member.name):
                raise refuse(member.name, f"would be written outside {target}")
            if member.issym() or member.islnk():
                base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
                if not _inside(target, str(base / member.linkname)):
                    raise refuse(member.name, f"links to {member.linkname!r} outside {target}")
            elif not (member.isfile() or member.isdir()):
                raise refuse(member.name, "is a device or special file")


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into ``target`` after checking every member (see module docstring)."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        _check_members(archive, target)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
        else:
            with tarfile.open(archive) as tf:
                # our checks above cover Pythons without extraction filters (< 3.10.12 / 3.11.4)
                tf.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DownloadError(
            f"{archive}: not a readable zip/tar archive ({first_line(e)}); delete it and download again"
        ) from None


def fetch(url: str, dest: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``, renamed when complete)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as fh:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
            while block := response.read(1 << 20):
                fh.write(block)
                bar.update(len(block))
    os.replace(part, dest)
    return dest


def _obtain(name: str, item: Download, archive: Path, progress: bool) -> None:
    where = item.page or item.url
    if item.url is None:
        raise DownloadError(f"{name}: {item.file} has no direct download; get it from {where} and put it at {archive}")
    try:
        fetch(item.url, archive, progress)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(
            f"could not download {item.url} ({first_line(e)}); offline? download {item.file} from {where} "
            f"and put it at {archive}, then rerun `cpgd-bench dataset download {name}`"
        ) from None


def download_dataset(name: str, data_root: str | Path, progress: bool = True) -> DownloadReport:
    """Fetch (unless present), verify and extract every archive of dataset ``name`` into ``data_root``."""
    manifest = load_manifest(name)
    data_root = Path(data_root)
    report = DownloadReport(manifest.name)
    if not manifest.downloads:
        raise DownloadError(
            f"{manifest.name} has no public archive ({manifest.path}); put its files under "
            f"{data_root / manifest.root_dirs[0]}/ as the manifest's layout says"
        )
    for item in manifest.downloads:
        archive = data_root / "downloads" / item.file
        if not archive.exists():
            _obtain(manifest.name, item, archive, progress)
        digest = sha256_file(archive)
        if item.sha256 and digest != item.sha256.lower():
            raise DownloadError(
                f"{archive}: sha256 {digest} does not match the manifest's {item.sha256}; delete it and download again"
            )
        check = "verified" if item.sha256 else "not published, computed"
        marker = data_root / "downloads" / f".{item.file}.extracted"
        if marker.exists() and marker.read_text().strip() == digest:
            report.lines.append(f"{item.file}: sha256 {digest} ({check}); already extracted into {data_root}")
            continue
        safe_extract(archive, data_root)
        marker.write_text(digest)
        report.lines.append(f"{item.file}: sha256 {digest} ({check}); extracted into {data_root}")
    return report


__all__ = ["DownloadError", "DownloadReport", "download_dataset", "fetch", "safe_extract"]
