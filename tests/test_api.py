"""``smile.load``: records per face, agreement with ``predict``'s CSV and between the checkpoint and
ONNX backends, the input kinds, errors, and concurrent calls."""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import photos as face_photos
from helpers.photos import needs_mtcnn
from PIL import Image

import smile
from smile.api import ImageError
from smile.cli import main

pytestmark = needs_mtcnn


@pytest.fixture(scope="module")
def model(smiling_checkpoint: Path) -> smile.Predictor:
    return smile.load(smiling_checkpoint)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """none.jpg (no face), one.jpg, group.png (three faces)."""
    folder = tmp_path_factory.mktemp("photos")
    face_photos.empty().save(folder / "none.jpg")
    face_photos.faces()[0].save(folder / "one.jpg", quality=95)
    face_photos.group(3).save(folder / "group.png")
    return folder


def test_records_for_photos_with_no_one_and_several_faces(model: smile.Predictor, photos: Path) -> None:
    none, one, group = model.predict([photos / "none.jpg", photos / "one.jpg", photos / "group.png"])
    assert len(none) == 1 and len(one) == 1 and len(group) == 3
    assert none[0].method == "whole_image" and none[0].score is None  # no face: the whole image
    assert model.with_options(no_face="skip").predict(photos / "none.jpg") == []
    assert [face.face for face in group] == [0, 1, 2]
    xs = [face.box[0] for face in group]
    assert xs == sorted(xs) and xs[1] - xs[0] > 100  # left to right, distinct faces
    for face in one + group:
        assert 0.9 < face.score <= 1.0
        assert set(face.probabilities) == {"Smiling"} and 0.0 <= face.probabilities["Smiling"] <= 1.0
        assert face.predicted["Smiling"] == (face.probabilities["Smiling"] >= 0.5)
        assert face.to_dict()["box"] == dict(zip("xywh", face.box))
    spread = np.ptp([face.probabilities["Smiling"] for face in group])
    assert spread > 0.01, "the faces must get different probabilities for the checks to mean something"


def test_agrees_with_the_predict_csv(
    model: smile.Predictor, photos: Path, smiling_checkpoint: Path, tmp_path: Path
) -> None:
    os.chdir(tmp_path)
    args = ["predict", str(photos), "--ckpt_path", str(smiling_checkpoint)]
    assert main(args) == 0
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["status"] == "ok"]
    assert len(rows) == 4
    for row in rows:
        face = model.predict(Path(row["image"]))[int(row["face"])]
        assert face.box == tuple(int(row[f"box_{k}"]) for k in "xywh")
        assert abs(face.probabilities["Smiling"] - float(row["Smiling"])) <= 1e-5


def test_onnx_and_checkpoint_backends_agree(
    model: smile.Predictor, photos: Path, smiling_checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "smiling.onnx"
    assert main(["export", "--ckpt_path", str(smiling_checkpoint), "--out", str(out)]) == 0
    onnx_model = smile.load(out)
    assert onnx_model.backend == "onnx" and onnx_model.attributes == model.attributes
    for name in ("one.jpg", "group.png"):
        want, got = model.predict(photos / name), onnx_model.predict(photos / name)
        assert [f.box for f in got] == [f.box for f in want]
        for a, b in zip(got, want):
            assert abs(a.probabilities["Smiling"] - b.probabilities["Smiling"]) <= 1e-4
    aligned = [face_photos.faces()[0].resize((178, 218))]
    assert np.abs(onnx_model.predict_aligned(aligned) - model.predict_aligned(aligned)).max() <= 1e-4


def test_every_input_kind_gives_the_same_faces(model: smile.Predictor, photos: Path) -> None:
    path = photos / "one.jpg"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    expected = model.predict(path)[0].probabilities["Smiling"]
    for image, channels in (
        (str(path), "RGB"),
        (path.read_bytes(), "RGB"),
        (Image.open(path), "RGB"),
        (rgb, "RGB"),
        (np.ascontiguousarray(rgb[:, :, ::-1]), "BGR"),
    ):
        (face,) = model.predict(image, channels=channels)
        assert face.probabilities["Smiling"] == pytest.approx(expected, abs=1e-6)


def test_predict_aligned_takes_celeba_crops(model: smile.Predictor, sample_or_synthetic: Path) -> None:
    files = sorted((sample_or_synthetic / "img_align_celeba").glob("*.jpg"))[:3]
    probabilities = model.predict_aligned([Image.open(f) for f in files])
    assert probabilities.shape == (3, 1) and np.ptp(probabilities) > 1e-3
    single = model.predict_aligned(Image.open(files[1]))
    # float32 sums differ in the last bits between batch sizes (oneDNN picks other kernels): 1.5e-06 on AVX512
    assert single.shape == (1, 1) and abs(single[0, 0] - probabilities[1, 0]) <= 1e-5
    assert model.decide(probabilities).tolist() == (probabilities >= 0.5).tolist()


def test_bad_inputs_raise_a_clear_error(model: smile.Predictor, photos: Path, tmp_path: Path) -> None:
    truncated = (photos / "one.jpg").read_bytes()[:1500]
    cases = [
        (b"", "empty"),
        (b"hello, world", "not an image"),
        (truncated, "truncated"),
        (tmp_path / "missing.jpg", "no such file"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (12, "cannot read an image from a int"),
    ]
    for image, message in cases:
        with pytest.raises(ImageError, match=message):
            model.predict(image)
    small = smile.load(model.source, max_pixels=1000)
    with pytest.raises(ValueError, match="at most 1,000 are accepted"):
        small.predict(photos / "one.jpg")


def test_concurrent_calls_agree_with_serial_ones(model: smile.Predictor, photos: Path) -> None:
    names = ["one.jpg", "group.png", "none.jpg"] * 3
    serial = [model.predict(photos / name) for name in names]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda name: model.predict(photos / name), names))
    assert parallel == serial
