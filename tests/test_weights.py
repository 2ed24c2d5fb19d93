"""The one weights table and resolver: lookup order, unverified files, load_torch, `weights list|verify` for models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.metrics import WeightsError as MetricsWeightsError
from cpgd_bench.weights import WeightsError, bundled_dir, find, load_table, load_torch, search_dirs
from cpgd_bench.weights import table as weights_table

KNOWN, UNKNOWN = b"known" * 8, b"unknown" * 8


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A table with a metric file (known digest) and a model file without one; an empty cwd and torch hub."""
    spec = {
        "version": 2,
        "files": {
            "k.bin": {"sha256": hashlib.sha256(KNOWN).hexdigest(), "size": len(KNOWN), "source": "https://e.org/k",
                      "licence": "MIT"},
            "u.pth": {"sha256": None, "unverified": "no digest published", "size": None, "source": "https://e.org/u",
                      "licence": "MIT"},
        },
        "metrics": {"niqe": {"model": ["k.bin"]}},
        "models": {"toy": {"net": ["u.pth"]}},
    }
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(weights_table, "TABLE_FILE", tmp_path / "w.yaml")
    monkeypatch.delenv(weights_table.ENV_VAR, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path
    torch.hub.set_dir(previous)


def test_one_error_class_under_the_root() -> None:
    assert MetricsWeightsError is WeightsError and issubclass(WeightsError, CpgdBenchError)


def test_lookup_order_is_stated_once(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights_table.ENV_VAR, str(table / "env"))
    hub = Path(torch.hub.get_dir())
    assert search_dirs(table / "dir") == [table / "dir", table / "env", Path("weights"), hub / "pyiqa",
                                          hub / "checkpoints", bundled_dir()]
    assert (bundled_dir() / "cpfp_demo.pt").is_file()
    Path("weights").mkdir()
    (Path("weights") / "u.pth").write_bytes(UNKNOWN)
    found = find(["u.pth"])
    assert found == weights_table.Resolved(Path("weights/u.pth"), hashlib.sha256(UNKNOWN).hexdigest(), False)
    (table / "env").mkdir()
    (table / "env" / "u.pth").write_bytes(UNKNOWN)
    assert find(["u.pth"]).path == table / "env" / "u.pth"  # $CPGD_BENCH_WEIGHTS before ./weights
    assert find(["u.pth"], Path("weights/u.pth")).path == Path("weights/u.pth")  # an explicit path wins
    with pytest.raises(WeightsError, match=r"weight file nope.pth does not exist; get u.pth \(https://e.org/u\)"):
        find(["u.pth"], Path("nope.pth"))


def test_load_torch_is_tensor_only_and_one_line(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_torch(tmp_path / "ok.pt")["w"], torch.ones(2))
    torch.save({"hook": Path("x")}, tmp_path / "evil.pt")  # arbitrary objects: refused, not executed
    (tmp_path / "text.pt").write_text("hello")
    for bad in ("evil.pt", "text.pt", "absent.pt"):
        with pytest.raises(WeightsError, match=f"weights file .*{bad} cannot be read") as e:
            load_torch(tmp_path / bad)
        assert "\n" not in str(e.value)


def test_cli_lists_every_file_with_its_users_and_verifies_models(table: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["weights", "list"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[1]: line for line in res.output.splitlines()[1:]}
    assert lines["k.bin"].startswith("missing") and "niqe.model" in lines["k.bin"]
    assert lines["u.pth"].startswith("missing") and "toy.net" in lines["u.pth"] and "https://e.org/u" in lines["u.pth"]
    assert runner.invoke(main, ["weights", "verify", "--models", "toy"]).exit_code == 1
    Path("weights").mkdir()
    (Path("weights") / "u.pth").write_bytes(UNKNOWN)
    res = runner.invoke(main, ["weights", "list"])
    assert res.output.splitlines()[2].startswith("unverified")
    res = runner.invoke(main, ["weights", "verify", "--models", "toy"])
    assert res.exit_code == 0 and "ok toy" in res.output and "unverified u.pth" in res.output
    assert hashlib.sha256(UNKNOWN).hexdigest() in res.output and "no digest published" in res.output
    res = runner.invoke(main, ["weights", "verify", "--models", "nope"])
    assert res.exit_code == 1 and "no weight files listed for model(s) ['nope']" in res.output


def test_the_real_table_lists_every_user() -> None:
    table = load_table()
    assert table.slots("cpgd")["control"] == ["v2.pth"] and table.slots("bsstnet") == {"raft": ["raft-things.pth"]}
    assert table.users("cpfp_demo.pt") == ["cpfp.weights"]
    demo = (bundled_dir() / "cpfp_demo.pt").read_bytes()
    assert table.files["cpfp_demo.pt"].sha256 == hashlib.sha256(demo).hexdigest()
