"""Optical flow as colour: the Middlebury colour wheel.

Convention of Baker et al., "A Database and Evaluation Methodology for Optical Flow" (IJCV 2011), as
implemented by ``flow_vis`` (Tom Runia) and the Middlebury ``flowToColor`` code: hue is the direction,
saturation the magnitude. The wheel has 55 hues (red-yellow 15, yellow-green 6, green-cyan 4,
cyan-blue 11, blue-magenta 13, magenta-red 6); a flow (u, v) in image axes (x right, y down) takes the
hue at angle ``atan2(-v, -u)``: +x is red, -x cyan, +y (down) orange-yellow, -y (up) blue-violet.
Zero flow is white; flows longer than the wheel radius keep their hue at 75 % brightness.
"""

from __future__ import annotations

import numpy as np

_SEGMENTS = (15, 6, 4, 11, 13, 6)  # RY, YG, GC, CB, BM, MR


def color_wheel() -> np.ndarray:
    """The 55 x 3 Middlebury wheel, float in [0, 255] (identical to ``flow_vis.make_colorwheel``)."""
    ry, yg, gc, cb, bm, mr = _SEGMENTS
    ramp = lambda n: np.floor(255 * np.arange(n) / n)  # noqa: E731
    wheel = np.zeros((sum(_SEGMENTS), 3))
    parts = [
        np.stack([np.full(ry, 255), ramp(ry), np.zeros(ry)], 1),
        np.stack([255 - ramp(yg), np.full(yg, 255), np.zeros(yg)], 1),
        np.stack([np.zeros(gc), np.full(gc, 255), ramp(gc)], 1),
        np.stack([np.zeros(cb), 255 - ramp(cb), np.full(cb, 255)], 1),
        np.stack([ramp(bm), np.zeros(bm), np.full(bm, 255)], 1),
        np.stack([np.full(mr, 255), np.zeros(mr), 255 - ramp(mr)], 1),
    ]
    wheel[:] = np.concatenate(parts)
    return wheel


_WHEEL = color_wheel()


def flow_to_rgb(u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """uint8 (..., 3) colours of flows (``u``, ``v``) in pixels; ``radius`` pixels is full saturation."""
    u, v = np.asarray(u, np.float64) / radius, np.asarray(v, np.float64) / radius
    rad = np.hypot(u, v)
    n = len(_WHEEL)
    fk = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % n
    f = (fk - k0)[..., None]
    col = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    return np.floor(255 * col).astype(np.uint8)


def wheel_image(size: int = 129) -> np.ndarray:
    """uint8 (size, size, 4) RGBA legend: the wheel out to radius 1, transparent outside."""
    c = np.linspace(-1, 1, size)
    u, v = np.meshgrid(c, c)  # v grows downwards, as image y
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = flow_to_rgb(u, v, 1.0)
    rgba[..., 3] = np.where(np.hypot(u, v) <= 1, 255, 0)
    return rgba
