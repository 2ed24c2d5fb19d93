"""The flow methods' outputs, pinned: a changed output needs a new :data:`~cpgd_bench.motion.FLOW_REVISIONS` entry.

The hashes were recorded with the numpy formulation of the rules (cpgd_bench/motion.py at 37133b5, before the
loops were compiled with numba), so they also pin the compiled loops to it, bit for bit. Stores record
``method@revision`` with their flows, and the loader reads them only when it matches (tests/test_stored_flows.py).
A damaged on-disk cache of the compiled loops is dropped and compiled anew, not a crash.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.motion import FLOW_METHODS, FLOW_REVISIONS, block_flows, flow_tag

#: method -> (revision, sha256 of the flows and validity of :func:`_fields`)
PINNED = {
    "composed": (2, "69cb02b32a406b5cf4c8a0ab434a499ad3b794c39177b820f9b9267cd674705a"),
    "composed-v1": (1, "c68a690b74955ca8d25ce3503ff60975791d958afc988353b93b6e8b68033972"),
    "scaled": (1, "da988476be8ca9aa2c781f315c86553ed207b81be7cd0181fefde225cd71fd80"),
}


def _fields() -> list[tuple[np.ndarray, np.ndarray]]:
    """MV fields of every shape the rules branch on: random references within +-4 frames (half the lists
    unused), huge vectors that land outside the frame, a single frame and a single block."""
    rng = np.random.default_rng(2026)
    out = []
    for t, h4, w4, span in ((12, 9, 13, 300), (5, 4, 6, 32767), (1, 3, 3, 50), (4, 1, 1, 40)):
        mv = rng.integers(-span, span, (t, 2, h4, w4, 2)).astype(np.int16)
        ref = rng.integers(-4, 5, (t, 2, h4, w4)).astype(np.int16)
        ref[rng.random(ref.shape) < 0.5] = 0
        mv[ref == 0] = 0  # the decoders' convention: unused lists carry zero vectors
        out.append((mv, ref))
    return out


def _digest(method: str) -> str:
    digest = hashlib.sha256()
    for mv, ref in _fields():
        flows, valid = block_flows(mv, ref, method)
        assert flows.dtype == np.float32 and valid.dtype == bool
        assert flows.shape == (len(mv), 2, 2, *mv.shape[2:4]) and valid.shape == (len(mv), 2, *mv.shape[2:4])
        digest.update((flows + np.float32(0)).tobytes())  # -0.0 and 0.0 alike
        digest.update(valid.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_flows_pinned_to_their_revision(method: str) -> None:
    revision, pinned = PINNED[method]
    digest = _digest(method)
    assert (FLOW_REVISIONS[method], digest) == (revision, pinned), (
        f"{method}: output or revision changed; if the rules changed on purpose, bump FLOW_REVISIONS[{method!r}] "
        f"in cpgd_bench/motion.py and pin ({FLOW_REVISIONS[method]}, {digest!r}) here"
    )
    assert flow_tag(method) == f"{method}@{revision}"


@pytest.mark.slow
def test_a_damaged_compiled_cache_is_rebuilt(tmp_path: Path) -> None:
    """Truncate numba's cached loops (a disk-full or killed copy): the next process recompiles them, same flows."""
    script = (
        "import hashlib, numpy as np; from cpgd_bench.motion import block_flows; "
        "rng = np.random.default_rng(0); mv = rng.integers(-99, 99, (6, 2, 5, 7, 2)).astype(np.int16); "
        "ref = rng.integers(-2, 3, (6, 2, 5, 7)).astype(np.int16); "
        "print(hashlib.sha256(block_flows(mv, ref)[0].tobytes()).hexdigest())"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    first = run()
    cached = list(tmp_path.rglob("*.nbc"))
    assert cached, "numba wrote no cache"
    for path in cached:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    assert run() == first


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_mismatched_shapes_fail_before_the_compiled_loops(method: str) -> None:
    mv, ref = _fields()[0]
    for bad_mv, bad_ref in ((mv[:, :, :-1], ref), (mv[:-1], ref), (mv, ref[..., None]), (mv[..., :1], ref)):
        with pytest.raises(ValueError, match="must be"):
            block_flows(bad_mv, bad_ref, method)
