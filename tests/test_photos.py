"""Predicting on photos: listing, rows and statuses, annotated copies, the CLI, and agreement of
detect + align + predict with predictions on the original aligned images."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.photos import needs_mtcnn
from PIL import Image

from smile.cli import main
from smile.data.pil_transforms import eval_transform
from smile.errors import OptionError
from smile.faces.aligner import WHOLE_IMAGE
from smile.faces.images import list_photos
from smile.faces.options import FaceOptions
from smile.photos.pipeline import PhotoPipeline
from smile.photos.predictions import NO_FACE, OK, PhotoRow, draw_faces, label_lines
from smile.system import AttributeClassifier

AGREEMENT_IDS = range(5511, 5535)  # 24 test-split ids of the real sample


def _aligned_images(root: Path, count: int, start: int = 0) -> list[Path]:
    return sorted((root / "img_align_celeba").glob("*.jpg"))[start : start + count]


def _load_model(checkpoint: Path) -> AttributeClassifier:
    return AttributeClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()


def _probabilities(model: AttributeClassifier, images: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model.predict_step(torch.stack(images), 0).numpy()


def _read_csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --- pieces -------------------------------------------------------------------------------------------


def test_list_photos_walks_folders_and_skips_hidden_and_excluded(tmp_path: Path) -> None:
    for name in ("b.jpg", "a/c.png", "a/.hidden.jpg", ".git/x.jpg", "out/annotated.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_photos(tmp_path, exclude=[tmp_path / "out"])]
    assert found == ["a/c.png", "b.jpg", "notes.txt"]
    assert list_photos(tmp_path / "b.jpg") == [tmp_path / "b.jpg"]
    with pytest.raises(ValueError, match="does not exist"):
        list_photos(tmp_path / "missing")


def test_label_lines_show_all_of_few_attributes_or_the_top_ones_above_their_thresholds() -> None:
    assert label_lines([0.91], ["Smiling"], [0.5]) == ["Smiling 0.91"]
    names = ["Smiling", "Male", "Young", "Bald", "Eyeglasses"]
    half = [0.5] * 5
    assert label_lines([0.9, 0.2, 0.7, 0.6, 0.95], names, half) == [
        "Eyeglasses 0.95",
        "Smiling 0.90",
        "Young 0.70",
    ]
    assert label_lines([0.1] * 5, names, half) == ["no attribute predicted"]
    # a rare attribute's low threshold lets it in; a high one keeps Young out
    assert label_lines([0.9, 0.2, 0.7, 0.15, 0.95], names, [0.5, 0.5, 0.8, 0.1, 0.5]) == [
        "Eyeglasses 0.95",
        "Smiling 0.90",
        "Bald 0.15",
    ]


def test_draw_faces_marks_boxes_and_photos_without_a_face() -> None:
    photo = Image.new("RGB", (320, 240), (128, 128, 128))

    def row(p: float) -> PhotoRow:
        return PhotoRow(Path("x.jpg"), OK, face=0, box=(40, 30, 100, 120), score=0.99, probabilities=[p])

    drawn = np.asarray(draw_faces(photo, [row(0.8)], ["Smiling"], [0.5]))
    assert tuple(drawn[80, 40]) == (40, 220, 60)  # green box edge: smiling
    drawn = np.asarray(draw_faces(photo, [row(0.2)], ["Smiling"], [0.5]))
    assert tuple(drawn[80, 40]) == (235, 50, 50)  # red: not smiling
    drawn = np.asarray(draw_faces(photo, [row(0.2)], ["Smiling"], [0.1]))
    assert tuple(drawn[80, 40]) == (40, 220, 60)  # green at the model's own threshold of 0.1
    banner = np.asarray(draw_faces(photo, [], ["Smiling"], [0.5]))
    assert (banner[:8, :, :] == 0).mean() > 0.5 and (banner[120:] == 128).all()


# --- the command line ---------------------------------------------------------------------------------


def test_predict_aligned_images_needs_no_detector_and_no_training_data(
    smiling_checkpoint: Path, sample_or_synthetic: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "aligned"
    (photos / "more").mkdir(parents=True)
    files = _aligned_images(sample_or_synthetic, 3)
    for file in files[:2]:
        shutil.copy(file, photos / file.name)
    Image.open(files[2]).resize((89, 109)).save(photos / "more" / "small.png")  # resized back to 178x218
    (photos / "more" / "broken.jpg").write_bytes(files[0].read_bytes()[:500])
    os.chdir(tmp_path)
    args = ["predict", "aligned", "--ckpt_path", str(smiling_checkpoint)]
    assert main([*args, "--aligned"]) == 0
    rows = _read_csv(tmp_path)
    assert [Path(row["image"]).name for row in rows] == [
        files[0].name,
        files[1].name,
        "broken.jpg",
        "small.png",
    ]
    assert [row["status"] for row in rows] == ["ok", "ok", rows[2]["status"], "ok"]
    assert rows[2]["status"].startswith("unreadable: ") and rows[2]["Smiling"] == ""
    assert (rows[0]["face"], rows[0]["box_w"], rows[0]["box_h"], rows[0]["score"]) == ("0", "178", "218", "")
    assert (rows[3]["box_w"], rows[3]["box_h"]) == ("89", "109")
    model = _load_model(smiling_checkpoint)
    transform = eval_transform(64)
    expected = _probabilities(
        model,
        [transform(Image.open(f).convert("RGB")) for f in files[:2]]
        + [
            transform(
                Image.open(photos / "more" / "small.png").convert("RGB").resize((178, 218), Image.BICUBIC)
            )
        ],
    )[:, 0]
    got = [float(rows[i]["Smiling"]) for i in (0, 1, 3)]
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert not (tmp_path / "no-such-celeba").exists()


def test_predictions_go_to_the_current_folder_and_are_not_read_back_as_photos(
    smiling_checkpoint: Path, sample_or_synthetic: Path, tmp_path: Path
) -> None:
    """predictions.csv is written in the current folder, also for a run's checkpoint (it went into the
    run folder); an earlier one is kept (predictions-2.csv is the next); and a second predict on a folder
    that holds smile's predictions and caches leaves them out instead of listing them as unreadable."""
    photos = tmp_path / "photos"
    (photos / "smile-cache" / "aligned-0").mkdir(parents=True)
    for file in _aligned_images(sample_or_synthetic, 2):
        shutil.copy(file, photos / file.name)
    shutil.copy(_aligned_images(sample_or_synthetic, 1)[0], photos / "smile-cache" / "aligned-0" / "a.png")
    (photos / "smile-cache" / "manifest.json").write_text("{}")
    run = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    run.mkdir(parents=True)
    shutil.copy(smiling_checkpoint, run / "best.ckpt")
    os.chdir(tmp_path)
    assert main(["predict", "photos", "--ckpt_path", "best", "--aligned"]) == 0
    assert [Path(row["image"]).name for row in _read_csv(tmp_path)] == [
        f.name for f in sorted(photos.glob("*.jpg"))
    ]
    assert not list(run.parent.glob("predictions*"))
    os.chdir(photos)
    args = ["predict", ".", "--ckpt_path", str(smiling_checkpoint), "--aligned"]
    assert main(args) == 0
    assert main([*args, "--format", "json"]) == 0
    assert main(args) == 0
    assert sorted(p.name for p in photos.glob("predictions*")) == [
        "predictions-2.csv",
        "predictions.csv",
        "predictions.json",
    ]
    with open(photos / "predictions-2.csv", newline="") as handle:
        again = list(csv.DictReader(handle))
    assert [(row["image"], row["status"]) for row in again] == [
        (f.name, "ok") for f in sorted(photos.glob("*.jpg"))
    ]


