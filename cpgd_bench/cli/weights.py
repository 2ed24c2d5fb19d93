"""`cpgd-bench weights list|verify`: which metric weight files are present locally, and are they intact."""

from __future__ import annotations

from pathlib import Path

import click

from cpgd_bench.cli.score import metric_user_errors

_DIR_OPTION = click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path),
                           help="Directory searched first (then $CPGD_BENCH_WEIGHTS, then the torch hub cache).")


@click.group()
def weights() -> None:
    """Metric weight files: the table (manifests/weights.yaml), where they were found, sha256 checks."""


@weights.command("list")
@_DIR_OPTION
@metric_user_errors
def list_(weights_dir: Path | None) -> None:
    """One line per weight file: status, the metrics that use it, where it was found or where to get it."""
    from cpgd_bench.metrics.weights import file_status, search_dirs

    click.echo("searched: " + ", ".join(str(d) for d in search_dirs(weights_dir)))
    for s in file_status(weights_dir):
        where = str(s.path) if s.path else s.entry.source
        click.echo(f"{s.status:<10} {s.entry.name:<48} {','.join(s.metrics):<8} {s.entry.sha256[:12]}  {where}")


@weights.command()
@_DIR_OPTION
@click.option("--metrics", help="Comma-separated metrics that must be usable (default: every metric with weights).")
@metric_user_errors
def verify(weights_dir: Path | None, metrics: str | None) -> None:
    """Check sha256 of every file found; fail if one is corrupt or a metric asked for lacks a file."""
    from cpgd_bench.metrics.registry import metric_info
    from cpgd_bench.metrics.weights import file_status, load_table, metric_available

    table = load_table()
    names = [m.strip() for m in metrics.split(",")] if metrics else sorted(table.metrics)
    for name in names:
        metric_info(name)  # unknown metric names are a one-line error
    bad = [s for s in file_status(weights_dir, table) if s.status == "bad sha256"]
    for s in bad:
        click.echo(f"bad sha256: {s.detail}", err=True)
    problems = {m: r for m in names if (r := metric_available(m, weights_dir, table))}
    for metric in names:
        if metric in problems:
            click.echo(f"unavailable {metric}: {problems[metric]}", err=True)
        else:
            click.echo(f"ok {metric}")
    if bad or problems:
        raise SystemExit(1)
