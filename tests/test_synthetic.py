"""Tests for the synthetic CelebA generator (smile/data/synthetic.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smile.cli import main
from smile.data import synthetic
from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.data.synthetic import (
    ANNOTATION_FILES,
    IMAGE_DIR,
    LANDMARK_NAMES,
    MARKER_FILE,
    generate_dataset,
    is_complete,
    render_face,
    sample_face,
    sample_identity,
)

N = 40
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "celeba", N, seed=0, progress=False)


def _rows(path: Path, header_lines: int) -> list[list[str]]:
    lines = path.read_text().splitlines()
    return [line.split() for line in lines[header_lines:]]


def _faces(count: int, seed: int = 123) -> list[synthetic.FaceParams]:
    return [
        sample_face(
            np.random.default_rng([seed, 2, i]), sample_identity(np.random.default_rng([seed, 1, i]), i)
        )
        for i in range(count)
    ]


def _with(params: synthetic.FaceParams, **labels: bool) -> synthetic.FaceParams:
    return dataclasses.replace(params, attributes={**params.attributes, **labels})


def test_layout_and_images(dataset: Path) -> None:
    assert is_complete(dataset)
    assert sorted(p.name for p in dataset.iterdir()) == sorted([IMAGE_DIR, *ANNOTATION_FILES, MARKER_FILE])
    assert synthetic.is_synthetic(dataset)  # a model trained on it records that its faces are drawn
    names = sorted(os.listdir(dataset / IMAGE_DIR))
    assert names == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    for name in names[:10]:
        with Image.open(dataset / IMAGE_DIR / name) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (178, 218)


def test_attribute_file(dataset: Path) -> None:
    lines = (dataset / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == str(N)
    assert lines[1] == " ".join(CELEBA_ATTRIBUTES) + " "
    assert len(lines) == N + 2
    row = re.compile(r"^\d{6}\.jpg(?: (?:-1| 1)){40}$")
    for i, line in enumerate(lines[2:], start=1):
        assert row.match(line), line
        assert line.startswith(f"{i:06d}.jpg ")
    values = np.array([[int(v) for v in line.split()[1:]] for line in lines[2:]])
    smiling = values[:, CELEBA_ATTRIBUTES.index("Smiling")]
    assert set(smiling.tolist()) == {-1, 1}
    hair = values[:, [CELEBA_ATTRIBUTES.index(f"{c}_Hair") for c in ("Black", "Blond", "Brown", "Gray")]]
    assert ((hair == 1).sum(1) <= 1).all()


def test_partition_file(dataset: Path) -> None:
    rows = _rows(dataset / "list_eval_partition.txt", 0)
    assert [r[0] for r in rows] == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    splits = [int(r[1]) for r in rows]
    assert splits == [0] * 32 + [1] * 4 + [2] * 4


def test_identity_file(dataset: Path) -> None:
    rows = _rows(dataset / "identity_CelebA.txt", 0)
    assert [r[0] for r in rows] == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    ids = [int(r[1]) for r in rows]
    assert all(i >= 1 for i in ids)
    assert len(set(ids)) < N  # several images per person
    splits = [int(r[1]) for r in _rows(dataset / "list_eval_partition.txt", 0)]
    by_split = [{i for i, s in zip(ids, splits) if s == k} for k in range(3)]
    assert not (by_split[0] & by_split[1] or by_split[0] & by_split[2] or by_split[1] & by_split[2])


def test_bbox_and_landmark_files(dataset: Path) -> None:
    lines = (dataset / "list_bbox_celeba.txt").read_text().splitlines()
    assert lines[0] == str(N) and lines[1] == "image_id x_1 y_1 width height"
    for r in _rows(dataset / "list_bbox_celeba.txt", 2):
        x, y, w, h = map(int, r[1:])
        assert len(r) == 5 and min(x, y) >= 0 and x + w <= 178 and y + h <= 218 and min(w, h) > 50

    lines = (dataset / "list_landmarks_align_celeba.txt").read_text().splitlines()
    assert lines[0] == str(N) and lines[1] == " ".join(LANDMARK_NAMES)
    marks = np.array([[int(v) for v in r[1:]] for r in _rows(dataset / "list_landmarks_align_celeba.txt", 2)])
    assert marks.shape == (N, 10)
    assert (marks[:, 0::2] >= 0).all() and (marks[:, 0::2] < 178).all()
    assert (marks[:, 1::2] >= 0).all() and (marks[:, 1::2] < 218).all()
    means = marks.mean(0)
    celeba_means = np.array([69, 111, 108, 111, 89, 135, 72, 152, 106, 152])
    assert np.abs(means - celeba_means).max() < 8, means
    assert (marks[:, 0] < marks[:, 2]).all() and (marks[:, 6] < marks[:, 8]).all()  # left is left


def test_landmarks_sit_on_the_drawn_pupils() -> None:
    checked = 0
    for params in _faces(30):
        if params.blur_radius > 0:
            continue
        face = render_face(params)
        pixels = np.asarray(face.image).astype(int)
        for x, y in (face.landmarks[0:2], face.landmarks[2:4]):
            assert pixels[y - 1 : y + 2, x - 1 : x + 2].sum(-1).min() < 150  # the black pupil
        checked += 1
    assert checked >= 20


def test_same_seed_same_bytes_other_seed_different(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 12, seed=5, progress=False)
    b = generate_dataset(tmp_path / "b", 12, seed=5, progress=False)
    c = generate_dataset(tmp_path / "c", 12, seed=6, progress=False)
    files = [*ANNOTATION_FILES, *(f"{IMAGE_DIR}/{i:06d}.jpg" for i in range(1, 13))]
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "list_attr_celeba.txt").read_bytes() != (c / "list_attr_celeba.txt").read_bytes()
    different = [(a / f).read_bytes() != (c / f).read_bytes() for f in files if f.endswith(".jpg")]
    assert all(different)


def test_smiling_changes_only_the_mouth() -> None:
    for i, params in enumerate(_faces(24, seed=9)):
        opened = i % 2 == 0  # both open and closed mouths
        on = render_face(_with(params, Smiling=True, Mouth_Slightly_Open=opened))
        off = render_face(_with(params, Smiling=False, Mouth_Slightly_Open=opened))
        diff = (np.asarray(on.image) != np.asarray(off.image)).any(-1)
        assert diff.sum() > 40, "the smile should change a visible number of pixels"
        assert on.landmarks[:6] == off.landmarks[:6]  # eyes and nose untouched
        corners = np.array([on.landmarks[6:], off.landmarks[6:]]).reshape(-1, 2)
        x0, y0 = corners.min(0) - (10, 14)
        x1, y1 = corners.max(0) + (10, 26)
        ys, xs = np.nonzero(diff)
        assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1


def test_smiling_is_independent_of_other_labels() -> None:
    rng = np.random.default_rng(0)
    identities = [sample_identity(np.random.default_rng([1, 1, k]), k) for k in range(500)]
    faces = [
        sample_face(np.random.default_rng([1, 2, i]), identities[rng.integers(500)]) for i in range(4000)
    ]
    labels = np.array([[f.attributes[a] for a in CELEBA_ATTRIBUTES] for f in faces])
    smiling = labels[:, CELEBA_ATTRIBUTES.index("Smiling")]
    assert 0.46 < smiling.mean() < 0.54
    for j, name in enumerate(CELEBA_ATTRIBUTES):
        if name == "Smiling" or not 0.05 < labels[:, j].mean() < 0.95:
            continue
        corr = np.corrcoef(smiling, labels[:, j])[0, 1]
        assert abs(corr) < 0.06, (name, corr)


def test_visible_attributes_change_pixels() -> None:
    params = next(
        p for p in _faces(50, seed=3) if not p.attributes["Bald"] and not p.attributes["Wearing_Hat"]
    )
    base = np.asarray(render_face(_with(params, Eyeglasses=False, Bangs=False)).image)
    for label in ("Eyeglasses", "Bangs", "Wearing_Hat"):
        labels = {"Eyeglasses": False, "Bangs": False, label: True}
        changed = np.asarray(render_face(_with(params, **labels)).image)
        assert (changed != base).any(-1).sum() > 100, label


def test_leftover_partial_folder_is_not_complete(tmp_path: Path) -> None:
    out = tmp_path / "celeba"
    partial = tmp_path / "celeba.partial-99999"
    (partial / IMAGE_DIR).mkdir(parents=True)
    (partial / "list_attr_celeba.txt").write_text("3\n")
    assert not is_complete(out) and not is_complete(partial)
    assert generate_dataset(out, 3, progress=False) == out
    assert is_complete(out)


def test_incomplete_or_foreign_folder_is_refused(tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "celeba", 4, progress=False)
    (out / IMAGE_DIR / "000004.jpg").unlink()
    assert not is_complete(out)
    with pytest.raises(FileExistsError, match="not a complete"):
        generate_dataset(out, 4, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_dataset(other, 4, progress=False)
    assert (other / "notes.txt").read_text() == "mine"


def test_existing_complete_dataset_is_kept(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = generate_dataset(empty, 3, progress=False)  # an empty folder is filled
    assert is_complete(out)
    stamp = (out / "list_attr_celeba.txt").stat().st_mtime_ns
    assert generate_dataset(out, 3, seed=1, progress=False) == out
    with pytest.warns(UserWarning, match="3 images"):
        generate_dataset(out, 5, progress=False)
    assert (out / "list_attr_celeba.txt").stat().st_mtime_ns == stamp


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_render(params: synthetic.FaceParams) -> synthetic.RenderedFace:
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return render_face(params)

    monkeypatch.setattr(synthetic, "render_face", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "celeba", 5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split_fractions"):
        generate_dataset(tmp_path / "x", 10, split_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "x", 0)
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["synthetic", str(out), "--num_images", "6", "--seed", "2", "--no_progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert is_complete(out)
    assert (out / "list_attr_celeba.txt").read_text().splitlines()[0] == "6"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    module = tmp_path / "module"
    result = subprocess.run(
        [sys.executable, "-m", "smile", "synthetic", str(module), "--num_images", "3", "--seed", "2"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert is_complete(module)


def test_torchvision_celeba_reads_it(tmp_path: Path) -> None:
    datasets = pytest.importorskip("torchvision.datasets")
    generate_dataset(
        tmp_path / "celeba", 20, progress=False
    )  # (a split of exactly 1 image breaks torchvision)

    class SyntheticCelebA(datasets.CelebA):
        def _check_integrity(self) -> bool:  # the official files' MD5 sums do not apply
            return True

    train = SyntheticCelebA(str(tmp_path), split="train", target_type=["attr", "landmarks"])
    test = SyntheticCelebA(str(tmp_path), split="test")
    assert len(train) == 16 and len(test) == 2
    image, (attr, landmarks) = train[0]
    assert image.size == (178, 218) and attr.shape == (40,) and landmarks.shape == (10,)
    assert train.attr_names[:40] == list(CELEBA_ATTRIBUTES)
