"""The decoded cache: manifest and staleness, interrupted builds, agreement with the JPEG pipeline,
training crops, serving (host and device stand-ins), the CLI with ``data.cache``, read-only datasets."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.cli import FAST
from PIL import Image
from torchvision import transforms

from smile.cli import main
from smile.data import cache as cache_module
from smile.data.batch_transforms import eval_crop, random_crop_flip
from smile.data.cache import (
    CachedImages,
    cache_geometry,
    cached_loader,
    open_cache,
    resolve_cache_dir,
    serving_device,
)
from smile.data.datamodule import CelebADataModule
from smile.errors import DataError
from smile.system import restore


def datamodule(root: Path, **kwargs) -> CelebADataModule:
    data = CelebADataModule(root=str(root), attributes=["Smiling", "Male"], num_workers=0, **kwargs)
    data.setup()
    return data


def split_args(data: CelebADataModule, split: str, folder: Path) -> tuple:
    dataset = data.datasets[split]
    return split, dataset.image_dir, dataset.files, dataset.labels.numpy(), folder


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images))


@pytest.mark.parametrize("size", [32, 64, 128, 178, 224])
def test_geometry_reproduces_the_original_crop_windows(size: int) -> None:
    geometry = cache_geometry(size)
    assert geometry.image_size == size and geometry.height >= size
    assert geometry.top >= 0 and geometry.bottom <= 218
    # the evaluation window is CenterCrop(178)'s, which starts at row 20 of 218
    assert geometry.source_offset(geometry.eval_offset) == pytest.approx(20, abs=0.5 / geometry.scale)
    # training windows span RandomCrop(178)'s rows 0..40, one cached row (178 / size source rows) apart
    assert geometry.source_offset(0) == pytest.approx(0, abs=1 / geometry.scale)
    assert geometry.source_offset(geometry.max_offset) == pytest.approx(40, abs=1 / geometry.scale)
    if size == 64:
        assert (geometry.height, geometry.max_offset, geometry.eval_offset) == (78, 14, 7)


@pytest.mark.parametrize(("size", "crop"), [(64, 138), (64, 96), (80, 150), (64, 177)])
def test_a_tighter_window_keeps_the_centre_and_the_vertical_play(size: int, crop: int) -> None:
    geometry = cache_geometry(size, crop)
    assert geometry.scale == size / crop and geometry.height >= size
    assert geometry.top >= 0 and geometry.bottom <= 218
    # CenterCrop(crop) of the 178x218 face: columns and rows start at round((178|218 - crop) / 2)
    assert (geometry.left, geometry.right) == (round((178 - crop) / 2), round((178 - crop) / 2) + crop)
    centre = round((218 - crop) / 2)
    assert geometry.source_offset(geometry.eval_offset) == pytest.approx(centre, abs=0.5 / geometry.scale)
    # training windows move 20 rows up and down from it, as RandomCrop(178)'s do on 218 rows
    assert geometry.source_offset(0) == pytest.approx(centre - 20, abs=1 / geometry.scale)
    assert geometry.source_offset(geometry.max_offset) == pytest.approx(centre + 20, abs=1 / geometry.scale)


@pytest.mark.parametrize("crop", [95, 179, 0])
def test_a_window_that_does_not_fit_the_face_is_refused(crop: int, synthetic_root: Path) -> None:
    with pytest.raises(DataError, match=rf"data.crop_size is {crop}: .* 96 to 178"):
        CelebADataModule(root=str(synthetic_root), crop_size=crop)


def test_cache_is_built_once_with_a_manifest_then_reused(synthetic_root: Path, tmp_path: Path) -> None:
    data = datamodule(synthetic_root)
    first = open_cache(*split_args(data, "val", tmp_path))
    assert first.status == "built"
    assert first.images.shape == (20, 3, 78, 64) and first.images.dtype == np.uint8
    manifest = json.loads((tmp_path / "val-20-64px.json").read_text())
    assert manifest["format_version"] == cache_module.FORMAT_VERSION
    assert manifest["shape"] == [20, 3, 78, 64] and manifest["decoder"] == "pil"
    assert manifest["geometry"]["image_size"] == 64 and len(manifest["files_fingerprint"]) == 64
    again = open_cache(*split_args(data, "val", tmp_path))
    assert again.status == "loaded"
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.labels, data.datasets["val"].labels.numpy())
    # another resolution or decoder is another cache, never the same one reinterpreted
    assert open_cache(*split_args(data, "val", tmp_path), image_size=32).images.shape == (20, 3, 39, 32)
    assert open_cache(*split_args(data, "val", tmp_path), decoder="pil-exact").status == "built"


def test_a_changed_file_list_or_file_rebuilds_and_changed_labels_are_rewritten(
    synthetic_root: Path, tmp_path: Path
) -> None:
    data = datamodule(synthetic_root)
    split, image_dir, files, labels, _ = split_args(data, "val", tmp_path)
    images = tmp_path / "images"
    shutil.copytree(image_dir, images)
    folder = tmp_path / "cache"
    built = open_cache(split, images, files, labels, folder)
    original = np.array(built.images)

    swapped = [*files[:-1], data.datasets["train"].files[0]]  # same count, one other file
    shutil.copy(image_dir / swapped[-1], images / swapped[-1])
    rebuilt = open_cache(split, images, swapped, labels, folder)
    assert rebuilt.status == "built"
    np.testing.assert_array_equal(rebuilt.images[:-1], original[:-1])
    assert not np.array_equal(rebuilt.images[-1], original[-1])

    (images / files[0]).write_bytes((image_dir / files[1]).read_bytes())  # the same name, new content
    changed = open_cache(split, images, files, labels, folder)
    assert changed.status == "built"
    np.testing.assert_array_equal(changed.images[0], original[1])

    relabelled = labels.copy()
    relabelled[3, 0] = 1 - relabelled[3, 0]
    array_file = folder / "val-20-64px.npy"
    inode = array_file.stat().st_ino
    fixed = open_cache(split, images, files, relabelled, folder)
    assert fixed.status == "labels"  # the images stay, only the labels file is rewritten
    assert array_file.stat().st_ino == inode
    np.testing.assert_array_equal(fixed.labels, relabelled)
    assert open_cache(split, images, files, relabelled, folder).status == "loaded"


def test_an_interrupted_build_never_leaves_a_cache_that_looks_valid(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = datamodule(synthetic_root)
    args = split_args(data, "val", tmp_path)
    decode, calls = cache_module._decode_pil, []

    def killed_midway(*a):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return decode(*a)

    monkeypatch.setattr(cache_module, "_decode_pil", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        open_cache(*args, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []
    monkeypatch.undo()

    built = open_cache(*args)
    reference = np.array(built.images)
    # a kill -9 between the array landing and the manifest: the rebuild removed the manifest first
    (tmp_path / "val-20-64px.json").unlink()
    (tmp_path / ".val-20-64px.npy.999.tmp").write_bytes(b"half an array")
    again = open_cache(*args)
    assert again.status == "built" and not (tmp_path / ".val-20-64px.npy.999.tmp").exists()
    # an array file cut short under an intact manifest
    with open(tmp_path / "val-20-64px.npy", "r+b") as handle:
        handle.truncate(1000)
    repaired = open_cache(*args)
    assert repaired.status == "built"
    np.testing.assert_array_equal(repaired.images, reference)


def test_a_build_inside_a_fit_finishes(synthetic_root: Path, tmp_path: Path) -> None:
    """Build workers forked while Lightning's SIGTERM handler is installed (a split first read by
    ``test_after_fit``) still exit when the pool stops them."""
    script = f"""
