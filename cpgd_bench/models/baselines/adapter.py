"""The one place where our clips meet the authors' networks: checkout import, weights, input conventions.

Each baseline module declares an :class:`UpstreamSpec` (where the class lives in the authors' repository,
its constructor arguments, the checkpoint layout, and how the network wants its frames); this module
turns a spec plus a local checkout (``--upstream``) and released weights (``--weights``) into a
:class:`~cpgd_bench.models.registry.Restorer`:

* **value range**: our [0, 1] frames are mapped to ``spec.value_range`` and back;
* **padding**: frames are edge-padded to ``spec.pad_multiple`` (and cropped back);
* **time**: ``clip`` networks take a whole clip (B, T, C, H, W) (T padded by flipping to
  ``spec.time_multiple``), ``sliding`` networks one output frame per ``2 * context + 1`` input frames,
  ``recurrent`` networks (PVDNet) frame by frame with the previous output fed back; ``context`` frames
  at the sequence ends are made up by ``spec.temporal_edge``;
* **windows and tiles**: the runner feeds ``spec.window`` frames overlapping by ``spec.overlap``;
  spatial tiles of ``spec.tile`` pixels (blended by :func:`cpgd_bench.tiling.restore_tiled`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cpgd_bench.models.registry import ModelError, Restorer
from cpgd_bench.provenance import git_commit, sha256_file
from cpgd_bench.tiling import restore_tiled
from cpgd_bench.weights import find, load_torch

Convention = Literal["clip", "sliding", "recurrent"]
Precision = Literal["fp32", "half", "autocast"]
#: Net call for ``clip`` networks: (net, frames (1, T, C, H, W) in the network's range) -> raw output.
ClipCall = Callable[[nn.Module, torch.Tensor], Any]
#: Builds a ClipCall from the checkout's source folder and the resolved ``UpstreamSpec.files``.
CallFactory = Callable[[Path, Mapping[str, Path]], ClipCall]


@dataclass(frozen=True)
class UpstreamSpec:
    """How to build and feed one authors' network (see the module doc)."""

    name: str
    repo: str  # official repository to clone
    weights_hint: str  # which released file to fetch, and where it is published
    module: str  # import path of the network class inside the checkout (relative to ``src_dir``)
    cls: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    src_dir: str = ""  # folder of the checkout that goes on sys.path
    state_keys: tuple[str, ...] = ()  # checkpoint keys tried in order; the checkpoint itself if none match
    strict: bool = True
    convention: Convention = "clip"
    value_range: tuple[float, float] = (0.0, 1.0)
    pad_multiple: int = 1
    time_multiple: int = 1
    context: int = 0  # input frames each side that the network consumes but does not output
    temporal_edge: Literal["replicate", "repeat_block"] = "replicate"
    window: int | None = None
    overlap: int = 0
    tile: int | None = None
    tile_overlap: int = 32
    min_size: int = 0  # frames smaller than this are padded up to it (networks that need whole tiles)
    select: Callable[[Any], torch.Tensor] = lambda out: out  # picks the restored frames from the output
    precision: Precision = "fp32"  # on CUDA, as the authors test: net.half(), or fp16 autocast of the net call
    files: Mapping[str, str] = field(default_factory=dict)  # files the code opens relative to the cwd: name -> path
    call: CallFactory | None = None  # builds a custom net call from the checkout (run from the checkout's cwd)
    extra_modules: tuple[str, ...] = ()  # further checkout modules the call imports (scanned for requirements)
    notes: str = ""

    def missing_message(self, what: str) -> str:
        return (
            f"{self.name} needs {what}: `git clone {self.repo} <dir>` and pass --upstream <dir>, "
            f"and fetch the released weights ({self.weights_hint}) for --weights FILE"
        )


def checkout_commit(upstream: Path) -> str:
    """``git rev-parse HEAD`` when ``upstream`` is itself a git checkout (not a folder inside one), else 'unknown'."""
    if not (upstream / ".git").exists():
        return "unknown"
    return git_commit(upstream, mark_dirty=False) or "unknown"


