"""Coding profiles (manifests/codec/profiles.yaml) and the codecs they use: encoder, GOP structure, QP, parameters."""

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
class Codec:
    """How one codec is encoded (FFmpeg encoder and its parameter option) and stored (raw muxer, file suffix)."""

    name: str
    title: str
    encoder: str
    encoder_name: str
    params_option: str
    muxer: str
    suffix: str
    poc_per_frame: int = 1   # POC units per frame (H.264 counts fields: 2); the store keeps POCs in frames
    qp_per_extra_bit: int = 0   # the encoder's -qp is QP'_Y = QP_Y + this x (bit depth - 8) (x264); else QP_Y


#: The codecs a store can be built with: one row each.
CODECS: dict[str, Codec] = {
    "vvc": Codec("vvc", "VVC (H.266)", "libvvenc", "VVenC", "-vvenc-params", "vvc", ".266"),
    "hevc": Codec("hevc", "HEVC (H.265)", "libx265", "x265", "-x265-params", "hevc", ".265"),
    "h264": Codec("h264", "H.264 (AVC)", "libx264", "x264", "-x264-params", "h264", ".264", poc_per_frame=2,
                  qp_per_extra_bit=6),
}


def codec_spec(name: str) -> Codec:
    """The :class:`Codec` called ``name``; CodecError naming the choices otherwise."""
    if name not in CODECS:
        raise CodecError(f"unknown codec {name!r}; choose one of: {', '.join(CODECS)}")
    return CODECS[name]


@dataclass(frozen=True)
class CodecProfile:
    """One named encoder configuration."""

    name: str
    structure: str
    description: str
    preset: str
    qp: int
    bit_depth: int = 10
    codec: str = "vvc"
    params: dict[str, str | int] = field(default_factory=dict)
    intra_at_cuts: bool = False   # code each scene (split at the source's cuts) on its own, from an intra picture

    def as_dict(self) -> dict:
        """Plain dict, for store attributes."""
        return asdict(self)

    @property
    def spec(self) -> Codec:
        """The codec this profile encodes with."""
        return codec_spec(self.codec)

    def encoder_qp(self) -> int:
        """The encoder's ``-qp`` for this profile's slice QP (QP_Y, the same quantiser scale for every codec)."""
        return self.qp + self.spec.qp_per_extra_bit * (self.bit_depth - 8)

    def params_arg(self) -> str:
        """The encoder's parameter argument (``-vvenc-params`` etc.): key=value pairs joined by ':'."""
        return ":".join(f"{k}={v}" for k, v in self.params.items())


@cache
def _manifest(path: Path = PROFILES_FILE) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def profile_names(codec: str | None = None) -> list[str]:
    """All profile names, e.g. ['ra-qp22', ..., 'h264-ld-qp37'], or those of one codec."""
    m = _manifest()
    return [f"{s}-qp{q}" for s, spec in m["structures"].items() for q in m["qps"]
            if codec is None or spec["codec"] == codec]  # fmt: skip


def default_profile(codec: str | None = None) -> str:
    """The default profile name, overall or of ``codec``."""
    m = _manifest()
    return m["default"] if codec is None else m["defaults"][codec_spec(codec).name]


def load_profile(name: str = "default", codec: str | None = None) -> CodecProfile:
    """Resolve a profile name (or 'default', of ``codec`` if given) to a CodecProfile.

    With both a name and ``codec``, the profile must be of that codec (CodecError otherwise).
    """
    m = _manifest()
    if name == "default":
        name = default_profile(codec)
    match = re.fullmatch(r"(.+)-qp(\d+)", name)
    if not match or match[1] not in m["structures"] or int(match[2]) not in m["qps"]:
        raise CodecError(
            f"unknown codec profile {name!r}; choose one of: {', '.join(profile_names(codec))} "
            f"(defined in {PROFILES_FILE})"
        )
    s = m["structures"][match[1]]
    profile = CodecProfile(
        name=name,
        structure=match[1],
        description=s["description"],
        preset=s["preset"],
        qp=int(match[2]),
        bit_depth=int(m["bit_depth"]),
        codec=codec_spec(s["codec"]).name,
        params=dict(s.get("params", {})),
        intra_at_cuts=bool(s.get("intra_at_cuts", False)),
    )
    if codec is not None and profile.codec != codec:
        raise CodecError(f"codec profile {name!r} is a {profile.codec} profile, not {codec}; "
                         f"choose one of: {', '.join(profile_names(codec))}")  # fmt: skip
    return profile
