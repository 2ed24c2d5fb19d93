"""`cpgd-bench score`: score saved frames (PNG folders or a Zarr array) against a store under a protocol."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _format_summary(summary: dict[str, float], protocol: str, missing: dict[str, str]) -> str:
    lines = [f"protocol {protocol}"]
    for metric, value in summary.items():
        lines.append(f"  {metric:<8} {'missing' if metric in missing else f'{value:.4f}'}")
    return "\n".join(lines)


@click.command()
@click.option("--predictions", required=True, type=click.Path(path_type=Path),
              help="Zarr store (<split>/<seq>/<array>) or folder of <seq>/*.png.")
@click.option("--store", required=True, type=click.Path(path_type=Path), help="Store with the ground truth.")
@click.option("--split", default="test", show_default=True)
@click.option("--protocol", help="Protocol name (manifests/protocols; default: the one marked default).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write tables and scores.json here.")
@click.option("--metrics", help="Comma-separated metrics (default: the protocol's).")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), help="Metric weight files.")
@click.option("--skip-unavailable", is_flag=True, help="Record metrics without weights as missing (NaN), not fail.")
@click.option("--device", help="torch device (default: cuda if available, else cpu).")
@click.option("--array", default="pred", show_default=True,
              help="Zarr array to score (e.g. 'decoded' with --predictions STORE: the codec output).")
@click.option("--sensitivity", is_flag=True,
              help="Instead: print how much each protocol choice moves PSNR/SSIM (markdown table).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def score(predictions: Path, store: Path, split: str, protocol: str | None, out: Path | None, metrics: str | None,
          weights_dir: Path | None, skip_unavailable: bool, device: str | None, array: str, sensitivity: bool,
          as_json: bool) -> None:
    """Score PREDICTIONS against the ground truth of STORE (per frame, per window, per sequence, summary)."""
    if sensitivity:
        from cpgd_bench.eval.sensitivity import protocol_sensitivity, to_markdown

        table = protocol_sensitivity(predictions, store, split, protocol, array=array, device=device,
                                     others=["kair-matlab"])
        click.echo(to_markdown(table))
        return
    from cpgd_bench.eval.scoring import json_number, score_predictions

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    result = score_predictions(predictions, store, split, protocol=protocol, metrics=names, weights_dir=weights_dir,
                               skip_unavailable=skip_unavailable, device=device, array=array)
    if out is not None:
        result.write(out)
    missing, not_scored = result.provenance["missing"], result.provenance["not_scored"]
    if not_scored:
        click.echo(not_scored, err=True)
    if as_json:
        summary = {k: json_number(v) for k, v in result.summary.items()}
        click.echo(json.dumps({"summary": summary, "missing": missing, "not_scored": not_scored}, indent=2))
    else:
        click.echo(_format_summary(result.summary, result.provenance["protocol"]["name"], missing))
        for metric, reason in missing.items():
            click.echo(f"missing {metric}: {reason}", err=True)
