"""A normal run prints no third-party noise that reads as an error of ours."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _stderr(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_bitsandbytes_kernel_notice_is_filtered() -> None:
    """bitsandbytes (pulled in by pyiqa/diffusers) warns about an optional kernel package on AVX512-BF16 CPUs."""
    if "Failed to load" not in _stderr("import bitsandbytes"):
        pytest.skip("this CPU does not make bitsandbytes print its kernel notice (no AVX512-BF16)")
    output = _stderr("import cpgd_bench, bitsandbytes")
    assert "Failed to load" not in output and "kernels" not in output, output
