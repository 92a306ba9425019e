"""Data scaling: how validation accuracy grows with the number of training images, and how many a target needs.

    python benchmarks/data_scaling.py --root ../shared/celeba-sample --sizes 4000 8000 16000 \\
        --args "--config configs/smile.yaml" [--target 0.94] [--out runs/scaling]

Runs ``python -m smile fit OPTIONS --data.subsets.train N`` once per size, one after the other (the first N
training images, the same epochs and schedule; the whole validation split each time), and reads each fit's
last validation accuracy (``val/acc``: Smiling's accuracy, or the mean over the attributes for
``configs/attributes.yaml``) from its TensorBoard events. It fits accuracy = a + b * log2(N) by least squares and
prints b, the gain per doubling of the training images, and, with ``--target``, the N at which the line
reaches it. That N is an extrapolation from the sizes measured, not a measurement: read it as an order of
magnitude. ``--from-runs N=RUN_DIR ...`` builds the table from fits already made (RUN_DIR a
``lightning_logs/version_K`` folder). Results: JSON (``--results``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from time_to_accuracy import newest_run, project_path, run_events, run_leg

from smile.io import atomic_write


@dataclass
class Point:
    """One fit: its training images and its last validation figures."""

    images: int
    acc: float
    auroc: float | None
    epochs: int
    wall: float | None  # the whole fit command, seconds (None: tabulated from a run made before)
    run: str


def read_point(images: int, run: Path, wall: float | None) -> Point:
    events = run_events(run)
    tags = events.Tags()["scalars"]
    auroc = events.Scalars("val/auroc")[-1].value if "val/auroc" in tags else None
    epochs = len(events.Scalars("train/acc")) if "train/acc" in tags else 0
    return Point(images, events.Scalars("val/acc")[-1].value, auroc, epochs, wall, str(run))


def fit_line(points: list[Point]) -> tuple[float, float]:
    """(a, b) of accuracy = a + b * log2(images), least squares."""
    xs = [math.log2(p.images) for p in points]
    ys = [p.acc for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise SystemExit("error: give at least two different sizes")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
    return mean_y - slope * mean_x, slope


def images_for(target: float, line: tuple[float, float]) -> float | None:
    """Training images at which the line reaches ``target`` (None when it does not rise)."""
    intercept, slope = line
    return 2 ** ((target - intercept) / slope) if slope > 0 else None


def table(points: list[Point], line: tuple[float, float], target: float | None) -> str:
    rows = [
        "| training images | epochs | val acc (last) | val AUROC | fit |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        auroc = f"{p.auroc:.4f}" if p.auroc is not None else "-"
        wall = f"{p.wall / 60:.1f} min" if p.wall is not None else "(run before)"
        rows.append(f"| {p.images:,} | {p.epochs} | {p.acc:.2%} | {auroc} | {wall} |")
    intercept, slope = line
    rows.append("")
    rows.append(
        f"log-linear fit: acc = {intercept:.4f} + {slope:.4f} * log2(images): {slope:+.2%} per doubling"
    )
    if target is not None:
        needed = images_for(target, line)
        rows.append(
            f"target {target:.2%}: "
            + (f"about {needed:,.0f} training images (extrapolated)" if needed else "the line does not rise")
        )
    return "\n".join(rows)


def from_run(spec: str) -> Point:
    """``N=RUN_DIR``."""
    try:
        images, folder = spec.split("=", 1)
        return read_point(int(images), Path(folder), None)
    except ValueError:
        raise SystemExit(f"error: --from-runs {spec!r}: expected IMAGES=RUN_DIR") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data/celeba", help="the dataset (--data.root)")
    parser.add_argument("--args", default="--config configs/smile.yaml", help="the fit's options, one string")
    parser.add_argument("--sizes", type=int, nargs="*", default=[4000, 8000, 16000])
    parser.add_argument("--target", type=float, help="a validation accuracy to extrapolate to, e.g. 0.94")
    parser.add_argument("--out", default="runs/scaling", help="one folder per fit")
    parser.add_argument("--from-runs", nargs="*", default=[], metavar="N=RUN_DIR")
    parser.add_argument("--results", help="write the points and the fit here (JSON)")
    args = parser.parse_args(argv)
    options = [project_path(option) for option in shlex.split(args.args)]
    if args.from_runs:
        points = [from_run(spec) for spec in args.from_runs]
    else:
        points = []
        for size in args.sizes:
            leg = run_leg(
                f"n{size}", [*options, "--data.subsets.train", str(size)], args.root, Path(args.out)
            )
            points.append(read_point(size, newest_run(Path(args.out) / f"n{size}"), leg.wall))
    points.sort(key=lambda p: p.images)
    line = fit_line(points)
    print(f"options: {args.args}" if not args.from_runs else "from runs made before")
    print(table(points, line, args.target))
    if args.results:
        record = {
            "options": args.args if not args.from_runs else None,
            "root": args.root if not args.from_runs else None,
            "points": [asdict(p) for p in points],
            "fit": {"intercept": line[0], "per_doubling": line[1]},
            "target": args.target,
            "images_for_target": images_for(args.target, line) if args.target is not None else None,
        }
        with atomic_write(args.results) as handle:
            json.dump(record, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
