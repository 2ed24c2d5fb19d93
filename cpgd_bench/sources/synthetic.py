"""The bundled `sample` dataset: GoPro-style camera-shake blur rendered from scikit-image's photographs.

Each sequence views one photograph through a virtual camera that follows a smooth random
trajectory (sub-pixel translation, small rotation and zoom) with occasional fast shakes. Every
output frame averages ``SUBFRAMES`` sharp sub-frames spread over the exposure, in linear light
(sRGB decode, mean, sRGB encode); the middle sub-frame is the ground truth. The true camera pose of
each frame (its middle sub-frame) is returned as the ``camera`` array: a 2x3 affine mapping a frame
pixel (x, y, 1) to source-photo pixel coordinates (pixel centres at integers), from which
:func:`camera_flow` gives the exact motion between any two frames. Everything is deterministic
given the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source
from cpgd_bench.sources.options import whole_number

SUBFRAMES = 17
FPS = 30.0
STEPS_PER_FRAME = 64  # trajectory integration grid
SHAKE_RATE = 0.1  # probability of a shake per frame


@dataclass(frozen=True)
class SampleClip:
    """One sample sequence: split, name, scikit-image photograph and frame size (W x H)."""

    split: str
    name: str
    image: str
    width: int
    height: int


SAMPLE_CLIPS = (
    SampleClip("train", "astronaut", "astronaut", 256, 256),
    SampleClip("train", "coffee", "coffee", 320, 256),
    SampleClip("train", "rocket", "rocket", 320, 256),
    SampleClip("train", "ihc", "immunohistochemistry", 256, 256),
    SampleClip("test", "motorcycle", "motorcycle", 320, 256),
    SampleClip("test", "chelsea", "chelsea", 256, 256),
)


def load_photo(image: str) -> np.ndarray:
    """A photograph bundled with scikit-image as uint8 RGB (H, W, 3)."""
    if image == "motorcycle":
        return skdata.stereo_motorcycle()[0]
    return getattr(skdata, image)()


def srgb_to_linear(x: np.ndarray | torch.Tensor) -> Any:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray | torch.Tensor) -> Any:
    """Linear light in [0, 1] to sRGB encoding (IEC 61966-2-1)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    x = lib.clip(x, 0.0, 1.0)
    return lib.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _smooth_noise(rng: np.random.Generator, times: np.ndarray, knot_every: float, scale: float) -> np.ndarray:
    """A smooth random signal: Gaussian-kernel interpolation of random knots."""
    knots = np.arange(times[0] - 2 * knot_every, times[-1] + 2 * knot_every, knot_every)
    values = rng.normal(0.0, scale, size=len(knots))
    weights = np.exp(-0.5 * ((times[:, None] - knots[None, :]) / (0.6 * knot_every)) ** 2)
    return (weights @ values) / weights.sum(axis=1)


@dataclass
class Trajectory:
    """Camera pose over time ``times`` (frame units): translation (px), rotation (rad), log-zoom."""

    times: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    angle: np.ndarray
    log_zoom: np.ndarray

    def affines(self, s: np.ndarray, centre_src: np.ndarray, centre_view: np.ndarray) -> np.ndarray:
        """(len(s), 2, 3) affines mapping view pixels to source pixels at times ``s``."""
        tx, ty = np.interp(s, self.times, self.tx), np.interp(s, self.times, self.ty)
        angle, zoom = np.interp(s, self.times, self.angle), np.exp(np.interp(s, self.times, self.log_zoom))
        cos, sin = np.cos(angle) * zoom, np.sin(angle) * zoom
        lin = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (n, 2, 2)
        offset = centre_src[None] + np.stack([tx, ty], -1) - lin @ centre_view
        return np.concatenate([lin, offset[..., None]], -1)


def random_trajectory(rng: np.random.Generator, frames: int) -> tuple[Trajectory, float]:
    """A smooth random camera path with occasional shakes, and the exposure (fraction of a frame).

    The base path integrates slowly varying velocities. A shake is a fast back-and-forth offset
    centred on one frame (odd in time around the frame centre): that frame gets a strong, symmetric
    blur while its middle sub-frame and its neighbours stay on the base path.
    """
    times = np.arange(-1.0, frames + 1.0, 1.0 / STEPS_PER_FRAME)
    dt = 1.0 / STEPS_PER_FRAME

    def integrate(v: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)])

    speed = rng.uniform(3.0, 6.0)  # px / frame
    tx = integrate(_smooth_noise(rng, times, 10.0, speed))
    ty = integrate(_smooth_noise(rng, times, 10.0, speed))
    angle = integrate(_smooth_noise(rng, times, 12.0, 0.004))  # rad / frame
    log_zoom = integrate(_smooth_noise(rng, times, 12.0, 0.003))  # log-zoom / frame
    shakes = [t for t in range(frames) if rng.random() < SHAKE_RATE] or [int(rng.integers(frames))]
    for t in shakes:
        amplitude, direction = rng.uniform(4.0, 10.0), rng.uniform(0, 2 * np.pi)
        offset = amplitude * np.exp(-0.5 * ((times - t) / 0.3) ** 2) * np.sin(3 * np.pi * (times - t))
        tx += offset * np.cos(direction)
        ty += offset * np.sin(direction)
    return Trajectory(times, tx, ty, angle, log_zoom), float(rng.uniform(0.5, 0.9))


def subframe_times(frames: int, exposure: float) -> np.ndarray:
    """(frames, SUBFRAMES) sub-frame times; the middle one of frame t is exactly t."""
    offsets = exposure * (np.arange(SUBFRAMES) / (SUBFRAMES - 1) - 0.5)
    return np.arange(frames)[:, None] + offsets[None, :]


