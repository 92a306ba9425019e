"""Short clips made in the tests (PyAV, H.264): faces of :mod:`helpers.photos` moving on a plain
background, noise, and the real clips of ../shared/videos when they are there."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: The real face videos (LivePortrait's driving examples; shared/videos/README.md), read-only.
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "videos"


def real_clip(name: str) -> Path:
    """``../shared/videos/NAME``; the test skips when it is absent."""
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"the real clip {path} is not here")
    return path


def write_clip(
    path: Path, frames: Iterable[np.ndarray], fps: int = 10, faststart: bool = False, codec: str = "libx264"
) -> Path:
    """Write RGB frames (all of one even size) as an H.264 MP4 (``faststart``: the index first)."""
    import av

    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "18", "preset": "ultrafast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def noise_frames(count: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[np.ndarray]:
    """``count`` frames of noise (no face), ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(count)]


def sweep_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """``count`` frames of a grey ramp sweeping sideways (no face; small once encoded)."""
    width, height = size
    ramp = np.tile((np.arange(2 * width) % 256).astype(np.uint8), (height, 1))
    return [np.repeat(ramp[:, i % width : i % width + width, None], 3, axis=2) for i in range(count)]


def moving_faces(
    faces: Sequence[Image.Image], count: int = 12, height: int = 240, face: int = 170, step: int = 3
) -> list[np.ndarray]:
    """``count`` frames with the ``faces`` side by side, each ``face`` pixels tall, drifting sideways
    by ``step`` pixels a frame (one right, the next left, ...) on a plain background."""
    slot = face + 80
    width = slot * len(faces)
    width += width % 2
    scaled = [f.convert("RGB").resize((round(face * f.width / f.height), face)) for f in faces]
    frames = []
    for index in range(count):
        canvas = Image.new("RGB", (width, height), (196, 200, 188))
        for number, picture in enumerate(scaled):
            shift = (index * step) * (1 if number % 2 == 0 else -1)
            x = number * slot + 40 + shift
            canvas.paste(picture, (x, (height - face) // 2))
        frames.append(np.asarray(canvas))
    return frames
