"""`cpgd` without SD weights runs stage 1 only and never imports diffusers/transformers (seconds of start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_CODE = (
    "import sys\n"
    "from cpgd_bench.models.registry import get_model\n"
    "restorer = get_model('cpgd', device='cpu')\n"
    "assert restorer.model is None, 'stage 2 was built'\n"
    "heavy = sorted(m for m in ('diffusers', 'transformers') if m in sys.modules)\n"
    "assert not heavy, heavy\n"
)


def test_cpgd_without_sd_weights_imports_no_diffusers(tmp_path: Path) -> None:
    """A fresh interpreter builds `cpgd` from an empty folder (no SD weights found): diffusers stays unimported."""
    env = {k: v for k, v in os.environ.items() if k != "CPGD_BENCH_WEIGHTS"}
    done = subprocess.run(
        [sys.executable, "-c", _CODE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "running stage 1 only" in done.stderr
