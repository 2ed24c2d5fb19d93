"""The build layer: sequences from a Source -> VVC coding priors -> store, resumable and parallel.

Finished sequences are skipped, so rerunning an interrupted build resumes it. A sequence whose
source or codec step fails is recorded in the summary and the build carries on; the store never
holds a partial sequence (see :class:`cpgd_bench.store.writer.StoreWriter`).

Parallel builds: the driver takes the store lock, creates the store (root group, every split group)
and fans the missing sequences out with joblib (``jobs`` workers; backend ``loky`` processes,
``threading``, or ``dask`` on the cluster at ``scheduler``). Each worker writes its sequence under a
temporary name unique to its process and a random token, holding that name's lock, then renames it:
workers never touch the same path, and a killed worker leaves only a temporary directory whose lock is
free, which the next build removes. Worker processes watch the driver's store lock and exit as soon as
their driver is gone (killed, however), so no worker outlives it. The driver indexes each committed
sequence; a rerun first indexes the sequences a killed driver's workers committed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import joblib
import numpy as np
from tqdm import tqdm

from cpgd_bench.codec import CodecError, CodecProfile, coded_stream, load_profile
from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.motion import DEFAULT_FLOW, block_flows, flow_tag
from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source
from cpgd_bench.sources.realclips import frame_events
from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.locks import FileLock, is_held, watching_driver
from cpgd_bench.store.reader import read_root_attrs
from cpgd_bench.store.schema import FLOW_METHOD_ATTR, FRAMES_PER_SHARD, check_name
from cpgd_bench.store.writer import LOCK_NAME, StoreWriter

BACKENDS = ("loky", "threading", "dask")
#: Frames per block handed from the decoder to the store: one shard (two inner chunks), written as whole shard
#: files (:class:`~cpgd_bench.store.shard_writer.ShardWriter`). Smaller blocks shorten the tail (the last block
#: is compressed after decoding ends) but would rewrite shards.
DECODE_BLOCK = FRAMES_PER_SHARD
SCHEDULER_TIMEOUT = "20s"  # how long to try reaching a Dask scheduler
#: Codec scratch directories ``<workdir>/cpgd-build-<split>-<sequence>-<token>``, each with a ``.lock`` beside it
#: that its worker holds from before the directory exists until after it is removed.
SCRATCH_PREFIX = "cpgd-build-"


class BuildError(CpgdBenchError, RuntimeError):
    """A build that cannot start (bad backend options, unreachable scheduler); one-line message."""


@dataclass
class BuildSummary:
    """What a build did: sequence keys (``split/name``) built, skipped (already there) and failed."""

    store: Path
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def format(self) -> str:
        """One summary line, then one line per failure."""
        lines = [
            f"{self.store}: built {len(self.built)} ({self.frames} frames), skipped {len(self.skipped)}, "
            f"failed {len(self.failed)} in {self.seconds:.1f} s"
        ]
        lines += [f"  failed {key}: {message}" for key, message in self.failed]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Outcome:
    """One worker's result: the sequence key, its frame count when built, or the failure message."""

    key: str
    frames: int = 0
    error: str | None = None


def _check_profile(out: Path, profile_name: str) -> None:
    if not (out / "zarr.json").exists():
        return
    existing = read_root_attrs(out).get("codec_profile", {}).get("name")
    if existing not in (None, profile_name):
        raise StoreError(
            f"store {out} was built with codec profile {existing!r}, not {profile_name!r}; "
            f"resume with --profile {existing} or choose another --out path"
        )


def build_one(
    source: Source, ref: SequenceRef, writer: StoreWriter, profile_name: str, workdir: Path, threads: int = 0
) -> int:
    """Load, code and store one sequence; returns its frame count (raises CodecError / SourceError / StoreError)."""
    return code_and_store(writer, ref, source.load(ref), load_profile(profile_name), workdir, threads)


def scene_cuts(frames: SequenceFrames) -> list[int]:
    """The frames that start a new scene: as the source recorded them (``cuts`` attribute), else found in ``blur``."""
    if "cuts" in frames.attrs:
        return [int(c) for c in frames.attrs["cuts"]]
    return frame_events(frames.blur)[0]


