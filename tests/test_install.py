"""Installs as a user would: package data read through cpgd_bench.resources, the user cache, a wheel in a fresh
environment running the main commands from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import find_packages
from setuptools.config.pyprojecttoml import read_configuration

from cpgd_bench import __version__, provenance, resources
from cpgd_bench.errors import CpgdBenchError

from .codec_clips import require_codec

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    """pyproject.toml lists its packages (four are mapped folders), so a new subpackage must be added there."""
    setuptools_cfg = read_configuration(REPO / "pyproject.toml", expand=False)["tool"]["setuptools"]
    mapped = set(setuptools_cfg["package-dir"])
    assert mapped == {"cpgd_bench.manifests", "cpgd_bench.codec_src", "cpgd_bench.vvc_patches",
                      "cpgd_bench.leaderboard_data"}
    assert set(setuptools_cfg["packages"]) - mapped == set(find_packages(str(REPO), include=["cpgd_bench*"]))


def test_package_data_is_read_through_resources() -> None:
    assert resources.manifest("codec", "profiles.yaml").is_file()
    assert resources.manifest("protocols", "cpgd-paper.yaml").is_file()
    assert (resources.codec_sources() / "build.sh").is_file() and (resources.codec_sources() / "prior_dump.c").is_file()
    patches = sorted(p.name for p in resources.vvc_patches().glob("*.patch"))  # 0001 contract, 0002 VVC, ...
    assert len(patches) >= 2 and [p[:5] for p in patches] == [f"{i:04d}-" for i in range(1, len(patches) + 1)]
    assert resources.reported_rows().read_text().startswith("table,dataset,protocol,method")
    with pytest.raises(CpgdBenchError, match=r"pip install -e \."):  # e.g. installed before the mapping existed
        resources._package_dir("cpgd_bench.absent")


def test_cache_home_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(resources.HOME_ENV, raising=False)
    assert resources.cache_home() == tmp_path / "home" / ".cache" / "cpgd-bench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: relative paths are invalid
    assert resources.cache_home() == tmp_path / "home" / ".cache" / "cpgd-bench"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resources.cache_home() == tmp_path / "xdg" / "cpgd-bench"
    monkeypatch.setenv(resources.HOME_ENV, str(tmp_path / "bench"))
    assert resources.codec_build_dir() == tmp_path / "bench" / "codec"


def test_code_version_outside_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    assert provenance.code_version() == f"cpgd-bench {__version__}"


@pytest.mark.codec
def test_codec_build_is_idempotent_and_says_where() -> None:
    """`cpgd-bench codec build` on the cache `make codec` filled: nothing rebuilt, the tool's path printed."""
    tool = require_codec()
    if os.environ.get("CPGD_PRIOR_DUMP"):
        pytest.skip("CPGD_PRIOR_DUMP points elsewhere than the cache")
    before = tool.stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-c", "from cpgd_bench.cli import main; main()", "codec", "build"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"prior-dump (patched): {tool}"
    assert tool.stat().st_mtime_ns == before


def _copy_source(dest: Path) -> Path:
    """The working tree's files a wheel is built from (not the checkout itself: no build/ or egg-info left there)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("cpgd_bench", "manifests", "vvc_patches", "leaderboard"):
        shutil.copytree(REPO / name, dest / name, ignore=junk)
    shutil.copytree(REPO / "codec", dest / "codec", ignore=lambda d, names: [*junk(d, names), "build"])
    return dest


@pytest.mark.codec
@pytest.mark.slow
def test_wheel_in_a_fresh_environment_runs_the_main_job(tmp_path: Path) -> None:
    """Build a wheel, install it into a new venv (dependencies from this environment), and from an empty folder
    build the sample store, run a model and write the report; the codec comes from the cache `make codec` filled."""
    require_codec()
    src = _copy_source(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("cpgd_bench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-deps",
                    "--no-index", "--force-reinstall", str(wheel)], check=True, capture_output=True, timeout=600)

    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", resources.HOME_ENV: str(resources.cache_home())}

    def cli(*args: str) -> str:
        done = subprocess.run(["cpgd-bench", *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"cpgd-bench {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run([str(python), "-c", "import cpgd_bench.resources as r; print(r.manifest())"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    site = Path(where).parents[1]
    assert site.is_relative_to(venv) and site.name == "site-packages", where  # the wheel, not the checkout
    cli("dataset", "build", "sample", "--out", "sample.zarr", "--jobs", "2")
    cli("run", "--model", "input", "--store", "sample.zarr", "--skip-unavailable")
    written = cli("report").split()  # the paper's reported rows come from the package
    assert written and all((work / p).is_file() for p in written)
    (run_json,) = (work / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["code_commit"] == f"cpgd-bench {__version__}"  # no git checkout here
