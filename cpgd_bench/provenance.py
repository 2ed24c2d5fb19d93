"""Where files come from: file digests and git commits (shared by every part; weight lookup: cpgd_bench.weights)."""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

from cpgd_bench import __version__

#: The checkout this code runs from, when it runs from one (editable install or PYTHONPATH); see code_version.
REPO = Path(__file__).resolve().parents[1]


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, cached per (path, size, mtime) so large weights are hashed once per process."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def git_commit(checkout: Path, mark_dirty: bool = True) -> str | None:
    """``git rev-parse HEAD`` of ``checkout`` (``-dirty`` appended if tracked files changed), None outside git."""
    try:
        head, dirty = (
            subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True, timeout=60)
            .stdout.strip()
            for args in (("rev-parse", "HEAD"), ("status", "--porcelain", "--untracked-files=no"))
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"{head}-dirty" if dirty and mark_dirty else head


def code_version() -> str:
    """What code this is: the git commit of the checkout it runs from (see :func:`git_commit`), else (an installed
    wheel, or no git) ``cpgd-bench <version>``."""
    commit = git_commit(REPO) if (REPO / ".git").exists() else None
    return commit or f"cpgd-bench {__version__}"