def code_and_store(
    writer: StoreWriter, ref: SequenceRef, frames: SequenceFrames, profile: CodecProfile, workdir: Path,
    threads: int = 0, store_flows: bool = True,
) -> int:  # fmt: skip
    """Encode ``frames`` with VVenC, decode them with prior export and store everything as ``ref``.

    The three steps overlap: the source frames are compressed into the store while VVenC encodes,
    the decoder reads the bitstream as VVenC writes it, and each block of decoded frames and priors
    is stored while the next one decodes. The per-block flows (:data:`~cpgd_bench.motion.DEFAULT_FLOW`)
    are then derived from the whole sequence's MVs and stored too (unless ``store_flows`` is False: the
    loader then derives them per item). Returns the frame count; the sequence appears in the store only once
    complete.
    """
    t, h, w = frames.blur.shape[:3]
    with writer.open_sequence(ref.split, ref.name, t, h, w) as out:
        out.write("blur", frames.blur)
        if frames.sharp is not None:
            out.write("sharp", frames.sharp)
        for name, array in frames.extra.items():
            out.write(name, array)
        cuts = scene_cuts(frames) if profile.intra_at_cuts else []
        with coded_stream(frames.blur, profile, workdir, ref.name, frames.fps, threads, DECODE_BLOCK,
                          cuts) as stream:  # fmt: skip
            vectors: dict[str, list[np.ndarray]] = {"mv": [], "mv_ref": []}
            for start, block in stream:
                for name, array in block.items():
                    out.write(name, array, start)
                    if name in vectors:
                        vectors[name].append(array)
        for name, array in stream.per_frame().items():
            out.write(name, array)
        if store_flows:
            for name, array in stored_flows(np.concatenate(vectors["mv"]), np.concatenate(vectors["mv_ref"])).items():
                out.write(name, array)
        out.write("bitstream", np.fromfile(stream.bitstream, dtype=np.uint8))
        out.commit({
            "fps": frames.fps, "frame_names": list(frames.frame_names), "codec": stream.attrs,
            "source": dict(frames.attrs), **({FLOW_METHOD_ATTR: flow_tag(DEFAULT_FLOW)} if store_flows else {}),
        })  # fmt: skip
    return t


def stored_flows(mv: np.ndarray, mv_ref: np.ndarray) -> dict[str, np.ndarray]:
    """The optional store arrays ``flow_blocks`` / ``flow_blocks_valid``: :func:`~cpgd_bench.motion.block_flows`
    with :data:`~cpgd_bench.motion.DEFAULT_FLOW` over a whole sequence's ``mv`` / ``mv_ref``."""
    flows, valid = block_flows(mv, mv_ref, DEFAULT_FLOW)
    return {"flow_blocks": flows, "flow_blocks_valid": valid}


