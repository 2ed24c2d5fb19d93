"""What both CPGD-Net trainers share: config files, the step-seeded batch stream and the run directory.

- :func:`load_config`: a YAML file merged over the stage's defaults one level deep; unknown keys are
  one-line errors naming the file and key.
- :class:`StepBatches`: the batches of steps ``start..steps-1``, each drawn from a generator seeded by
  (seed, step) only, so a resumed run, any number of DataLoader workers or processes see the same data.
- :func:`open_run`: the run-directory policy. A new run refuses a directory that already holds one
  (``last.pt``); ``resume`` needs that ``last.pt``. The main process writes ``config.yaml``; the log
  ``log.jsonl`` is appended to, so a resumed run continues it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
import yaml
from torch.utils.data import Sampler

from cpgd_bench.errors import CpgdBenchError

Key = TypeVar("Key")


class TrainConfigError(CpgdBenchError, ValueError):
    """A training config or run directory is missing, malformed or in the way; the message names it and the fix."""


def load_config(path: Path, defaults: dict[str, Any], stage: str, whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """The YAML config at ``path`` merged over ``defaults`` one level deep (a ``stage:`` key must name ``stage``).

    Mapping-valued keys merge key by key and refuse unknown sub-keys, except the ``whole`` ones, which
    are taken as given (e.g. model options checked by the model itself).
    """
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"training config {path} not found; see manifests/train/{stage}-*.yaml for examples")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise TrainConfigError(f"training config {path} must be a YAML mapping")
    if raw.pop("stage", stage) != stage:
        raise TrainConfigError(f"{path} is not a {stage} training config (its stage: says otherwise)")
    config = json.loads(json.dumps(defaults))
    for key, value in raw.items():
        if key not in defaults:
            raise TrainConfigError(f"{path}: unknown key {key!r}; known: {', '.join(defaults)}")
        if isinstance(defaults[key], dict) and key not in whole:
            if not isinstance(value, dict):
                raise TrainConfigError(f"{path}: {key!r} must be a mapping")
            unknown = sorted(set(value) - set(defaults[key]))
            if unknown:
                raise TrainConfigError(f"{path}: unknown {key}.{unknown[0]}; known: {', '.join(defaults[key])}")
            config[key].update(value)
        else:
            config[key] = value
    return config


class StepBatches(Sampler[list[Key]], Generic[Key]):
    """Batches for steps ``start..steps-1``: step s is ``draw(generator)`` with a generator seeded by (seed, s)."""

    def __init__(self, draw: Callable[[torch.Generator], list[Key]], seed: int, start: int, steps: int) -> None:
        self.draw, self.seed, self.start, self.steps = draw, seed, start, steps

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)

    def __iter__(self) -> Iterator[list[Key]]:
        for step in range(self.start, self.steps):
            yield self.draw(torch.Generator().manual_seed(self.seed * 1_000_003 + step))


def open_run(out: Path, resume: bool, config: dict[str, Any], stage: str, is_main: bool = True) -> Path:
    """Apply the run-directory policy to ``out`` (see the module docstring); returns ``out/last.pt``."""
    out = Path(out)
    last = out / "last.pt"
    if resume and not last.is_file():
        raise TrainConfigError(f"--resume: no checkpoint {last}; drop --resume to start a new run")
    if not resume and last.exists():
        raise TrainConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or pick --out")
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump({"stage": stage, **config}, sort_keys=False))
    return last
