"""Ablation of the ResNet recipe (``benchmarks/configs/resnet.yaml``) against the notebook's (``configs/notebook.yaml``) on real CelebA.

Trains the original recipe and then each cumulative step of the new one on the same data, with a
fixed epoch budget, and prints one table (the change, validation accuracy, training time), also
written as JSON. It selects nothing on the test split and reports none.

    python benchmarks/ablation.py --root ../shared/celeba-sample [--jobs 2]

Every run is the project's own LightningModule (:class:`smile.system.AttributeClassifier`), data module
(the decoded cache, ``data.cache``, so that the table measures the recipe rather than JPEG decoding) and
Lightning Trainer, one thread per run: what ``python -m smile fit`` runs, without the checkpoints and
logs. A run's training time includes its validation after each epoch.

Each run's validation accuracy is measured after its last epoch (no checkpoint selection). The EMA and
flip-averaging (TTA) rows change only evaluation, so they are read off the previous row's run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from common import quiet_trainer

from smile.data.datamodule import CelebADataModule
from smile.system import AttributeClassifier

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
        "original", f"configs/notebook.yaml: original CNN, Adam 1e-3, batch 32 ({original_epochs} ep)"
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


PRECISION = {"bf16": "bf16-mixed", "32": "32-true"}


class ValidationCurve(pl.Callback):
    """Validation accuracy after each training epoch."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # the epoch's validation has run (and the module has logged it) by now
        self.values.append(float(trainer.callback_metrics["val/acc"]))


def validate(trainer: pl.Trainer, model: AttributeClassifier, data: CelebADataModule) -> float:
    return float(trainer.validate(model, datamodule=data, verbose=False)[0]["val/acc"])


def train(run: Run, settings: dict[str, Any], epochs: int, seed: int, precision: str) -> dict:
    """Train one run; its validation accuracy after each epoch and, at the end, with EMA/TTA."""
    torch.set_num_threads(1)
    pl.seed_everything(seed, workers=True, verbose=False)
    data = CelebADataModule(
        **settings, batch_size=run.batch_size, num_workers=0, cache=True, augment=run.augment or None
    )
    model = AttributeClassifier(
        net=run.net,
        net_kwargs=run.net_kwargs,
        lr=run.lr,
        weight_decay=run.weight_decay,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        warmup_epochs=run.warmup_epochs,
        label_smoothing=run.label_smoothing,
        ema_decay=run.ema_decay,
        channels_last=True,
        attributes=data.attributes,
    )
    curve = ValidationCurve()
    trainer = quiet_trainer("cpu", PRECISION[precision], epochs, callbacks=[curve])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    trainer.fit(model, datamodule=data)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for epoch, value in enumerate(curve.values, start=1):
        print(f"  {run.name} epoch {epoch}: val {value:.4f}", flush=True)
    result = {
        "val_acc": curve.values[-1],
        "val_curve": curve.values,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
    }
    ema, model.ema = model.ema, None  # the trained weights first
    if ema is not None:
        result["val_acc"] = validate(trainer, model, data)
    model.hparams.tta = True
    result["val_acc_tta"] = validate(trainer, model, data)
    if ema is not None:
        model.ema = ema
        result["val_acc_ema_tta"] = validate(trainer, model, data)
        model.hparams.tta = False
        result["val_acc_ema"] = validate(trainer, model, data)
    return result


def _worker(run: Run, settings: dict[str, Any], epochs: int, seed: int, precision: str) -> dict:
    result = train(run, settings, run.epochs or epochs, seed, precision)
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
        default="32",
        help="32: float32 (default); bf16: bfloat16 autocast, as trainer.precision bf16-mixed (~1.6x faster "
        "on CPUs with AVX512-BF16 or AMX, about 10x slower on CPUs without them)",
    )
    parser.add_argument("--limit", type=int, help="train on the first N images only (a smoke test)")
    parser.add_argument("--cache-dir", help="folder for the decoded cache (data.cache_dir)")
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
    if args.only:
        runs = [run for run in runs if run.name in args.only]
    settings = {
        "root": args.root,
        "cache_dir": args.cache_dir,
        "subsets": {"train": args.limit} if args.limit else None,
    }
    start = time.perf_counter()
    CelebADataModule(**settings, cache=True, num_workers=0).setup("fit")  # decode once, before the runs
    load_s = time.perf_counter() - start
    print(f"Decoded cache ready in {load_s:.1f} s", flush=True)

    results: dict[str, dict] = {}
    if args.jobs > 1:
        # the ends of the table first (the original recipe and the whole new one), then the steps
        order = sorted(runs, key=lambda run: (run is not runs[0] and run is not runs[-1], -(run.epochs or 0)))
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                run.name: pool.submit(_worker, run, settings, args.epochs, args.seed, args.precision)
                for run in order
            }
            results = {name: future.result() for name, future in futures.items()}
    else:
        for run in runs:
            results[run.name] = _worker(run, settings, args.epochs, args.seed, args.precision)

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
