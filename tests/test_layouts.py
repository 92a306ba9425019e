"""Reading CelebA's three on-disk layouts, choosing attributes by name, splits and subsets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.layouts import as_kaggle, as_torchvision

from smile.data.celeba import CELEBA_ATTRIBUTES, UnknownAttributeError, resolve_attributes
from smile.data.datamodule import CelebADataModule
from smile.data.layouts import detect_layout, read_attributes, read_partition
from smile.errors import DataError


@pytest.mark.parametrize("layout", ["official", "torchvision", "kaggle"])
def test_all_layouts_read_the_same_data(synthetic_root: Path, tmp_path: Path, layout: str) -> None:
    root = {
        "official": lambda: synthetic_root,
        "torchvision": lambda: as_torchvision(synthetic_root, tmp_path),
        "kaggle": lambda: as_kaggle(synthetic_root, tmp_path),
    }[layout]()
    found = detect_layout(root)
    assert found.name == layout
    reference = read_attributes(synthetic_root / "list_attr_celeba.txt")
    table = read_attributes(found.attributes)
    assert table.files == reference.files
    np.testing.assert_array_equal(table.labels, reference.labels)
    assert set(np.unique(table.labels)) <= {0, 1}
    assert read_partition(found.partition) == read_partition(synthetic_root / "list_eval_partition.txt")

    data = CelebADataModule(root=str(root), attributes=["Smiling", "Male"], num_workers=0)
    data.setup("fit")
    assert {len(d) for d in data.datasets.values()} == {160, 20}
    image, label = data.datasets["train"][0]
    assert image.shape == (3, 64, 64) and label.shape == (2,)


def write_attr_file(path: Path, rows: dict[str, dict[str, int]]) -> None:
    lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)]
    for name, values in rows.items():
        lines.append(name + "".join(f" {values.get(a, -1):2d}" for a in CELEBA_ATTRIBUTES))
    path.write_text("\n".join(lines) + "\n")


def test_smiling_is_read_by_name_not_by_the_often_copied_index(tmp_path: Path) -> None:
    """Index 18 is Heavy_Makeup; Smiling is column 31. Build a file where the two disagree."""
    assert CELEBA_ATTRIBUTES[18] == "Heavy_Makeup" and CELEBA_ATTRIBUTES.index("Smiling") == 31
    rows = {
        "000001.jpg": {"Smiling": 1, "Heavy_Makeup": -1},
        "000002.jpg": {"Smiling": -1, "Heavy_Makeup": 1},
        "000003.jpg": {"Smiling": 1, "Heavy_Makeup": 1},
    }
    write_attr_file(tmp_path / "list_attr_celeba.txt", rows)
    table = read_attributes(tmp_path / "list_attr_celeba.txt")
    np.testing.assert_array_equal(table.columns(["Smiling"])[:, 0], [1, 0, 1])
    np.testing.assert_array_equal(table.columns(["Heavy_Makeup"])[:, 0], [0, 1, 1])


def test_datamodule_loads_the_smiling_column(synthetic_root: Path) -> None:
    table = read_attributes(synthetic_root / "list_attr_celeba.txt")
    smiling, makeup = table.labels[:, 31], table.labels[:, 18]
    assert (smiling != makeup).any(), "fixture must have rows where the two columns differ"
    data = CelebADataModule(root=str(synthetic_root), num_workers=0)
    data.setup("fit")
    train = data.datasets["train"]
    expected = {name: int(label) for name, label in zip(table.files, smiling)}
    assert [int(v) for v in train.labels[:, 0]] == [expected[name] for name in train.files]


def test_subsets_take_the_first_images_of_each_split(synthetic_root: Path) -> None:
    data = CelebADataModule(
        root=str(synthetic_root), subsets={"train": 16, "val": 5, "test": 7}, num_workers=0
    )
    data.setup("fit")
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [16, 5, 7]
    assert data.datasets["train"].files == [f"{i:06d}.jpg" for i in range(1, 17)]
    assert data.datasets["val"].files[0] == "000161.jpg"


def test_unknown_attribute_suggests_the_nearest_names() -> None:
    with pytest.raises(UnknownAttributeError, match="Did you mean Smiling"):
        resolve_attributes(["Smilng"])
    assert resolve_attributes("all") == list(CELEBA_ATTRIBUTES)
    assert resolve_attributes(["smiling", "male"]) == ["Smiling", "Male"]


def test_missing_dataset_error_explains(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        detect_layout(tmp_path / "nowhere")
    message = str(info.value)
    for expected in ("does not exist", "list_attr_celeba.txt", "kaggle", "torchvision", "--config demo"):
        assert expected in message
    # a misspelt root may be meant for your own photos: their two layouts are listed too
    assert "  class folders  smiling/*.jpg and not_smiling/*.jpg" in message
    assert "  a CSV          labels.csv of file,Smiling,..." in message


def test_incomplete_dataset_names_the_missing_file(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(DataError, match=r"incomplete: missing .*list_eval_partition.txt"):
        detect_layout(root)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines.__setitem__(3, lines[3] + "  1"), r"line 4: expected a file name and 40 values"),
        (lambda lines: lines.__setitem__(2, lines[2][:-2] + " 0"), r"line 3: Young of 000001.jpg is '0'"),
        (
            lambda lines: lines.__setitem__(4, lines[3]),
            r"line 5: 000002.jpg is listed twice \(first on line 4\)",
        ),
        (lambda lines: lines.__setitem__(1, lines[1].replace("Smiling", "Smile")), r"line 2: the header"),
        (lambda lines: lines.__setitem__(0, "7"), r"line 1: the file says 7 images"),
    ],
)
def test_malformed_attribute_file_names_file_and_line(
    synthetic_root: Path, tmp_path: Path, edit, message
) -> None:
    lines = (synthetic_root / "list_attr_celeba.txt").read_text().splitlines()
    edit(lines)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_attributes(path)
    assert str(path) in str(info.value)


def test_partition_that_disagrees_with_attributes(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    (root / "list_eval_partition.txt").write_text("\n".join(lines[:-3]) + "\n")
    data = CelebADataModule(root=str(root), num_workers=0)
    with pytest.raises(
        DataError, match="disagrees with the attribute file: 3 annotated images have no split"
    ):
        data.setup("fit")


def test_corrupt_image_names_the_file(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    bad = root / "img_align_celeba" / "000001.jpg"
    bad.write_text("<!DOCTYPE html><html>Quota exceeded</html>")
    (root / "img_align_celeba" / "000002.jpg").unlink()
    data = CelebADataModule(root=str(root), num_workers=0)
    data.setup("fit")
    with pytest.raises(DataError, match="000001.jpg: not a readable image"):
        data.datasets["train"][0]
    with pytest.raises(DataError, match="000002.jpg: image listed in the annotations is missing"):
        data.datasets["train"][1]


def test_transforms_shapes_and_ranges(synthetic_root: Path) -> None:
    data = CelebADataModule(root=str(synthetic_root), num_workers=0, image_size=64)
    data.setup("fit")
    for split in ("train", "val"):
        image, label = data.datasets[split][3]
        assert image.shape == (3, 64, 64) and image.dtype.is_floating_point
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert label.tolist() in ([0.0], [1.0])
    a, _ = data.datasets["val"][3]
    b, _ = data.datasets["val"][3]
    assert (a == b).all(), "evaluation transform must be deterministic"
