"""A store built from one video file (no ground truth) works end to end: build, `run --model input`, `--model cpfp`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main

from .codec_clips import require_codec
from .source_fixtures import clip

SHARED_IQA = Path("/work/shared/iqa/weights")


@pytest.mark.codec
def test_store_from_one_video_file_runs_input_and_cpfp(tmp_path: Path) -> None:
    require_codec()
    import imageio_ffmpeg

    frames = clip(5, 8, h=96, w=128)  # NIQE needs 96x96 frames
    video = tmp_path / "street.mkv"
    writer = imageio_ffmpeg.write_frames(str(video), (128, 96), fps=24, codec="ffv1", pix_fmt_out="bgr0",
                                         macro_block_size=1)  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    store = tmp_path / "street.zarr"
    runner = CliRunner()
    built = runner.invoke(main, ["dataset", "build", "folder", "--root", str(video), "--out", str(store)])
    assert built.exit_code == 0, built.output
    group = zarr.open_group(str(store), mode="r")["test/street"]
    assert "sharp" not in group and group.attrs["fps"] == 24.0  # one copy; the container's rate
    np.testing.assert_array_equal(group["blur"][:], frames)  # lossless video: the frames as they were
    assert group.attrs["source"]["fps_source"] == "video"
    weights = ["--metric-weights", str(SHARED_IQA)] if SHARED_IQA.is_dir() else []
    for model in ("input", "cpfp"):
        res = runner.invoke(main, ["run", "--model", model, "--store", str(store), "--runs-dir", str(tmp_path / "runs"),
                                   "--skip-unavailable", *weights])  # fmt: skip
        assert res.exit_code == 0, (model, res.output)
        assert "has no 'sharp' (ground truth)" in res.stderr
        run_dir = next((tmp_path / "runs").glob(f"{model}-street-*"))
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "complete" and record["finished"], record
        assert set(record["metrics"]) == {"niqe", "musiq"}
        restored = zarr.open_group(str(run_dir / "predictions.zarr"), mode="r")["test/street/pred"]
        assert restored.shape[0] == len(frames)
        if model == "input":
            np.testing.assert_array_equal(restored[:], group["decoded"][:])
        if weights:  # NIQE's weights are at hand: it is scored on every frame
            assert isinstance(record["summary"]["niqe"], float)
