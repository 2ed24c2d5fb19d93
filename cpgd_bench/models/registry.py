"""One registry of restoration models: name -> lazily imported factory returning a :class:`Restorer`.

>>> model = get_model("input")                      # doctest: +SKIP
>>> out = model.restore(clip)                       # clip: one CodingPriorDataset test item, no 'key'/'gt'

Factories are ``"module:attribute"`` strings imported on first use, so listing the registry never
imports torch-heavy model code. Every factory accepts ``weights`` and ``device``; baselines also
``upstream`` (a local checkout of the authors' repository).
"""

from __future__ import annotations

import abc
import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from cpgd_bench.errors import CpgdBenchError


class ModelError(CpgdBenchError, ValueError):
    """A model name, factory, option or weight file is wrong; the message says which and the fix."""


class Restorer(abc.ABC):
    """A video restoration model as the runner sees it (see the shared Model registry contract)."""

    name: str = ""
    window: int | None = None  # temporal window the runner feeds (frames); None = whole sequence
    overlap: int = 0  # temporal overlap between windows (frames)

    @abc.abstractmethod
    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        """Restore one clip.

        ``clip`` is one CodingPriorDataset test-mode item without batch dim and without 'key'/'gt':
        lq (T,3,H,W) in [0,1], flow_prev/flow_next/flow_valid (T,2,H,W), residual (T,1,H,W).
        Returns (T,3,H,W) float in [0,1], same T,H,W. Spatial tiling is the restorer's own business
        (use :func:`cpgd_bench.tiling.restore_tiled`).
        """

    def provenance(self) -> dict[str, Any]:
        """How the outputs were made: model, weights (path and sha256), upstream commit, label, notes."""
        return {
            "model": self.name,
            "weights": None,
            "weights_sha256": None,
            "upstream_commit": None,
            "label": self.name,
            "notes": "",
        }


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, the ``module:factory`` spec and a one-line description."""

    name: str
    factory: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, factory: str, description: str) -> None:
    """Register ``name`` -> ``"module:factory"`` (imported lazily by :func:`get_model`)."""
    if ":" not in factory:
        raise ModelError(f"factory for model {name!r} must be 'module:attribute', got {factory!r}")
    _REGISTRY[name] = ModelEntry(name, factory, description)


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_entries() -> list[ModelEntry]:
    """Registered models, sorted by name."""
    return [_REGISTRY[n] for n in model_names()]


def resolve_name(name: str) -> ModelEntry:
    """The entry for ``name``; unknown names raise a one-line ModelError suggesting the closest one."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name.lower(), model_names(), n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ModelError(f"unknown model {name!r}; {hint}known models: {', '.join(model_names())}")


def _load_factory(entry: ModelEntry) -> Any:
    module_name, attr = entry.factory.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):  # the factory module itself is missing, not a dependency
            raise ModelError(
                f"model {entry.name!r} is registered but its code {module_name} is not installed in this "
                "checkout yet; pick another model (`cpgd-bench models`)"
            ) from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ModelError(f"model {entry.name!r}: {module_name} has no {attr!r}; fix the registry entry") from None


def get_model(name: str, **options: Any) -> Restorer:
    """Build the model ``name`` with factory ``options`` (``weights``, ``device``, ``upstream`` ...)."""
    entry = resolve_name(name)
    factory = _load_factory(entry)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as e:
        raise ModelError(f"model {name!r} does not take these options ({e}); see `cpgd-bench run --help`") from None
    model = factory(**options)
    if not isinstance(model, Restorer):
        raise ModelError(f"model {name!r}: factory {entry.factory} returned {type(model).__name__}, not a Restorer")
    if not model.name:
        model.name = name
    return model


register_model("input", "cpgd_bench.models.input:InputRestorer", "the decoded frames unchanged: the floor to beat")
register_model(
    "cpfp", "cpgd_bench.models.cpgd.cpfp.restorer:CPFPRestorer", "CPGD-Net stage 1: coding-prior propagation"
)
register_model(
    "cpgd", "cpgd_bench.models.cpgd.pipeline:CPGDRestorer", "CPGD-Net: stage 1 then the SD ControlNet stage 2 (CPC)"
)
_BASELINES = {
    "pvdnet": "PVDNet (Son et al., TOG 2021)",
    "cdvd-tsp": "CDVD-TSP (Pan et al., CVPR 2020)",
    "stdan": "STDAN (Zhang et al., ECCV 2022)",
    "dstnet": "DSTNet (Pan et al., CVPR 2023)",
    "vrt": "VRT (Liang et al., TIP 2024)",
    "rvrt": "RVRT (Liang et al., NeurIPS 2022)",
    "shift-net": "Shift-Net (Li et al., CVPR 2023)",
    "bsstnet": "BSSTNet (Zhang et al., CVPR 2024)",
}
for _name, _desc in _BASELINES.items():
    _module = _name.replace("-", "_")
    register_model(
        _name, f"cpgd_bench.models.baselines.{_module}:build", f"{_desc}, authors' network from --upstream"
    )
