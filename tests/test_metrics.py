"""PSNR/SSIM variants against scikit-image/scipy references, the registry, protocols, weights lookup, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cpgd_bench.metrics import (
    MetricInputError,
    ProtocolError,
    UnknownMetricError,
    WeightsError,
    get_metric,
    load_protocol,
    metric_names,
    protocol_names,
)
from cpgd_bench.metrics import protocol as protocol_module
from cpgd_bench.metrics.fidelity import rgb_to_y, ssim_bsst_torch
from cpgd_bench.weights import table as weights_module


def _pair(seed: int, n: int = 3, c: int = 3, h: int = 37, w: int = 45, noise: float = 0.08):
    """uint8-level frames: a smooth random image and a noisy copy (both float in [0,1])."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, c, h // 4, w // 4, generator=g), size=(h, w), mode="bicubic")
    gt = (base.clamp(0, 1) * 255).round() / 255
    pred = ((gt + noise * torch.randn(gt.shape, generator=g)).clamp(0, 1) * 255).round() / 255
    return pred, gt


def _np(x: torch.Tensor) -> np.ndarray:
    return x.double().numpy()


def _ssim_calculate_reference(img: np.ndarray, img2: np.ndarray) -> float:
    """The BSSTNet/CPGD ``ssim_calculate`` definition: scipy 3-D Gaussian over C,H,W in float32."""
    a, b = img.astype(np.float32), img2.astype(np.float32)
    mu1, mu2 = gaussian_filter(a, 1.5), gaussian_filter(b, 1.5)
    s1 = gaussian_filter(a * a, 1.5) - mu1 * mu1
    s2 = gaussian_filter(b * b, 1.5) - mu2 * mu2
    s12 = gaussian_filter(a * b, 1.5) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    return float(np.mean(((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))))


# ---------------------------------------------------------------- PSNR / SSIM variants


@pytest.mark.parametrize("seed,noise", [(0, 0.02), (1, 0.1), (2, 0.5)])
def test_psnr_matches_skimage(seed: int, noise: float) -> None:
    pred, gt = _pair(seed, noise=noise)
    ours = get_metric("psnr")(pred, gt)
    ref = [peak_signal_noise_ratio(_np(g), _np(p), data_range=1.0) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-7)  # float32 arithmetic
    np.testing.assert_allclose(get_metric("psnr")(pred.double(), gt.double()).numpy(), ref, rtol=1e-13)
    assert ours.dtype == torch.float64 and ours.shape == (3,)


def test_psnr_of_identical_frames_is_inf_not_capped() -> None:
    _, gt = _pair(3)
    assert torch.isinf(get_metric("psnr")(gt, gt)).all()


@pytest.mark.parametrize("seed,noise,c", [(0, 0.03, 3), (1, 0.3, 3), (2, 0.1, 1)])
def test_ssim_matlab_style_matches_skimage_gaussian_settings(seed: int, noise: float, c: int) -> None:
    """BasicSR/MATLAB SSIM == skimage with gaussian_weights, sigma 1.5, population covariance (11x11, valid)."""
    pred, gt = _pair(seed, c=c, noise=noise)
    ours = get_metric("ssim")(pred, gt)
    ref = [
        structural_similarity(_np(p), _np(g), channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for p, g in zip(pred, gt, strict=True)
    ]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)


