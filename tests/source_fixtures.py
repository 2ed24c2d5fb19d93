"""Miniature datasets in the official layouts (GoPro, DVD, HQ-Video .yuv, generic folders) for the tests."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from cpgd_bench.codec.colour import rgb_to_yuv420

H, W = 48, 64


def clip(seed: int, t: int = 4, h: int = H, w: int = W) -> np.ndarray:
    """uint8 (t, h, w, 3): a smooth colour pattern drifting by a seed-dependent step per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase, step = rng.uniform(0, 6, 3), rng.uniform(0.5, 2.0)
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        for c in range(3):
            v = np.sin((xx + i * step) / (5 + 3 * c) + phase[c]) * np.cos((yy - i * step) / (7 + c))
            out[i, ..., c] = np.clip(128 + 100 * v, 0, 255)
    return out


def write_pngs(folder: Path, frames: np.ndarray, start: int = 1, digits: int = 6, ext: str = ".png") -> list[Path]:
    """Write ``frames`` as numbered images (``000001.png``, ...) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{start + i:0{digits}d}{ext}"
        Image.fromarray(frame).save(path, **({"quality": 95} if ext == ".jpg" else {}))
        paths.append(path)
    return paths


def make_gopro(root: Path, layout: dict[str, dict[str, int]] | None = None) -> dict[tuple[str, str], dict]:
    """A GOPRO_Large tree under ``root``; returns {(split, seq): {variant: frames}} as written."""
    layout = layout or {"train": {"GOPR0001_11_00": 4, "GOPR0002_07_00": 3}, "test": {"GOPR0003_11_00": 5}}
    written = {}
    for split, seqs in layout.items():
        for k, (seq, t) in enumerate(sorted(seqs.items())):
            seed = zlib.crc32(f"{split}/{seq}".encode()) % 1000
            frames = {"sharp": clip(seed, t), "blur": clip(seed + 1, t), "blur_gamma": clip(seed + 2, t)}
            for variant, array in frames.items():
                write_pngs(root / "GOPRO_Large" / split / seq / variant, array, start=10 * k + 1)
            written[(split, seq)] = frames
    return written


def make_dvd(root: Path, videos: dict[str, int] | None = None) -> dict[str, dict]:
    """A DeepVideoDeblurring tree (JPEG frames); returns {video: {"input": frames, "GT": frames}} as decoded."""
    videos = videos or {"IMG_0003": 3, "IMG_0049": 2, "IMG_9999": 3}
    base = root / "DeepVideoDeblurring_Dataset" / "quantitative_datasets"
    written = {}
    for k, (video, t) in enumerate(sorted(videos.items())):
        size = (W, H) if video == "IMG_0049" else (H, W)  # the portrait video
        out = {}
        for folder, seed in (("input", 10 + k), ("GT", 20 + k)):
            paths = write_pngs(base / video / folder, clip(seed, t, *size), start=0, digits=5, ext=".jpg")
            out[folder] = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
        written[video] = out
    return written


def yuv_bytes(frames: np.ndarray, bit_depth: int) -> bytes:
    """Planar 4:2:0 bytes of RGB ``frames`` (16-bit little-endian words above 8 bit)."""
    parts = []
    for frame in frames:
        for plane in rgb_to_yuv420(frame, bit_depth):
            parts.append(plane.astype("<u2" if bit_depth > 8 else np.uint8).tobytes())
    return b"".join(parts)


def yuv_planes(frames: np.ndarray, bit_depth: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The Y, Cb, Cr planes that :func:`yuv_bytes` writes, per frame."""
    return [rgb_to_yuv420(frame, bit_depth) for frame in frames]


def make_hqvideo(root: Path) -> dict[str, tuple[np.ndarray, int, Path]]:
    """Two raw videos named by convention: 8-bit 64x48 at 50 fps and 10-bit 48x32 at 60 fps."""
    folder = root / "HQ-Video"
    folder.mkdir(parents=True, exist_ok=True)
    videos = {
        "Alpha": (clip(40, 5), 8, folder / "Alpha_64x48_50.yuv"),
        "Beta": (clip(41, 3, 32, 48), 10, folder / "sub" / "Beta_48x32_60fps_10bit_420.yuv"),
    }
    for frames, bits, path in videos.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(yuv_bytes(frames, bits))
    return videos


def make_folder(root: Path, sequences: dict[str, int] | None = None, sharp: bool = True) -> dict[str, dict]:
    """A generic ``<seq>/{blur,sharp}`` tree; returns {seq: {"blur": frames, "sharp": frames}}."""
    sequences = sequences or {"a": 3, "b": 4, "c": 3}
    written = {}
    for k, (seq, t) in enumerate(sorted(sequences.items())):
        frames = {"blur": clip(50 + k, t)}
        if sharp:
            frames["sharp"] = clip(60 + k, t)
        for folder, array in frames.items():
            write_pngs(root / seq / folder, array)
        written[seq] = frames
    return written
