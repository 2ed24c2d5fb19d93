"""Scoring saved predictions (Zarr and PNG) against a tiny store: tables, averaging, provenance, errors, CLI."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from importlib import metadata
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.eval import score_predictions
from cpgd_bench.metrics import MetricInputError, WeightsError, get_metric, load_protocol
from cpgd_bench.metrics.fidelity import psnr as psnr_fn
from cpgd_bench.weights import table as weights_module

from .test_store_util import random_sequence, write_store

T, H, W = 12, 40, 52
SEQS = {"c": 3, "d": 4}


def _frames(seed: int, t: int = T) -> tuple[np.ndarray, np.ndarray]:
    """Smooth uint8 ground truth and a noisy 'prediction' of it, (T,H,W,3)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((t, 3, H // 4, W // 4))).float()
    sharp = (torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear") * 255).round().byte()
    sharp = sharp.permute(0, 2, 3, 1).numpy()
    noise = rng.normal(0, 4 + 3 * np.arange(t)[:, None, None, None], size=sharp.shape)  # quality varies per frame
    return sharp, np.clip(sharp + noise, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("metrics")
    seqs, sharps, preds = {}, {}, {}
    for name, seed in SEQS.items():
        arrays = random_sequence(seed, t=T, h=H, w=W)
        sharps[name], preds[name] = _frames(seed)
        arrays["sharp"] = sharps[name]
        arrays["decoded"] = preds[name]
        seqs[("test", name)] = arrays
    seqs[("train", "e")] = random_sequence(9, t=5, h=H, w=W)
    return write_store(root / "s.zarr", seqs), sharps, preds


def _write_zarr(path: Path, preds: dict[str, np.ndarray], split: str = "test") -> Path:
    root = zarr.open_group(path, mode="w", zarr_format=3)
    for name, frames in preds.items():
        root.require_group(f"{split}/{name}").create_array("pred", data=frames)
    return path


def _write_png(path: Path, preds: dict[str, np.ndarray]) -> Path:
    for name, frames in preds.items():
        (path / name).mkdir(parents=True)
        for i, frame in enumerate(frames):
            iio.imwrite(path / name / f"{i:05d}.png", frame)
    return path


def _psnr(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    to = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double() / 255  # noqa: E731
    return psnr_fn(to(pred), to(gt)).numpy()


def test_zarr_and_png_predictions_give_identical_tables(store, tmp_path: Path) -> None:
    path, sharps, preds = store
    z = score_predictions(_write_zarr(tmp_path / "p.zarr", preds), path, "test", "kair-matlab", ["psnr", "ssim"],
                          progress=False)
    p = score_predictions(_write_png(tmp_path / "png", preds), path, "test", "kair-matlab", ["psnr", "ssim"],
                          progress=False)
    pd.testing.assert_frame_equal(z.per_frame, p.per_frame)
    assert list(z.per_frame.columns) == ["sequence", "frame", "psnr", "ssim"]
    assert list(z.per_sequence.columns) == ["sequence", "frames", "psnr", "ssim"]
    # every frame, scored with the plain PSNR of the frame pair
    for name in SEQS:
        rows = z.per_frame[z.per_frame.sequence == name]
        assert rows.frame.tolist() == list(range(T))
        np.testing.assert_allclose(rows.psnr, _psnr(preds[name], sharps[name]), rtol=1e-6)
    # kair-matlab: MATLAB-style SSIM, mean per sequence, then over sequences
    frame = torch.from_numpy(preds["c"][:1]).permute(0, 3, 1, 2).float() / 255
    ref = torch.from_numpy(sharps["c"][:1]).permute(0, 3, 1, 2).float() / 255
    assert z.per_frame.ssim.iloc[0] == pytest.approx(float(get_metric("ssim")(frame, ref)[0]), abs=1e-12)
    seq_means = z.per_frame.groupby("sequence").psnr.mean()
    np.testing.assert_allclose(z.per_sequence.set_index("sequence").psnr, seq_means)
    assert z.summary["psnr"] == pytest.approx(seq_means.mean())


def test_paper_protocol_frames_windows_and_average(store, tmp_path: Path) -> None:
    path, sharps, preds = store
    proto = load_protocol("cpgd-paper").replace(window=6, overlap=4, drop_edges=2)  # small windows for T=12
    r = score_predictions(_write_zarr(tmp_path / "p.zarr", preds), path, "test", proto, ["psnr"], progress=False)
    frames = r.per_frame[r.per_frame.sequence == "c"].frame.tolist()
    assert frames == list(range(2, T - 2))  # first and last two never scored
    windows = r.per_window[r.per_window.sequence == "c"]
    assert windows[["start", "end", "frames"]].values.tolist() == [[2, 4, 2], [4, 6, 2], [6, 8, 2], [8, 10, 2]]
    per_frame = dict(zip(frames, _psnr(preds["c"], sharps["c"])[2 : T - 2], strict=True))
    np.testing.assert_allclose(windows.psnr, [np.mean([per_frame[f] for f in range(s, e)]) for s, e in
                                              windows[["start", "end"]].values], rtol=1e-6)
    assert r.summary["psnr"] == pytest.approx(r.per_window.psnr.mean())  # unweighted mean over all windows
    by_frame = score_predictions(tmp_path / "p.zarr", path, "test", proto.replace(average="frame"), ["psnr"],
                                 progress=False)
    assert by_frame.summary["psnr"] == pytest.approx(by_frame.per_frame.psnr.mean())
    # the column `ssim` is computed by the protocol's variant (the paper code's ssim_calculate here)
    paper = score_predictions(tmp_path / "p.zarr", path, "test", "cpgd-paper", ["ssim"], progress=False)
    assert paper.provenance["metrics"]["ssim"]["implementation"] == "ssim_bsst"


def test_scoring_the_store_decoded_array_and_writing_tables(store, tmp_path: Path) -> None:
    path, sharps, preds = store
    r = score_predictions(path, path, "test", "kair-matlab", ["psnr"], progress=False, array="decoded")
    np.testing.assert_allclose(r.per_frame[r.per_frame.sequence == "d"].psnr, _psnr(preds["d"], sharps["d"]),
                               rtol=1e-6)
    out = r.write(tmp_path / "out")
    for name in ("per_frame", "per_sequence"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"), getattr(r, name))
        assert pd.read_csv(out / f"{name}.csv").shape == getattr(r, name).shape
    record = json.loads((out / "scores.json").read_text())
    assert record["summary"]["psnr"] == pytest.approx(r.summary["psnr"])
    prov = record["provenance"]
    assert prov["protocol"]["name"] == "kair-matlab" and prov["protocol"]["version"] == 1
    assert prov["predictions"]["array"] == "decoded" and prov["store"]["split"] == "test"
    assert "code_commit" in prov and prov["versions"]["torch"] == metadata.version("torch")
    assert prov["metrics"]["psnr"] == {"implementation": "psnr", "higher_better": True, "weights_sha256": {}}


def test_missing_metric_is_nan_and_recorded_never_zero(store, tmp_path: Path, monkeypatch) -> None:
    path, _, preds = store
    monkeypatch.setattr(weights_module, "search_dirs", lambda weights_dir=None: [tmp_path / "empty"])
    pred = _write_zarr(tmp_path / "p.zarr", preds)
    with pytest.raises(WeightsError, match="needs weights file niqe_modelparameters.mat"):
        score_predictions(pred, path, "test", "kair-matlab", ["psnr", "niqe"], progress=False)
    r = score_predictions(pred, path, "test", "kair-matlab", ["psnr", "niqe"], skip_unavailable=True, progress=False)
    assert r.per_frame.niqe.isna().all() and r.per_sequence.niqe.isna().all() and np.isnan(r.summary["niqe"])
    assert r.per_frame.psnr.notna().all()
    assert "niqe_modelparameters.mat" in r.provenance["missing"]["niqe"]
    record = json.loads(r.write(tmp_path / "out").joinpath("scores.json").read_text())
    assert record["summary"]["niqe"] is None


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda p: {k: v for k, v in p.items() if k != "d"}, r"lack sequence\(s\) d of split 'test'"),
        (lambda p: {**p, "c": p["c"][:-1]}, r"have 11 frames, the ground truth has 12; write every frame"),
        (lambda p: {**p, "c": p["c"][:, :-2]}, r"frames of shape \(38, 52, 3\), the ground truth \(40, 52, 3\)"),
    ],
)
def test_bad_predictions_are_one_line_errors(store, tmp_path: Path, mutate, message: str) -> None:
    path, _, preds = store
    for kind, writer in (("zarr", _write_zarr), ("png", _write_png)):
        pred = writer(tmp_path / f"{kind}.out", mutate(preds))
        with pytest.raises(MetricInputError, match=message) as e:
            score_predictions(pred, path, "test", "kair-matlab", ["psnr"], progress=False)
        assert "\n" not in str(e.value)


def test_wrong_dtypes_are_one_line_errors(store, tmp_path: Path) -> None:
    path, _, preds = store
    floats = {k: v.astype(np.float32) / 255 for k, v in preds.items()}
    with pytest.raises(MetricInputError, match=r"dtype float32; expected uint8 \(T,H,W,3\)"):
        score_predictions(_write_zarr(tmp_path / "f.zarr", floats), path, "test", "kair-matlab", ["psnr"],
                          progress=False)
    png = _write_png(tmp_path / "png16", preds)
    iio.imwrite(png / "c" / "00000.png", preds["c"][0, ..., 0].astype(np.uint16) * 257)  # 16-bit grey
    with pytest.raises(MetricInputError, match=r"00000.png has dtype uint16; save predictions as 8-bit RGB PNG"):
        score_predictions(png, path, "test", "kair-matlab", ["psnr"], progress=False)
    iio.imwrite(png / "c" / "00000.png", preds["c"][0, ..., 0])  # 8-bit grey
    with pytest.raises(MetricInputError, match=r"00000.png has shape \(40, 52\); save predictions as RGB"):
        score_predictions(png, path, "test", "kair-matlab", ["psnr"], progress=False)
    with pytest.raises(MetricInputError, match="no predictions at"):
        score_predictions(tmp_path / "nothing", path, "test", "kair-matlab", ["psnr"], progress=False)


def test_score_cli_writes_tables_and_fails_in_one_line(store, tmp_path: Path) -> None:
    path, _, preds = store
    pred = _write_png(tmp_path / "png", preds)
    runner = CliRunner()
    res = runner.invoke(main, ["score", "--predictions", str(pred), "--store", str(path), "--protocol", "kair-matlab",
                               "--metrics", "psnr,ssim", "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["summary"]) == {"psnr", "ssim"}
    assert (tmp_path / "out" / "per_frame.parquet").exists() and (tmp_path / "out" / "scores.json").exists()
    bad = runner.invoke(main, ["score", "--predictions", str(pred), "--store", str(path), "--protocol", "nope"])
    assert bad.exit_code != 0 and bad.output.strip().count("\n") == 0 and "unknown protocol 'nope'" in bad.output
    bad = runner.invoke(main, ["score", "--predictions", str(pred), "--store", str(path), "--metrics", "psnr,lpip"])
    assert bad.exit_code != 0 and "did you mean 'lpips'" in bad.output


def test_weights_cli_list_and_verify(tmp_path: Path, monkeypatch) -> None:
    blob = b"niqe-model"
    table = {"version": 1, "files": {"n.mat": {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob),
                                               "source": "https://example.org/n.mat"}},
             "metrics": {"niqe": {"model": ["n.mat"]}}}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(table))
    monkeypatch.setattr(weights_module, "TABLE_FILE", tmp_path / "w.yaml")
    monkeypatch.setattr(weights_module, "search_dirs", lambda weights_dir=None: [Path(weights_dir or tmp_path / "x")])
    runner = CliRunner()
    res = runner.invoke(main, ["weights", "list", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 0 and "missing" in res.output and "https://example.org/n.mat" in res.output
    assert runner.invoke(main, ["weights", "verify", "--weights-dir", str(tmp_path)]).exit_code == 1
    (tmp_path / "n.mat").write_bytes(blob)
    res = runner.invoke(main, ["weights", "verify", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 0 and "ok niqe" in res.output
    (tmp_path / "n.mat").write_bytes(b"corrupt")
    res = runner.invoke(main, ["weights", "verify", "--weights-dir", str(tmp_path)])
    assert res.exit_code == 1 and "has sha256" in res.output and "expected" in res.output


def test_musiq_code_path_with_random_weights(tmp_path: Path, monkeypatch) -> None:
    """MUSIQ's real checkpoint is not available here: random weights, resolved and verified like the real file."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    ckpt = tmp_path / "musiq_koniq_ckpt-e95806b9.pth"
    torch.save(MUSIQ(pretrained=False).state_dict(), ckpt)
    table = yaml.safe_load(weights_module.TABLE_FILE.read_text())
    table["files"]["musiq_koniq_ckpt-e95806b9.pth"]["sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(table))
    monkeypatch.setattr(weights_module, "TABLE_FILE", tmp_path / "w.yaml")
    metric = get_metric("musiq", weights_dir=tmp_path)
    frames = torch.rand(2, 3, 64, 96)
    scores = metric(frames)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    direct = MUSIQ(pretrained=False, pretrained_model_path=str(ckpt)).eval()
    with torch.no_grad():
        np.testing.assert_allclose(scores.numpy(), direct(frames).flatten().double().numpy(), rtol=1e-5)
    assert metric.weights_sha256() == {ckpt.name: table["files"][ckpt.name]["sha256"]}


def test_protocol_sensitivity_table(store) -> None:
    from cpgd_bench.eval.sensitivity import protocol_sensitivity, to_markdown

    path, _, _ = store
    table = protocol_sensitivity(path, path, "test", "cpgd-paper", array="decoded", others=["kair-matlab"])
    rows = table.set_index("variant")
    assert table.variant.iloc[0] == "cpgd-paper (base)" and "SSIM: CPGD/BSSTNet 3-D Gaussian" not in rows.index
    assert rows.loc["no uint8 rounding", "d_psnr"] == 0  # uint8 frames: rounding is a no-op
    y = score_predictions(path, path, "test", load_protocol("cpgd-paper").replace(colour="y"), ["psnr", "ssim"],
                          progress=False, array="decoded")
    assert rows.loc["colour: Y (BT.601) instead of RGB", "psnr"] == pytest.approx(y.summary["psnr"])
    kair = rows.loc["protocol kair-matlab"]
    assert kair.d_psnr == pytest.approx(rows.loc["all frames (no windows, no dropped edges)", "d_psnr"])
    markdown = to_markdown(table)
    assert markdown.count("\n") == len(table) + 1 and "-0.000" not in markdown


SHARED_IQA = Path("/work/shared/iqa/weights")


@pytest.fixture(scope="module")
def store_without_gt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split ``test``: two sequences without ``sharp``; split ``mixed``: ``a`` with it, ``b`` without (96x104)."""
    seqs = {("test", n): random_sequence(i, t=4, h=96, w=104, sharp=False) for i, n in enumerate("ab")}
    seqs[("mixed", "a")] = random_sequence(5, t=4, h=96, w=104)
    seqs[("mixed", "b")] = random_sequence(6, t=4, h=96, w=104, sharp=False)
    return write_store(tmp_path_factory.mktemp("nogt") / "n.zarr", seqs)


def test_store_without_sharp_scores_only_no_reference_metrics(store_without_gt: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    path = store_without_gt
    assert "sharp" not in zarr.open_group(path, mode="r")["test/a"]
    monkeypatch.setattr(weights_module, "search_dirs", lambda weights_dir=None: [tmp_path / "empty"])
    r = score_predictions(path, path, "test", "kair-matlab", ["psnr", "ssim", "lpips", "niqe"], array="decoded",
                          skip_unavailable=True, progress=False)
    assert list(r.per_frame.columns) == ["sequence", "frame", "niqe"] and len(r.per_frame) == 8
    assert r.per_frame.niqe.isna().all() and "niqe_modelparameters.mat" in r.provenance["missing"]["niqe"]
    note = r.provenance["not_scored"]
    assert note == (f"store {path} split 'test' has no 'sharp' (ground truth): psnr, ssim, lpips need it and are "
                    "not scored")
    assert r.provenance["store"]["ground_truth"] is None
    mixed = score_predictions(path, path, "mixed", "kair-matlab", ["psnr", "niqe"], array="decoded",
                              skip_unavailable=True, progress=False)
    assert "in sequence(s) b: psnr needs it and is not scored" in mixed.provenance["not_scored"]
    with pytest.raises(MetricInputError, match=r"psnr, ssim need it .*; score no-reference metrics") as e:
        score_predictions(path, path, "test", "kair-matlab", ["psnr", "ssim"], array="decoded", progress=False)
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not (SHARED_IQA / "niqe_modelparameters.mat").is_file(), reason="no NIQE weights here")
def test_store_without_sharp_scores_niqe_with_its_weights(store_without_gt: Path) -> None:
    path = store_without_gt
    r = score_predictions(path, path, "test", "kair-matlab", ["psnr", "niqe"], array="decoded",
                          weights_dir=SHARED_IQA, progress=False)
    decoded = zarr.open_group(path, mode="r")["test/b/decoded"][:]
    expected = get_metric("niqe", weights_dir=SHARED_IQA)(torch.from_numpy(decoded).permute(0, 3, 1, 2) / 255)
    np.testing.assert_allclose(r.per_frame[r.per_frame.sequence == "b"].niqe, expected.numpy(), rtol=1e-6)
    assert np.isfinite(r.summary["niqe"]) and r.provenance["missing"] == {}


def test_score_cli_without_sharp(store_without_gt: Path, tmp_path: Path, monkeypatch) -> None:
    path = store_without_gt
    monkeypatch.setattr(weights_module, "search_dirs", lambda weights_dir=None: [tmp_path / "empty"])
    args = ["score", "--predictions", str(path), "--array", "decoded", "--store", str(path), "--protocol",
            "kair-matlab", "--out", str(tmp_path / "out")]
    res = CliRunner().invoke(main, [*args, "--metrics", "psnr,lpips,niqe,musiq", "--skip-unavailable", "--json"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert set(record["summary"]) == {"niqe", "musiq"} and set(record["missing"]) == {"niqe", "musiq"}
    assert "psnr, lpips need it and are not scored" in record["not_scored"]
    not_scored = [line for line in res.stderr.splitlines() if "ground truth" in line]
    assert len(not_scored) == 1 and "missing" not in not_scored[0]
    assert pd.read_csv(tmp_path / "out" / "per_frame.csv").columns.tolist() == ["sequence", "frame", "niqe", "musiq"]
    bad = CliRunner().invoke(main, [*args, "--metrics", "psnr,ssim"])
    assert bad.exit_code == 1 and isinstance(bad.exception, SystemExit)  # no traceback
    assert bad.output.strip().count("\n") == 0 and "has no 'sharp' (ground truth)" in bad.output


def _bomb_png() -> bytes:
    """A PNG whose header claims 100000 x 100000 RGB pixels (and holds none)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("damage,name,message", [
    ("truncated", "00005.png", r"c/00005.png is not a readable PNG \(.*\); write it again"),
    ("truncated first", "00000.png", r"c/00000.png is not a readable PNG \(.*\); write it again"),
    ("empty file", "00003.png", r"c/00003.png is not a readable PNG \(.*\); write it again"),
    ("bomb header", "00004.png", r"c/00004.png is not a readable PNG \(.*exceeds limit"),
    ("size change", "00007.png", r"c/00007.png is 52x38, the ground truth 52x40 \(WxH\); write every frame at"),
    ("empty folder", "", r"png/c hold no \*.png frames; write all 12 of them"),
])
def test_broken_png_predictions_are_one_line_errors(store, tmp_path: Path, damage: str, name: str,
                                                    message: str) -> None:
    path, _, preds = store
    png = _write_png(tmp_path / "png", preds)
    frame = png / "c" / name
    if damage.startswith("truncated"):
        frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    elif damage == "empty file":
        frame.write_bytes(b"")
    elif damage == "bomb header":
        frame.write_bytes(_bomb_png())
    elif damage == "size change":
        iio.imwrite(frame, preds["c"][7, :-2])
    else:
        for f in (png / "c").glob("*.png"):
            f.unlink()
    with pytest.raises(MetricInputError, match=message) as e:
        score_predictions(png, path, "test", "kair-matlab", ["psnr"], progress=False)
    assert "\n" not in str(e.value)
    res = CliRunner().invoke(main, ["score", "--predictions", str(png), "--store", str(path), "--metrics", "psnr"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)  # a click error, no traceback
    assert res.stdout == "" and res.stderr.splitlines()[-1] == f"Error: {e.value}"  # after tqdm's progress bar
    assert "Traceback" not in res.output
