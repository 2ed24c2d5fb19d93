"""Codec profiles (manifests/codec/profiles.yaml): preset, QP, GOP structure and extra VVenC parameters."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import yaml

from cpgd_bench.resources import manifest

from .errors import CodecError

PROFILES_FILE = manifest("codec", "profiles.yaml")


@dataclass(frozen=True)
class CodecProfile:
    """One named encoder configuration."""

    name: str
    structure: str
    description: str
    preset: str
    qp: int
    bit_depth: int = 10
    vvenc_params: dict[str, str | int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dict, for store attributes."""
        return asdict(self)

    def vvenc_params_arg(self) -> str:
        """The `-vvenc-params` argument: key=value pairs joined by ':'."""
        return ":".join(f"{k}={v}" for k, v in self.vvenc_params.items())


@cache
def _manifest(path: Path = PROFILES_FILE) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def profile_names() -> list[str]:
    """All profile names, e.g. ['ra-qp22', ..., 'ld-qp37']."""
    m = _manifest()
    return [f"{s}-qp{q}" for s in m["structures"] for q in m["qps"]]


def load_profile(name: str = "default") -> CodecProfile:
    """Resolve a profile name (or 'default') to a CodecProfile."""
    m = _manifest()
    if name == "default":
        name = m["default"]
    match = re.fullmatch(r"(.+)-qp(\d+)", name)
    if not match or match[1] not in m["structures"] or int(match[2]) not in m["qps"]:
        raise CodecError(
            f"unknown codec profile {name!r}; choose one of: {', '.join(profile_names())} "
            f"(defined in {PROFILES_FILE})"
        )
    s = m["structures"][match[1]]
    return CodecProfile(
        name=name,
        structure=match[1],
        description=s["description"],
        preset=s["preset"],
        qp=int(match[2]),
        bit_depth=int(m["bit_depth"]),
        vvenc_params=dict(s.get("vvenc_params", {})),
    )
