"""Reading photos as users have them: any file Pillow opens, bytes, PIL images or numpy arrays, turned
upright by their EXIF orientation and made 8-bit RGB; and listing the photos of a folder."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from smile.errors import DataError, SmileError
from smile.faces.geometry import ALIGNED_SIZE

ImageInput = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray


class ImageError(SmileError, ValueError):
    """An input that is not a usable image; the message says what was wrong and what is expected."""


class ImageTooLarge(SmileError, ValueError):
    """An image with more pixels than the caller accepts."""


def load_photo(path: Path | IO[bytes], max_pixels: int | None = None) -> Image.Image:
    """Open an image file as RGB (:func:`rgb_image`), turned upright by its EXIF orientation (phone
    photos). With ``max_pixels``, a larger image is refused (:class:`ImageTooLarge`) before it is decoded."""
    with Image.open(path) as image:
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise ImageTooLarge(
                f"the image is {image.width}x{image.height} = {image.width * image.height:,} pixels; "
                f"at most {max_pixels:,} are accepted"
            )
        image.load()
        upright = ImageOps.exif_transpose(image)
        return rgb_image(upright if upright is not None else image)


def rgb_image(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: transparency composited over white, 16- and 32-bit greys scaled to 8 bits
    (``convert("RGB")`` would clip them to white), palettes and CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        top = 65535.0 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 255.0
        grey = np.asarray(image, dtype=np.float64) * (255.0 / top)
        return Image.fromarray(np.clip(grey + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_image(image: ImageInput, channels: str = "RGB", max_pixels: int | None = None) -> Image.Image:
    """Any accepted input as an 8-bit RGB PIL image (files and bytes turned upright by their EXIF
    orientation); raises :class:`ImageError` naming what was wrong."""
    if channels not in ("RGB", "BGR"):
        raise ImageError(f"channels={channels!r}: give 'RGB' or 'BGR'")
    if isinstance(image, Image.Image):
        return rgb_image(image)
    if isinstance(image, np.ndarray):
        return _array_image(image, channels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ImageError(
                "the image is empty (0 bytes): expected the bytes of a JPEG, PNG, WebP or BMP file"
            )
        source: Any = io.BytesIO(bytes(image))
        name = "the image data"
    elif isinstance(image, (str, Path)):
        source = Path(image)
        if not source.is_file():
            raise ImageError(f"{source}: no such file")
        name = str(source)
    else:
        raise ImageError(
            f"cannot read an image from a {type(image).__name__}: give a path, bytes, a PIL image or a numpy array"
        )
    try:
        return load_photo(source, max_pixels=max_pixels)
    except SmileError:
        raise
    except Image.UnidentifiedImageError as err:
        raise ImageError(f"{name} is not an image Pillow can read (JPEG, PNG, WebP, BMP, ...)") from err
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name}: {err}") from err
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt files
        raise ImageError(
            f"{name} is a damaged or truncated image: {' '.join(str(err).split())[:200]}"
        ) from err


def _array_image(array: np.ndarray, channels: str) -> Image.Image:
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ImageError(f"a numpy image must be uint8 (or uint16), got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"a numpy image must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if channels == "BGR":
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return rgb_image(Image.fromarray(np.ascontiguousarray(array)))


def celeba_frame(image: Image.Image) -> Image.Image:
    """An image taken to be an aligned CelebA-style crop, at CelebA's 178x218 (resized if another size)."""
    return image if image.size == ALIGNED_SIZE else image.resize(ALIGNED_SIZE, Image.Resampling.BICUBIC)


def reason(err: BaseException) -> str:
    """A one-line reason for a file that could not be used."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, Image.UnidentifiedImageError):
        text = "not an image (or an unsupported format)"
    return text[:200]


def list_photos(
    path: str | Path,
    exclude: Sequence[str | Path] = (),
    skip_folders: Sequence[str] = (),
    leave_out: Callable[[Path], bool] | None = None,
) -> list[Path]:
    """``path`` itself if it is a file, else every file under it (recursively, sorted), hidden ones,
    those under ``exclude``, those under a folder named in ``skip_folders`` and those ``leave_out`` is
    true of (a command's own earlier outputs) left out."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path} does not exist: give an image file or a folder of them")
    skip = [Path(folder).resolve() for folder in exclude]
    files = []
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path)
        if any(part.startswith(".") or part in skip_folders for part in relative.parts[:-1]):
            continue
        if relative.name.startswith(".") or not candidate.is_file():
            continue
        resolved = candidate.resolve()
        if any(resolved.is_relative_to(folder) for folder in skip) or (leave_out and leave_out(candidate)):
            continue
        files.append(candidate)
    if not files:
        raise DataError(f"{path} holds no files to predict on")
    return files