def describe_failure(exc: BaseException) -> str:
    """One line for an exception raised by the authors' code: its type, first message line and the likely fix."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "(no message)")
    text = f"{type(exc).__name__}: {first[:240]}"
    if isinstance(exc, ImportError) and isinstance(exc.__context__, ImportError):  # a fallback import failed too
        text += f", after {type(exc.__context__).__name__}: {str(exc.__context__)[:120]}"
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    if any("cpp_extension" in f for f in frames):
        return f"{text} (compiling the checkout's CUDA op failed: GPU only, needs a CUDA GPU and nvcc)"
    if isinstance(exc, ModuleNotFoundError):
        return f"{text} (install it, or build the checkout: see `cpgd-bench baselines check`)"
    if isinstance(exc, FileNotFoundError):
        return f"{text} (a file the authors' code opens is missing)"
    if "CUDA" in text or "NVIDIA" in text or "cuda" in text:
        return f"{text} (GPU only: the authors' code needs a CUDA GPU here)"
    return text


def resolve_files(spec: UpstreamSpec, upstream: Path) -> dict[str, Path]:
    """The files ``spec.files`` names: in the checkout at the authors' relative path, else by the weights lookup."""
    found = {}
    for name, rel in spec.files.items():
        own = upstream / rel
        hit = find((Path(rel).name,), own if own.is_file() else None)
        if hit is None:
            raise ModelError(
                f"{spec.name} needs its {name} file {Path(rel).name}: put it at {upstream / rel} (where the authors' "
                f"code looks) or in $CPGD_BENCH_WEIGHTS or ./weights ({spec.weights_hint})"
            )
        found[name] = hit.path.resolve()
    return found


@contextlib.contextmanager
def authors_cwd(spec: UpstreamSpec, files: Mapping[str, Path]) -> Iterator[None]:
    """Run the block in a fresh folder holding exactly ``files`` at the relative paths the authors' code opens."""
    if not files:
        yield
        return
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=f"cpgd-{spec.name}-") as tmp:
        for name, path in files.items():
            link = Path(tmp) / spec.files[name]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(here)


@contextlib.contextmanager
def on_path(root: Path) -> Iterator[Path]:
    """Put the checkout folder ``root`` first on sys.path while the block runs (imports, construction)."""
    root = root.resolve()
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))


def import_upstream(root: Path, module: str) -> Any:
    """Import ``module`` from the folder ``root``, never a same-named module from elsewhere.

    Modules named like the checkout's top-level modules and packages (``models``, ``utils``, ``basicsr``)
    that were loaded from elsewhere are dropped first. Any failure (a missing dependency, a CUDA op that
    fails to compile, ...) is a one-line ModelError.
    Call it inside :func:`on_path` when the constructor imports more modules of the checkout.
    """
    root = root.resolve()
    own = {module.split(".")[0]} | {p.stem for p in root.iterdir() if p.suffix == ".py" or any(p.glob("*.py"))}
    for name in [n for n in sys.modules if n.split(".")[0] in own]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if not origin.startswith(str(root) + os.sep):
            del sys.modules[name]  # a same-named module from elsewhere (another checkout's utils, site-packages)
    with on_path(root):
        try:
            return importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - the authors' import may fail in any way; report it in one line
            raise ModelError(f"cannot import {module} from {root}: {describe_failure(e)}") from None


class AutocastNet(nn.Module):
    """The wrapped network called under fp16 autocast on CUDA (``torch.cuda.amp.autocast()`` in the authors' test)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: Any) -> Any:
        with torch.autocast("cuda", dtype=torch.float16):
            return self.net(*args)


def load_state(path: Path, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: the first of ``keys`` present, 'module.' prefixes removed."""
    ckpt = load_torch(path)
    if isinstance(ckpt, Mapping):
        for key in keys:
            if key in ckpt:
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, Mapping) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        have = ", ".join(map(str, list(ckpt)[:5])) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ModelError(f"weights {path} hold no state dict under {list(keys)} (found: {have}); wrong file?")
    return {k.removeprefix("module."): v for k, v in ckpt.items()}


