"""Photos with known numbers of faces for the API, service and page tests: real in-the-wild faces from
../shared/celeba-wild when present, else synthetic faces that the detector finds."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

WILD = Path(__file__).resolve().parents[1].parent / "shared" / "celeba-wild" / "images"
WILD_IDS = ("182646.jpg", "182665.jpg", "182666.jpg", "182690.jpg")


@functools.lru_cache(maxsize=1)
def faces() -> tuple[Image.Image, ...]:
    """Four single-face photos (RGB)."""
    if all((WILD / name).is_file() for name in WILD_IDS):
        return tuple(Image.open(WILD / name).convert("RGB") for name in WILD_IDS)
    from smile.faces import FaceAligner
    from smile.synthetic import render_face, sample_face, sample_identity

    aligner, found, rng = FaceAligner(), [], np.random.default_rng(0)
    for _ in range(60):
        image = render_face(sample_face(rng, sample_identity(rng, label=int(rng.integers(0, 2))))).image
        canvas = Image.new("RGB", (260, 300), (90, 120, 150))
        canvas.paste(image.convert("RGB"), (41, 41))
        if len(aligner(canvas)) == 1:
            found.append(canvas)
        if len(found) == 4:
            return tuple(found)
    raise RuntimeError("the detector found too few synthetic faces")


def group(count: int = 3) -> Image.Image:
    """``count`` of :func:`faces` side by side, on a plain background."""
    parts = faces()[:count]
    width = sum(p.width for p in parts) + 40 * (count + 1)
    canvas = Image.new("RGB", (width, max(p.height for p in parts) + 80), (200, 200, 190))
    x = 40
    for part in parts:
        canvas.paste(part, (x, 40))
        x += part.width + 40
    return canvas


def empty() -> Image.Image:
    """A photo without a face."""
    return Image.new("RGB", (300, 200), (30, 160, 60))


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
