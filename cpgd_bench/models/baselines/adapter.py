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
  spatial tiles of ``spec.tile`` pixels (blended by :func:`cpgd_bench.eval.tiling.restore_tiled`).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cpgd_bench.eval.tiling import restore_tiled
from cpgd_bench.models.registry import ModelError, Restorer
from cpgd_bench.provenance import git_commit, sha256_file

Convention = Literal["clip", "sliding", "recurrent"]
#: Net call for ``clip`` networks: (net, frames (1, T, C, H, W) in the network's range) -> raw output.
ClipCall = Callable[[nn.Module, torch.Tensor], Any]


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
    half: bool = False  # fp16 on CUDA, as the authors test
    notes: str = ""

    def missing_message(self, what: str) -> str:
        return (
            f"{self.name} needs {what}: `git clone {self.repo} <dir>` and pass --upstream <dir>, "
            f"and fetch the released weights ({self.weights_hint}) for --weights FILE"
        )


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

    Call it inside :func:`on_path` when the constructor imports more modules of the checkout.
    """
    top = module.split(".")[0]
    root = root.resolve()
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if not origin.startswith(str(root)):
            del sys.modules[name]  # a same-named package from elsewhere (another checkout, site-packages)
    with on_path(root):
        try:
            return importlib.import_module(module)
        except ImportError as e:
            raise ModelError(f"cannot import {module} from {root}: {e}; install the checkout's requirements") from None


def load_state(path: Path, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: the first of ``keys`` present, 'module.' prefixes removed."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise ModelError(f"cannot read weights {path}: {type(e).__name__}; is it the released checkpoint?") from None
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
    """A Restorer around an authors' network described by an :class:`UpstreamSpec`."""

    def __init__(
        self,
        spec: UpstreamSpec,
        upstream: Path | None,
        weights: Path | None,
        device: str | None = None,
        call: Callable[[Path], ClipCall] | None = None,
    ) -> None:
        if upstream is None:
            raise ModelError(spec.missing_message("the authors' code (no --upstream given)"))
        upstream = Path(upstream)
        source = upstream / spec.src_dir / (spec.module.replace(".", "/") + ".py")
        if not source.is_file():
            raise ModelError(spec.missing_message(f"{source.relative_to(upstream)} (not found under {upstream})"))
        if weights is None or not Path(weights).is_file():
            raise ModelError(spec.missing_message(f"weights ({weights or 'no --weights given'} not found)"))
        self.spec, self.name = spec, spec.name
        self.window, self.overlap = spec.window, spec.overlap
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.upstream, self.weights = upstream, Path(weights)
        self.weights_sha256 = sha256_file(self.weights)
        self.commit = git_commit(upstream, mark_dirty=False)
        root = upstream / spec.src_dir
        net_cls = getattr(import_upstream(root, spec.module), spec.cls, None)
        if net_cls is None:
            raise ModelError(f"{spec.module} in {root} has no class {spec.cls}; check out {spec.repo} there")
        with on_path(root):  # constructors import further modules of the checkout
            net = net_cls(**spec.kwargs)
            self.call = call(root) if call is not None else None  # a custom net call built from the checkout
        missing, unexpected = load_into(net, load_state(self.weights, spec.state_keys), self.weights, spec)
        self.load_report = {"missing": missing, "unexpected": unexpected}
        self.half = spec.half and self.device.type == "cuda"
        self.net = (net.half() if self.half else net).to(self.device).eval()

    def provenance(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "weights": str(self.weights),
            "weights_sha256": self.weights_sha256,
            "upstream_commit": self.commit,
            "upstream": str(self.upstream),
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
        out = restore_tiled(self._restore_part, {"lq": lq}, spec.tile, spec.tile_overlap)
        return out[..., :height, :width]

    def _restore_part(self, part: dict[str, torch.Tensor]) -> torch.Tensor:
        spec = self.spec
        lq = part["lq"]
        frames, _, height, width = lq.shape
        lo, hi = spec.value_range
        x = pad_to(lq.to(self.device), spec.pad_multiple) * (hi - lo) + lo
        x = x.half() if self.half else x
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