def test_ssim_skimage_variant_is_skimage_defaults() -> None:
    pred, gt = _pair(4, noise=0.2)
    ours = get_metric("ssim_skimage")(pred, gt)
    ref = [structural_similarity(_np(p), _np(g), channel_axis=0, data_range=1.0) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("seed,noise,c", [(5, 0.05, 3), (6, 0.4, 3), (7, 0.1, 1)])
def test_ssim_bsst_matches_scipy_ssim_calculate(seed: int, noise: float, c: int) -> None:
    """Both paths (scipy on CPU, the float64 torch port used on GPU) against the paper code's definition."""
    pred, gt = _pair(seed, c=c, noise=noise)
    ref = [_ssim_calculate_reference(_np(p), _np(g)) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(get_metric("ssim_bsst")(pred, gt).numpy(), ref, atol=1e-6)  # float32 in both
    np.testing.assert_allclose(ssim_bsst_torch(pred, gt).numpy(), ref, atol=2e-6)  # float64 vs float32


def test_ssim_bsst_is_independent_of_rgb_bgr_order_and_differs_from_matlab_style() -> None:
    pred, gt = _pair(8, noise=0.15)
    m = get_metric("ssim_bsst")
    np.testing.assert_allclose(m(pred, gt).numpy(), m(pred.flip(1), gt.flip(1)).numpy(), atol=1e-7)
    torch.testing.assert_close(ssim_bsst_torch(pred, gt), ssim_bsst_torch(pred.flip(1), gt.flip(1)), atol=1e-12, rtol=0)
    assert (m(pred, gt) - get_metric("ssim")(pred, gt)).abs().min() > 1e-3


def test_rgb_to_y_is_matlab_rgb2ycbcr_luma() -> None:
    _, gt = _pair(9)
    ref = rgb2ycbcr(gt.permute(0, 2, 3, 1).double().numpy())[..., 0] / 255
    np.testing.assert_allclose(rgb_to_y(gt.double())[:, 0].numpy(), ref, atol=1e-12)


# ---------------------------------------------------------------- registry and bad input


def test_registry_names_directions_and_ranges() -> None:
    assert {"psnr", "ssim", "ssim_skimage", "ssim_bsst", "lpips", "niqe", "musiq"} <= set(metric_names())
    psnr, ssim = get_metric("psnr"), get_metric("ssim_bsst")
    assert psnr.higher_better and psnr.range == (0.0, float("inf"))
    assert ssim.higher_better and ssim.range == (-1.0, 1.0) and ssim.name == "ssim_bsst"
    from cpgd_bench.metrics import metric_info

    assert not metric_info("lpips").higher_better and not metric_info("niqe").higher_better
    assert metric_info("musiq").higher_better and not metric_info("niqe").full_reference


def test_unknown_metric_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownMetricError, match="unknown metric 'ssmi'; did you mean 'ssim'"):
        get_metric("ssmi")


@pytest.mark.parametrize(
    "pred,gt,message",
    [
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16), r"dtype torch.uint8; .*divide uint8"),
        (torch.full((1, 3, 16, 16), 2.0), torch.zeros(1, 3, 16, 16), r"values in \[2, 2\]; expected \[0, 1\]"),
        (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 18), r"differ in shape"),
        (torch.zeros(3, 16, 16), torch.zeros(3, 16, 16), r"expected \(N, C, H, W\)"),
        (torch.zeros(1, 3, 16, 16), None, r"full-reference metric; pass the ground-truth"),
        (np.zeros((1, 3, 16, 16)), torch.zeros(1, 3, 16, 16), r"must be a torch.Tensor"),
        (torch.full((1, 3, 16, 16), float("nan")), torch.zeros(1, 3, 16, 16), r"values in \[nan"),
    ],
)
def test_bad_input_is_a_one_line_error(pred, gt, message: str) -> None:
    with pytest.raises(MetricInputError, match=message) as e:
        get_metric("psnr")(pred, gt)
    assert "\n" not in str(e.value)


def test_ssim_rejects_frames_smaller_than_its_window() -> None:
    with pytest.raises(MetricInputError, match="at least 11x11"):
        get_metric("ssim")(torch.zeros(1, 3, 8, 30), torch.zeros(1, 3, 8, 30))


# ---------------------------------------------------------------- protocols


