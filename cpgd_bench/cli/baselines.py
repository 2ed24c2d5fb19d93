"""`cpgd-bench baselines check`: whether a baseline runs here from a checkout of the authors' code."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def baselines() -> None:
    """Table I baselines run from the authors' own code (a local checkout, see docs/baselines.md)."""


@baselines.command()
@click.argument("name")
@click.option("--upstream", required=True, type=click.Path(path_type=Path), help="Checkout of the authors' repository.")
@click.option("--weights", type=click.Path(path_type=Path), help="Released checkpoint: strict key check, then used.")
@click.option("--device", help="torch device (default: cuda if available, else cpu).")
def check(name: str, upstream: Path, weights: Path | None, device: str | None) -> None:
    """One verdict line per check (commit, requirements, GPU, files, build, weights, forward); exit 1 on a failure."""
    from cpgd_bench.models.baselines.check import check as run_checks

    failed = False
    for verdict in run_checks(name, upstream, weights, device):
        click.echo(verdict.line())
        failed |= verdict.status == "FAIL"
    if failed:
        raise SystemExit(1)
