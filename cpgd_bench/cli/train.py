"""`cpgd-bench train --stage {cpfp,cpc}`: train one CPGD-Net stage from a YAML config (DDP under torchrun)."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from cpgd_bench.train import STAGES


@click.command()
@click.option("--stage", required=True, type=click.Choice(STAGES), help="Which CPGD-Net stage to train.")
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Coding-prior store (x.zarr).")
@click.option("--config", required=True, type=click.Path(path_type=Path), help="Training config (manifests/train/).")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [default: runs/train/<stage>-<config>].")
@click.option("--resume", is_flag=True, help="Continue from <out>/last.pt.")
@click.option("--device", help="torch device (default: cuda if available, else cpu; torchrun: one GPU per rank).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this step (the schedule is unchanged).")
def train(
    stage: str, store: Path, config: Path, out: Path | None, resume: bool, device: str | None, max_steps: int | None
) -> None:
    """Train a stage; multi-GPU: `torchrun --no-python --nproc_per_node N cpgd-bench train ...`."""
    out = out or Path("runs") / "train" / f"{stage}-{config.stem}"
    try:
        module = importlib.import_module(f"cpgd_bench.train.{stage}")
    except ModuleNotFoundError as e:
        if e.name != f"cpgd_bench.train.{stage}":
            raise
        raise click.ClickException(f"stage {stage!r} has no trainer in this checkout yet") from None
    final = module.train(config, store, out, resume=resume, device=device, max_steps=max_steps)
    click.echo(f"final weights: {final}")