def test_default_protocol_is_the_paper_protocol_and_explicit() -> None:
    p = load_protocol()
    assert p.name == "cpgd-paper" and p.default
    assert (p.colour, p.crop, p.round_uint8, p.ssim) == ("rgb", 0, True, "ssim_bsst")
    assert (p.window, p.overlap, p.drop_edges, p.average) == (48, 4, 2, "window")
    k = load_protocol("kair-matlab")
    assert (k.colour, k.crop, k.ssim, k.window, k.drop_edges, k.average) == ("rgb", 0, "ssim", None, 0, "sequence")
    assert {"cpgd-paper", "kair-matlab"} <= set(protocol_names())
    assert p.metric_impl("ssim") == "ssim_bsst" and k.metric_impl("ssim") == "ssim"


@pytest.mark.parametrize(
    "frames,expected",
    [
        # the CPGD code's special cases: window starts 52 / 86 / 29 / 102 score [-10:-2] / [4:-2] / [17:-2] / [-16:-2]
        (100, [(2, 46), (46, 90), (90, 98)]),
        (134, [(2, 46), (46, 90), (90, 132)]),
        (77, [(2, 46), (46, 75)]),
        (150, [(2, 46), (46, 90), (90, 134), (134, 148)]),
        (24, [(2, 22)]),  # shorter than a window: one window, edges dropped
    ],
)
def test_paper_protocol_windows_reproduce_the_paper_code(frames: int, expected: list[tuple[int, int]]) -> None:
    windows = load_protocol("cpgd-paper").windows(frames)
    assert [(w.frames[0], w.frames[-1] + 1) for w in windows] == expected
    scored = [f for w in windows for f in w.frames]
    assert scored == list(range(2, frames - 2))  # every frame but the first/last two, exactly once


def test_kair_protocol_scores_every_frame_in_one_window() -> None:
    (w,) = load_protocol("kair-matlab").windows(17)
    assert w.frames == tuple(range(17))


def test_windows_drop_edges_of_each_window_when_overlap_is_small() -> None:
    p = load_protocol("kair-matlab").replace(window=10, overlap=0, drop_edges=1)
    assert [w.frames for w in p.windows(20)] == [tuple(range(1, 9)), tuple(range(11, 19))]


def test_prepare_crops_and_rounds() -> None:
    x = torch.rand(2, 3, 20, 24)
    p = load_protocol("kair-matlab").replace(crop=3)
    y = p.prepare(x)
    assert y.shape == (2, 3, 14, 18)
    torch.testing.assert_close(y, torch.round(x[..., 3:-3, 3:-3] * 255) / 255)
    assert torch.equal(p.replace(round_uint8=False, crop=0).prepare(x), x)
    with pytest.raises(ProtocolError, match="crops 12 px per border"):
        p.replace(crop=12).prepare(x)


def test_unknown_and_malformed_protocols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'; known: .*cpgd-paper"):
        load_protocol("nope")
    monkeypatch.setattr(protocol_module, "PROTOCOL_DIR", tmp_path)
    (tmp_path / "a.yaml").write_text("name: a\nversion: 1\ncolour: lab\n")
    with pytest.raises(ProtocolError, match="colour 'lab' is not one of"):
        load_protocol("a")
    (tmp_path / "b.yaml").write_text("name: b\nversion: 1\nborder: 4\n")
    with pytest.raises(ProtocolError, match=r"unknown fields \['border'\]"):
        load_protocol("b")
    (tmp_path / "c.yaml").write_text("name: other\nversion: 1\n")
    with pytest.raises(ProtocolError, match="must say name: c"):
        load_protocol("c")
    for name in "abc":
        (tmp_path / f"{name}.yaml").unlink()
    (tmp_path / "d.yaml").write_text("name: d\nversion: 1\ndefault: true\n")
    (tmp_path / "e.yaml").write_text("name: e\nversion: 1\ndefault: true\n")
    with pytest.raises(ProtocolError, match=r"exactly one protocol .* default: true, found \['d', 'e'\]"):
        load_protocol()


