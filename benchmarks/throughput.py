"""Images per second of the JPEG pipeline and of the decoded cache, side by side on the same images.

    python benchmarks/throughput.py                 # ../shared/celeba-sample if present, else synthetic
    python benchmarks/throughput.py --root data/celeba --train-batches 200

Measures, on the training split:

- decode alone, one process: what one core does per image for each way of decoding;
- the cache's one-time build, with all cores;
- (a) the JPEG pipeline's loader with the settings users get by default (``data.num_workers``: one
  process per core, at most 8; batch size 32), and (b) the cache's loader with its crops and flips,
  one epoch each;
- (c) a training epoch of the original CNN through Lightning with each, same model and batch size, for
  each compute setting: float32 as ``configs/notebook.yaml`` trains, and bfloat16 autocast with
  channels-last tensors as ``configs/full.yaml`` does (where the hardware has bfloat16 units);
- the network alone on tensors already in memory, the ceiling of (c), in the same settings.

Prints one table and writes the figures as JSON (``--json``). The figures are wall-clock rates on
whatever else the machine is doing: the load average before and after is recorded beside them.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from common import ROOT, SAMPLE, load_average, quiet_trainer
from PIL import Image
from timing import EpochTimer, machine, sync, torch_device, training_step_rate

from smile.data.batch_transforms import random_crop_flip
from smile.data.cache import _decode_pil, _torchvision_batches, cache_geometry, default_build_workers
from smile.data.datamodule import CelebADataModule, default_num_workers
from smile.data.pil_transforms import train_transform
from smile.devices import cpu_has_fast_bfloat16
from smile.system import AttributeClassifier


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def decode_rates(image_dir: Path, files: list[str], n: int) -> dict[str, float]:
    """Images per second of one process for each decoder, on ``n`` files already read into memory."""
    files = files[:n]
    blobs = [(image_dir / name).read_bytes() for name in files]
    geometry = cache_geometry(64)
    transform = train_transform(64)
    results = {}

    def timed(name: str, fn) -> None:
        fn(blobs[:5])  # warm-up
        start = time.perf_counter()
        fn(blobs)
        results[name] = rate(len(blobs), time.perf_counter() - start)

    timed(
        "PIL decode, full size", lambda bs: [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in bs]
    )
    timed(
        "PIL decode + original train transform", lambda bs: [transform(Image.open(io.BytesIO(b))) for b in bs]
    )
    timed(
        "cache decoder pil (draft + resize)",
        lambda bs: [_decode_pil(io.BytesIO(b), geometry, True) for b in bs],
    )
    timed("cache decoder pil-exact", lambda bs: [_decode_pil(io.BytesIO(b), geometry, False) for b in bs])

    from torchvision.io import ImageReadMode, decode_jpeg

    def tv(bs, device):
        tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in bs]
        for start in range(0, len(tensors), 256):
            decode_jpeg(tensors[start : start + 256], mode=ImageReadMode.RGB, device=device)
        sync()

    timed("torchvision decode_jpeg, CPU", lambda bs: tv(bs, "cpu"))
    timed(
        "cache decoder torchvision, CPU (+ resize)",
        lambda bs: list(_torchvision_batches(image_dir, files[: len(bs)], geometry, torch.device("cpu"))),
    )
    if torch.cuda.is_available():
        timed("torchvision decode_jpeg, GPU (batches of 256)", lambda bs: tv(bs, "cuda"))
    return results


def compute_settings(args: argparse.Namespace) -> list[tuple[str, bool]]:
    """``(precision, channels_last)`` pairs to train with: the flags' one, or smile.yaml's and full.yaml's."""
    if args.precision is not None or args.channels_last:
        return [(args.precision or "32-true", args.channels_last)]
    settings = [("32-true", False)]
    gpu = torch_device(args.accelerator).type == "cuda"
    if (
        torch.cuda.is_bf16_supported()
        if gpu
        else torch.backends.mkldnn.is_available() and cpu_has_fast_bfloat16()
    ):
        settings.append(("bf16-mixed", True))
    return settings


