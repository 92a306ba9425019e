"""Synthetic photos with a known face placement, the ground truth that face detection and alignment are
measured against (by benchmarks/detectors.py and the tests): an aligned CelebA image scaled, rotated and
placed on a face-free background (:func:`make_photo`), and how far a recovered alignment frames the face
from where the original did (:func:`framing_error`)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from smile.faces.geometry import CELEBA_LANDMARKS, apply_transform, opencv


def framing_error(
    to_photo: np.ndarray, to_aligned: np.ndarray, template: np.ndarray = CELEBA_LANDMARKS
) -> float:
    """Mean distance (aligned-image pixels) the template points move going to the photo and back.

    ``to_photo`` maps an aligned image into a photo (as :func:`make_photo` returns), ``to_aligned`` is a
    :attr:`Face.transform`; 0 means the recovered crop is framed exactly like the original.
    """
    back = apply_transform(to_aligned, apply_transform(to_photo, template))
    return float(np.linalg.norm(back - template, axis=1).mean())


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A face-free clutter background: smooth colour noise, random shapes and grain."""
    from PIL import ImageDraw, ImageFilter

    width, height = size
    grid = rng.integers(0, 256, size=(int(rng.integers(2, 7)), int(rng.integers(2, 7)), 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        x0, x1 = sorted(rng.integers(-width // 4, width + width // 4, size=2).tolist())
        y0, y1 = sorted(rng.integers(-height // 4, height + height // 4, size=2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3.0))))
    grain = rng.normal(0.0, rng.uniform(2.0, 8.0), size=(height, width, 1))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + grain, 0, 255).astype(np.uint8))


def make_photo(
    aligned: Image.Image,
    rng: np.random.Generator,
    size: tuple[int, int] | None = None,
    scale: tuple[float, float] = (0.7, 1.6),
    angle: tuple[float, float] = (-10.0, 10.0),
    background: Image.Image | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """Place an aligned 178x218 face in a larger "photo"; return it and the 2x3 aligned->photo matrix.

    The face is scaled by a factor drawn from ``scale``, rotated by degrees drawn from ``angle``
    (counter-clockwise on screen) and put at a random place where it fits whole, its edges feathered,
    over ``background`` (resized and blurred) or a random face-free clutter image. ``size`` (width,
    height) defaults to a random size from 400x400 to 640x480.
    """
    from PIL import ImageFilter

    cv2 = opencv()
    face = np.asarray(aligned.convert("RGB"))
    fh, fw = face.shape[:2]
    s = float(rng.uniform(*scale))
    theta = math.radians(float(rng.uniform(*angle)))
    cos, sin = math.cos(theta), math.sin(theta)
    half_w = s * (abs(cos) * fw + abs(sin) * fh) / 2.0
    half_h = s * (abs(sin) * fw + abs(cos) * fh) / 2.0
    if size is None:
        size = (int(rng.integers(400, 641)), int(rng.integers(400, 481)))
    width, height = max(size[0], math.ceil(2 * half_w) + 2), max(size[1], math.ceil(2 * half_h) + 2)
    cx = float(rng.uniform(half_w, width - half_w))
    cy = float(rng.uniform(half_h, height - half_h))
    # y points down, so a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]]
    linear = s * np.array([[cos, sin], [-sin, cos]])
    centre = np.array([(fw - 1) / 2.0, (fh - 1) / 2.0])
    matrix = np.hstack([linear, (np.array([cx, cy]) - linear @ centre)[:, None]])

    if background is None:
        back = _background(rng, (width, height))
    else:
        blur = float(rng.uniform(2.0, 6.0))
        back = background.convert("RGB").resize((width, height)).filter(ImageFilter.GaussianBlur(blur))
    warped = cv2.warpAffine(
        face, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    mask = np.zeros((fh, fw), np.float32)
    feather = 6
    mask[feather:-feather, feather:-feather] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), feather / 2.0)
    alpha = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR)[:, :, None]
    photo = alpha * warped.astype(np.float32) + (1.0 - alpha) * np.asarray(back, dtype=np.float32)
    return Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8)), matrix
