"""Build drivers killed alone (SIGKILL of the parent process only) at several points, loky and Dask, then rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cpgd_bench.store import verify_store
from cpgd_bench.store.locks import is_held

from .codec_clips import require_codec
from .source_fixtures import make_folder
from .test_build_parallel import REPO, _assert_same_store

pytestmark = pytest.mark.codec
SEQUENCES = {name: 6 for name in "abcdef"}

DASK_DRIVER = textwrap.dedent(
    """
    import sys
    from dask.distributed import LocalCluster
    from cpgd_bench.sources import get_source
    from cpgd_bench.build import build_store

    if __name__ == "__main__":
        root, out, workdir = sys.argv[1:]
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            summary = build_store(get_source("folder", root=root), out, jobs=2, backend="dask", workdir=workdir,
                                  scheduler=cluster.scheduler_address, progress=False)
        print(summary.format(), flush=True)
    """
)


@pytest.fixture(autouse=True)
def _codec() -> None:
    require_codec()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cpgd_bench.cli import main; main()", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def _entries(out: Path) -> tuple[list[Path], list[Path]]:
    """(temporary groups, visible sequence groups) of split ``test``."""
    split = out / "test"
    if not split.is_dir():
        return [], []
    dirs = [d for d in split.iterdir() if d.is_dir()]
    return [d for d in dirs if d.name.startswith(".")], [d for d in dirs if not d.name.startswith(".")]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_driver_when(command: list[str], ready: Callable[[], bool]) -> float:
    """Start ``command`` in its own process group, SIGKILL only its first process once ``ready()``;
    return how long the rest of the group (workers, encoders) took to exit."""
    proc = subprocess.Popen(command, cwd=REPO, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while not ready():
        assert proc.poll() is None, "the build ended before the kill point"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = time.monotonic()
    while _group_alive(proc.pid) and time.monotonic() - killed < 30:
        time.sleep(0.05)
    assert not _group_alive(proc.pid), "build workers outlived their driver"
    return time.monotonic() - killed


def _rerun_equals_clean(command: list[str], out: Path, clean: Path, scratch: Path) -> None:
    rerun = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "failed 0" in rerun.stdout and "Traceback" not in rerun.stderr
    assert not list((out / "test").glob(".*")) and not is_held(out / ".build.lock")
    assert not list(scratch.iterdir()), list(scratch.iterdir())  # no codec scratch left by the killed build
    _assert_same_store(out, clean)
    report = verify_store(out)
    assert report.ok and report.sequences == len(SEQUENCES), report.problems


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The folder dataset and its uninterrupted serial build."""
    base = tmp_path_factory.mktemp("kill")
    make_folder(base / "tree", SEQUENCES)
    command = _cli("dataset", "build", "folder", "--root", str(base / "tree"), "--out", str(base / "clean.zarr"))
    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return base / "tree", base / "clean.zarr"


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(lambda tmp, seen: len(tmp) >= 1, id="first-temporary-group"),
        pytest.param(lambda tmp, seen: len(tmp) >= 2, id="two-writers-busy"),
        pytest.param(lambda tmp, seen: len(seen) >= 1, id="first-commit"),
        pytest.param(lambda tmp, seen: len(seen) >= 4, id="four-committed"),
    ],
)
def test_loky_driver_killed_alone_then_rerun_gives_the_clean_store(
    clean_build: tuple[Path, Path], tmp_path: Path, point: Callable[[list[Path], list[Path]], bool]
) -> None:
    tree, clean = clean_build
    out, scratch = tmp_path / "killed.zarr", tmp_path / "scratch"
    scratch.mkdir()
    command = _cli("dataset", "build", "folder", "--root", str(tree), "--out", str(out), "--jobs", "2",
                   "--workdir", str(scratch))  # fmt: skip
    exited = _kill_driver_when(command, lambda: point(*_entries(out)))
    assert exited < 10, f"workers took {exited:.1f} s to notice their driver was gone"
    _rerun_equals_clean(command, out, clean, scratch)


def test_dask_driver_on_a_process_cluster_killed_then_rerun(clean_build: tuple[Path, Path], tmp_path: Path) -> None:
    tree, clean = clean_build
    script = tmp_path / "dask_driver.py"
    script.write_text(DASK_DRIVER)
    out, scratch = tmp_path / "dask.zarr", tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, str(script), str(tree), str(out), str(scratch)]
    exited = _kill_driver_when(command, lambda: len(_entries(out)[0]) >= 1)
    assert exited < 20, f"dask workers took {exited:.1f} s to exit"
    _rerun_equals_clean(command, out, clean, scratch)
