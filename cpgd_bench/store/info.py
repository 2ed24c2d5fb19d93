"""Human-readable summary of a store: dataset, provenance, and one row per sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpgd_bench.store.reader import open_store


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_info(path: str | Path) -> dict[str, Any]:
    """Root attributes plus, per sequence: split, name, frames, size, fps, arrays and bytes on disk."""
    store = open_store(path)
    rows = []
    for split in store.splits():
        for seq in store.sequences(split):
            group = store.group(split, seq)
            attrs = group.attrs
            rows.append(
                {
                    "split": split,
                    "sequence": seq,
                    "frames": int(attrs["num_frames"]),
                    "height": int(attrs["height"]),
                    "width": int(attrs["width"]),
                    "fps": attrs["fps"],
                    "arrays": sorted(name for name, _ in group.arrays()),
                    "bytes": _disk_bytes(store.path / split / seq),
                }
            )
    return {"path": str(store.path), "attrs": store.attrs, "sequences": rows}


def format_info(info: dict[str, Any]) -> str:
    """Render :func:`store_info` as text."""
    attrs = info["attrs"]
    lines = [f"store    {info['path']}"]
    profile = attrs.get("codec_profile")
    version, created = attrs.get("format_version"), attrs.get("created")
    lines.append(f"dataset  {attrs.get('dataset')}  (format {version}, created {created})")
    if isinstance(profile, dict):
        lines.append(f"profile  {profile.get('name', profile)}")
    rows = info["sequences"]
    lines.append(f"{'split':<8}{'sequence':<24}{'frames':>7}{'size':>11}{'fps':>7}{'MiB':>8}  arrays")
    for r in rows:
        size = f"{r['width']}x{r['height']}"
        lines.append(
            f"{r['split']:<8}{r['sequence']:<24}{r['frames']:>7}{size:>11}{r['fps']:>7.4g}"
            f"{r['bytes'] / 2**20:>8.2f}  {','.join(r['arrays'])}"
        )
    total_frames = sum(r["frames"] for r in rows)
    total_mib = sum(r["bytes"] for r in rows) / 2**20
    lines.append(f"{len(rows)} sequences, {total_frames} frames, {total_mib:.1f} MiB")
    return "\n".join(lines)
