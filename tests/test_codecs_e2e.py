"""HEVC and H.264 stores end to end: build from the CLI, verify, load in CodingPriorDataset, restore with CPFP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.store.reader import read_root_attrs

from .codec_clips import require_codec

pytestmark = [pytest.mark.codec, pytest.mark.slow]


@pytest.mark.parametrize("codec", ["hevc", "h264"])
def test_a_store_of_each_codec_builds_verifies_loads_and_restores(codec: str, tmp_path: Path) -> None:
    require_codec()
    store = tmp_path / f"{codec}.zarr"
    runner = CliRunner()
    built = runner.invoke(main, ["dataset", "build", "sample", "--out", str(store), "--codec", codec,
                                 "-o", "frames=12"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert runner.invoke(main, ["dataset", "verify", str(store)]).exit_code == 0

    attrs = read_root_attrs(store)
    assert attrs["codec"] == codec and attrs["codec_profile"]["name"] == f"{codec}-ra-qp32"
    group_attrs = json.loads((store / "test" / "chelsea" / "zarr.json").read_text())["attributes"]
    encoder = {"hevc": "libx265", "h264": "libx264"}[codec]
    assert group_attrs["codec"]["codec"] == codec and group_attrs["codec"]["encoder"].endswith(encoder)

    qps = np.concatenate([zarr.open_array(store / "test" / name / "qp")[...] for name in ("chelsea", "motorcycle")])
    assert 30 <= np.median(qps) <= 36    # QP 32 means the same quantiser in every codec (x264's -qp is QP'_Y)

    item = CodingPriorDataset(store, "test", clip_len=5, mode="test")[0]
    assert item["lq"].shape[0] == 5
    assert float(item["flow_valid"][1:, 0].float().mean()) > 0.5     # the bitstream's MVs became flows to t - 1
    assert np.abs(item["flow_prev"].numpy()).max() > 0.25             # chelsea moves

    ran = runner.invoke(main, ["run", "--model", "cpfp", "--store", str(store), "--runs-dir", str(tmp_path / "runs"),
                               "--metrics", "psnr,ssim"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    record = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    assert record["status"] == "complete"
