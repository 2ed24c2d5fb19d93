"""The `cpfp` Restorer: weight loading and its errors, tiling, the registry, and the bundled demo weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cpgd_bench.models.cpgd.cpfp import restorer as restorer_module
from cpgd_bench.models.cpgd.cpfp.checkpoint import FORMAT, save_atomic, weights_payload
from cpgd_bench.models.cpgd.cpfp.model import CPFP, CPFPConfig
from cpgd_bench.models.cpgd.cpfp.restorer import CPFPRestorer, demo_record, demo_weights
from cpgd_bench.models.registry import ModelError, get_model
from cpgd_bench.provenance import sha256_file
from cpgd_bench.weights import WeightsError

from .cpfp_fixtures import TINY_MODEL


def random_clip(t: int = 4, h: int = 48, w: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "lq": torch.rand(t, 3, h, w, generator=g),
        "flow_prev": torch.randn(t, 2, h, w, generator=g),
        "flow_next": torch.randn(t, 2, h, w, generator=g),
        "flow_valid": torch.ones(t, 2, h, w),
        "residual": torch.full((t, 1, h, w), 0.5),
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = CPFP(CPFPConfig(**TINY_MODEL))
    torch.nn.init.normal_(model.decoder[-2].weight, std=0.05)  # a non-identity network
    return save_atomic(weights_payload(model, step=7), tmp_path_factory.mktemp("w") / "tiny.pt")


def test_restore_shape_range_and_provenance(weights: Path) -> None:
    model = CPFPRestorer(weights=weights, device="cpu")
    clip = random_clip()
    out = model.restore(clip)
    assert out.shape == clip["lq"].shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, clip["lq"].clamp(0, 1))
    prov = model.provenance()
    assert prov["label"] == "cpfp" and prov["weights_sha256"] == sha256_file(weights)
    assert "step 7" in prov["notes"] and (model.window, model.overlap) == (48, 4)


def test_spatial_tiles_blend_to_the_full_frame_size(weights: Path) -> None:
    whole = CPFPRestorer(weights=weights, device="cpu")
    tiled = CPFPRestorer(weights=weights, device="cpu", tile=32, tile_overlap=8)
    clip = random_clip()
    a, b = whole.restore(clip), tiled.restore(clip)
    assert b.shape == a.shape
    assert (a - b).abs().mean() < 0.05  # tiles see less context, but restore the same frames


def test_registry_builds_cpfp(weights: Path) -> None:
    model = get_model("cpfp", weights=weights, device="cpu")
    assert isinstance(model, CPFPRestorer) and model.name == "cpfp"


def test_weight_file_errors(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        CPFPRestorer(weights=tmp_path / "missing.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a CPFP weight file"):
        CPFPRestorer(weights=tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match="cannot be read"):
        CPFPRestorer(weights=tmp_path / "text.pt")
    payload = torch.load(weights, weights_only=True)
    payload["arch"] = {**payload["arch"], "channels": 16}  # declares another architecture
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(ModelError, match="do not match the architecture") as e:
        CPFPRestorer(weights=tmp_path / "mismatch.pt")
    assert "\n" not in str(e.value)


def _arch(**changes: object):  # noqa: ANN202 - a payload mutation
    return lambda p: {**p, "arch": {**p["arch"], **changes}}


MALFORMED = {
    "unknown option": (_arch(colour="rgb"), r"declare an invalid architecture: unknown CPFP model option\(s\) colour;"),
    "deform_groups 0": (_arch(deform_groups=0), r"invalid architecture: CPFP model option deform_groups must be >= 1"),
    "string channels": (_arch(channels="64"), r"option channels must be int, got '64'"),
    "string flag": (_arch(use_residual="yes"), r"option use_residual must be bool, got 'yes'"),
    "nan gain": (_arch(residual_gain=float("nan")), r"option residual_gain must be >= 0, got nan"),
    "bad alignment": (_arch(alignment="sift"), r"invalid architecture: unknown alignment 'sift'"),
    "no model key": (lambda p: {k: v for k, v in p.items() if k != "model"}, r"have no dict 'model' \(got NoneType\)"),
    "arch a list": (lambda p: {**p, "arch": [1, 2]}, r"have no dict 'arch' \(got list\)"),
    "string step": (lambda p: {**p, "step": "7"}, r"have no int 'step' \(got str\)"),
    "huge declared net": (_arch(channels=4_000_000), r"do not match the architecture they declare \(encoder\.1\."),
    "non-tensor value": (lambda p: {**p, "model": {**p["model"], "encoder.1.bias": "x"}},
                         r"\(encoder\.1\.bias: str in the file, \(8,\) declared\)"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_weight_files_are_one_line_errors(weights: Path, tmp_path: Path, case: str) -> None:
    """Files that load safely (weights_only) but declare nonsense: one line naming the file, nothing allocated."""
    mutate, message = MALFORMED[case]
    bad = tmp_path / "bad.pt"
    torch.save(mutate(torch.load(weights, weights_only=True)), bad)
    with pytest.raises(ModelError, match=message) as e:
        CPFPRestorer(weights=bad, device="cpu")
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


def test_malformed_weight_file_in_the_cli_is_one_line(weights: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cpgd_bench.cli import main

    from .test_store_util import random_sequence, write_store

    store = write_store(tmp_path / "s.zarr", {("test", "a"): random_sequence(0, t=4)})
    bad = tmp_path / "bad.pt"
    torch.save(MALFORMED["deform_groups 0"][0](torch.load(weights, weights_only=True)), bad)
    res = CliRunner().invoke(main, ["run", "--model", "cpfp", "--weights", str(bad), "--store", str(store),
                                    "--runs-dir", str(tmp_path / "runs"), "--metrics", "psnr"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)  # a click error, no traceback
    assert res.output.strip().count("\n") == 0 and f"CPFP weights {bad} declare" in res.output


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """weights_only loading: a file with arbitrary Python objects is not executed."""
    torch.save({"format": FORMAT, "arch": {}, "model": {}, "hook": Path("x")}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="cannot be read"):
        CPFPRestorer(weights=tmp_path / "evil.pt")


def test_demo_weights_are_bundled_small_and_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    path = demo_weights()
    assert path.is_file() and path.stat().st_size <= 10 * 2**20
    record = demo_record()
    assert record["sha256"] == sha256_file(path)
    assert {"command", "seed", "store", "steps"} <= set(record)
    assert "cpgd-bench train --stage cpfp" in record["command"]
    restorer_module._announced = False
    model = CPFPRestorer(device="cpu")
    CPFPRestorer(device="cpu")
    assert capsys.readouterr().err.count("bundled demo weights") == 1  # said once
    assert model.provenance()["label"] == "cpfp (demo weights)"
    assert model.step == record["steps"]
    out = model.restore(random_clip(t=2, h=32, w=32))
    assert out.shape == (2, 3, 32, 32)
    assert json.loads(path.with_suffix(".json").read_text()) == record
