"""CPFP training on a tiny store: checkpoints, validation, exact resume, DDP == one process, CLI and errors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.models.cpgd.cpfp.checkpoint import load_cpfp, read_payload
from cpgd_bench.train.cpfp import TrainConfigError, load_config, train

from .cpfp_fixtures import tiny_config, tiny_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("cpfp") / "tiny.zarr")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_payload(path)["model"]


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)


def test_train_writes_checkpoints_log_and_validation(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    final = train(tiny_config(tmp_path / "c.yaml"), store, out)
    assert final == out / "final.pt"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 for r in log)
    validated = [r for r in log if "val_psnr" in r]
    assert [r["step"] for r in validated] == [2, 4]
    assert validated[0]["val_frames"] == 12 and validated[0]["input_psnr"] > 0
    assert log[-1]["lr"] < log[0]["lr"]  # cosine decay
    last = read_payload(out / "last.pt")
    assert last["step"] == 4 and last["optimizer"]["state"] and last["scheduler"]["last_epoch"] == 4
    betas = last["optimizer"]["param_groups"][0]["betas"]
    assert tuple(betas) == (0.9, 0.99)
    model, payload = load_cpfp(final)
    assert payload["step"] == 4 and not model.training
    assert (out / "config.yaml").is_file()


def test_resume_continues_exactly(store: Path, tmp_path: Path) -> None:
    """Training 2 steps, then resuming to 4, gives the same weights as 4 steps in one go."""
    config = tiny_config(tmp_path / "c.yaml")
    straight = train(config, store, tmp_path / "straight")
    train(config, store, tmp_path / "chunked", max_steps=2)
    assert read_payload(tmp_path / "chunked" / "last.pt")["step"] == 2
    resumed = train(config, store, tmp_path / "chunked", resume=True)
    assert_same_weights(straight, resumed)


def _ddp_worker(rank: int, world: int, port: int, config: Path, store: Path, out: Path) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    train(config, store, out, device="cpu")


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(store: Path, tmp_path: Path) -> None:
    """2 gloo processes with 1 clip each train exactly like 1 process with the global batch of 2."""
    config = tiny_config(tmp_path / "c.yaml", optim={"steps": 2}, val={"every": 100})
    single = train(config, store, tmp_path / "single", device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, config, store, tmp_path / "ddp"), nprocs=2, start_method="spawn")
    assert_same_weights(single, tmp_path / "ddp" / "final.pt", atol=1e-6)


def test_cli_train_and_errors(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    config = tiny_config(tmp_path / "c.yaml")
    out = tmp_path / "cli"
    args = ["train", "--stage", "cpfp", "--store", str(store), "--config", str(config), "--out", str(out)]
    result = runner.invoke(main, [*args, "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    assert "final weights:" in result.output and read_payload(out / "final.pt")["step"] == 1

    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "pass --resume" in again.output
    resumed = runner.invoke(main, [*args, "--resume", "--max-steps", "2"])
    assert resumed.exit_code == 0 and read_payload(out / "last.pt")["step"] == 2

    fresh = runner.invoke(main, [*args[:-1], str(tmp_path / "none"), "--resume"])
    assert fresh.exit_code != 0 and "no checkpoint" in fresh.output
    bad = runner.invoke(main, ["train", "--stage", "cpfp", "--store", str(store), "--config",
                               str(tiny_config(tmp_path / "b.yaml", data={"crops": 32}))])  # fmt: skip
    assert bad.exit_code != 0 and "unknown data.crops" in bad.output and "Traceback" not in bad.output
    raft = tiny_config(tmp_path / "r.yaml", model={"alignment": "raft-mv-init", "raft_small": True})
    no_raft = runner.invoke(main, [*args[:-1], str(tmp_path / "raft"), "--config", str(raft)])
    assert no_raft.exit_code != 0 and "needs raft_weights" in no_raft.output


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "x.yaml").write_text("optimiser: {}\n")
    with pytest.raises(TrainConfigError, match="unknown key 'optimiser'"):
        load_config(tmp_path / "x.yaml")
    with pytest.raises(ValueError, match="unknown alignment"):
        load_config(tiny_config(tmp_path / "y.yaml", model={"alignment": "sift"}))


def test_shipped_configs_load() -> None:
    root = Path(__file__).parents[1] / "manifests" / "train"
    configs = sorted(root.glob("cpfp-*.yaml"))
    assert {"cpfp-demo.yaml", "cpfp-gopro.yaml", "cpfp-dvd.yaml"} <= {p.name for p in configs}
    for path in configs:
        cfg = load_config(path)
        assert cfg["optim"]["betas"] == [0.9, 0.99] and cfg["data"]["split"] == "train"
    assert load_config(root / "cpfp-gopro.yaml")["data"]["crop"] == 256
