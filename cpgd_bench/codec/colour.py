"""The one RGB <-> Y'CbCr conversion of cpgd-bench (used by the encoder and for decoded frames).

BT.709 matrix, limited ("TV") range, 4:2:0 with centre-sited chroma, 10-bit codes:

    Y' = 0.2126 R + 0.7152 G + 0.0722 B            (R, G, B: gamma-encoded, in [0, 1])
    Cb = (B - Y') / 1.8556,   Cr = (R - Y') / 1.5748
    Y10 = 64 + 876 Y',   C10 = 512 + 896 C          (rounded, clipped to [0, 1023])

Chroma is subsampled by the mean of each 2x2 block and upsampled bilinearly (centre-sited), so a flat
colour survives the round trip exactly up to rounding. The encoded stream is tagged bt709 / tv range.
"""

from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
CB_SCALE, CR_SCALE = 2.0 * (1.0 - KB), 2.0 * (1.0 - KR)


def _levels(bit_depth: int) -> tuple[float, float, float, float]:
    """(luma offset, luma range, chroma offset, chroma range) in codes at this bit depth."""
    s = float(1 << (bit_depth - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def rgb_to_yuv420(rgb: np.ndarray, bit_depth: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB (H, W, 3), even H and W -> uint16 Y (H, W), Cb and Cr (H/2, W/2)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
        raise ValueError(f"expected RGB (H, W, 3) with even H and W, got {rgb.shape}")
    y_off, y_rng, c_off, c_rng = _levels(bit_depth)
    x = rgb.astype(np.float32) / 255.0
    luma = KR * x[..., 0] + KG * x[..., 1] + KB * x[..., 2]
    cb = (x[..., 2] - luma) / CB_SCALE
    cr = (x[..., 0] - luma) / CR_SCALE
    h, w = luma.shape
    cb = cb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    cr = cr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    top = (1 << bit_depth) - 1

    def code(v: np.ndarray, off: float, rng: float) -> np.ndarray:
        return np.clip(np.rint(off + rng * v), 0, top).astype(np.uint16)

    return code(luma, y_off, y_rng), code(cb, c_off, c_rng), code(cr, c_off, c_rng)


def _upsample2(c: np.ndarray) -> np.ndarray:
    """Bilinear x2 upsampling of a centre-sited plane (weights 3/4, 1/4 with edge replication)."""
    p = np.pad(c, 1, mode="edge")
    rows = np.empty((2 * c.shape[0], p.shape[1]), np.float32)
    rows[0::2] = 0.75 * p[1:-1] + 0.25 * p[:-2]
    rows[1::2] = 0.75 * p[1:-1] + 0.25 * p[2:]
    out = np.empty((rows.shape[0], 2 * c.shape[1]), np.float32)
    out[:, 0::2] = 0.75 * rows[:, 1:-1] + 0.25 * rows[:, :-2]
    out[:, 1::2] = 0.75 * rows[:, 1:-1] + 0.25 * rows[:, 2:]
    return out


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int = 10,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Y (H, W), Cb/Cr (ceil(H/2), ceil(W/2)) codes -> uint8 RGB (H', W', 3), H' <= H, W' <= W given by `out`.

    Per channel in float32 (no (H, W, 3) float intermediate): R, G, B * 255 = Y term + Cb/Cr terms,
    rounded half up, clipped to [0, 255].
    """
    y_off, y_rng, c_off, c_rng = _levels(bit_depth)
    h, w = (y.shape if out is None else out.shape[:2])
    luma = (y[:h, :w].astype(np.float32) - np.float32(y_off)) * np.float32(255.0 / y_rng)
    luma += np.float32(0.5)                          # + 0.5, then truncation: round half up
    scale = np.float32(255.0 / c_rng)
    u_cb = _upsample2(cb.astype(np.float32) - np.float32(c_off))[:h, :w]
    u_cr = _upsample2(cr.astype(np.float32) - np.float32(c_off))[:h, :w]
    rgb = np.empty((h, w, 3), np.uint8) if out is None else out
    chroma_weights = ((0.0, CR_SCALE), (-KB * CB_SCALE / KG, -KR * CR_SCALE / KG), (CB_SCALE, 0.0))  # R, G, B
    for channel, (k_cb, k_cr) in enumerate(chroma_weights):
        value = luma.copy()
        if k_cb:
            value += np.float32(k_cb) * scale * u_cb
        if k_cr:
            value += np.float32(k_cr) * scale * u_cr
        np.clip(value, 0.5, 255.5, out=value)
        rgb[..., channel] = value
    return rgb
