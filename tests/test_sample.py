"""The bundled `sample` dataset: its shape rules, determinism, and MVs that agree with the true camera motion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.data.flow import block_flows
from cpgd_bench.sources import get_source
from cpgd_bench.sources.synthetic import SAMPLE_CLIPS, camera_flow
from cpgd_bench.store import open_store, verify_store


def test_sample_layout_meets_the_spec() -> None:
    source = get_source("sample")
    refs = source.sequences()
    assert sum(r.split == "train" for r in refs) >= 4 and sum(r.split == "test" for r in refs) >= 2
    for clip in SAMPLE_CLIPS:
        assert clip.width % 8 == 0 and clip.height % 8 == 0 and min(clip.width, clip.height) >= 256


def test_sample_is_deterministic_by_seed_and_blurred() -> None:
    ref = get_source("sample").sequences()[-1]
    a = get_source("sample", frames=24).load(ref)
    b = get_source("sample", frames=24).load(ref)
    c = get_source("sample", frames=24, seed=1).load(ref)
    assert a.blur.shape[0] == 24 and a.sharp is not None
    np.testing.assert_array_equal(a.blur, b.blur)
    np.testing.assert_array_equal(a.extra["camera"], b.extra["camera"])
    assert not np.array_equal(a.blur, c.blur)
    # averaging sub-frames under motion removes high frequencies: the blurry frames have less gradient energy
    grad = lambda x: np.abs(np.diff(x.astype(np.float32), axis=2)).mean()  # noqa: E731
    assert grad(a.blur) < 0.9 * grad(a.sharp)


def _block_mean(field: np.ndarray, h4: int, w4: int) -> np.ndarray:
    h, w = field.shape[:2]
    padded = np.pad(field, ((0, 4 * h4 - h), (0, 4 * w4 - w), (0, 0)), mode="edge")
    return padded.reshape(h4, 4, w4, 4, -1).mean((1, 3))


@pytest.mark.codec
def test_mv_flows_match_recorded_camera_motion(sample_store: Path) -> None:
    """Median end-point error of MV flows vs the true camera motion < 0.5 px on textured inter blocks."""
    store = open_store(sample_store)
    for split in store.splits():
        for name in store.sequences(split):
            g = store.group(split, name)
            decoded, camera = g["decoded"][:], g["camera"][:]
            t_len, h, w = decoded.shape[:3]
            flows, valid = block_flows(g["mv"][:], g["mv_ref"][:])
            h4, w4 = valid.shape[-2:]
            errors = []
            for t in range(t_len):
                texture = _block_mean(decoded[t].mean(-1, keepdims=True) ** 2, h4, w4)[..., 0] - _block_mean(
                    decoded[t].mean(-1, keepdims=True), h4, w4
                )[..., 0] ** 2
                for direction, step in ((0, -1), (1, 1)):
                    if not 0 <= t + step < t_len:
                        continue
                    true = _block_mean(camera_flow(camera, t, t + step, h, w), h4, w4)
                    used = valid[t, direction] & (texture > 16.0)  # block std > 4 grey levels
                    err = np.linalg.norm(np.moveaxis(flows[t, direction], 0, -1) - true, axis=-1)
                    errors.append(err[used])
            err = np.concatenate(errors)
            assert err.size > 1000, f"{split}/{name}: too few textured inter blocks ({err.size})"
            assert np.median(err) < 0.5, f"{split}/{name}: median end-point error {np.median(err):.3f} px"


@pytest.mark.codec
def test_sample_store_verifies(sample_store: Path) -> None:
    report = verify_store(sample_store, checksums=True, progress=False)
    assert report.ok, report.problems
    assert report.sequences == len(SAMPLE_CLIPS) and report.frames >= 24 * len(SAMPLE_CLIPS)