import signal, sys
from pathlib import Path
import numpy as np
from smile.data.cache import _CHUNK, cache_geometry, decode_images
signal.signal(signal.SIGTERM, lambda *args: print("caught SIGTERM", file=sys.stderr))
images = Path({str(synthetic_root / "img_align_celeba")!r})
files = sorted(path.name for path in images.iterdir())
files = (files * (3 * _CHUNK // len(files) + 1))[: 3 * _CHUNK]  # enough for two workers
geometry = cache_geometry(64)
out = Path({str(tmp_path / "images.npy")!r})
np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(files), 3, geometry.height, 64))
decode_images(images, files, out, geometry, workers=2, progress=False)
print("built", int(np.load(out, mmap_mode="r")[-1].any()))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["built", "1"]


def test_concurrent_builders_build_once(synthetic_root: Path, tmp_path: Path) -> None:
    data = datamodule(synthetic_root)
    results: list[str] = []

    def open_it() -> None:
        results.append(open_cache(*split_args(data, "val", tmp_path), workers=1).status)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["built", "loaded", "loaded"]


def jpeg_eval_batch(data: CelebADataModule, split: str) -> torch.Tensor:
    dataset = data.datasets[split]
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@pytest.mark.parametrize("decoder", ["pil", "pil-exact", "torchvision"])
def test_eval_tensors_agree_with_the_jpeg_pipeline(
    synthetic_root: Path, tmp_path: Path, decoder: str
) -> None:
    data = datamodule(synthetic_root)
    cache = open_cache(*split_args(data, "val", tmp_path), decoder=decoder)
    cached = eval_crop(as_float(cache.images), cache.geometry)
    reference = jpeg_eval_batch(data, "val")
    assert cached.shape == reference.shape == (20, 3, 64, 64)
    assert (cached - reference).abs().mean() < 0.02
    assert (cached - reference).abs().mean(dim=(1, 2, 3)).max() < 0.02


