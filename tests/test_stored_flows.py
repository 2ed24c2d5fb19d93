"""Block flows stored at build time (``flow_blocks``, ``flow_blocks_valid``): built, read, verified, optional."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.data import CodingPriorDataset, expand_item
from cpgd_bench.data import dataset as dataset_module
from cpgd_bench.data.flow import DEFAULT_FLOW, block_flows
from cpgd_bench.motion import FLOW_REVISIONS, flow_tag
from cpgd_bench.store import StoreError, open_store, verify_store
from cpgd_bench.store.reader import open_root, read_frames
from cpgd_bench.store.schema import FLOW_METHOD_ATTR

from .codec_clips import require_codec
from .source_fixtures import make_folder

T = 20
FLOW_ARRAYS = ("flow_blocks", "flow_blocks_valid")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-sequence store (20 drifting 48x64 frames, default profile) built by ``build_store``."""
    from cpgd_bench.build import build_store
    from cpgd_bench.sources import get_source

    require_codec()
    root = tmp_path_factory.mktemp("flows")
    make_folder(root / "raw", {"a": T})
    summary = build_store(get_source("folder", root=root / "raw"), root / "s.zarr", progress=False)
    assert not summary.failed, summary.format()
    return root / "s.zarr"


def _no_derivation(*args: object) -> None:
    raise AssertionError("block_flows called although the store holds the flows")


def _items(ds: CodingPriorDataset, index: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return ds[index]


def _assert_items_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a.keys() - {"key"}:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert torch.equal(a["key"]["frames"], b["key"]["frames"])


def test_build_stores_the_flows_of_the_whole_sequence(built: Path) -> None:
    group = open_root(built)["test/a"]
    assert group.attrs[FLOW_METHOD_ATTR] == flow_tag(DEFAULT_FLOW)
    flows, valid = block_flows(read_frames(group["mv"]), read_frames(group["mv_ref"]), DEFAULT_FLOW)
    stored, stored_valid = read_frames(group["flow_blocks"]), read_frames(group["flow_blocks_valid"])
    assert stored.dtype == np.float32 and stored.shape == (T, 2, 2, 12, 16)
    np.testing.assert_array_equal(stored, flows)
    np.testing.assert_array_equal(stored_valid, valid)
    assert stored_valid.mean() > 0.5 and np.abs(stored).max(axis=2)[stored_valid].max() > 0.5
    assert verify_store(built).ok


@pytest.mark.parametrize(("resolution", "dtype"), [("full", "float32"), ("block", "stored")])
def test_whole_sequence_items_read_from_the_store_equal_derived_ones(
    built: Path, resolution: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"clip_len": T, "mode": "test", "prior_resolution": resolution, "dtype": dtype}
    derived = _items(CodingPriorDataset(built, "test", stored_flows=False, **kwargs), 0)
    monkeypatch.setattr(dataset_module, "block_flows", _no_derivation)
    stored = _items(CodingPriorDataset(built, "test", **kwargs), 0)
    _assert_items_equal(stored, derived)
    valid = stored["flow_valid"]
    assert not valid[0, 0].any() and not valid[-1, 1].any() and valid[1:-1].any()


def test_stored_crops_keep_clip_ends_invalid_and_expand_to_the_default_item(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "block_flows", _no_derivation)
    full = CodingPriorDataset(built, "test", clip_len=5, crop=32)
    compact = CodingPriorDataset(built, "test", clip_len=5, crop=32, prior_resolution="block", dtype="stored")
    for index in range(0, len(full), 3):
        item = _items(full, index, seed=index)
        assert not item["flow_valid"][0, 0].any() and not item["flow_valid"][-1, 1].any()
        _assert_items_equal(expand_item(_items(compact, index, seed=index)), item)


def test_store_without_flows_and_other_methods_derive_them(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.zarr"
    shutil.copytree(built, old)
    meta_path = old / "test" / "a" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    for name in FLOW_ARRAYS:
        shutil.rmtree(old / "test" / "a" / name)
        del meta["attributes"]["checksums"][name]
    del meta["attributes"][FLOW_METHOD_ATTR]
    meta_path.write_text(json.dumps(meta))
    assert verify_store(old).ok
    kwargs = {"clip_len": T, "mode": "test"}
    _assert_items_equal(_items(CodingPriorDataset(old, "test", **kwargs), 0),
                        _items(CodingPriorDataset(built, "test", **kwargs), 0))  # fmt: skip
    calls = []
    monkeypatch.setattr(dataset_module, "block_flows", lambda *a: calls.append(a[2]) or block_flows(*a))
    CodingPriorDataset(built, "test", flow="scaled", **kwargs)[0]  # stored flows are "composed"
    assert calls == ["scaled"]


def test_flows_of_older_rules_are_derived_again_with_a_warning(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store's flows recorded as another revision of the method (rules changed since the build) are not read."""
    kwargs = {"clip_len": T, "mode": "test"}
    fresh = _items(CodingPriorDataset(built, "test", **kwargs), 0)
    monkeypatch.setitem(FLOW_REVISIONS, DEFAULT_FLOW, FLOW_REVISIONS[DEFAULT_FLOW] + 1)  # the rules moved on
    calls = []
    monkeypatch.setattr(dataset_module, "block_flows", lambda *a: calls.append(a[2]) or block_flows(*a))
    with pytest.warns(UserWarning, match=r"test/a and 0 more sequences hold composed flows of older rules"):
        ds = CodingPriorDataset(built, "test", **kwargs)
    derived = _items(ds, 0)
    assert calls == [DEFAULT_FLOW]
    assert derived.keys() == fresh.keys() and torch.equal(derived["lq"], fresh["lq"])
    old = tmp_path / "bare.zarr"  # stores built before revisions record the bare method name: revision 1
    shutil.copytree(built, old)
    meta_path = old / "test" / "a" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"][FLOW_METHOD_ATTR] = DEFAULT_FLOW
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setitem(FLOW_REVISIONS, DEFAULT_FLOW, 1)
    calls.clear()
    CodingPriorDataset(old, "test", **kwargs)[0]
    assert calls == []


def test_a_damaged_flow_chunk_fails_verify_and_the_read_in_one_line(built: Path, tmp_path: Path) -> None:
    store = tmp_path / "damaged.zarr"
    shutil.copytree(built, store)
    chunk = next(p for p in sorted((store / "test" / "a" / "flow_blocks" / "c").rglob("*")) if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 3] ^= 0x10
    chunk.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["dataset", "verify", str(store)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "test/a/flow_blocks" in line]
    assert len(lines) == 1 and "rebuild the sequence" in lines[0], result.output
    with pytest.raises(StoreError, match=r"test/a/flow_blocks: frames .* corrupt data") as e:
        CodingPriorDataset(store, "test", clip_len=T, mode="test")[0]
    assert "\n" not in str(e.value)
    assert open_store(store).sequences("test") == ["a"]
