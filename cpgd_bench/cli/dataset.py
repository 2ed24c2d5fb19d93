"""`cpgd-bench dataset ...`: download, check, build, inspect, verify and export coding-prior stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from cpgd_bench.sources import get_source, source_names

REAL_DATASETS = ("gopro", "dvd", "hqvideo")
ROOTLESS = ("sample", "realclips")  # sources that need no --root


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` source options; values are read as YAML scalars/lists (``100``, ``null``, ``[test]``).

    The source checks each value's type and range (one-line SourceError); a pair that is not
    ``KEY=VALUE`` or a value that is not YAML is a usage error here.
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. -o blur=blur_gamma)", param_hint="--option")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or type(e).__name__
            raise click.BadParameter(f"{pair!r}: the value is not valid YAML ({problem}); quote text, "
                                     "e.g. -o split=test or -o splits=[train,test]", param_hint="--option") from None
    return options


def _source(name: str, root: Path | None, options: tuple[str, ...]) -> Any:
    if name not in ROOTLESS and root is None:
        raise click.UsageError(f"dataset {name} needs --root (the folder holding it; see `cpgd-bench dataset check`)")
    return get_source(name, root=root, **_parse_options(options))


_OPTION_HELP = "Source option KEY=VALUE, repeatable (e.g. blur=blur_gamma, splits=[test], segment_frames=50)."
_jobs = click.option("--jobs", "-j", default=1, show_default=True, type=int,
                     help="Sequences built at once (-1: one per CPU; with dask: tasks in flight).")
_backend = click.option("--backend", type=click.Choice(["loky", "threading", "dask"]), default="loky",
                        show_default=True, help="joblib backend: loky processes, threads, or a Dask cluster.")
_scheduler = click.option("--scheduler", help="Dask scheduler address (tcp://host:8786) for --backend dask.")
_profile = click.option("--profile", default="default", show_default=True,
                        help="Coding profile (manifests/codec/profiles.yaml); 'default' is the --codec's default.")
_codec = click.option("--codec", default=None, metavar="vvc|hevc|h264",
                      help="Codec of the priors (default vvc): picks its default profile (HEVC: x265, H.264: x264).")
_workdir = click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                        help="Codec scratch dir (shared by all workers with dask).")


@click.group()
def dataset() -> None:
    """Build and inspect coding-prior stores (Zarr v3: frames, VVC/HEVC/H.264 motion vectors, residuals)."""


@dataset.command()
@click.argument("name", type=click.Choice(source_names()))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Store directory (e.g. x.zarr).")
@click.option("--root", type=click.Path(exists=True, path_type=Path), help="Dataset root dir (or a video file).")
@click.option("--option", "-o", "options", multiple=True, help=_OPTION_HELP)
@_profile
@_codec
@_workdir
@_jobs
@_backend
@_scheduler
def build(name: str, out: Path, root: Path | None, options: tuple[str, ...], profile: str, codec: str | None,
          workdir: Path | None, jobs: int, backend: str, scheduler: str | None) -> None:  # fmt: skip
    """Build (or resume) the store OUT for dataset NAME with VVC (or --codec HEVC/H.264) coding priors."""
    from cpgd_bench.build import build_store

    summary = build_store(_source(name, root, options), out, profile=profile, codec=codec, workdir=workdir,
                          jobs=jobs, backend=backend, scheduler=scheduler)  # fmt: skip
    click.echo(summary.format())
    if summary.failed:
        raise SystemExit(1)


@dataset.command("build-all")
@click.option("--data-root", default="data/raw", show_default=True, type=click.Path(path_type=Path),
              help="Folder holding the raw datasets (GOPRO_Large/, DeepVideoDeblurring_Dataset/, HQ-Video/).")
@click.option("--stores", default="data/stores", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the stores (<name>.zarr).")
@click.option("--only", default="", help="Comma-separated datasets to build (default: every one found).")
@_profile
@_codec
@_workdir
@_jobs
@_backend
@_scheduler
def build_all(data_root: Path, stores: Path, only: str, profile: str, codec: str | None, workdir: Path | None,
              jobs: int, backend: str, scheduler: str | None) -> None:  # fmt: skip
    """Build a store for each real dataset found under --data-root (those named in --only must be there)."""
    from cpgd_bench.build import build_store
    from cpgd_bench.sources.manifest import load_manifest

    requested = [n for n in only.replace(",", " ").split() if n != "sample"]
    unknown = [n for n in requested if n not in REAL_DATASETS]
    if unknown:
        raise click.UsageError(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(REAL_DATASETS)}")
    wanted = requested if only.strip() else list(REAL_DATASETS)  # --only sample: no real dataset
    failed = False
    for name in wanted:
        manifest = load_manifest(name)
        root = manifest.find_root(data_root)
        if root is None:
            line = f"{name}: not found under {data_root} (looked for {', '.join(manifest.root_dirs)})"
            if requested:
                click.echo(f"error: {line}", err=True)
                failed = True
            else:
                click.echo(f"skip {line}")
            continue
        summary = build_store(get_source(name, root=root), stores / f"{name}.zarr", profile=profile, codec=codec,
                              workdir=workdir, jobs=jobs, backend=backend, scheduler=scheduler)  # fmt: skip
        click.echo(summary.format())
        failed = failed or bool(summary.failed)
    if failed:
        raise SystemExit(1)


@dataset.command()
@click.argument("name", type=click.Choice([n for n in source_names() if n not in ROOTLESS]))
@click.option("--root", required=True, type=click.Path(exists=True, path_type=Path), help="Dataset root dir.")
@click.option("--option", "-o", "options", multiple=True, help=_OPTION_HELP)
def check(name: str, root: Path, options: tuple[str, ...]) -> None:
    """Compare the raw dataset under ROOT with its manifest (sequences, frame counts); exit 1 on problems."""
    source = _source(name, root, options)
    report = source.check()
    for line in report.notes:
        click.echo(f"note: {line}")
    for line in report.problems:
        click.echo(f"problem: {line}", err=True)
    status = "OK" if not report.problems else f"{len(report.problems)} problems"
    click.echo(f"{name} at {source.root}: {report.sequences} sequences, {report.frames} frames: {status}")
    if report.problems:
        raise SystemExit(1)


@dataset.command()
@click.argument("name", type=click.Choice(list(REAL_DATASETS)))
@click.option("--data-root", default="data/raw", show_default=True, type=click.Path(path_type=Path),
              help="Where archives (downloads/) and the extracted dataset go.")
def download(name: str, data_root: Path) -> None:
    """Fetch NAME's official archives (or use ones already in DATA_ROOT/downloads/), check sha256, extract."""
    from cpgd_bench.sources.download import download_dataset

    for line in download_dataset(name, data_root).lines:
        click.echo(line)


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(store: Path, as_json: bool) -> None:
    """Summarise STORE: provenance and one line per sequence."""
    from cpgd_bench.store import format_info, store_info

    summary = store_info(store)
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--no-checksums", is_flag=True, help="Skip re-hashing the arrays (structure only).")
def verify(store: Path, no_checksums: bool) -> None:
    """Check STORE's arrays, dtypes, shapes, counts and checksums; exit 1 on any problem."""
    from cpgd_bench.store import verify_store

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
def export(store: Path, fmt: str, out: Path) -> None:
    """Export STORE to another format (HDF5: same /split/sequence/array layout)."""
    from cpgd_bench.store import export_h5

    click.echo(f"wrote {export_h5(store, out, progress=True)}")


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--split", required=True, help="Split of the sequence (e.g. test).")
@click.option("--sequence", required=True, help="Sequence name (list them with `cpgd-bench dataset info`).")
@click.option("--frames", help="Frames a:b, end exclusive (default: the first 16); only these are read.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNG panels, layers and index.html.")
def show(store: Path, split: str, sequence: str, frames: str | None, out: Path) -> None:
    """Draw one sequence's frames and priors (MV flow wheel, blocks, |residual|) as PNG panels and a viewer."""
    from cpgd_bench.viz.show import show_sequence

    click.echo(show_sequence(store, split, sequence, out, frames).format())


@dataset.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--split", help="Only this split (default: every split).")
@click.option("--flow", default="composed", show_default=True, type=click.Choice(["composed", "composed-v1", "scaled"]),
              help="Flow method measured (cpgd_bench.data.flow).")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as CSV.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as JSON.")
@click.option("--no-record", is_flag=True, help="Do not write the summary into the store's root attributes.")
def quality(store: Path, split: str | None, flow: str, csv_out: Path | None, json_out: Path | None,
            no_record: bool) -> None:  # fmt: skip
    """Warp error of STORE's MV flows vs zero motion vs DIS optical flow, per sequence and direction."""
    from cpgd_bench.data.quality import format_table, store_quality, to_csv, write_summary

    rows = store_quality(store, split, flow)
    click.echo(format_table(rows))
    if csv_out:
        csv_out.write_text(to_csv(rows))
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2))
    if not no_record:
        write_summary(store, rows, flow)