@pytest.mark.parametrize("decoder", ["pil", "torchvision"])
def test_tighter_windows_agree_with_the_jpeg_pipeline(
    synthetic_root: Path, tmp_path: Path, decoder: str
) -> None:
    data = datamodule(synthetic_root, crop_size=138)
    cache = open_cache(*split_args(data, "val", tmp_path), decoder=decoder, crop_size=138)
    assert cache.key.stem == "val-20-64px-crop138" and cache.images.shape == (20, 3, 82, 64)
    difference = (eval_crop(as_float(cache.images), cache.geometry) - jpeg_eval_batch(data, "val")).abs()
    assert difference.mean() < 0.02 and difference.mean(dim=(1, 2, 3)).max() < 0.02
    # and it is another picture than the whole-width window's
    wide = eval_crop(as_float(open_cache(*split_args(data, "val", tmp_path)).images), cache_geometry(64))
    assert (wide - jpeg_eval_batch(data, "val")).abs().mean() > 0.05
    # the training windows are the JPEG pipeline's crops at the matching rows
    image = Image.open(data.datasets["val"].image_dir / data.datasets["val"].files[0]).convert("RGB")
    to_input = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    geometry = cache.geometry
    for offset in (0, geometry.max_offset):
        row = round(geometry.source_offset(offset))
        reference = to_input(image.crop((geometry.left, row, geometry.right, row + 138)))
        window = as_float(cache.images[:1])[0, :, offset : offset + 64].float() / 255
        assert (window - reference).abs().mean() < 0.02, offset


def test_eval_tensors_agree_with_the_jpeg_pipeline_on_real_faces(sample_root: Path, tmp_path: Path) -> None:
    data = datamodule(sample_root)
    cache = open_cache(*split_args(data, "val", tmp_path))  # never beside the read-only sample
    difference = (eval_crop(as_float(cache.images), cache.geometry) - jpeg_eval_batch(data, "val")).abs()
    assert difference.mean() < 0.02
    assert difference.mean(dim=(1, 2, 3)).max() < 0.02


def test_training_crops_cover_the_original_offsets_and_flip(synthetic_root: Path, tmp_path: Path) -> None:
    data = datamodule(synthetic_root)
    cache = open_cache(*split_args(data, "val", tmp_path))
    geometry = cache.geometry
    batch = as_float(cache.images[:1]).expand(300, -1, -1, -1)
    torch.manual_seed(0)
    crops, offsets, flipped = random_crop_flip(batch, geometry)
    assert crops.shape == (300, 3, 64, 64) and crops.dtype == torch.float32
    assert set(offsets.tolist()) == set(range(geometry.max_offset + 1))
    assert 0.3 < flipped.float().mean() < 0.7
    for crop, offset, flip in zip(crops, offsets.tolist(), flipped.tolist()):
        window = batch[0, :, offset : offset + 64].float() / 255
        torch.testing.assert_close(crop, window.flip(2) if flip else window)
    # each cached window is the JPEG pipeline's 178x178 crop at the matching row, and those rows
    # span RandomCrop's 0..40 without gaps wider than one cached row
    image = Image.open(data.datasets["val"].image_dir / data.datasets["val"].files[0]).convert("RGB")
    to_input = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    rows = []
    for offset in range(geometry.max_offset + 1):
        row = round(geometry.source_offset(offset))
        rows.append(row)
        reference = to_input(image.crop((0, row, 178, row + 178)))
        window = batch[0, :, offset : offset + 64].float() / 255
        assert (window - reference).abs().mean() < 0.02, offset
    assert rows[0] <= 1 and rows[-1] >= 39 and max(np.diff(rows)) <= 3


