"""The package's layers only import downward (the import-linter contract in .importlinter)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contract_is_kept() -> None:
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports is missing: `pip install -e .[dev]` installs import-linter"
    result = subprocess.run([lint, "--config", str(REPO / ".importlinter")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout
