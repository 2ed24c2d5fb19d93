"""`cpgd-bench dataset ...`: build, inspect, verify and export coding-prior stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from cpgd_bench.codec.errors import CodecError
from cpgd_bench.sources import SourceError, get_source, source_names
from cpgd_bench.store import StoreError, export_h5, format_info, store_info, verify_store

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(func: F) -> F:
    """Turn expected user mistakes into one-line click errors."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (StoreError, SourceError, CodecError) as e:
            raise click.ClickException(str(e)) from None

    return wrapper  # type: ignore[return-value]


@click.group()
def dataset() -> None:
    """Build and inspect coding-prior stores (Zarr v3: frames, VVC motion vectors, residuals)."""


@dataset.command()
@click.argument("name", type=click.Choice(source_names()))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Store directory (e.g. x.zarr).")
@click.option("--root", type=click.Path(exists=True, path_type=Path), help="Dataset root dir.")
@click.option("--profile", default="default", show_default=True, help="Codec profile (manifests/codec).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Codec scratch dir.")
@_user_errors
def build(name: str, out: Path, root: Path | None, profile: str, workdir: Path | None) -> None:
    """Build (or resume) the store OUT for dataset NAME with VVC coding priors."""
    from cpgd_bench.store.build import build_store

    summary = build_store(get_source(name, root=root), out, profile=profile, workdir=workdir)
    click.echo(summary.format())
    if summary.failed:
        raise SystemExit(1)


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_user_errors
def info(store: Path, as_json: bool) -> None:
    """Summarise STORE: provenance and one line per sequence."""
    summary = store_info(store)
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--no-checksums", is_flag=True, help="Skip re-hashing the arrays (structure only).")
@_user_errors
def verify(store: Path, no_checksums: bool) -> None:
    """Check STORE's arrays, dtypes, shapes, counts and checksums; exit 1 on any problem."""
    report = verify_store(store, checksums=not no_checksums, progress=True)
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in report.problems:
        click.echo(f"problem: {line}", err=True)
    status = "OK" if report.ok else f"FAILED ({len(report.problems)} problems)"
    click.echo(f"{report.path}: {report.sequences} sequences, {report.frames} frames: {status}")
    if not report.ok:
        raise SystemExit(1)


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["h5"]), default="h5", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output file (e.g. sample.h5).")
@_user_errors
def export(store: Path, fmt: str, out: Path) -> None:
    """Export STORE to another format (HDF5: same /split/sequence/array layout)."""
    click.echo(f"wrote {export_h5(store, out, progress=True)}")
