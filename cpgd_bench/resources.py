"""Where files live: what ships with the package (read with :mod:`importlib.resources`) and the user cache.

``pyproject.toml`` maps the checkout's top-level ``manifests/``, ``codec/``, ``vvc_patches/`` and ``leaderboard/``
(its ``reported.csv``) folders into the package as ``cpgd_bench.manifests``, ``cpgd_bench.codec_src``,
``cpgd_bench.vvc_patches`` and ``cpgd_bench.leaderboard_data``, so an
editable install and a wheel read them by the same names. What is built on the user's machine (the codec)
goes to the cache: ``$CPGD_BENCH_HOME``, default ``$XDG_CACHE_HOME/cpgd-bench`` or ``~/.cache/cpgd-bench``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from cpgd_bench.errors import CpgdBenchError

#: Environment variable naming the cache folder (the codec build).
HOME_ENV = "CPGD_BENCH_HOME"


def _package_dir(package: str) -> Path:
    try:
        root = files(package)
    except ModuleNotFoundError:  # a checkout on PYTHONPATH, or installed before the mapping existed
        raise CpgdBenchError(f"{package} not found: install cpgd-bench (in a checkout: pip install -e .)") from None
    if not isinstance(root, Path):
        raise CpgdBenchError(f"{package} is not installed as plain files (zipped?); reinstall cpgd-bench with pip")
    return root


def manifest(*parts: str) -> Path:
    """A file or folder of ``manifests/`` (datasets, protocols, codec profiles, weight tables, training configs)."""
    return _package_dir("cpgd_bench.manifests").joinpath(*parts)


def codec_sources() -> Path:
    """The folder holding the codec's ``build.sh``, ``fetch_source.sh`` and ``prior_dump.c``."""
    return _package_dir("cpgd_bench.codec_src")


def vvc_patches() -> Path:
    """The folder holding the FFmpeg patches (``*.patch``, applied in name order)."""
    return _package_dir("cpgd_bench.vvc_patches")


def reported_rows() -> Path:
    """The paper's reported rows, ``leaderboard/reported.csv`` (what ``cpgd-bench report`` uses by default)."""
    return _package_dir("cpgd_bench.leaderboard_data") / "reported.csv"


def cache_home() -> Path:
    """The user cache: ``$CPGD_BENCH_HOME``, else ``$XDG_CACHE_HOME/cpgd-bench``, else ``~/.cache/cpgd-bench``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "cpgd-bench"


def codec_build_dir() -> Path:
    """Where ``cpgd-bench codec build`` puts the FFmpeg source and each variant's ``bin/prior-dump``."""
    return cache_home() / "codec"
