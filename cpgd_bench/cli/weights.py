"""`cpgd-bench weights list|verify`: every weight file of the table, where it was found, and whether it is intact."""

from __future__ import annotations

from pathlib import Path

import click

_DIR_OPTION = click.option(
    "--weights-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Directory searched first (then $CPGD_BENCH_WEIGHTS, ./weights, the torch hub cache, the bundled files).",
)


@click.group()
def weights() -> None:
    """Weight files of metrics and models: the table (manifests/weights.yaml), where they were found, sha256 checks."""


@weights.command("list")
@_DIR_OPTION
def list_(weights_dir: Path | None) -> None:
    """One line per weight file: status, who uses it, its sha256, where it was found or where to get it."""
    from cpgd_bench.weights import file_status, search_dirs

    click.echo("searched: " + ", ".join(str(d) for d in search_dirs(weights_dir)))
    for s in file_status(weights_dir):
        where = str(s.path) if s.path else s.entry.source
        digest = (s.entry.sha256 or "-")[:12]
        click.echo(f"{s.status:<10} {s.entry.name:<48} {','.join(s.users):<24} {digest:<12}  {where}")


@weights.command()
@_DIR_OPTION
@click.option("--metrics", help="Comma-separated metrics that must be usable (default without --models: all).")
@click.option("--models", help="Comma-separated models whose files must be present (cpfp, cpfp-raft, cpgd, bsstnet).")
def verify(weights_dir: Path | None, metrics: str | None, models: str | None) -> None:
    """Check sha256 of every file found; fail if one is corrupt or a metric or model asked for lacks a file."""
    from cpgd_bench.metrics.registry import metric_info
    from cpgd_bench.weights import WeightsError, available, file_status, load_table

    table = load_table()
    names = [m.strip() for m in metrics.split(",")] if metrics else [] if models else sorted(table.metrics)
    for name in names:
        metric_info(name)  # unknown metric names are a one-line error
    model_names = [m.strip() for m in models.split(",")] if models else []
    if unknown := [m for m in model_names if m not in table.models]:
        raise WeightsError(f"no weight files listed for model(s) {unknown}; the table lists {sorted(table.models)}")
    statuses = file_status(weights_dir, table)
    for s in statuses:
        if s.status == "bad sha256":
            click.echo(f"bad sha256: {s.detail}", err=True)
        elif s.status == "unverified":
            click.echo(f"unverified {s.entry.name}: {s.path}, {s.detail}")
    problems = {u: r for u in [*names, *model_names] if (r := available(u, weights_dir, table))}
    for user in [*names, *model_names]:
        if user in problems:
            click.echo(f"unavailable {user}: {problems[user]}", err=True)
        else:
            click.echo(f"ok {user}")
    if problems or any(s.status == "bad sha256" for s in statuses):
        raise SystemExit(1)
