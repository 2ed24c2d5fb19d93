"""`cpgd-bench run | report | models`: inference + scoring into run directories, the leaderboard, the registry."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--model", required=True, help="Registered model name (see `cpgd-bench models`).")
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Coding-prior store (x.zarr).")
@click.option("--split", default="test", show_default=True, help="Split of the store to restore and score.")
@click.option("--weights", type=click.Path(path_type=Path), help="Model weights file.")
@click.option("--upstream", type=click.Path(path_type=Path), help="Baselines: local checkout of the authors' code.")
@click.option("--protocol", help="Evaluation protocol (default: the pinned default protocol).")
@click.option("--metrics", help="Comma-separated metric subset (default: the protocol's metrics).")
@click.option("--metric-weights", type=click.Path(path_type=Path), help="Folder with the metrics' weight files.")
@click.option("--skip-unavailable", is_flag=True, help="Record metrics without weights as missing, do not fail.")
@click.option("--device", help="torch device (default: cuda if available, else cpu).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Redo a finished run.")
def run(
    model: str, store: Path, split: str, weights: Path | None, upstream: Path | None, protocol: str | None,
    metrics: str | None, metric_weights: Path | None, skip_unavailable: bool, device: str | None, runs_dir: Path,
    force: bool,
) -> None:
    """Restore SPLIT of STORE with MODEL, score it, write runs/<model>-<store>-<date>/."""
    from cpgd_bench.eval.runner import run_model

    result = run_model(
        model, store, split, weights=weights, upstream=upstream, protocol=protocol, device=device, force=force,
        runs_root=runs_dir, metrics=metrics.split(",") if metrics else None, metric_weights=metric_weights,
        skip_unavailable=skip_unavailable,
    )
    if result.skipped:
        click.echo(f"{result.run_dir}: already complete (use --force to redo)")
        return
    if result.note:
        click.echo(result.note, err=True)
    scores = ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} missing" for k, v in result.summary.items())
    click.echo(f"{result.run_dir}: {scores}")


@click.command()
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--out", default="leaderboard", show_default=True, type=click.Path(path_type=Path))
@click.option("--reported", type=click.Path(path_type=Path),
              help="Reported rows (default: the paper's, leaderboard/reported.csv, shipped in the package).")
def report(runs_dir: Path, out: Path, reported: Path | None) -> None:
    """Collect finished runs (and the paper's reported rows) into OUT: csv, markdown, html with plots."""
    from cpgd_bench.report import build_report

    written = build_report(runs_dir, out, reported)
    for path in written:
        click.echo(str(path))


@click.command()
def models() -> None:
    """List the registered models."""
    from cpgd_bench.models.registry import model_entries

    for entry in model_entries():
        click.echo(f"{entry.name:10s} {entry.description}")
