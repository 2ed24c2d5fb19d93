"""Dataset build driver: sequences from a Source -> VVC coding priors -> store, resumable.

Finished sequences are skipped, so rerunning an interrupted build resumes it. A sequence whose
source or codec step fails is recorded in the summary and the build carries on; the store never
holds a partial sequence (see :class:`cpgd_bench.store.writer.StoreWriter`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cpgd_bench.codec import CodecError, extract_priors, load_profile
from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceRef, Source
from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.reader import read_root_attrs
from cpgd_bench.store.writer import StoreWriter

#: Arrays copied from the codec's CodedSequence into the store.
CODED_ARRAYS = (
    "decoded", "mv", "mv_ref", "residual", "residual_cb", "residual_cr", "poc", "slice_type", "qp",
)  # fmt: skip


@dataclass
class BuildSummary:
    """What a build did: sequence keys (``split/name``) built, skipped (already there) and failed."""

    store: Path
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def format(self) -> str:
        """One summary line, then one line per failure."""
        lines = [
            f"{self.store}: built {len(self.built)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
            f"in {self.seconds:.1f} s"
        ]
        lines += [f"  failed {key}: {message}" for key, message in self.failed]
        return "\n".join(lines)


def _check_profile(out: Path, profile_name: str) -> None:
    if not (out / "zarr.json").exists():
        return
    existing = read_root_attrs(out).get("codec_profile", {}).get("name")
    if existing not in (None, profile_name):
        raise StoreError(
            f"store {out} was built with codec profile {existing!r}, not {profile_name!r}; "
            f"resume with --profile {existing} or choose another --out path"
        )


def build_one(source: Source, ref: SequenceRef, writer: StoreWriter, profile_name: str, workdir: Path) -> None:
    """Load, code and store one sequence (raises CodecError / SourceError / StoreError)."""
    profile = load_profile(profile_name)
    frames = source.load(ref)
    coded = extract_priors(frames.blur, profile, workdir=workdir, name=ref.name, fps=frames.fps)
    arrays: dict[str, np.ndarray] = {"blur": frames.blur}
    if frames.sharp is not None:
        arrays["sharp"] = frames.sharp
    arrays.update({name: getattr(coded, name) for name in CODED_ARRAYS})
    arrays["bitstream"] = np.fromfile(coded.bitstream, dtype=np.uint8)
    arrays.update(frames.extra)
    attrs = {
        "fps": frames.fps,
        "frame_names": list(frames.frame_names),
        "codec": dict(coded.attrs),
        "source": dict(frames.attrs),
    }
    writer.write_sequence(ref.split, ref.name, arrays, attrs)


def build_store(
    source: Source,
    out: str | Path,
    profile: str = "default",
    workdir: str | Path | None = None,
    progress: bool = True,
) -> BuildSummary:
    """Build (or resume) the store ``out`` from every sequence of ``source`` with codec ``profile``.

    ``workdir`` hosts the per-sequence codec scratch files (a temporary directory by default).
    Raises StoreError / CodecError for problems that stop the whole build (bad ``out`` path,
    unknown profile, missing codec build, profile mismatch with an existing store).
    """
    started = time.perf_counter()
    out = Path(out)
    resolved = load_profile(profile)
    _check_profile(out, resolved.name)
    summary = BuildSummary(store=out)
    root_attrs = {"source": source.describe(), "codec_profile": resolved.as_dict()}
    refs = source.sequences()
    with StoreWriter(out, source.name, root_attrs) as writer, tempfile.TemporaryDirectory(dir=workdir) as tmp:
        bar = tqdm(refs, desc=f"build {source.name}", unit="seq", disable=not progress)
        for ref in bar:
            key = f"{ref.split}/{ref.name}"
            bar.set_postfix_str(key)
            if writer.has_sequence(ref.split, ref.name):
                summary.skipped.append(key)
                continue
            scratch = Path(tmp) / f"{ref.split}-{ref.name}"
            scratch.mkdir()
            try:
                build_one(source, ref, writer, resolved.name, scratch)
                summary.built.append(key)
            except (CodecError, SourceError, StoreError) as e:
                summary.failed.append((key, str(e).splitlines()[0] if str(e) else type(e).__name__))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary
