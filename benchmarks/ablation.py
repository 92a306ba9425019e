"""Ablation of the recipe of ``configs/smile-plus.yaml`` against ``configs/smile.yaml`` on real CelebA.

Trains the original recipe and then each cumulative step of the new one on the same data, with a
fixed epoch budget, and prints one table (the change, validation accuracy, training time), also
written as JSON. It selects nothing on the test split and reports none.

    PYTHONPATH=. python benchmarks/ablation.py --root ../shared/celeba-sample [--jobs 2]

The images are decoded once into memory (the decoded cache, ``data.cache``) and every run uses a lean training loop
with the project's own parts (networks from :mod:`smile.models`, :mod:`smile.recipe`,
:mod:`smile.data.augment`) on one thread per run, so that the table measures the recipe rather than
JPEG decoding. The CLI (``python -m smile fit --config configs/smile-plus.yaml``) trains the same
recipe through Lightning; the final figures in docs/recipe.md come from it.

Each run's validation accuracy is measured after its last epoch (no checkpoint selection). The EMA and
flip-averaging (TTA) rows change only evaluation, so they are read off the previous row's run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from smile.data.augment import BatchAugment, take_windows
from smile.data.datamodule import CelebADataModule
from smile.models import build_network
from smile.recipe import build_optimizer, build_scheduler, ema_model, flip_averaged, smooth_targets

AUGMENT = {
    "brightness": 0.2,
    "contrast": 0.2,
    "saturation": 0.2,
    "rotate": 8.0,
    "scale": 0.08,
    "translate": 0.04,
    "erase": 0.2,
}


@dataclass(frozen=True)
class Run:
    """One training run: the settings of a row of the table."""

    name: str
    change: str
    net: str = "original"
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: dict[str, float] = field(default_factory=dict)
    ema_decay: float | None = None
    batch_size: int = 32
    epochs: int | None = None  # None: the benchmark's fixed budget


def recipe_runs(original_epochs: int) -> list[Run]:
    """The original recipe, then each cumulative step of the new one."""
    original = Run(
        "original", f"configs/smile.yaml: original CNN, Adam 1e-3, batch 32 ({original_epochs} ep)"
    )
    bn = replace(
        original, name="original_bn", change="+ BatchNorm in the original CNN", net="original_bn", epochs=None
    )
    resnet = replace(bn, name="resnet", change="ResNet 32-64-128-256 instead (pooled head)", net="resnet")
    spatial = replace(
        resnet,
        name="spatial_head",
        change="+ spatial head (1x1 conv to 16 ch, linear on the 4x4 map)",
        net_kwargs={"head": "spatial"},
    )
    adamw = replace(
        spatial,
        name="adamw_onecycle",
        change="+ AdamW 2e-3, wd 0.05, one-cycle (warm-up 1 ep), batch 64",
        optimizer="adamw",
        lr=2e-3,
        weight_decay=0.05,
        scheduler="onecycle",
        warmup_epochs=1.0,
        batch_size=64,
    )
    smooth = replace(adamw, name="label_smoothing", change="+ label smoothing 0.1", label_smoothing=0.1)
    augment = replace(
        smooth,
        name="augment",
        change="+ colour jitter 0.2, affine (8 deg, 8%, 4%), erasing 0.2",
        augment=AUGMENT,
        ema_decay=0.995,
    )
    return [replace(original, epochs=original_epochs), bn, resnet, spatial, adamw, smooth, augment]


def load_split(root: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = CelebADataModule(root=root, cache=True, num_workers=0)
    data.setup()
    cache = data.split_cache(split)
    return torch.from_numpy(np.array(cache.images)), torch.from_numpy(cache.labels.astype(np.float32))


PRECISION = {"bf16": True, "32": False}


@torch.inference_mode()
def evaluate(
    net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, tta: bool = False, bf16: bool = False
) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(images), 250):
        x = take_windows(images[start : start + 250], 64, train=False).contiguous(
            memory_format=torch.channels_last
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = (flip_averaged(net, x) if tta else net(x)).float()
        correct += ((logits > 0).float() == labels[start : start + 250]).sum().item()
    return correct / len(images)


def train(
    run: Run, data: dict[str, tuple[torch.Tensor, torch.Tensor]], epochs: int, seed: int, bf16: bool
) -> dict:
    """Train one run; its validation accuracy after each epoch and, at the end, with EMA/TTA."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    images, labels = data["train"]
    val_images, val_labels = data["val"]
    net = build_network(run.net, 1, **run.net_kwargs).to(memory_format=torch.channels_last)
    steps = math.ceil(len(images) / run.batch_size)
    optimizer = build_optimizer(net, run.optimizer, run.lr, run.weight_decay)
    scheduler = build_scheduler(optimizer, run.scheduler, steps * epochs, round(run.warmup_epochs * steps))
    ema = ema_model(net, run.ema_decay) if run.ema_decay else None
    augment = BatchAugment(**run.augment) if run.augment else None
    curve, wall, cpu = [], 0.0, 0.0
    for _ in range(epochs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        net.train()
        order = torch.randperm(len(images))
        for start in range(0, len(images), run.batch_size):
            index = order[start : start + run.batch_size]
            x = take_windows(images[index], 64, train=True)
            if augment is not None:
                x = augment(x)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(x).float()
            loss = F.binary_cross_entropy_with_logits(
                logits, smooth_targets(labels[index], run.label_smoothing)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update_parameters(net)
        wall += time.perf_counter() - wall0
        cpu += time.process_time() - cpu0
        curve.append(evaluate(net, val_images, val_labels, bf16=bf16))
        print(
            f"  {run.name} epoch {len(curve)}: val {curve[-1]:.4f} ({wall:.0f} s, CPU {cpu:.0f} s)",
            flush=True,
        )
    result = {"val_acc": curve[-1], "val_curve": curve, "train_wall_s": wall, "train_cpu_s": cpu}
    result["val_acc_tta"] = evaluate(net, val_images, val_labels, tta=True, bf16=bf16)
    if ema is not None:
        result["val_acc_ema"] = evaluate(ema.module, val_images, val_labels, bf16=bf16)
        result["val_acc_ema_tta"] = evaluate(ema.module, val_images, val_labels, tta=True, bf16=bf16)
    return result


_DATA: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _worker(run: Run, epochs: int, seed: int, bf16: bool) -> dict:
    result = train(run, _DATA, run.epochs or epochs, seed, bf16)
    print(f"  done: {run.name}: val {result['val_acc']:.4f} ({result['train_wall_s']:.0f} s)", flush=True)
    return result


def table_rows(runs: list[Run], results: dict[str, dict], epochs: int) -> list[dict]:
    rows = []
    for run in runs:
        result = results[run.name]
        row = {
            "change": run.change + (" (*)" if result.get("merged_from") else ""),
            "epochs": run.epochs or epochs,
            "val_acc": result["val_acc"],
            "val_acc_flip": result.get("val_acc_tta"),
            "train_wall_s": result["train_wall_s"],
            "train_cpu_s": result["train_cpu_s"],
        }
        if run.name == "original" and len(result["val_curve"]) > epochs:
            rows.append({**row, "change": f"  the same at {epochs} epochs", "epochs": epochs})
            rows[-1]["val_acc"] = result["val_curve"][epochs - 1]
            rows[-1]["train_wall_s"] *= epochs / len(result["val_curve"])
            rows[-1]["train_cpu_s"] *= epochs / len(result["val_curve"])
            rows.insert(-1, row)
        else:
            rows.append(row)
        if "val_acc_ema" in result:
            rows.append(
                {
                    **row,
                    "change": "  its EMA of the weights, decay 0.995 (same run)",
                    "val_acc": result["val_acc_ema"],
                    "val_acc_flip": result["val_acc_ema_tta"],
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [
        f"| {'change':<64} | epochs | val acc | + flip TTA | train wall | train CPU |",
        f"|{'-' * 66}|-------:|--------:|-----------:|-----------:|----------:|",
    ]
    for row in rows:
        flip = f"{100 * row['val_acc_flip']:>9.1f}%" if row.get("val_acc_flip") is not None else " " * 10
        lines.append(
            f"| {row['change']:<64} | {row['epochs']:>6} | {100 * row['val_acc']:>6.1f}% | {flip} "
            f"| {row['train_wall_s'] / 60:>8.1f} m | {row['train_cpu_s'] / 60:>7.1f} m |"
        )
    return "\n".join(lines)


def rebuild(args: argparse.Namespace) -> int:
    """The table of recorded runs, some of them replaced by the runs of ``--merge`` files."""
    record = json.loads(Path(args.from_json).read_text())
    for path in args.merge:
        for name, run in json.loads(Path(path).read_text())["runs"].items():
            record["runs"][name] = {**run, "merged_from": str(path)}
    runs = [run for run in recipe_runs(args.original_epochs) if run.name in record["runs"]]
    record["rows"] = table_rows(runs, record["runs"], record["epochs"])
    record["merged"] = list(args.merge)
    print(format_table(record["rows"]))
    if args.merge:
        print("(*) from a separate run: " + ", ".join(args.merge))
    Path(args.json).write_text(json.dumps(record, indent=2))
    print(f"\nWrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/celeba-sample", help="CelebA (official layout)")
    parser.add_argument("--epochs", type=int, default=15, help="the fixed budget of the recipe's rows")
    parser.add_argument("--original-epochs", type=int, default=30, help="budget of the original recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each on one thread)")
    parser.add_argument(
        "--only",
        nargs="*",
        help="run only these rows (names: " + ", ".join(r.name for r in recipe_runs(30)) + ")",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISION),
        default="bf16",
        help="bf16: bfloat16 autocast, as trainer.precision bf16-mixed (default; ~1.6x faster on CPUs with "
        "AVX512-BF16 or AMX); 32: float32",
    )
    parser.add_argument("--limit", type=int, help="train on the first N images only (a smoke test)")
    parser.add_argument("--json", default="ablation.json", help="where to write the results")
    parser.add_argument(
        "--from-json", help="train nothing: rebuild the table from the runs recorded in this file"
    )
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        help="take these files' runs (from --only runs) in place of the same rows",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return rebuild(args)

    runs = recipe_runs(args.original_epochs)
    bf16 = PRECISION[args.precision]
    if args.only:
        runs = [run for run in runs if run.name in args.only]
    start = time.perf_counter()
    for split in ("train", "val"):
        _DATA[split] = load_split(args.root, split)
    if args.limit:
        _DATA["train"] = (_DATA["train"][0][: args.limit], _DATA["train"][1][: args.limit])
    load_s = time.perf_counter() - start
    print(
        f"Decoded {len(_DATA['train'][0])} train and {len(_DATA['val'][0])} val images in {load_s:.1f} s",
        flush=True,
    )

    results: dict[str, dict] = {}
    if args.jobs > 1:
        # the ends of the table first (the original recipe and the whole new one), then the steps
        order = sorted(runs, key=lambda run: (run is not runs[0] and run is not runs[-1], -(run.epochs or 0)))
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("fork")) as pool:
            futures = {run.name: pool.submit(_worker, run, args.epochs, args.seed, bf16) for run in order}
            results = {name: future.result() for name, future in futures.items()}
    else:
        for run in runs:
            results[run.name] = _worker(run, args.epochs, args.seed, bf16)

    rows = table_rows(runs, results, args.epochs)
    print()
    print(format_table(rows))
    record = {
        "root": str(args.root),
        "epochs": args.epochs,
        "seed": args.seed,
        "jobs": args.jobs,
        "threads_per_run": 1,
        "precision": args.precision,
        "decode_s": load_s,
        "total_wall_s": time.perf_counter() - start,
        "rows": rows,
        "runs": {run.name: {"settings": asdict(run), **results[run.name]} for run in runs},
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "python": sys.version.split()[0]},
    }
    Path(args.json).write_text(json.dumps(record, indent=2))
    print(f"\nWrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