def test_datamodule_serves_training_windows_only_while_training(synthetic_root: Path, tmp_path: Path) -> None:
    data = datamodule(synthetic_root, cache=True, cache_dir=str(tmp_path), batch_size=8)
    images, labels = next(iter(data.val_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 78, 64)
    torch.testing.assert_close(labels, data.datasets["val"].labels[:8])
    data.trainer = SimpleNamespace(training=False)
    evaluated, same_labels = data.on_after_batch_transfer((images, labels), 0)
    torch.testing.assert_close(evaluated, images[:, :, 7:71].float() / 255)
    assert same_labels is labels

    def training_at(epoch: int, batch: int) -> SimpleNamespace:
        progress = SimpleNamespace(current=SimpleNamespace(ready=batch))
        loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
        return SimpleNamespace(training=True, current_epoch=epoch, global_rank=0, fit_loop=loop)

    def windows(epoch: int, batch: int) -> torch.Tensor:
        data.trainer = training_at(epoch, batch)
        return data.on_after_batch_transfer((images, labels), 0)[0]

    trained = windows(0, 3)
    assert trained.shape == (8, 3, 64, 64) and not torch.equal(trained, evaluated)
    # the windows depend on the epoch and batch only, not on the global generator
    torch.manual_seed(5)
    assert torch.equal(windows(0, 3), trained)
    assert not torch.equal(windows(0, 4), trained) and not torch.equal(windows(1, 3), trained)
    jpeg_batch = (torch.rand(2, 3, 64, 64), labels[:2])  # float batches pass through unchanged
    assert data.on_after_batch_transfer(jpeg_batch, 0)[0] is jpeg_batch[0]
    data.trainer = None
    assert len(data.train_dataloader()) == 20  # 160 images, batches of 8, shuffled


def test_device_resident_cache_serves_the_same_batches(synthetic_root: Path, tmp_path: Path) -> None:
    data = datamodule(synthetic_root)
    cache = open_cache(*split_args(data, "val", tmp_path))
    host, resident = cache.dataset(), cache.dataset("cpu")  # the CPU stands in for a GPU here
    assert isinstance(host.images, np.ndarray) and isinstance(resident.images, torch.Tensor)
    indices = [5, 0, 19, 7]
    for a, b in zip(host.__getitems__(indices), resident.__getitems__(indices)):
        torch.testing.assert_close(a, b)
    batches = list(cached_loader(cache, batch_size=6))
    assert [len(b[0]) for b in batches] == [6, 6, 6, 2]
    assert isinstance(CachedImages(resident.images, resident.labels)[3][0], torch.Tensor)


def test_cache_on_device_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert serving_device("auto", cpu, 10) is None and serving_device(True, cpu, 10) is None
    assert serving_device(True, gpu, 10) == gpu and serving_device(False, gpu, 10) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100, 200))
    assert serving_device("auto", gpu, 50) == gpu
    assert serving_device("auto", gpu, 51) is None


