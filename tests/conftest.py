"""Shared fixtures: the bundled sample store, built once (with VVC priors) when a test needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_STORE = REPO / "data" / "stores" / "sample.zarr"


@pytest.fixture(scope="session")
def sample_store() -> Path:
    """``data/stores/sample.zarr`` (what `make dataset` builds); built here if missing, skipped without codec."""
    from cpgd_bench.build import build_store
    from cpgd_bench.sources import get_source
    from cpgd_bench.store import StoreError, open_store

    from .codec_clips import require_codec

    try:
        open_store(SAMPLE_STORE)
        return SAMPLE_STORE
    except StoreError:  # missing or of an older format: build it
        require_codec()
        shutil.rmtree(SAMPLE_STORE, ignore_errors=True)
    summary = build_store(get_source("sample"), SAMPLE_STORE, progress=False)
    assert not summary.failed, summary.format()
    return SAMPLE_STORE