def load_into(
    net: nn.Module, state: dict[str, torch.Tensor], path: Path, spec: UpstreamSpec
) -> tuple[list[str], list[str]]:
    """Load ``state`` into ``net`` (strict unless the spec says not); a mismatch is a one-line ModelError."""
    try:
        missing, unexpected = net.load_state_dict(state, strict=spec.strict)
    except RuntimeError as e:
        own, given = set(net.state_dict()), set(state)
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise ModelError(
            f"weights {path} do not fit {spec.cls}: {len(own - given)} missing keys {sorted(own - given)[:3]}, "
            f"{len(given - own)} unexpected {sorted(given - own)[:3]} ({lines[-1][:160]}); "
            f"is it a released {spec.name} checkpoint?"
        ) from None
    return list(missing), list(unexpected)


def pad_to(x: torch.Tensor, multiple: int, at_least: int = 0) -> torch.Tensor:
    """Replicate-pad (..., H, W) at the bottom/right to multiples of ``multiple`` (and to ``at_least`` pixels)."""
    h, w = x.shape[-2:]
    ph, pw = max(at_least - h, 0), max(at_least - w, 0)
    ph, pw = ph + -(h + ph) % multiple, pw + -(w + pw) % multiple
    if not ph and not pw:
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    return F.pad(flat, (0, pw, 0, ph), mode="replicate").reshape(*x.shape[:-2], h + ph, w + pw)


def pad_time(x: torch.Tensor, before: int, after: int, mode: str) -> torch.Tensor:
    """Add frames at the ends of (T, ...): copies of the end frame, or (``repeat_block``) the first/last block."""
    if mode == "repeat_block":  # CDVD-TSP's --border: [f0, f1, f0, f1, f2, ...]
        head = x[:before]
        tail = x[x.shape[0] - after:] if after else x[:0]
    else:
        head = x[:1].expand(before, *x.shape[1:])
        tail = x[-1:].expand(after, *x.shape[1:])
    return torch.cat([head, x, tail], 0)


