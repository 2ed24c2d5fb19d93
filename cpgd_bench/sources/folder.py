"""Any ``<sequence>/{blur,sharp}`` image tree, or a single video file, as a dataset named ``folder``.

Layouts under ``root``: ``<split>/<sequence>/{blur,sharp}/`` (splits taken from the folder names) or
``<sequence>/{blur,sharp}/`` (every sequence in split ``split``). ``sharp`` is optional per sequence.
A video file (anything FFmpeg reads: .mp4, .mkv, .mov, ...) as ``root`` is one blur-only sequence
named after the file, decoded to RGB by the FFmpeg binary of imageio-ffmpeg.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef
from cpgd_bench.sources.images import first_line
from cpgd_bench.sources.limits import check_frame_size, check_sequence_bytes
from cpgd_bench.sources.options import folder_name, positive_number, store_name
from cpgd_bench.sources.paired import PairedImageSource, check_names


def _read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames of a video file as uint8 RGB (T, H, W, 3) and its frame rate (sizes checked against the limits)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    frames: list[np.ndarray] = []
    try:
        meta = next(reader)
        w, h = meta["size"]
        check_frame_size(str(path), w, h)
        for buf in reader:
            check_sequence_bytes(str(path), len(frames) + 1, w, h)
            frames.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
    except SourceError:
        raise
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as e:
        raise SourceError(f"{path}: unreadable video ({first_line(e)})") from None
    finally:
        reader.close()
    if not frames:
        raise SourceError(f"{path}: no video frames")
    return np.stack(frames), float(meta.get("fps") or 30.0)


class FolderSource(PairedImageSource):
    """A generic blur/sharp image tree or one video file."""

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        blur_dir: str = "blur",
        sharp_dir: str = "sharp",
        fps: float = 30.0,
    ) -> None:
        super().__init__(root)
        split = store_name(self.name, "split", split)
        self.fps = positive_number(self.name, "fps", fps)
        self.blur_dir = folder_name(self.name, "blur_dir", blur_dir)
        self.sharp_dir = folder_name(self.name, "sharp_dir", sharp_dir)
        self.video: Path | None = self.root if self.root.is_file() else None
        if self.video is not None:
            self._folders[SequenceRef(split, self.video.stem)] = (self.video, None)
            return
        for seq in self._sequence_dirs(self.root):
            self._add(split, seq)
        if not self._folders:
            for split_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                for seq in self._sequence_dirs(split_dir):
                    self._add(split_dir.name, seq)
        if not self._folders:
            raise SourceError(
                f"{self.root}: no <sequence>/{blur_dir}/ or <split>/<sequence>/{blur_dir}/ folders and not a video file"
            )

    def _sequence_dirs(self, parent: Path) -> list[Path]:
        return sorted(p for p in parent.iterdir() if p.is_dir() and (p / self.blur_dir).is_dir())

    def _add(self, split: str, seq: Path) -> None:
        sharp = seq / self.sharp_dir
        self._folders[SequenceRef(split, seq.name)] = (seq / self.blur_dir, sharp if sharp.is_dir() else None)

    def count_frames(self, ref: SequenceRef) -> int:
        if self.video is not None:
            return len(_read_video(self.video)[0])
        return super().count_frames(ref)

    def load(self, ref: SequenceRef) -> SequenceFrames:
        if self.video is None:
            return super().load(ref)
        check_names(ref, self.video)
        frames, fps = _read_video(self.video)
        return SequenceFrames(
            blur=frames,
            fps=fps,
            frame_names=[f"{i:05d}" for i in range(len(frames))],
            attrs={"video": self.video.name},
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "blur_dir": self.blur_dir, "sharp_dir": self.sharp_dir}
