"""Fetch, verify (sha256) and safely extract a dataset's official archives into a data root.

Archives go to ``<data_root>/downloads/<file>``; a file already there is used as is (the offline
route: download it by hand and rerun). Extraction does not use the standard library's extractors
(whose safety depends on the Python version): every member is checked first, and an archive holding
anything but plain files and folders under relative paths (no absolute path, no ``..``; no symbolic
or hard link, device, FIFO or encrypted member) or more bytes than the disk has free is refused
before anything is written. The members are then copied into a hidden staging folder inside the
target and moved into place only when all of them were read, so a damaged archive leaves nothing.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import IO

from tqdm import tqdm

from cpgd_bench.provenance import sha256_file
from cpgd_bench.sources import SourceError
from cpgd_bench.sources.images import first_line
from cpgd_bench.sources.manifest import Download, load_manifest

#: What reading a damaged zip/tar (truncated, bad CRC, bad compressed data) may raise.
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError,
                RuntimeError, NotImplementedError, ValueError)  # fmt: skip


class DownloadError(SourceError):
    """A download, checksum or extraction problem (one-line message naming the file and the fix)."""


@dataclass
class DownloadReport:
    """What :func:`download_dataset` did, one line per archive."""

    dataset: str
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    """An archive member that passed the checks: its relative path parts, kind and size."""

    parts: tuple[str, ...]
    is_dir: bool
    size: int
    member: zipfile.ZipInfo | tarfile.TarInfo


def _entry(archive: Path, target: Path, name: str, why: str | None, is_dir: bool, size: int,
           member: zipfile.ZipInfo | tarfile.TarInfo) -> _Entry:  # fmt: skip
    """The checked entry of member ``name``; raises DownloadError when ``why`` (or its path) makes it unsafe."""
    path = PureWindowsPath(name)  # splits on '/' and '\\', sees drives and UNC roots
    if why is None and (path.drive or path.root):
        why = f"is an absolute path (it would be written outside {target})"
    elif why is None and ".." in path.parts:
        why = f"goes up with '..' (it could be written outside {target})"
    elif why is None and not path.parts and not is_dir:
        why = "is a file with an empty path"
    if why is not None:
        raise DownloadError(
            f"{archive}: member {name!r} {why}; dataset archives may hold only plain files and folders under "
            "relative paths, so nothing was extracted (get the archive from the dataset's official page again)"
        )
    return _Entry(path.parts, is_dir, size, member)


def _zip_entries(archive: Path, target: Path, zf: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    for info in zf.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)
        why = None
        if kind == stat.S_IFLNK:
            why = "is a symbolic link"
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            why = "is a device, FIFO or other special file"
        elif info.flag_bits & 0x1:
            why = "is encrypted"
        entries.append(_entry(archive, target, info.filename, why, info.is_dir(), info.file_size, info))
    return entries


def _tar_entries(archive: Path, target: Path, tf: tarfile.TarFile) -> list[_Entry]:
    entries = []
    for member in tf.getmembers():
        why = None
        if member.issym():
            why = f"is a symbolic link (to {member.linkname!r})"
        elif member.islnk():
            why = f"is a hard link (to {member.linkname!r})"
        elif not (member.isfile() or member.isdir()):
            why = "is a device, FIFO or other special file"
        entries.append(_entry(archive, target, member.name, why, member.isdir(), member.size, member))
    return entries


@contextmanager
def _checked(archive: Path, target: Path) -> Iterator[tuple[list[_Entry], zipfile.ZipFile | tarfile.TarFile]]:
    """The open archive and its checked entries (raises DownloadError naming the first unsafe member)."""
    with ExitStack() as stack:
        try:
            handle: zipfile.ZipFile | tarfile.TarFile
            if zipfile.is_zipfile(archive):
                handle = stack.enter_context(zipfile.ZipFile(archive))
                entries = _zip_entries(archive, target, handle)
            else:
                handle = stack.enter_context(tarfile.open(archive))
                entries = _tar_entries(archive, target, handle)
        except DownloadError:
            raise
        except _READ_ERRORS as e:
            raise DownloadError(
                f"{archive}: not a readable zip/tar archive ({first_line(e)}); delete it and download again"
            ) from None
        yield entries, handle


def _free_bytes(target: Path) -> int:
    """Free bytes on the filesystem that will hold ``target`` (its nearest existing ancestor)."""
    where = target.absolute()
    while not where.exists():
        where = where.parent
    return shutil.disk_usage(where).free


def _open(handle: zipfile.ZipFile | tarfile.TarFile, entry: _Entry) -> IO[bytes]:
    if isinstance(handle, zipfile.ZipFile):
        assert isinstance(entry.member, zipfile.ZipInfo)
        return handle.open(entry.member)
    assert isinstance(entry.member, tarfile.TarInfo)
    stream = handle.extractfile(entry.member)
    assert stream is not None  # a regular file (checked)
    return stream


def _merge(archive: Path, staging: Path, target: Path) -> None:
    """Move everything under ``staging`` into ``target`` (folders merged, files replaced); checks clashes first."""
    paths = sorted(staging.rglob("*"))
    for path in paths:
        dest = target / path.relative_to(staging)
        if dest.exists() and dest.is_dir() != path.is_dir():
            kind = "folder" if dest.is_dir() else "file"
            raise DownloadError(f"{archive}: {dest} is a {kind} already, the archive holds the other kind there; "
                                "move it away and extract again (nothing was extracted)")  # fmt: skip
    for path in paths:
        dest = target / path.relative_to(staging)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(path, dest)


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip or tar archive into ``target`` after checking every member (see module docstring)."""
    with _checked(archive, target) as (entries, handle):
        needed, free = sum(e.size for e in entries if not e.is_dir), _free_bytes(target)
        if needed > free:
            raise DownloadError(
                f"{archive}: its members add up to {needed / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB are free "
                f"for {target}; free disk space or extract it elsewhere (nothing was extracted)"
            )
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".cpgd-extract-", dir=target))
        try:
            for entry in entries:
                dest = staging.joinpath(*entry.parts)
                if entry.is_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with _open(handle, entry) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            _merge(archive, staging, target)
        except DownloadError:
            raise
        except _READ_ERRORS as e:
            raise DownloadError(
                f"{archive}: extraction failed ({first_line(e)}), nothing was kept; if the archive is damaged "
                "delete it and download again, else free disk space"
            ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


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
