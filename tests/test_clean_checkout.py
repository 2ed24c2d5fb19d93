"""The main job leaves a fresh clone clean: data/, runs/ and the report's files in leaderboard/ are ignored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_store_util import random_sequence, write_store

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from cpgd_bench.cli import main; main()"]


def test_run_and_report_in_a_clone_leave_git_status_empty(tmp_path: Path) -> None:
    """README command 1 in small: a clone of HEAD, a store under data/stores/, `run` into the default runs/,
    `report` into the default leaderboard/; then `git status --porcelain` is empty and the output has no
    third-party kernel notice. Stands in for `make dataset` and `--model cpgd` (slow) with a small store and
    `--model input`: the same directories receive the same kinds of files."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    write_store(clone / "data" / "stores" / "unit.zarr", {("test", "a"): random_sequence(0, t=6)})
    output = ""
    for args in (["run", "--model", "input", "--store", "data/stores/unit.zarr", "--metrics", "psnr,niqe",
                  "--skip-unavailable"], ["report"]):
        done = subprocess.run([*CLI, *args], cwd=clone, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        output += done.stdout + done.stderr
    assert (clone / "leaderboard" / "LEADERBOARD.md").is_file() and any((clone / "runs").iterdir())
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert "kernels" not in output and "Failed to load" not in output, output