def test_json_output_has_the_csvs_fields(
    smiling_checkpoint: Path, sample_or_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import json

    photos = tmp_path / "photos"
    photos.mkdir()
    for file in _aligned_images(sample_or_synthetic, 2):
        shutil.copy(file, photos / file.name)
    (photos / "notes.txt").write_text("not a photo")
    os.chdir(tmp_path)
    args = ["predict", "photos", "--ckpt_path", str(smiling_checkpoint), "--aligned"]
    assert main(args) == 0
    assert main([*args, "--out", "out/faces.json"]) == 0
    assert main([*args, "--format", "json"]) == 0
    rows = _read_csv(tmp_path)
    for name in ("out/faces.json", "predictions.json"):
        records = json.loads((tmp_path / name).read_text())
        assert [list(record) for record in records] == [list(row) for row in rows]
        for record, row in zip(records, rows):
            for key, value in record.items():  # the CSV's cell, as a number where it is one
                if isinstance(value, float):
                    assert value == pytest.approx(float(row[key]), abs=1e-6), key
                else:
                    assert ("" if value is None else str(value)) == row[key], key
    assert records[-1]["status"].startswith("unreadable") and records[-1]["Smiling"] is None
    assert isinstance(records[0]["Smiling"], float) and isinstance(records[0]["box_w"], int)
    assert main([*args, "--format", "csv", "--out", "faces.json"]) == 2
    assert "--format csv and --out faces.json" in capsys.readouterr().err


@needs_mtcnn
def test_predict_on_photos_gives_rows_per_face_and_for_photos_without_one(
    smiling_checkpoint: Path, sample_root: Path, tmp_path: Path
) -> None:
    from smile.faces.synthetic import make_photo

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    one = Image.open(sample_root / "img_align_celeba" / "005520.jpg").convert("RGB")
    make_photo(one, np.random.default_rng(1))[0].save(photos / "one.jpg", quality=92)
    group = Image.new("RGB", (560, 330), (70, 110, 150))
    group.paste(Image.open(sample_root / "img_align_celeba" / "005521.jpg"), (40, 60))
    group.paste(Image.open(sample_root / "img_align_celeba" / "005522.jpg"), (320, 50))
    group.save(photos / "trip" / "group.png")
    Image.new("RGB", (300, 200), (30, 160, 60)).save(photos / "trip" / "field.jpg")
    (photos / "trip" / "notes.txt").write_text("not an image")
    (photos / "trip" / "cut.jpg").write_bytes((photos / "one.jpg").read_bytes()[:2000])
    os.chdir(tmp_path)
    args = ["predict", "photos", "--ckpt_path", str(smiling_checkpoint)]
    assert main([*args, "--annotate_dir", "annotated"]) == 0
    rows = _read_csv(tmp_path)
    summary = [(Path(r["image"]).name, r["face"], r["status"].split(":")[0]) for r in rows]
    assert summary == [
        ("one.jpg", "0", "ok"),
        ("cut.jpg", "", "unreadable"),
        ("field.jpg", "0", "whole_image"),
        ("group.png", "0", "ok"),
        ("group.png", "1", "ok"),
        ("notes.txt", "", "unreadable"),
    ]
    left, right = rows[3], rows[4]
    assert 40 <= int(left["box_x"]) < 200 <= 320 <= int(right["box_x"]) < 500
    predicted = ("ok", "whole_image")
    assert all(0.0 <= float(r["Smiling"]) <= 1.0 for r in rows if r["status"] in predicted)
    assert all(r["Smiling"] == "" and r["box_x"] == "" for r in rows if r["status"] not in predicted)
    field = rows[2]
    assert (field["box_x"], field["box_y"], field["box_w"], field["box_h"], field["score"]) == (
        "0",
        "0",
        "300",
        "200",
        "",
    )
    annotated = sorted(
        p.relative_to(tmp_path / "annotated").as_posix() for p in (tmp_path / "annotated").rglob("*")
    )
    assert annotated == ["one.jpg", "trip", "trip/field.jpg", "trip/group.png"]
    drawn = np.asarray(Image.open(tmp_path / "annotated" / "trip" / "group.png").convert("RGB"), dtype=int)
    assert np.abs(drawn - np.asarray(group, dtype=int)).max() > 100  # boxes and labels were drawn
    assert not (tmp_path / "no-such-celeba").exists()


@needs_mtcnn
def test_photos_without_any_face_still_get_their_rows(smiling_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (300, 200), (30, 160, 60)).save(tmp_path / "photos" / "field.jpg")
    (tmp_path / "photos" / "list.csv").write_text("a,b\n")
    os.chdir(tmp_path)
    args = ["predict", "photos", "--ckpt_path", str(smiling_checkpoint)]
    assert main([*args, "--no_face", "skip"]) == 0
    rows = _read_csv(tmp_path)
    assert [(Path(r["image"]).name, r["status"].split(":")[0]) for r in rows] == [
        ("field.jpg", NO_FACE),
        ("list.csv", "unreadable"),
    ]


@needs_mtcnn
def test_photos_without_a_detected_face_are_predicted_whole(
    smiling_checkpoint: Path, sample_or_synthetic: Path, tmp_path: Path
) -> None:
    """A tight face crop too small for the detector (below min_face) and a texture each get a
    ``whole_image`` row with the whole image as box and the model's probability on the image framed by
    :func:`smile.faces.geometry.whole_image_transform`; ``--no_face skip`` leaves them without one."""
    from smile.faces.geometry import warp, whole_image_transform

    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.open(_aligned_images(sample_or_synthetic, 1)[0]).convert("RGB")
    face.crop((0, 20, 178, 198)).resize((36, 36), Image.BICUBIC).save(photos / "small.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 140, 3), dtype=np.uint8)).save(photos / "texture.png")
    os.chdir(tmp_path)
    args = ["predict", "photos", "--ckpt_path", str(smiling_checkpoint)]
    assert main(args) == 0
    rows = _read_csv(tmp_path)
    assert [(Path(r["image"]).name, r["face"], r["status"]) for r in rows] == [
        ("small.png", "0", WHOLE_IMAGE),
        ("texture.png", "0", WHOLE_IMAGE),
    ]
    assert [(r["box_x"], r["box_y"], r["box_w"], r["box_h"], r["score"]) for r in rows] == [
        ("0", "0", "36", "36", ""),
        ("0", "0", "140", "90", ""),
    ]
    transform = eval_transform(64)
    expected = _probabilities(
        _load_model(smiling_checkpoint),
        [
            transform(warp(image, whole_image_transform(image.size)))
            for image in (Image.open(photos / n).convert("RGB") for n in ("small.png", "texture.png"))
        ],
    )[:, 0]
    np.testing.assert_allclose([float(r["Smiling"]) for r in rows], expected, atol=2e-6)

    (tmp_path / "skip").mkdir()
    os.chdir(tmp_path / "skip")
    args[args.index("photos")] = str(photos)
    assert main([*args, "--no_face", "skip"]) == 0
    rows = _read_csv(tmp_path / "skip")
    assert [(r["status"], r["Smiling"]) for r in rows] == [(NO_FACE, ""), (NO_FACE, "")]


def test_no_face_rejects_unknown_choices() -> None:
    with pytest.raises(OptionError, match="no_face is 'blank'"):
        FaceOptions(no_face="blank")  # type: ignore[arg-type]


def test_missing_predict_path_is_a_short_error(smiling_checkpoint: Path, tmp_path: Path, capsys) -> None:
    os.chdir(tmp_path)
    args = ["predict", "nowhere", "--ckpt_path", str(smiling_checkpoint)]
    assert main(args) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


# --- agreement with the aligned originals ----------------------------------------------------------------


def _pixel_smile_classifier(sample_root: Path, count: int = 1000):
    """A Smiling classifier trained in closed form: ridge regression on the standardised grey levels of
    the 64x64 network input (averaged down to 32x32) of the first ``count`` training images, squashed by a
    sigmoid. 87% accurate on the sample's test split, and sensitive to framing (every weight belongs to a
    pixel), so it makes a strict judge of crops; training the CNN that far takes minutes, not seconds."""
    from smile.data.layouts import read_attributes

    table = read_attributes(sample_root / "list_attr_celeba.txt")
    transform = eval_transform(64)
    images = torch.stack(
        [
            transform(Image.open(sample_root / "img_align_celeba" / n).convert("RGB"))
            for n in table.files[:count]
        ]
    )

    def grey(batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(batch.mean(1, keepdim=True), 2).flatten(1).double()

    mean, std = grey(images).mean(0), grey(images).std(0) + 1e-6

    def features(batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([(grey(batch) - mean) / std, torch.ones(len(batch), 1, dtype=torch.float64)], 1)

    design = features(images)
    targets = torch.as_tensor(table.columns(["Smiling"])[:count, 0], dtype=torch.float64) * 2 - 1
    ridge = 100.0 * torch.eye(design.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(design.T @ design + ridge, design.T @ targets)
    scale = 2.0 / float((design @ weights).std())  # logits with a standard deviation of 2

    def predict(batch: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(scale * features(batch) @ weights).numpy()

    return predict


@needs_mtcnn
def test_detect_align_predict_agrees_with_the_aligned_originals(sample_root: Path, tmp_path: Path) -> None:
    """Real test-split faces are put into "photos" (scaled 0.7-1.6x, rotated up to 10 degrees, on clutter,
    saved as JPEG), which go through the predict path's dataset (MTCNN, alignment, eval transform); a
    smiling classifier must then give the crops the probabilities it gives the original aligned images.

    Measured on ids 005511-005534: framing error 1.6 px; mean |p_photo - p_original| 0.19 times the mean
    distance between two faces' probabilities; correlation 0.94; 22 of 24 labels the same (ids
    005535-005599: 0.17, 0.96, 95%). The limits leave room for other platforms' JPEG and resampling."""
    from smile.faces.synthetic import framing_error, make_photo

    predict = _pixel_smile_classifier(sample_root)
    transform = eval_transform(64)
    folder = tmp_path / "photos"
    folder.mkdir()
    originals, to_photo = [], {}
    for image_id in AGREEMENT_IDS:
        original = Image.open(sample_root / "img_align_celeba" / f"{image_id:06d}.jpg").convert("RGB")
        photo, matrix = make_photo(original, np.random.default_rng(image_id))
        photo.save(folder / f"{image_id}.jpg", quality=92)
        originals.append(transform(original))
        to_photo[f"{image_id}.jpg"] = matrix
    pipeline = PhotoPipeline(64, options=FaceOptions(detector="mtcnn", no_face="skip"))
    found = {photo.source.name: photo.faces for photo in pipeline.photos(sorted(folder.iterdir()))}
    chosen, errors = [], []
    for name, matrix in to_photo.items():
        assert found[name], f"no face found in the photo {name}"
        best = min(found[name], key=lambda face: framing_error(matrix, face.transform))
        chosen.append(best.aligned)
        errors.append(framing_error(matrix, best.transform))
    p_original = predict(torch.stack(originals))
    p_photo = predict(pipeline.tensor(chosen))
    difference = np.abs(p_photo - p_original).mean()
    pairs = len(p_original) * (len(p_original) - 1)
    spread = np.abs(p_original[:, None] - p_original[None, :]).sum() / pairs
    agreement = ((p_photo >= 0.5) == (p_original >= 0.5)).mean()
    correlation = np.corrcoef(p_photo, p_original)[0, 1]
    summary = (
        f"framing {np.mean(errors):.2f}px, |dp| {difference:.3f}, spread {spread:.3f}, "
        f"agree {agreement:.2f}, correlation {correlation:.2f}"
    )
    assert np.mean(errors) < 4.0, summary
    assert spread > 0.2, summary  # the classifier tells faces apart, so agreement means something
    assert difference < 0.3 * spread, summary
    assert correlation > 0.85, summary
    assert agreement >= 0.85, summary