def _fit(traj: Trajectory, times: np.ndarray, view: tuple[int, int], photo: tuple[int, int]) -> np.ndarray:
    """Source centre keeping every sub-frame view inside the photo (scales ``traj``'s translation down
    in place while it does not fit)."""
    (h, w), (ph, pw) = view, photo
    centre_view = np.array([(w - 1) / 2, (h - 1) / 2])
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    margin = 3.0  # bicubic support
    for _ in range(40):
        pts = traj.affines(times.ravel(), np.zeros(2), centre_view) @ corners  # (n, 2, 4)
        lo, hi = pts.min(axis=(0, 2)), pts.max(axis=(0, 2))
        fits = hi - lo + 2 * margin <= np.array([pw - 1, ph - 1])
        if fits.all():
            return np.array([(pw - 1) / 2, (ph - 1) / 2]) - (lo + hi) / 2
        traj.tx *= 1.0 if fits[0] else 0.8
        traj.ty *= 1.0 if fits[1] else 0.8
    raise ValueError(f"a {w}x{h} view does not fit in a {pw}x{ph} photograph")


def _to_uint8(linear: torch.Tensor) -> np.ndarray:
    """(3, H, W) linear light -> uint8 (H, W, 3) sRGB."""
    return (linear_to_srgb(linear) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def render_sequence(
    photo: np.ndarray, size: tuple[int, int], frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Render (blur, sharp, camera, attrs) for a view of ``size`` (H, W) moving over ``photo``."""
    h, w = size
    trajectory, exposure = random_trajectory(rng, frames)
    times = subframe_times(frames, exposure)
    centre_src = _fit(trajectory, times, (h, w), photo.shape[:2])
    centre_view = np.array([(w - 1) / 2, (h - 1) / 2])
    src = torch.from_numpy(srgb_to_linear(photo.astype(np.float32) / 255.0)).permute(2, 0, 1)[None]
    ph, pw = photo.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([xs, ys, np.ones_like(xs)], 0).reshape(3, -1)
    blur = np.empty((frames, h, w, 3), np.uint8)
    sharp = np.empty((frames, h, w, 3), np.uint8)
    norm = np.array([2.0 / (pw - 1), 2.0 / (ph - 1)])[:, None]
    for t in range(frames):
        coords = trajectory.affines(times[t], centre_src, centre_view) @ pix  # (SUBFRAMES, 2, H*W)
        grid = (coords * norm - 1.0).transpose(0, 2, 1).reshape(SUBFRAMES, h, w, 2)
        sub = F.grid_sample(
            src.expand(SUBFRAMES, -1, -1, -1), torch.from_numpy(grid.astype(np.float32)),
            mode="bicubic", padding_mode="border", align_corners=True,
        ).clamp_(0.0, 1.0)  # fmt: skip
        blur[t] = _to_uint8(sub.mean(0))
        sharp[t] = _to_uint8(sub[SUBFRAMES // 2])
    camera = trajectory.affines(np.arange(frames, dtype=np.float64), centre_src, centre_view)
    attrs = {"subframes": SUBFRAMES, "exposure": exposure, "blur": "mean of sub-frames in linear light"}
    return blur, sharp, camera, attrs


def camera_flow(camera: np.ndarray, t: int, ref: int, height: int, width: int) -> np.ndarray:
    """True motion (H, W, 2) in pixels: pixel p of frame t shows the point at p + flow(p) in frame ref."""
    a_t = np.vstack([camera[t], [0.0, 0.0, 1.0]])
    a_ref = np.vstack([camera[ref], [0.0, 0.0, 1.0]])
    m = np.linalg.inv(a_ref) @ a_t
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x2 = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y2 = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return np.stack([x2 - xs, y2 - ys], -1)


class SampleSource(Source):
    """The synthetic `sample` dataset: ``clips`` (default ``SAMPLE_CLIPS``) of ``frames`` frames each.

    A clip's content depends only on the seed, its position in ``SAMPLE_CLIPS`` and ``frames``.
    """

    name = "sample"

    def __init__(self, seed: int = 0, frames: int = 32, clips: tuple[SampleClip, ...] = SAMPLE_CLIPS) -> None:
        if not isinstance(clips, (list, tuple)) or not all(isinstance(c, SampleClip) for c in clips):
            raise SourceError(f"sample: clips must be SampleClip entries (Python API only), got {clips!r}")
        self.seed = whole_number(self.name, "seed", seed, 0)
        self.frames = whole_number(self.name, "frames", frames, 2)
        self.clips = tuple(clips)

    def sequences(self) -> list[SequenceRef]:
        return [SequenceRef(c.split, c.name) for c in self.clips]

    def load(self, ref: SequenceRef) -> SequenceFrames:
        clip = next(c for c in self.clips if (c.split, c.name) == (ref.split, ref.name))
        index = SAMPLE_CLIPS.index(clip) if clip in SAMPLE_CLIPS else len(SAMPLE_CLIPS) + self.clips.index(clip)
        rng = np.random.default_rng([self.seed, index])
        size = (clip.height, clip.width)
        blur, sharp, camera, attrs = render_sequence(load_photo(clip.image), size, self.frames, rng)
        return SequenceFrames(
            blur=blur,
            sharp=sharp,
            fps=FPS,
            frame_names=[f"{i:05d}" for i in range(self.frames)],
            extra={"camera": camera},
            attrs={**attrs, "image": f"skimage.data.{clip.image}", "seed": self.seed},
        )

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "generator": __name__,
            "seed": self.seed,
            "frames": self.frames,
            "clips": [vars(c) for c in self.clips],
        }
