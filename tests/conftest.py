"""Shared fixtures: the bundled sample store, built once (with VVC priors) when a test needs it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_STORE = REPO / "data" / "stores" / "sample.zarr"


@pytest.fixture(scope="session")
def sample_store() -> Path:
    """``data/stores/sample.zarr`` (what `make dataset` builds); built here if missing, skipped without codec."""
    from cpgd_bench.codec import CodecError, dump_tool_path
    from cpgd_bench.sources import get_source
    from cpgd_bench.store import open_store
    from cpgd_bench.store.build import build_store

    try:
        open_store(SAMPLE_STORE)
        return SAMPLE_STORE
    except Exception:  # noqa: BLE001 - missing or stale: (re)build below
        pass
    try:
        dump_tool_path()
    except CodecError as e:
        if os.environ.get("CPGD_REQUIRE_CODEC"):
            raise
        pytest.skip(str(e))
    summary = build_store(get_source("sample"), SAMPLE_STORE, progress=False)
    assert not summary.failed, summary.format()
    return SAMPLE_STORE