# ---------------------------------------------------------------- weights table and lookup


@pytest.fixture
def fake_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A weights table with two small files, a private torch hub dir; yields the directories and contents."""
    good, env, hub = tmp_path / "good", tmp_path / "env", tmp_path / "hub"
    for d in (good, env, hub / "pyiqa"):
        d.mkdir(parents=True)
    blobs = {"a.bin": b"alpha" * 10, "b.bin": b"beta" * 10}
    table = {
        "version": 1,
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b), "source": f"https://example.org/{n}"}
                  for n, b in blobs.items()},
        "metrics": {"niqe": {"model": ["a.bin"]}, "lpips": {"linear": ["a.bin"], "backbone": ["b.bin", "a.bin"]}},
    }
    path = tmp_path / "weights.yaml"
    path.write_text(yaml.safe_dump(table))
    monkeypatch.setattr(weights_module, "TABLE_FILE", path)
    monkeypatch.delenv(weights_module.ENV_VAR, raising=False)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    yield {"good": good, "env": env, "hub": hub, "blobs": blobs}
    torch.hub.set_dir(previous)


def test_weights_lookup_order_and_verification(fake_table, monkeypatch: pytest.MonkeyPatch) -> None:
    good, env, hub, blobs = fake_table["good"], fake_table["env"], fake_table["hub"], fake_table["blobs"]
    (hub / "pyiqa" / "a.bin").write_bytes(blobs["a.bin"])
    assert weights_module.resolve("niqe") == {"model": hub / "pyiqa" / "a.bin"}  # torch hub cache last
    (env / "a.bin").write_bytes(blobs["a.bin"])
    monkeypatch.setenv(weights_module.ENV_VAR, str(env))
    assert weights_module.resolve("niqe") == {"model": env / "a.bin"}
    (good / "a.bin").write_bytes(blobs["a.bin"])
    assert weights_module.resolve("niqe", good) == {"model": good / "a.bin"}
    # a slot is filled by its second choice when the first is absent
    assert weights_module.resolve("lpips", good) == {"linear": good / "a.bin", "backbone": good / "a.bin"}
    assert weights_module.available("psnr") is None  # no weights needed


def test_missing_weights_error_names_file_sha_and_source(fake_table) -> None:
    entry_sha = hashlib.sha256(fake_table["blobs"]["a.bin"]).hexdigest()
    with pytest.raises(WeightsError) as e:
        weights_module.resolve("niqe", fake_table["good"])
    msg = str(e.value)
    assert "\n" not in msg and "a.bin" in msg and entry_sha in msg and "https://example.org/a.bin" in msg
    assert str(fake_table["good"]) in msg


def test_weights_with_wrong_sha256_are_refused(fake_table) -> None:
    (fake_table["good"] / "a.bin").write_bytes(b"tampered")
    with pytest.raises(WeightsError, match=r"a.bin has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; replace it") as e:
        weights_module.resolve("niqe", fake_table["good"])
    assert "\n" not in str(e.value)
    status = {s.entry.name: s.status for s in weights_module.file_status(fake_table["good"])}
    assert status == {"a.bin": "bad sha256", "b.bin": "missing"}


def test_real_weights_table_is_consistent() -> None:
    table = weights_module.load_table()
    assert set(table.metrics) == {"niqe", "lpips", "musiq"}
    assert set(table.models) == {"cpfp", "cpfp-raft", "cpgd", "bsstnet"}
    for name, entry in table.files.items():
        assert entry.source and entry.licence and table.users(name), name  # every file has a user
        assert (entry.sha256 is None) == bool(entry.unverified), name  # no digest only with the reason why
        assert entry.sha256 is None or len(entry.sha256) == 64
    assert table.files["niqe_modelparameters.mat"].sha256.startswith("fa2aa4d1")
    assert table.files["alexnet-owt-7be5be79.pth"].sha256.startswith("7be5be79")