def train_epoch(
    data: CelebADataModule, args: argparse.Namespace, precision: str, channels_last: bool
) -> dict:
    """One training epoch of the original CNN through Lightning; returns its time and rate."""
    pl.seed_everything(0, verbose=False)
    model = AttributeClassifier(attributes=["Smiling"], channels_last=channels_last)
    timer = EpochTimer()
    trainer = quiet_trainer(
        args.accelerator,
        precision,
        train_batches=args.train_batches or 1.0,
        validate=False,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    return {
        "seconds": timer.epochs[0],
        "images": timer.images,
        "images_per_s": rate(timer.images, timer.epochs[0]),
    }


def network_alone(args: argparse.Namespace, precision: str, channels_last: bool) -> float:
    """Training steps on one batch already in memory: the network's own ceiling (images/s)."""
    torch.manual_seed(0)
    net = AttributeClassifier(attributes=["Smiling"]).net
    return training_step_rate(
        net, args.batch_size, torch_device(args.accelerator), precision, channels_last, steps=30, warmup=3
    )


def loader_epoch(loader, transform=None, min_seconds: float = 0.0) -> dict[str, float]:
    """Iterate whole epochs of ``loader`` (at least ``min_seconds`` in all); images per second."""
    images, epochs, start = 0, 0, time.perf_counter()
    while True:
        for batch in loader:
            x = batch[0]
            if transform is not None:
                x = transform(x)
            images += len(x)
        epochs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return {
                "seconds_per_epoch": elapsed / epochs,
                "epochs": epochs,
                "images_per_s": rate(images, elapsed),
            }


def table(results: dict) -> str:
    rows = [("", "images/s", "seconds", "vs (a)")]
    n = results["dataset"]["train_images"]
    for name, value in results["decode_one_process"].items():
        rows.append((f"decode, 1 process: {name}", f"{value:,.0f}", "", ""))
    build = results["cache_build"]
    rows.append(
        (f"cache build, one-time ({build['processes']} processes, {n} images)", f"{build['images_per_s']:,.0f}",
         f"{build['seconds']:.2f}", "")
    )  # fmt: skip
    a, b = results["loader_jpeg"], results["loader_cache"]
    rows.append(
        (f"(a) JPEG pipeline loader ({results['settings']['num_workers']} workers)", f"{a['images_per_s']:,.0f}",
         f"{a['seconds_per_epoch']:.2f}", "1.00x")
    )  # fmt: skip
    rows.append(
        ("(b) cache loader + crop/flip (in process)", f"{b['images_per_s']:,.0f}", f"{b['seconds_per_epoch']:.3f}",
         f"{b['images_per_s'] / a['images_per_s']:.1f}x")
    )  # fmt: skip
    for train in results.get("train", []):
        tj, tc, name = train["jpeg"], train["cache"], train["setting"]
        rows.append(
            (f"(c) train epoch, JPEG pipeline, {name} ({tj['images']} images)", f"{tj['images_per_s']:,.1f}",
             f"{tj['seconds']:.1f}", "1.00")
        )  # fmt: skip
        rows.append(
            (f"(c) train epoch, cache, {name}", f"{tc['images_per_s']:,.1f}", f"{tc['seconds']:.1f}",
             f"time {train['time_ratio']:.2f}x")
        )  # fmt: skip
        rows.append(
            (
                f"    network alone, batch in memory, {name}",
                f"{train['network_alone_images_per_s']:,.1f}",
                "",
                "",
            )
        )
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"{row[0]:<{width[0]}}  {row[1]:>{width[1]}}  {row[2]:>{width[2]}}  {row[3]:>{width[3]}}"
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, help="CelebA folder (default: ../shared/celeba-sample, else synthetic)"
    )
    parser.add_argument("--synthetic-images", type=int, default=1000, help="size of the synthetic fallback")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32, the original recipe's")
    parser.add_argument("--num-workers", type=int, default=None, help="JPEG loader (default: data's default)")
    parser.add_argument(
        "--train-batches", type=int, default=None, help="limit the training epochs (default all)"
    )
    parser.add_argument("--skip-train", action="store_true", help="loaders only, no training epochs")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument(
        "--precision", default=None, help="train in this precision only (default: 32-true, then bf16-mixed)"
    )
    parser.add_argument("--channels-last", action="store_true", help="model.channels_last for both paths")
    parser.add_argument("--decode-images", type=int, default=300, help="images for the decode-only rates")
    parser.add_argument(
        "--json", type=Path, default=None, help="default benchmarks/results/throughput-<data>.json"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="smile-bench-"))
    try:
        if args.root is not None:
            root, tag = args.root, args.root.resolve().name
        elif (SAMPLE / "list_attr_celeba.txt").is_file():
            root, tag = SAMPLE, "celeba-sample"
        else:
            from smile.data.synthetic import generate_dataset

            print(f"{SAMPLE} not found: generating {args.synthetic_images} synthetic images", file=sys.stderr)
            root, tag = generate_dataset(work / "synthetic", args.synthetic_images, seed=0), "synthetic"
        results: dict = {"machine": machine(), "load_average_start": load_average()}
        num_workers = default_num_workers() if args.num_workers is None else args.num_workers

        def datamodule(cache: bool) -> CelebADataModule:
            return CelebADataModule(
                root=str(root),
                attributes=["Smiling"],
                batch_size=args.batch_size,
                num_workers=num_workers,
                cache=cache,
                cache_dir=str(work / "cache"),  # never beside the dataset, which may be read-only
            )

        jpeg = datamodule(cache=False)
        jpeg.setup()
        train = jpeg.datasets["train"]
        results["dataset"] = {"root": str(root), "name": tag, "train_images": len(train)}
        results["settings"] = {
            "batch_size": args.batch_size,
            "num_workers": num_workers,
            "compute": [
                f"{precision}{', channels-last' if cl else ''}" for precision, cl in compute_settings(args)
            ],
            "train_batches": args.train_batches,
        }
        print(f"Data: {root} ({len(train)} training images); machine: {results['machine']}", file=sys.stderr)

        print("decode rates...", file=sys.stderr)
        results["decode_one_process"] = decode_rates(train.image_dir, train.files, args.decode_images)

        print("cache build...", file=sys.stderr)
        cached = datamodule(cache=True)
        cached.setup()
        start = time.perf_counter()
        cache = cached.split_cache("train")
        seconds = time.perf_counter() - start
        results["cache_build"] = {
            "seconds": seconds,
            "images_per_s": rate(len(train), seconds),
            "processes": default_build_workers(),
            "bytes": cache.nbytes,
        }

        print("(a) JPEG loader...", file=sys.stderr)
        results["loader_jpeg"] = loader_epoch(jpeg.train_dataloader())
        print("(b) cache loader...", file=sys.stderr)
        geometry = cache.geometry
        results["loader_cache"] = loader_epoch(
            cached.train_dataloader(), lambda x: random_crop_flip(x, geometry)[0], min_seconds=2.0
        )

        if not args.skip_train:
            results["train"] = []
            for precision, channels_last in compute_settings(args):
                name = f"{precision}{', channels-last' if channels_last else ''}"
                print(f"(c) training epochs, {name}...", file=sys.stderr)
                jpeg_epoch = train_epoch(datamodule(cache=False), args, precision, channels_last)
                cache_epoch = train_epoch(datamodule(cache=True), args, precision, channels_last)
                results["train"].append(
                    {
                        "setting": name,
                        "jpeg": jpeg_epoch,
                        "cache": cache_epoch,
                        "time_ratio": cache_epoch["seconds"] / jpeg_epoch["seconds"],
                        "network_alone_images_per_s": network_alone(args, precision, channels_last),
                    }
                )
        results["loader_speedup"] = (
            results["loader_cache"]["images_per_s"] / results["loader_jpeg"]["images_per_s"]
        )
        results["load_average_end"] = load_average()

        text = table(results)
        print(f"\n{tag}, {len(train)} training images, batch {args.batch_size}; {results['machine']['cpu']}, "
              f"{results['machine']['cores']} cores, GPU: {results['machine']['gpu']}; load average "
              f"{results['load_average_start']} -> {results['load_average_end']}")  # fmt: skip
        print(text)
        out = args.json or ROOT / "benchmarks" / "results" / f"throughput-{tag}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        results["table"] = text.splitlines()
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nWrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
