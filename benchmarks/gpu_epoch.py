"""A training epoch of 162,770 synthetic images (CelebA's training split's size) with the original CNN
on a GPU, served from the decoded cache held on the device, with the JPEG pipeline's epoch beside it.

    python benchmarks/gpu_epoch.py                    # batch 1024, bf16-mixed, channels_last, 3 epochs
    python benchmarks/gpu_epoch.py --compile          # and torch.compile
    python benchmarks/gpu_epoch.py --device cpu --images 3000 --faces 100 --batch-size 256 \\
        --epochs 1 --jpeg-batches 3 --precision 32-true  # a dry run of the script on a CPU

It renders ``--faces`` synthetic CelebA-format faces, lays out a CelebA-format dataset of
``--images`` training images (hard links to those faces, so the JPEG pipeline decodes real
178x218 JPEGs), builds the cache (timed: the one-time cost), trains ``--epochs`` epochs from the cache
through Lightning (the first includes cuDNN's autotuning and compilation) and times
``--jpeg-batches`` batches of the JPEG pipeline with the default loader settings (one process per
core, at most 8), from which its epoch time is extrapolated (``--jpeg-batches 0``: a whole epoch).
Prints a table and writes JSON (``--json``). Takes about two minutes on an H200 machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import ROOT, quiet_trainer
from timing import EpochTimer, machine, torch_device, training_step_rate

from smile.data.cache import DecodedCache, open_cache, resolve_cache_dir
from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.data.datamodule import CelebADataModule, default_num_workers
from smile.data.synthetic import ATTR_FILE, IMAGE_DIR, PARTITION_FILE, generate_dataset
from smile.system import AttributeClassifier

CELEBA_TRAIN = 162_770


def make_dataset(work: Path, images: int, faces: int, extra: int) -> Path:
    """A CelebA-layout folder: ``images`` training, ``extra`` validation and ``extra`` test entries,
    hard links (or symbolic links) to ``faces`` rendered synthetic faces, with their labels."""
    source = generate_dataset(work / "faces", faces, seed=0, split_fractions=(1.0, 0.0, 0.0))
    rows = (source / ATTR_FILE).read_text().splitlines()[2:]
    names = [row.split()[0] for row in rows]
    values = [row.split(None, 1)[1] for row in rows]
    root = work / "celeba"
    (root / IMAGE_DIR).mkdir(parents=True)
    total = images + 2 * extra
    attr, partition = [str(total), " ".join(CELEBA_ATTRIBUTES)], []
    for i in range(total):
        name, k = f"{i + 1:06d}.jpg", i % faces
        target = root / IMAGE_DIR / name
        try:
            os.link(source / IMAGE_DIR / names[k], target)
        except OSError:
            target.symlink_to(source / IMAGE_DIR / names[k])
        attr.append(f"{name} {values[k]}")
        partition.append(f"{name} {0 if i < images else 1 if i < images + extra else 2}")
    (root / ATTR_FILE).write_text("\n".join(attr) + "\n")
    (root / PARTITION_FILE).write_text("\n".join(partition) + "\n")
    return root


def trainer(args: argparse.Namespace, timer: EpochTimer, epochs: int, batches: int | float) -> pl.Trainer:
    return quiet_trainer(
        args.device, args.precision, epochs, batches, validate=False, callbacks=[timer], benchmark=True
    )


def decoded_cache(data: CelebADataModule, split: str, decoder: str) -> DecodedCache:
    """The decoded cache of ``split`` built with ``decoder`` (``smile.data.cache.DECODERS``), opened (built
    if need be) in the data module's cache folder and served by it from then on."""
    dataset = data.datasets[split]
    data.caches[split] = open_cache(
        split,
        dataset.image_dir,
        dataset.files,
        dataset.labels.numpy(),
        resolve_cache_dir(data.root, data.hparams.cache_dir),
        image_size=data.hparams.image_size,
        crop_size=data.hparams.crop_size,
        decoder=decoder,
    )
    return data.caches[split]


def model(args: argparse.Namespace) -> AttributeClassifier:
    pl.seed_everything(0, verbose=False)
    return AttributeClassifier(attributes=["Smiling"], channels_last=args.channels_last, compile=args.compile)


