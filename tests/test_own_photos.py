"""Your own labelled photos: the class-folder and CSV layouts, their splits, the bad inputs, alignment
once into the cache, a fit that starts from a shipped model, and test on a new folder of the layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import FAST, QUIET

from smile.cli import main
from smile.data.datamodule import CelebADataModule
from smile.data.layouts import read_attributes
from smile.data.photo_layouts import assign_splits, read_csv, read_photo_layout
from smile.errors import DataError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: The whole image of a drawn face is a face crop: no detector needed to align it.
WHOLE = {"no_face": "whole", "detector": "haar", "min_face": 400}


def _faces(synthetic_root: Path, count: int = 40) -> tuple[list[Path], np.ndarray]:
    table = read_attributes(synthetic_root / "list_attr_celeba.txt")
    files = [synthetic_root / "img_align_celeba" / name for name in table.files[:count]]
    return files, table.columns(["Smiling"])[:count, 0]


def folders(root: Path, synthetic_root: Path, count: int = 40, split: str | None = None) -> Path:
    """``ROOT/[split/]smiling`` and ``ROOT/[split/]not_smiling`` of drawn faces."""
    files, smiling = _faces(synthetic_root, count)
    for file, label in zip(files, smiling):
        folder = root / (split or "") / ("smiling" if label else "not_smiling")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, folder / file.name)
    return root


def labelled_csv(root: Path, synthetic_root: Path, count: int = 40, extra: str = "") -> Path:
    """``ROOT/labels.csv`` (file, Smiling, person) beside ``ROOT/images``."""
    files, smiling = _faces(synthetic_root, count)
    (root / "images").mkdir(parents=True)
    lines = ["file,Smiling,person" + extra]
    for i, (file, label) in enumerate(zip(files, smiling)):
        shutil.copy(file, root / "images" / file.name)
        lines.append(f"{file.name},{int(label) if i % 2 else 2 * int(label) - 1},p{i // 4}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_class_folders_are_read_with_the_positive_folder_implied_or_given(
    synthetic_root: Path, tmp_path: Path
) -> None:
    root = folders(tmp_path / "photos", synthetic_root)
    layout = read_photo_layout(root, ["Smiling"], {})
    assert layout.kind == "folders" and layout.names == ["Smiling"] and len(layout.files) == 40
    assert all(
        Path(f).parts[0] == ("smiling" if y else "not_smiling")
        for f, y in zip(layout.files, layout.labels[:, 0])
    )
    (root / "not_smiling").rename(root / "serious")
    with pytest.raises(DataError, match=r"Give --data.photos.positive serious \(or name the other folder"):
        read_photo_layout(root, ["Smiling"], {})
    layout = read_photo_layout(root, ["Smiling"], {"positive": "smiling"})
    assert int(layout.labels.sum()) == sum(1 for _ in (root / "smiling").iterdir())
    with pytest.raises(DataError, match="data.photos.positive is 'happy'; expected the name of one of"):
        read_photo_layout(root, ["Smiling"], {"positive": "happy"})
    with pytest.raises(DataError, match="class folders label one attribute"):
        read_photo_layout(root, ["Smiling", "Male"], {"positive": "smiling"})


def test_a_split_level_and_a_split_column_are_used_as_they_are(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "levels"
    folders(root, synthetic_root, 20, "train")
    folders(root, synthetic_root, 12, "val")
    layout = read_photo_layout(root, ["Smiling"], {})
    assert sorted(np.bincount(assign_splits(layout)).tolist()) == [12, 20]
    csv_root = labelled_csv(tmp_path / "csv", synthetic_root, 40)
    text = (csv_root / "labels.csv").read_text().splitlines()
    rows = [text[0] + ",split"] + [
        f"{row},{('train', 'val', 'test')[i % 3]}" for i, row in enumerate(text[1:])
    ]
    (csv_root / "labels.csv").write_text("\n".join(rows) + "\n")
    assert assign_splits(read_csv(csv_root / "labels.csv", ["Smiling"])).tolist() == [
        i % 3 for i in range(40)
    ]


def test_a_seeded_split_keeps_each_persons_photos_together(synthetic_root: Path, tmp_path: Path) -> None:
    layout = read_csv(labelled_csv(tmp_path, synthetic_root, 40) / "labels.csv", "all")
    assert layout.names == ["Smiling"] and set(layout.labels[:, 0].tolist()) == {0, 1}  # 1/-1 and 1/0 alike
    splits = assign_splits(layout, (0.5, 0.25, 0.25), seed=3)
    for person in set(layout.groups):
        assert len({int(s) for s, g in zip(splits, layout.groups) if g == person}) == 1
    assert (assign_splits(layout, (0.5, 0.25, 0.25), seed=3) == splits).all()
    assert set(splits.tolist()) == {0, 1, 2}
    with pytest.raises(
        DataError, match=r"data.photos.split is \[0.5, 0.5, 0.5\]: give the train, val and test"
    ):
        assign_splits(layout, (0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: rows[:2] + [rows[2].split(",")[0] + ",yes," + rows[2].split(",")[2]] + rows[3:],
            r"labels.csv, line 3: Smiling of 00000\d.jpg is 'yes'; expected 1 \(has it\), 0 or -1",
        ),
        (
            lambda rows: rows[:3] + ["missing.jpg,1,p9"] + rows[3:],
            r"labels.csv, line 4: .*missing.jpg does not exist",
        ),
        (
            lambda rows: rows[:2] + [rows[2] + ",extra"] + rows[3:],
            r"labels.csv, line 3: expected 3 values \(file, Smiling, person\), found 4",
        ),
        (
            lambda rows: (
                [rows[0]] + [row.rsplit(",", 2)[0] + ",1," + row.rsplit(",", 1)[1] for row in rows[1:]]
            ),
            "every photo has Smiling = 1; a class needs photos of both kinds",
        ),
        (
            lambda rows: ["name,Smiling"] + rows[1:],
            r"labels.csv, line 1: no column names the photos; expected one of",
        ),
    ],
)
def test_bad_csv_input_names_the_file_line_and_what_was_expected(
    synthetic_root: Path, tmp_path: Path, change, message: str
) -> None:
    root = labelled_csv(tmp_path, synthetic_root, 12)
    rows = (root / "labels.csv").read_text().splitlines()
    (root / "labels.csv").write_text("\n".join(change(rows)) + "\n")
    with pytest.raises(DataError, match=message):
        read_csv(root / "labels.csv", ["Smiling"])


def test_an_empty_class_or_an_unknown_attribute_is_an_error(synthetic_root: Path, tmp_path: Path) -> None:
    root = folders(tmp_path / "photos", synthetic_root, 20)
    for file in (root / "not_smiling").iterdir():
        file.unlink()
    with pytest.raises(DataError, match=r"not_smiling: the class folder holds no photos"):
        read_photo_layout(root, ["Smiling"], {})
    csv_root = labelled_csv(tmp_path / "csv", synthetic_root, 12)
    with pytest.raises(
        DataError, match=r"data.attributes asks for \['Eyeglasses'\], but the attribute columns are Smiling"
    ):
        read_csv(csv_root / "labels.csv", ["Eyeglasses"])


def test_photos_are_aligned_once_and_again_when_the_alignment_changes(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = labelled_csv(tmp_path / "photos", synthetic_root, 24)
    photos = {**WHOLE, "split": [0.5, 0.25, 0.25]}
    data = CelebADataModule(root=str(root), photos=photos, num_workers=0, cache_dir=str(tmp_path / "cache"))
    data.setup("fit")
    assert "Aligned 24 of 24 photos to CelebA's framing (haar detector): 24 had no face (24 taken whole" in (
        capsys.readouterr().err
    )
    assert sum(len(d) for d in data.datasets.values()) == 24 and data.attributes == ["Smiling"]
    assert data.split_identities("train") is not None
    again = CelebADataModule(root=str(root), photos=photos, num_workers=0, cache_dir=str(tmp_path / "cache"))
    again.setup("fit")
    assert "Aligned" not in capsys.readouterr().err and again.layout.images == data.layout.images
    other = CelebADataModule(
        root=str(root), photos={**photos, "min_face": 300}, num_workers=0, cache_dir=str(tmp_path / "cache")
    )
    other.setup("fit")
    assert "Aligned 24 of 24" in capsys.readouterr().err and other.layout.images != data.layout.images


def test_fit_from_a_shipped_model_then_test_on_a_new_folder_needs_no_other_options(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMILE_CACHE", str(tmp_path / "cache"))
    root = folders(tmp_path / "mine", synthetic_root, 60)
    os.chdir(tmp_path)
    photos = [
        "--data.photos.no_face",
        "whole",
        "--data.photos.detector",
        "haar",
        "--data.photos.min_face",
        "400",
    ]
    args = [
        "fit",
        "--config",
        str(CONFIGS / "smile.yaml"),
        "--data.root",
        str(root),
        *photos,
        "--model.init",
        "smiling",
    ]
    assert main([*args, *FAST, "--trainer.max_epochs", "1", "--data.cache", "false"]) == 0
    assert (
        "model.init: started from smiling, all its weights and its decision thresholds"
        in capsys.readouterr().err
    )
    other = folders(tmp_path / "theirs", synthetic_root, 30)
    assert (
        main(
            [
                "test",
                "--ckpt_path",
                "best",
                "--data.root",
                str(other),
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
        == 0
    )
    assert "test/acc" in capsys.readouterr().out
    assert (root / "smile-cache").is_dir()  # the caches beside the photos are not taken for a third class
    assert main(["validate", "--ckpt_path", "best", "--data.root", str(root), *QUIET]) == 0
    two = ["--data.attributes", "[Smiling, Male]"]
    csv_root = labelled_csv(tmp_path / "two", synthetic_root, 30, extra="")
    text = (csv_root / "labels.csv").read_text().splitlines()
    table = read_attributes(synthetic_root / "list_attr_celeba.txt").columns(["Male"])[:30, 0]
    rows = [text[0].replace("person", "Male,person")] + [
        row.rsplit(",", 1)[0] + f",{int(m)}," + row.rsplit(",", 1)[1] for row, m in zip(text[1:], table)
    ]
    (csv_root / "labels.csv").write_text("\n".join(rows) + "\n")
    args = [*args[:4], str(csv_root), *args[5:]]
    assert main([*args, *two, *FAST, "--trainer.fast_dev_run", "true", "--data.cache", "false"]) == 0
    assert (
        "all but the head: it predicts ['Smiling'], this model ['Smiling', 'Male']" in capsys.readouterr().err
    )
