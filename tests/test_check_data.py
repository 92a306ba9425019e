"""Bad data: every kind of damage gives a clear error naming the file (and line), training stops at the
first, the scan reports all of them at once with counts, and nothing in the data folder is written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smile.cli import main
from smile.data.check import scan
from smile.data.datamodule import CelebADataModule
from smile.data.dataset import load_rgb
from smile.errors import DataError

IMAGES = "img_align_celeba"


def face(root: Path, name: str = "000050.jpg") -> Image.Image:
    with Image.open(root / IMAGES / name) as image:
        return image.convert("RGB")


def damage_images(root: Path) -> dict[str, tuple[str, str | None]]:
    """Damage images of the copy at ``root``; returns name -> (what was done, the loading error or None)."""
    folder = root / IMAGES
    good = (folder / "000050.jpg").read_bytes()
    (folder / "000001.jpg").write_text(
        "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
        "<body>Too many users have viewed or downloaded this file recently.</body></html>"
    )
    (folder / "000002.jpg").unlink()
    (folder / "000003.jpg").write_bytes(good[: len(good) // 2])
    (folder / "000004.jpg").write_bytes(bytes(range(256)) * 8)
    (folder / "000005.jpg").write_bytes(b"")
    face(root).convert("L").save(folder / "000006.jpg")
    face(root).convert("RGBA").save(folder / "000007.jpg", format="PNG")  # RGBA content, .jpg name
    face(root).convert("CMYK").save(folder / "000008.jpg")
    face(root).resize((100, 100)).save(folder / "000009.jpg")
    face(root).resize((89, 109)).save(folder / "000010.jpg")
    Image.fromarray(np.full((218, 178), 40000, dtype=np.uint16)).save(folder / "000011.jpg", format="PNG")
    face(root).save(folder / "999999.jpg")  # in the folder, in no annotation file
    return {
        "000001.jpg": ("HTML quota page saved as .jpg", "not a readable image"),
        "000002.jpg": ("deleted", "image listed in the annotations is missing"),
        "000003.jpg": ("JPEG cut in half", "not a readable image (image file is truncated"),
        "000004.jpg": ("binary junk", "not a readable image (cannot identify image file"),
        "000005.jpg": ("empty file", "not a readable image (cannot identify image file"),
        "000006.jpg": ("grayscale JPEG", None),
        "000007.jpg": ("RGBA PNG", None),
        "000008.jpg": ("CMYK JPEG", None),
        "000009.jpg": ("100x100", "image is 100x100; expected CelebA's aligned 178x218"),
        "000010.jpg": ("89x109 (half size)", None),
        "000011.jpg": ("16-bit grayscale PNG", "unsupported image mode I;16"),
    }


def damage_annotations(root: Path) -> None:
    attributes = root / "list_attr_celeba.txt"
    lines = attributes.read_text().splitlines()
    lines[0] = "201"  # line 1: count that disagrees with the rows
    lines[13] += "  1"  # line 14: 41 values
    lines[14] = lines[14][:-2] + " 0"  # line 15: Young is 0
    lines[15] = " ".join([lines[15].split()[0], "yes", *lines[15].split()[2:]])  # line 16: a word
    lines[16] = lines[12]  # line 17: 000011.jpg again
    attributes.write_text("\n".join(lines) + "\n")
    partition = root / "list_eval_partition.txt"
    rows = partition.read_text().splitlines()
    rows = [row.replace(" 1", " 0") for row in rows]  # the val split is left empty
    rows = rows[:-2] + ["not_annotated.jpg 2", "000020.jpg 3"]  # two test images lose their split
    partition.write_text("\n".join(rows) + "\n")


@pytest.fixture
def damaged(synthetic_root: Path, tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    images = damage_images(root)
    damage_annotations(root)
    return root, images


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_each_damaged_image_is_rejected_or_converted_by_name(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    for name, (what, error) in damage_images(root).items():
        path = root / IMAGES / name
        if error is None:  # converted
            image = load_rgb(path)
            assert (image.mode, image.size) == ("RGB", (178, 218)), what
        else:
            with pytest.raises(DataError) as info:
                load_rgb(path)
            assert str(info.value).startswith(f"{path}: "), what
            assert error in str(info.value), (what, str(info.value))
    gray = np.asarray(load_rgb(root / IMAGES / "000006.jpg"))
    assert (gray[..., 0] == gray[..., 1]).all(), "grayscale is replicated to three channels"


def test_the_scan_reports_every_problem_in_one_pass(damaged: tuple[Path, dict]) -> None:
    root, _ = damaged
    before = snapshot(root)
    report = scan(root, examples=10)
    text = str(report)
    print("\n" + text)
    kinds = {}
    for problem in report.problems:
        kinds.setdefault(problem.kind, []).append(problem)
    attributes, partition = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    expected = {
        "annotation count line": [f"{attributes}, line 1: the file says 201 images but lists 200 rows"],
        "annotation row: wrong number of values": [
            f"{attributes}, line 14: expected a file name and 40 values, found 42 fields"
        ],
        "annotation row: value not -1 or 1": [
            f"{attributes}, line 15: Young of 000013.jpg is '0'; expected -1 or 1",
            f"{attributes}, line 16: 5_o_Clock_Shadow of 000014.jpg is 'yes'; expected -1 or 1",
        ],
        "annotation row: repeated file name": [
            f"{attributes}, line 17: 000011.jpg is listed twice (first on line 13)"
        ],
        "partition row malformed": [
            f"{partition}, line 200: expected '<file> <0|1|2>' (0 train, 1 valid, 2 test), found '000020.jpg 3'"
        ],
        "partition disagrees: annotated image has no split": [
            f"{partition}: 000199.jpg is not listed",
            f"{partition}: 000200.jpg is not listed",
        ],
        "partition disagrees: listed image has no attributes": [
            f"{partition}: 000015.jpg has no row in the attribute file",  # its line now repeats 000011.jpg
            f"{partition}: not_annotated.jpg has no row in the attribute file",
        ],
        "split empty": [f"{partition}: no annotated image is in the val split (1)"],
        "image missing": [
            f"{root / IMAGES / '000002.jpg'}: listed in the annotations but not in the image folder"
        ],
        "not an image: an HTML page": [
            f"{root / IMAGES / '000001.jpg'}: an HTML page saved under an image name"
        ],
        "image truncated": [f"{root / IMAGES / '000003.jpg'}: image file is truncated"],
        "not an image": [f"{root / IMAGES / '000004.jpg'}: not a readable image (2048 bytes"],
        "image empty": [f"{root / IMAGES / '000005.jpg'}: the file is empty"],
        "image size rejected": [f"{root / IMAGES / '000009.jpg'}: image is 100x100; expected"],
        "image mode rejected": [f"{root / IMAGES / '000011.jpg'}: unsupported image mode I;16"],
    }
    assert set(kinds) == set(expected)
    for kind, starts in expected.items():
        found = sorted(str(problem) for problem in kinds[kind])
        assert len(found) == len(starts), (kind, found)
        for line, start in zip(found, sorted(starts)):
            assert line.startswith(start), (kind, line)
        assert f"  {kind}: {len(starts)}" in text
    notes = {note.kind: str(note) for note in report.notes}
    assert set(notes) == {
        "image mode L: converted to RGB",
        "image mode RGBA: converted to RGB",
        "image mode CMYK: converted to RGB",
        "image resized",
        "image not annotated (ignored)",
    }
    assert "89x109" in notes["image resized"] and "999999.jpg" in notes["image not annotated (ignored)"]
    assert f"Problems: {len(report.problems)} in {len(expected)} kinds" in text
    assert snapshot(root) == before, "the scan writes nothing"


def test_check_data_command_exit_status(
    damaged: tuple[Path, dict], synthetic_root: Path, tmp_path, capsys
) -> None:
    root, _ = damaged
    assert main(["check-data", "--data.root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "Problems: 18 in 15 kinds" in out and "Notes (nothing to fix): 6 in 5 kinds" in out
    assert main(["check-data", "--data.root", str(synthetic_root)]) == 0
    assert "No problems found." in capsys.readouterr().out
    assert main(["check-data", "--data.root", str(tmp_path / "nowhere")]) == 2
    assert "CelebA was not found" in capsys.readouterr().out


def test_training_stops_at_the_first_problem_and_writes_nothing(damaged: tuple[Path, dict], capsys) -> None:
    root, _ = damaged
    before = snapshot(root)
    data = CelebADataModule(root=str(root), num_workers=0)
    with pytest.raises(DataError, match=r"list_attr_celeba.txt, line 1: the file says 201 images"):
        data.setup("fit")
    assert snapshot(root) == before


def test_a_split_left_empty_and_a_zero_subset(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    partition = root / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace(" 2\n", " 1\n"))
    CelebADataModule(root=str(root), num_workers=0).setup("fit")  # fit reads train and val only
    with pytest.raises(
        DataError, match=r"The test split of .*list_eval_partition.txt is empty, and test needs"
    ):
        CelebADataModule(root=str(root), num_workers=0).setup("test")
    with pytest.raises(DataError, match="data.subsets.val is 0: give a positive count"):
        CelebADataModule(root=str(root), subsets={"val": 0})


def test_a_bad_image_met_in_a_loader_worker_is_a_one_line_error(
    synthetic_root: Path, smiling_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    (root / IMAGES / "000161.jpg").write_text("<html><body>Quota exceeded</body></html>")  # first val image
    os.chdir(tmp_path)
    code = main(
        [
            "validate", "--ckpt_path", str(smiling_checkpoint), "--data.root", str(root),
            "--data.num_workers", "1", "--data.batch_size", "4",
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {root / IMAGES / '000161.jpg'}: not a readable image" in err
    assert "Traceback" not in err and "DataLoader worker" not in err


@pytest.mark.slow  # opens all 20,535 images: 11 s of the default suite's 5 minutes
def test_scan_of_the_real_sample(sample_root: Path) -> None:
    """The whole sample scans clean; the counts come from its own files (line 1 of the attribute file,
    the partition rows and the image folder), never from a number written here."""
    attributes = (sample_root / "list_attr_celeba.txt").read_text().splitlines()
    declared = int(attributes[0])
    partition_rows = sum(
        1 for line in (sample_root / "list_eval_partition.txt").read_text().splitlines() if line.strip()
    )
    jpegs = sum(1 for _ in (sample_root / IMAGES).glob("*.jpg"))
    assert declared == len(attributes) - 2 == partition_rows == jpegs
    report = scan(sample_root)
    print(f"\n{report}")
    assert report.ok and report.annotated == declared and report.images_checked == declared


def test_the_scan_reads_the_kaggle_and_torchvision_layouts(synthetic_root: Path, tmp_path: Path) -> None:
    from helpers.layouts import as_kaggle, as_torchvision

    for name, make in (("kaggle", as_kaggle), ("torchvision", as_torchvision)):
        report = scan(make(synthetic_root, tmp_path / name))
        assert report.ok and report.layout.name == name and report.annotated == 200, str(report)
