"""benchmarks/peers.py's own logic on tiny arrays: no-face handling, metrics, threshold, table, fer's crop,
and the smile cascade it shares with smile_baseline.py (benchmarks/common.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.benchmarks import benchmark


@pytest.fixture(scope="module")
def peers():
    with benchmark("peers") as module:
        yield module


def test_images_without_a_face_count_as_not_smiling(peers) -> None:
    labels = np.array([1, 1, 0, 0, 1])
    result = peers.Result(np.array([0.9, np.nan, 0.2, 0.7, 0.6]), seconds=2.0)
    figures = peers.summarise(result, labels)
    assert figures["no_face"] == 1
    assert figures["accuracy"] == pytest.approx(3 / 5)  # the unscored smiling face is a miss
    # AUROC with the unscored image at 0: positives (0.9, 0, 0.6) vs negatives (0.2, 0.7)
    assert figures["auroc"] == pytest.approx(3 / 6)
    assert figures["images_per_s"] == pytest.approx(2.5)
    constant = peers.summarise(peers.Result(np.full(5, 0.48), seconds=None), labels)
    assert constant["accuracy"] == pytest.approx(2 / 5) and constant["auroc"] == pytest.approx(0.5)
    assert constant["images_per_s"] is None


def test_the_threshold_is_the_best_on_the_scores_it_is_given(peers) -> None:
    scores = np.array([0.1, 0.3, 0.55, 0.58, 0.62, 0.9, np.nan])
    labels = np.array([0, 0, 0, 0, 1, 1, 0])
    threshold = peers.tune_threshold(scores, labels)
    assert 0.58 < threshold < 0.62
    result = peers.Result(scores, 1.0, threshold=threshold)
    assert peers.summarise(result, labels)["accuracy"] == 1.0


def test_largest_box_and_table(peers) -> None:
    assert peers.largest([(0, 0, 10, 10), (5, 5, 20, 8), (1, 1, 12, 12)]) == 1
    rows = {
        "model": {
            "a": {"accuracy": 0.9312, "auroc": 0.97, "images_per_s": 120.0, "no_face": 3, "no_face_as": "x"},
            "b": {"accuracy": 0.9, "auroc": math.nan, "images_per_s": None, "no_face": 0, "no_face_as": "y"},
        },
        "other": {"a": {"accuracy": 0.5, "auroc": 0.5, "images_per_s": 1.0, "no_face": 0, "no_face_as": "x"}},
    }
    lines = peers.format_table(rows, ["a", "b"]).splitlines()
    assert lines[2] == "| model | 93.12% | 0.9700 | 120.0 | 3 (1) | 90.00% | - | - | 0 (2) |"
    assert lines[3] == "| other | 50.00% | 0.5000 | 1.0 | 0 (1) | - | - | - | - |"
    assert lines[-2:] == ["(1) images without a face x", "(2) images without a face y"]


def test_fer_crop_follows_fers_square_offsets_and_padding(peers) -> None:
    pytest.importorskip("cv2")
    grey = np.zeros((100, 120), np.uint8)
    grey[-2:] = 200  # fer pads with the mean of the bottom two rows
    grey[30:50, 40:60] = 255
    face = peers.fer_face_input(grey, (40, 30, 20, 20))
    assert face.shape == (64, 64) and face.dtype == np.float32
    # 20x20 box grown by 10 px a side: the bright square is the middle half of the 40x40 cut
    assert face[20:44, 20:44].min() == pytest.approx(1.0)
    assert face[:8].max() == pytest.approx(-1.0)
    # a box at the corner reaches into the padding, which holds the bottom rows' mean (200)
    corner = peers.fer_face_input(grey, (0, 0, 20, 10))  # made square: 20x20, moved up by 5
    assert corner[0, 0] == pytest.approx((200 / 255 - 0.5) * 2, abs=1e-6)
    assert corner[-1, -1] == pytest.approx(-1.0)


def test_the_smile_cascade_scores_photos_and_aligned_mouths(peers, tmp_path) -> None:
    """common.HaarSmile: on a photo as peers.py runs it, on the aligned mouth as smile_baseline.py does."""
    pytest.importorskip("cv2")
    from PIL import Image

    blank = np.full((218, 178, 3), 128, np.uint8)
    Image.fromarray(blank).save(tmp_path / "blank.jpg")
    haar = peers.HaarSmile(region="wide", enlarge=2.0, scale=1.05, threshold=3)
    assert math.isnan(haar.photo_score(tmp_path / "blank.jpg"))  # no face
    data = peers.Labelled("blank", [tmp_path / "blank.jpg"], np.array([0]))
    figures = peers.summarise(peers.smile_cascade(haar, data), data.labels)
    assert figures["no_face"] == 1 and figures["accuracy"] == 1.0
    assert haar.aligned_score(blank) == 0 and haar.predict(blank) == 0
    assert haar.settings() == {
        "region": "wide",
        "box": (34, 122, 144, 197),
        "enlarge": 2.0,
        "scaleFactor": 1.05,
        "minSize": (36, 18),
        "threshold": 3,
    }