def test_read_only_dataset_keeps_its_cache_elsewhere(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "celeba"
    shutil.copytree(synthetic_root, root)
    monkeypatch.setenv("SMILE_CACHE", str(tmp_path / "user-cache"))
    assert resolve_cache_dir(root) == root / "smile-cache"
    assert resolve_cache_dir(root, tmp_path / "mine").parent == tmp_path / "mine"
    root.chmod(0o555)  # like the shared sample: read-only (also respected when running as root)
    try:
        folder = resolve_cache_dir(root)
        assert folder.parent == tmp_path / "user-cache" and folder.name.startswith("celeba-")
        data = datamodule(root, cache=True)
        assert data.split_cache("val").folder == folder
        assert (folder / "val-20-64px.json").is_file()
        assert not (root / "smile-cache").exists()
    finally:
        root.chmod(0o755)


def test_cli_fits_in_bf16_channels_last_and_predicts_from_the_cache(
    synthetic_root: Path, tmp_path: Path
) -> None:
    os.chdir(tmp_path)
    cache = ["--data.cache", "true", "--data.cache_dir", str(tmp_path / "cache")]
    fast = ["--trainer.precision", "bf16-mixed", "--model.channels_last", "true"]
    assert (
        main(["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", *FAST, *cache, *fast])
        == 0
    )
    folder = resolve_cache_dir(synthetic_root, tmp_path / "cache")
    assert sorted(p.name for p in folder.glob("*.json")) == ["train-160-64px.json", "val-20-64px.json"]
    run = tmp_path / "lightning_logs" / "version_0"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["datamodule_hyper_parameters"][
        "cache"
    ]

    def predictions() -> dict[str, float]:
        with open(run / "predictions.csv") as handle:
            return {row["image"]: float(row["Smiling"]) for row in csv.DictReader(handle)}

    quiet = ["--trainer.enable_progress_bar", "false"]
    assert main(["predict", "--split", "test", "--ckpt_path", "last", *quiet]) == 0  # the checkpoint brings data.cache
    assert (folder / "test-20-64px.json").is_file()
    cached = predictions()
    assert main(["predict", "--split", "test", "--ckpt_path", "last", "--data.cache", "false", *quiet]) == 0
    jpeg = predictions()
    assert list(cached) == list(jpeg) and len(cached) == 20
    assert max(abs(cached[name] - jpeg[name]) for name in cached) < 0.02

    # the evaluation tools (smile thresholds, smile report) decode only the split they read
    checkpoint = run / "checkpoints" / "last.ckpt"
    fresh = tmp_path / "fresh-cache"
    restore(checkpoint, "validate", "cpu", cache_dir=str(fresh))
    assert [p.name for p in resolve_cache_dir(synthetic_root, fresh).glob("*.json")] == ["val-20-64px.json"]


def test_a_tighter_window_travels_with_the_checkpoint(synthetic_root: Path, tmp_path: Path) -> None:
    """data.crop_size is saved with the run: predict (cache or JPEG), smile.load and export all use it."""
    import smile
    from smile.trained.export import for_export

    os.chdir(tmp_path)
    cache = ["--data.cache", "true", "--data.cache_dir", str(tmp_path / "cache")]
    args = ["fit", "--data.root", str(synthetic_root), "--trainer.max_epochs", "1", "--data.crop_size", "120"]
    assert main([*args, *FAST, *cache]) == 0
    folder = resolve_cache_dir(synthetic_root, tmp_path / "cache")
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "train-160-64px-crop120.json",
        "val-20-64px-crop120.json",
    ]
    run = tmp_path / "lightning_logs" / "version_0"
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["datamodule_hyper_parameters"]["crop_size"] == 120

    def predictions() -> dict[str, float]:
        with open(run / "predictions.csv") as handle:
            return {row["image"]: float(row["Smiling"]) for row in csv.DictReader(handle)}

    quiet = ["--trainer.enable_progress_bar", "false"]
    assert main(["predict", "--split", "test", "--ckpt_path", "last", *quiet]) == 0
    cached = predictions()
    assert main(["predict", "--split", "test", "--ckpt_path", "last", "--data.cache", "false", *quiet]) == 0
    jpeg = predictions()
    assert max(abs(cached[name] - jpeg[name]) for name in cached) < 0.02
    predictor = smile.load(checkpoint)
    assert predictor.crop_size == 120
    names = sorted(jpeg)[:4]
    aligned = predictor.predict_aligned([Image.open(synthetic_root / "img_align_celeba" / n) for n in names])
    assert np.abs(aligned[:, 0] - np.array([jpeg[n] for n in names])).max() < 1e-4
    _, metadata = for_export(checkpoint)
    assert metadata["input"]["crop_size"] == 120
    assert "central 120x120 crop (rows 49-168 of the 218)" in metadata["preprocessing"]
    assert metadata["image_transform"] == ["CentreWindow(image_size=64, crop_size=120)"]