def flip_pad_time(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (T, ...) to a multiple of ``multiple`` frames with its last frames mirrored (VRT's test code)."""
    extra = -x.shape[0] % multiple
    return torch.cat([x, x[x.shape[0] - extra:].flip(0)], 0) if extra else x


class UpstreamRestorer(Restorer):
    """A Restorer around an authors' network described by an :class:`UpstreamSpec`.

    Every failure of the authors' code (import, construction, forward) is a one-line ModelError naming the
    model, the checkout's commit and the cause. ``random_init`` (for ``baselines check``) allows no weights.
    """

    def __init__(
        self,
        spec: UpstreamSpec,
        upstream: Path | None,
        weights: Path | None,
        device: str | None = None,
        random_init: bool = False,
    ) -> None:
        if upstream is None:
            raise ModelError(spec.missing_message("the authors' code (no --upstream given)"))
        upstream = Path(upstream)
        source = upstream / spec.src_dir / (spec.module.replace(".", "/") + ".py")
        if not source.is_file():
            raise ModelError(spec.missing_message(f"{source.relative_to(upstream)} (not found under {upstream})"))
        if not random_init and (weights is None or not Path(weights).is_file()):
            raise ModelError(spec.missing_message(f"weights ({weights or 'no --weights given'} not found)"))
        self.spec, self.name = spec, spec.name
        self.window, self.overlap = spec.window, spec.overlap
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision: Precision = spec.precision if self.device.type == "cuda" else "fp32"
        self.upstream = upstream
        self.commit = checkout_commit(upstream)
        self.files = resolve_files(spec, upstream)
        self.files_sha256 = {name: sha256_file(path) for name, path in self.files.items()}
        root = upstream / spec.src_dir
        self.call: ClipCall | None = None
        self.network = self._build(root)
        self.weights: Path | None = None
        self.weights_sha256: str | None = None
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": []}
        if weights is not None:
            self.load_weights(Path(weights))
        net = self.network.half() if self.precision == "half" else self.network
        net = AutocastNet(net) if self.precision == "autocast" else net
        self.net = net.to(self.device).eval()

    def failure(self, stage: str, exc: BaseException) -> ModelError:
        """The one-line error for ``exc`` raised by the authors' code while ``stage``."""
        cause = str(exc) if isinstance(exc, ModelError) else describe_failure(exc)
        return ModelError(f"{self.name} (upstream {self.commit[:12]}, {self.upstream}): {stage} failed: {cause}")

    def _build(self, root: Path) -> nn.Module:
        """Import and construct the network (and the custom call) from the checkout, in the authors' cwd layout."""
        spec = self.spec
        try:
            net_cls = getattr(import_upstream(root, spec.module), spec.cls, None)
            if net_cls is None:
                raise ModelError(f"{spec.module} in {root} has no class {spec.cls}; check out {spec.repo} there")
            with on_path(root), authors_cwd(spec, self.files):  # constructors import modules, open relative files
                net = net_cls(**spec.kwargs)
                self.call = spec.call(root, self.files) if spec.call is not None else None
        except Exception as e:  # noqa: BLE001 - the authors' code may fail in any way; one line names it
            raise self.failure(f"building {spec.cls}", e) from None
        if not isinstance(net, nn.Module):
            raise self.failure(f"building {spec.cls}", TypeError(f"got {type(net).__name__}, not a torch module"))
        return net

    def load_weights(self, weights: Path) -> None:
        """Load the released checkpoint ``weights`` into the network (strict unless the spec says not)."""
        missing, unexpected = load_into(self.network, load_state(weights, self.spec.state_keys), weights, self.spec)
        self.load_report = {"missing": missing, "unexpected": unexpected}
        self.weights, self.weights_sha256 = weights, sha256_file(weights)

    def provenance(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "weights": str(self.weights) if self.weights else None,
            "weights_sha256": self.weights_sha256,
            "upstream_commit": self.commit,
            "upstream": str(self.upstream),
            "upstream_files": {
                name: {"path": str(path), "sha256": self.files_sha256[name]} for name, path in self.files.items()
            },
            "precision": self.precision,
            "label": f"{self.name} (authors' network, {self.spec.repo})",
            "notes": self.spec.notes,
        }

    @torch.no_grad()
    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        spec = self.spec
        lq = clip["lq"]
        height, width = lq.shape[-2:]
        if spec.min_size:  # networks that only take whole tiles (BSST): frames padded to at least one tile
            lq = pad_to(lq, spec.pad_multiple, spec.min_size)
        try:
            out = restore_tiled(self._restore_part, {"lq": lq}, spec.tile, spec.tile_overlap)
        except Exception as e:  # noqa: BLE001 - the authors' forward may fail in any way; one line names it
            raise self.failure(f"forward on {tuple(lq.shape)} frames", e) from None
        return out[..., :height, :width]

    def _restore_part(self, part: dict[str, torch.Tensor]) -> torch.Tensor:
        spec = self.spec
        lq = part["lq"]
        frames, _, height, width = lq.shape
        lo, hi = spec.value_range
        x = pad_to(lq.to(self.device), spec.pad_multiple) * (hi - lo) + lo
        x = x.half() if self.precision == "half" else x
        c = spec.context
        if spec.convention == "clip":
            x = flip_pad_time(pad_time(x, c, c, spec.temporal_edge), spec.time_multiple)
            out = spec.select(self.call(self.net, x[None]) if self.call else self.net(x[None]))
        elif spec.convention == "sliding":
            x = pad_time(x, c, c, spec.temporal_edge)
            out = torch.cat([spec.select(self.net(x[None, t:t + 2 * c + 1])) for t in range(frames)], 0)
        else:
            out = self._recurrent(pad_time(x, 1, 1, "replicate"))
        out = out.reshape(-1, *out.shape[-3:])[:frames, :, :height, :width].float()
        return ((out - lo) / (hi - lo)).clamp(0.0, 1.0)

    def _recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """PVDNet's loop: frame t sees t-1, t, t+1 and the previous output (the first: frame 0 itself)."""
        outs, prev_out = [], x[1:2]
        for t in range(1, x.shape[0] - 1):
            prev_out = self.spec.select(self.net(x[t - 1:t], x[t:t + 1], x[t + 1:t + 2], prev_out))
            outs.append(prev_out)
        return torch.cat(outs, 0)