def network_alone(args: argparse.Namespace, steps: int = 50) -> float:
    """Images/s of training steps on one batch already on the device: the network's own ceiling."""
    system = model(args)
    system.configure_model()
    return training_step_rate(
        system.net, args.batch_size, torch_device(args.device), args.precision, args.channels_last, steps
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=CELEBA_TRAIN, help="training images (default 162,770)")
    parser.add_argument("--faces", type=int, default=1000, help="distinct synthetic faces rendered")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3, help="epochs from the cache (the first warms up)")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="model.compile (torch.compile)")
    parser.add_argument("--device", default="gpu", help="Lightning accelerator (gpu, cpu)")
    parser.add_argument("--decoders", nargs="+", default=None, help="cache builders to time (default: pil, "
                        "and torchvision when there is a GPU)")  # fmt: skip
    parser.add_argument("--jpeg-batches", type=int, default=40, help="JPEG batches timed (0: whole epoch)")
    parser.add_argument("--num-workers", type=int, default=None, help="JPEG loader (default: data's default)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device in ("gpu", "cuda") and not torch.cuda.is_available():
        parser.exit(2, "No GPU here. For a dry run of the script: --device cpu --images 3000 --faces 100 "
                       "--batch-size 256 --epochs 1 --jpeg-batches 3 --precision 32-true\n")  # fmt: skip
    torch.set_float32_matmul_precision("high")
    decoders = args.decoders or (["pil", "torchvision"] if torch.cuda.is_available() else ["pil"])
    work = args.work or Path(tempfile.mkdtemp(prefix="smile-gpu-epoch-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    try:
        started = time.perf_counter()
        root = make_dataset(work, args.images, args.faces, extra=args.batch_size)
        results["dataset_seconds"] = time.perf_counter() - started
        print(
            f"dataset of {args.images} training images in {results['dataset_seconds']:.1f} s", file=sys.stderr
        )

        def data(cache: bool, decoder: str = "pil", workers: int | None = None) -> CelebADataModule:
            return CelebADataModule(
                root=str(root),
                attributes=["Smiling"],
                batch_size=args.batch_size,
                num_workers=default_num_workers() if workers is None else workers,
                cache=cache,
                cache_dir=str(work / f"cache-{decoder}"),  # the decoder is set per cache: decoded_cache
            )

        results["cache_build"] = {}
        for decoder in decoders:
            dm = data(True, decoder)
            dm.setup()
            started = time.perf_counter()
            try:
                decoded_cache(dm, "train", decoder)
            except Exception as err:  # noqa: BLE001 - a failing optional builder must not end the run
                if decoder == decoders[0]:
                    raise
                results["cache_build"][decoder] = {"error": repr(err)}
                continue
            seconds = time.perf_counter() - started
            results["cache_build"][decoder] = {"seconds": seconds, "images_per_s": args.images / seconds}

        cached = data(True, decoders[0])
        cached.setup()
        for split in ("train", "val"):  # those fit reads, with the first decoder (train's is built already)
            decoded_cache(cached, split, decoders[0])
        timer = EpochTimer()
        trainer(args, timer, args.epochs, 1.0).fit(model(args), datamodule=cached)
        resident = cached.caches["train"]._device_images is not None
        results["cache_epochs_seconds"] = timer.epochs
        results["cache_on_device"] = resident
        best = min(timer.epochs[1:] or timer.epochs)
        results["cache_epoch_seconds"] = best
        results["cache_images_per_s"] = args.images / best

        jpeg_timer = EpochTimer(skip=min(5, args.jpeg_batches // 2) if args.jpeg_batches else 5)
        batches = args.jpeg_batches or 1.0
        trainer(args, jpeg_timer, 1, batches).fit(
            model(args), datamodule=data(False, workers=args.num_workers)
        )
        if jpeg_timer.steady and args.jpeg_batches:  # past the workers' start-up
            images, seconds = jpeg_timer.steady
        else:
            images, seconds = jpeg_timer.images, jpeg_timer.epochs[0]
        results["jpeg_images_per_s"] = images / seconds
        results["jpeg_epoch_extrapolated"] = jpeg_timer.images < args.images
        results["jpeg_epoch_seconds"] = (
            args.images / results["jpeg_images_per_s"]
            if results["jpeg_epoch_extrapolated"]
            else jpeg_timer.epochs[0]
        )
        results["jpeg_num_workers"] = (
            args.num_workers if args.num_workers is not None else default_num_workers()
        )
        results["network_alone_images_per_s"] = network_alone(args)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"{results['machine']['gpu'] or 'CPU'}, {results['machine']['cores']} cores; {args.images} images, "
        f"batch {args.batch_size}, {args.precision}, channels_last {args.channels_last}, compile {args.compile}",
        *(
            f"cache build ({name}): {b['seconds']:.1f} s, {b['images_per_s']:,.0f} images/s"
            if "seconds" in b
            else f"cache build ({name}): failed: {b['error']}"
            for name, b in results["cache_build"].items()
        ),
        f"epoch from the cache (on device: {results['cache_on_device']}): {results['cache_epoch_seconds']:.2f} s, "
        f"{results['cache_images_per_s']:,.0f} images/s (epochs: "
        + ", ".join(f"{t:.2f}" for t in results["cache_epochs_seconds"])
        + " s)",
        f"epoch with the JPEG pipeline ({results['jpeg_num_workers']} workers): "
        f"{results['jpeg_epoch_seconds']:.1f} s{' (extrapolated)' if results['jpeg_epoch_extrapolated'] else ''}, "
        f"{results['jpeg_images_per_s']:,.0f} images/s",
        f"network alone, batch on the device: {results['network_alone_images_per_s']:,.0f} images/s",
    ]
    print("\n" + "\n".join(lines))
    results["table"] = lines
    out = (
        args.json
        or ROOT / "benchmarks" / "results" / f"gpu-epoch-{'gpu' if torch.cuda.is_available() else 'cpu'}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