def _build_task(
    source: Source, ref: SequenceRef, out: Path, profile_name: str, workdir: str | None, threads: int,
    driver: tuple[str, str] | None = None,
) -> _Outcome:  # fmt: skip
    """Build one sequence into ``out`` (runs in a worker); failures come back as an outcome, not an exception.

    ``driver`` (store lock path, lock token) makes a worker process end itself once that driver is gone.
    """
    key = f"{ref.split}/{ref.name}"
    writer = StoreWriter(out, source.name, lock=False)
    scratch = Path(workdir or tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{ref.split}-{ref.name}-{secrets.token_hex(6)}"
    scratch_lock = FileLock(scratch.with_name(scratch.name + ".lock"), f"scratch directory {scratch}")
    scratch.mkdir()  # after its lock is held: a scratch directory whose lock is free is stale
    remove_scratch = partial(_remove_scratch, scratch)
    watch = contextlib.nullcontext() if driver is None else watching_driver(Path(driver[0]), driver[1], remove_scratch)
    try:
        with watch:
            return _Outcome(key, frames=build_one(source, ref, writer, profile_name, scratch, threads))
    except (CodecError, SourceError, StoreError) as e:
        return _Outcome(key, error=str(e).splitlines()[0] if str(e) else type(e).__name__)
    finally:
        remove_scratch()
        scratch_lock.release()


def _remove_scratch(scratch: Path) -> None:
    """Remove a scratch directory, then its lock file (still held by the caller until it exits or releases)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.with_name(scratch.name + ".lock").unlink(missing_ok=True)


def _remove_stale_scratch(workdir: str | None) -> None:
    """Remove what killed builds left in ``workdir``: scratch directories and lock files whose lock is free."""
    for path in Path(workdir or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        scratch = path.with_suffix("") if path.suffix == ".lock" else path
        if not is_held(scratch.with_name(scratch.name + ".lock")):
            _remove_scratch(scratch)


@contextlib.contextmanager
def _dask_client(scheduler: str | None) -> Iterator[None]:
    """Connect to the Dask scheduler for joblib's dask backend (closed on exit)."""
    if not scheduler:
        raise BuildError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    try:
        from dask.distributed import Client
    except ImportError:
        raise BuildError("the dask backend needs dask.distributed: pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise BuildError(f"cannot reach the Dask scheduler at {scheduler}: {str(e).splitlines()[0]}") from None
    try:
        with joblib.parallel_config(backend="dask", client=client):
            yield
    finally:
        client.close()


def _outcomes(
    source: Source, todo: list[SequenceRef], out: Path, profile: str, workdir: str | None,
    jobs: int, backend: str, scheduler: str | None, token: str | None,
) -> Iterator[_Outcome]:  # fmt: skip
    """Run the build tasks: in this process for one job, else through joblib, yielding as they finish."""
    if jobs == 1 and backend != "dask":
        for ref in todo:
            yield _build_task(source, ref, out, profile, workdir, 0)
        return
    threads = 0 if backend == "dask" else max(1, (os.cpu_count() or 1) // jobs)
    driver = None if backend == "threading" or token is None else (str(out / LOCK_NAME), token)
    tasks = (joblib.delayed(_build_task)(source, ref, out, profile, workdir, threads, driver) for ref in todo)
    if backend == "dask":
        with _dask_client(scheduler):
            yield from joblib.Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks)
        return
    yield from joblib.Parallel(n_jobs=jobs, backend=backend, return_as="generator_unordered")(tasks)


def _invalid_name(ref: SequenceRef) -> str | None:
    """The one-line reason ``ref``'s split or sequence name cannot be stored, or None."""
    try:
        check_name("split", ref.split)
        check_name("sequence", ref.name)
    except StoreError as e:
        return str(e)
    return None


def build_store(
    source: Source,
    out: str | Path,
    profile: str = "default",
    codec: str | None = None,
    workdir: str | Path | None = None,
    progress: bool = True,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
) -> BuildSummary:
    """Build (or resume) the store ``out`` from every sequence of ``source`` with codec ``profile``.

    ``codec`` (vvc, hevc, h264) picks that codec's default profile when ``profile`` is "default", and
    must match the profile's codec otherwise.

    ``jobs`` sequences build at once (``-1``: one per CPU); ``backend`` is a joblib backend:
    ``loky`` (processes), ``threading`` or ``dask`` (the Dask cluster at ``scheduler``; ``out`` and
    ``workdir`` must then be paths every worker sees, e.g. a shared filesystem). ``workdir`` hosts
    the per-sequence codec scratch files (the system temporary directory by default).
    Raises StoreError / CodecError / BuildError for problems that stop the whole build (bad ``out``
    path, unknown profile, missing codec build, profile mismatch with an existing store, bad backend).
    """
    started = time.perf_counter()
    if backend not in BACKENDS:
        raise BuildError(f"unknown build backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if "://" in str(out):
        raise BuildError(
            f"{out}: the store writer renames finished sequences into place, which needs a local or shared "
            "POSIX filesystem path (mount the bucket, e.g. with s3fs/gcsfuse, and pass that path)"
        )
    if jobs == -1:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise BuildError(f"--jobs must be >= 1 or -1 (one per CPU), got {jobs}")
    out = Path(out).absolute()
    resolved = load_profile(profile, codec)
    _check_profile(out, resolved.name)
    summary = BuildSummary(store=out)
    root_attrs = {"source": source.describe(), "codec": resolved.codec, "codec_profile": resolved.as_dict()}
    refs = source.sequences()
    scratch_root = None if workdir is None else str(Path(workdir).absolute())
    if scratch_root is not None:
        Path(scratch_root).mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(scratch_root)
    with StoreWriter(out, source.name, root_attrs) as writer:
        writer.adopt_unindexed()
        todo = []
        for ref in refs:
            key = f"{ref.split}/{ref.name}"
            if (reason := _invalid_name(ref)) is not None:
                summary.failed.append((key, reason))
            elif writer.has_sequence(ref.split, ref.name):
                summary.skipped.append(key)
            else:
                todo.append(ref)
        for split in sorted({ref.split for ref in todo}):
            writer.require_split(split)
        with tqdm(total=len(refs), initial=len(refs) - len(todo), desc=f"build {source.name}", unit="seq",
                  disable=not progress) as bar:  # fmt: skip
            outcomes = _outcomes(source, todo, out, resolved.name, scratch_root, jobs, backend, scheduler, writer.token)
            for outcome in outcomes:
                if outcome.error is None:
                    writer.index_sequence(*outcome.key.split("/"))
                    summary.built.append(outcome.key)
                    summary.frames += outcome.frames
                else:
                    summary.failed.append((outcome.key, outcome.error))
                bar.set_postfix_str(outcome.key)
                bar.update()
    order = {f"{r.split}/{r.name}": i for i, r in enumerate(refs)}
    summary.built.sort(key=order.__getitem__)
    summary.failed.sort(key=lambda item: order[item[0]])
    summary.seconds = time.perf_counter() - started
    return summary
