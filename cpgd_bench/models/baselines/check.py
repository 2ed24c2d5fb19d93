"""``cpgd-bench baselines check``: can this machine run a baseline from this checkout (and these weights)?

One :class:`Verdict` per check, in order: the checkout and its commit; each requirement found by reading
the checkout's source before anything is imported (:mod:`.requirements`) that is not met or optional;
whether a GPU is needed and present; files the authors' code opens relative to the working directory;
then, only when the requirements are met: import and construction, a strict key check of the weights,
and a forward pass on a tiny clip through the wrapper's conventions.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec, checkout_commit, resolve_files
from cpgd_bench.models.baselines.requirements import gpu_available, scan
from cpgd_bench.models.registry import ModelError, resolve_name
from cpgd_bench.provenance import sha256_file
from cpgd_bench.weights import WeightsError

Status = Literal["ok", "warn", "FAIL", "skip"]


@dataclass(frozen=True)
class Verdict:
    """One line of the check: status, what was checked, the finding (and the fix)."""

    status: Status
    check: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.check:<13} {self.detail}"


def baseline_spec(name: str, device: str | None = None) -> UpstreamSpec:
    """The :class:`UpstreamSpec` of the registered baseline ``name`` (``SPEC``, or ``spec(device)``)."""
    entry = resolve_name(name)
    module_name = entry.factory.split(":")[0]
    if not module_name.startswith("cpgd_bench.models.baselines."):
        raise ModelError(f"{name!r} is not a baseline wrapping authors' code; baselines: see `cpgd-bench models`")
    module = importlib.import_module(module_name)
    factory = getattr(module, "spec", None)
    return factory(device) if factory is not None else module.SPEC


def tiny_clip(frames: int = 3, size: int = 64) -> dict[str, torch.Tensor]:
    """A small random clip in the runner's test-item layout (fixed seed); 64 px: VRT's smallest scale is 8 px."""
    g = torch.Generator().manual_seed(0)
    flow = torch.zeros(frames, 2, size, size)
    return {"lq": torch.rand(frames, 3, size, size, generator=g), "flow_prev": flow, "flow_next": flow,
            "flow_valid": torch.ones_like(flow), "residual": torch.zeros(frames, 1, size, size)}


def check(name: str, upstream: Path, weights: Path | None = None, device: str | None = None) -> Iterator[Verdict]:
    """The verdicts for running baseline ``name`` from the checkout ``upstream`` on this machine."""
    device = device or ("cuda" if gpu_available() else "cpu")
    spec = baseline_spec(name, device)
    root = upstream / spec.src_dir
    source = root / (spec.module.replace(".", "/") + ".py")
    if not source.is_file():
        yield Verdict("FAIL", "checkout", spec.missing_message(f"{source} (not found)"))
        return
    yield Verdict("ok", "checkout", f"{upstream} at commit {checkout_commit(upstream)} ({spec.repo})")

    requirements = scan(root, (spec.module, *spec.extra_modules))
    unmet = [r for r in requirements if not r.met and not r.optional]
    for r in requirements:
        if not r.met:
            yield Verdict("warn" if r.optional else "FAIL", "requirement",
                          f"{r.what} [{r.where}]{' (optional import)' if r.optional else ''}: {r.fix}")
    optional = sum(not r.met and r.optional for r in requirements)
    yield Verdict("ok" if not unmet else "FAIL", "requirements",
                  f"{len(unmet)} missing, {optional} optional missing, {sum(r.met for r in requirements)} met "
                  "(read from the source before import)")
    gpu_needs = [r.what for r in requirements if r.gpu_only and not r.optional]
    no_gpu = device.startswith("cuda") and not gpu_available()
    if no_gpu:
        yield Verdict("FAIL", "gpu", f"device {device} asked for, but torch sees no CUDA GPU on this machine")
    elif gpu_needs and device != "cuda":
        yield Verdict("FAIL", "gpu", f"GPU only: {name} needs a CUDA GPU ({'; '.join(gpu_needs)}); device is {device}")
    else:
        yield Verdict("ok", "gpu", f"{'needs a CUDA GPU, has one' if gpu_needs else 'runs on CPU or GPU'} "
                                   f"(device {device}, precision {spec.precision if device == 'cuda' else 'fp32'})")

    try:
        files = resolve_files(spec, upstream)
    except (ModelError, WeightsError) as e:
        yield Verdict("FAIL", "files", str(e))
        files = None
    for label, path in (files or {}).items():
        yield Verdict("ok", "files", f"{label}: {path} sha256 {sha256_file(path)}")

    if unmet or files is None or no_gpu or (gpu_needs and device != "cuda"):
        yield Verdict("skip", "build", "not tried: fix the failures above first")
        return
    try:
        restorer = UpstreamRestorer(spec, upstream, None, device, random_init=True)
    except ModelError as e:
        yield Verdict("FAIL", "build", str(e))
        return
    params = sum(p.numel() for p in restorer.network.parameters())
    yield Verdict("ok", "build", f"{spec.module}.{spec.cls}: {params:,} parameters (random init)")

    if weights is None:
        yield Verdict("skip", "weights", "no --weights given: forward pass with random weights")
    else:
        try:
            restorer.load_weights(weights)
        except (ModelError, WeightsError) as e:
            yield Verdict("FAIL", "weights", str(e))
            return
        report = restorer.load_report
        loose = f", not strict: {len(report['missing'])} missing, {len(report['unexpected'])} unexpected keys"
        yield Verdict("ok", "weights", f"{weights} fits {spec.cls}{loose if not spec.strict else ' strictly'}")

    clip = tiny_clip()
    start = time.perf_counter()
    try:
        out = restorer.restore(clip)
    except ModelError as e:
        yield Verdict("FAIL", "forward", str(e))
        return
    seconds = time.perf_counter() - start
    shape, want = tuple(out.shape), tuple(clip["lq"].shape)
    if shape != want or not torch.isfinite(out).all():
        yield Verdict("FAIL", "forward", f"output {shape} (want {want}), finite: {bool(torch.isfinite(out).all())}")
    else:
        yield Verdict("ok", "forward", f"{want} -> {shape} in {seconds:.1f} s ({seconds / want[0]:.2f} s/frame) "
                                       f"on {device}, wrapper conventions (pad {spec.pad_multiple}, {spec.convention})")
