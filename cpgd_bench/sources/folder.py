"""Any ``<sequence>/{blur,sharp}`` image tree, or a single video file, as a dataset named ``folder``.

Layouts under ``root``: ``<split>/<sequence>/{blur,sharp}/`` (splits taken from the folder names) or
``<sequence>/{blur,sharp}/`` (every sequence in split ``split``). ``sharp`` is optional per sequence.
Sharp-only input -- a video file (anything FFmpeg reads: .mp4, .mkv, .mov, ...) as ``root``, decoded
to RGB by the FFmpeg binary of imageio-ffmpeg and named after the file, or a ``<sequence>/`` folder
holding its frames directly or only a ``sharp/`` folder -- is stored once, as ``blur`` (what the
codec degrades), with no ``sharp``: such stores have no ground truth and are scored with the
no-reference metrics. ``attrs["input"]`` says which case a sequence is.

Frame rate: a video's own (its container's) rate; image folders have none, so ``-o fps=N`` sets it,
else 30 is used and the sequence records ``fps_source: "assumed"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cpgd_bench.sources import SourceError
from cpgd_bench.sources.base import SequenceFrames, SequenceRef
from cpgd_bench.sources.images import first_line, list_frames
from cpgd_bench.sources.limits import check_frame_size, check_sequence_bytes
from cpgd_bench.sources.options import folder_name, positive_number, store_name
from cpgd_bench.sources.paired import PairedImageSource, check_names

DEFAULT_FPS = 30.0  # image folders carry no frame rate


def _read_video(path: Path) -> tuple[np.ndarray, float | None]:
    """All frames of a video file as uint8 RGB (T, H, W, 3) and its frame rate, None where the container has
    none (sizes checked against the limits)."""
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
    fps = meta.get("fps")
    return np.stack(frames), float(fps) if fps and np.isfinite(fps) and fps > 0 else None


class FolderSource(PairedImageSource):
    """A generic blur/sharp image tree, sharp-only frame folders, or one video file."""

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        blur_dir: str = "blur",
        sharp_dir: str = "sharp",
        fps: float | None = None,
    ) -> None:
        super().__init__(root)
        split = store_name(self.name, "split", split)
        self.fps_given = None if fps is None else positive_number(self.name, "fps", fps)
        self.fps = self.fps_given or DEFAULT_FPS
        self.blur_dir = folder_name(self.name, "blur_dir", blur_dir)
        self.sharp_dir = folder_name(self.name, "sharp_dir", sharp_dir)
        self.video: Path | None = self.root if self.root.is_file() else None
        self._sharp_only: set[SequenceRef] = set()
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
                f"{self.root}: no <sequence>/{blur_dir}/, <sequence>/{sharp_dir}/ or <sequence>/ frame folders "
                "(also under <split>/), and not a video file"
            )

    def _sequence_dirs(self, parent: Path) -> list[Path]:
        return sorted(p for p in parent.iterdir() if p.is_dir() and self._frames_of(p) is not None)

    def _frames_of(self, seq: Path) -> tuple[Path, Path | None] | None:
        """(frames to code, ground-truth folder or None) of a sequence folder; None when it is not one."""
        blur, sharp = seq / self.blur_dir, seq / self.sharp_dir
        if blur.is_dir():
            return blur, sharp if sharp.is_dir() else None
        if sharp.is_dir():
            return sharp, None  # sharp-only: stored once
        return (seq, None) if list_frames(seq) else None

    def _add(self, split: str, seq: Path) -> None:
        ref, (frames, sharp) = SequenceRef(split, seq.name), self._frames_of(seq)  # type: ignore[misc]
        self._folders[ref] = (frames, sharp)
        if frames != seq / self.blur_dir:
            self._sharp_only.add(ref)

    def count_frames(self, ref: SequenceRef) -> int:
        if self.video is not None:
            return len(_read_video(self.video)[0])
        return super().count_frames(ref)

    def load(self, ref: SequenceRef) -> SequenceFrames:
        if self.video is None:
            frames = super().load(ref)
            sharp_only = ref in self._sharp_only
            frames.attrs["input"] = (
                "sharp-only frames, stored once as blur (no ground truth)"
                if sharp_only
                else ("blur and sharp" if frames.sharp is not None else "blur only (no ground truth)")
            )
            frames.attrs["fps_source"] = "option" if self.fps_given else "assumed"
            return frames
        check_names(ref, self.video)
        frames, fps = _read_video(self.video)
        if fps is None and self.fps_given is None:
            raise SourceError(f"{self.video}: the container records no frame rate; give it with -o fps=N")
        return SequenceFrames(
            blur=frames,
            fps=self.fps_given or fps,  # type: ignore[arg-type]
            frame_names=[f"{i:05d}" for i in range(len(frames))],
            attrs={
                "video": self.video.name,
                "input": "video file, stored once as blur (no ground truth)",
                "fps_source": "option" if self.fps_given else "video",
            },
        )

    def describe(self) -> dict[str, Any]:
        fps = self.fps_given or ("from the video" if self.video else f"{DEFAULT_FPS} (assumed: -o fps=N sets it)")
        return {**super().describe(), "blur_dir": self.blur_dir, "sharp_dir": self.sharp_dir, "fps": fps}
