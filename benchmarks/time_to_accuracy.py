"""Time to accuracy: the notebook recipe and the recommended recipe, trained as a user trains them.

    python benchmarks/time_to_accuracy.py --root ../shared/celeba-sample [--out runs/tta]

Runs ``python -m smile fit`` twice, one after the other on the same machine: ``configs/notebook.yaml``
exactly as a user runs it (JPEG pipeline, float32, 30 epochs), then the ResNet recipe (``benchmarks/configs/resnet.yaml``).
Each run's validation accuracy is read from its TensorBoard events with the wall time at which it was
logged, measured from the command's start (so start-up, data preparation and validation count). It
prints, for each run, the time until validation accuracy first reaches the notebook recipe's best
validation accuracy of this run (the target), the time to its own final accuracy, and both curves in one
PNG (``--plot``). ``--recipe-args "..."`` passes extra options to the recipe's run, as one string (e.g. a finer
``--trainer.val_check_interval`` to see the crossing sooner; the table says what was passed), and
``--leg NAME "OPTIONS"`` adds a fit after the two (repeatable), e.g. the recipe from fer's pretrained network:
``--leg fer "--config configs/smile.yaml"``.

``--from-runs NAME=DIR@START ...`` builds the table from runs already made (DIR the run folder with the
events, START the command's start as a Unix time), for a run whose legs could not share one sitting;
the table then says so. Results: JSON beside the plot (``--results``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import ROOT, project_env, smile_command

from smile.io import atomic_write


@dataclass
class Leg:
    """One fit: its validation curve as (seconds from the command's start, accuracy, epoch fraction)."""

    name: str
    command: list[str]
    curve: list[tuple[float, float, float]] = field(default_factory=list)
    wall: float = 0.0  # the whole command, seconds
    cpu: float = 0.0  # CPU seconds of the command and its children
    note: str = ""

    @property
    def best(self) -> float:
        return max(acc for _, acc, _ in self.curve)

    @property
    def final(self) -> tuple[float, float]:
        """(seconds, accuracy) of the last validation."""
        return self.curve[-1][0], self.curve[-1][1]

    def time_to(self, target: float) -> tuple[float, float] | None:
        """(seconds, epochs) at the first validation whose accuracy is at least ``target``."""
        for seconds, acc, epochs in self.curve:
            if acc >= target - 1e-9:
                return seconds, epochs
        return None


def run_events(run: Path):
    """The run folder's TensorBoard scalars (an ``EventAccumulator``), which must include ``val/acc``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    if "val/acc" not in events.Tags()["scalars"]:
        raise SystemExit(f"error: {run} has no val/acc events (did the fit validate?)")
    return events


def read_curve(run: Path, start: float) -> list[tuple[float, float, float]]:
    """``val/acc`` of the run folder's TensorBoard events: (seconds since ``start``, accuracy, epochs of
    training done)."""
    events = run_events(run)
    # train/acc is logged once per epoch, at its last step: that step + 1 is the epoch's length in steps
    train = events.Scalars("train/acc") if "train/acc" in events.Tags()["scalars"] else []
    steps_per_epoch = train[0].step + 1 if train else None
    curve = []
    for event in events.Scalars("val/acc"):
        epochs = (event.step + 1) / steps_per_epoch if steps_per_epoch else float("nan")
        curve.append((event.wall_time - start, float(event.value), epochs))
    return sorted(curve)


def newest_run(folder: Path) -> Path:
    runs = sorted((folder / "lightning_logs").glob("version_*"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"error: no run folder under {folder / 'lightning_logs'}")
    return runs[-1]


def run_leg(name: str, options: list[str], root: str, out: Path) -> Leg:
    """``python -m smile fit OPTIONS --data.root ROOT`` in ``out/name``, timed from the command's start."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    root = str(Path(root).resolve())  # the fit runs in its own folder
    command = smile_command("fit", *options, "--data.root", root)
    print(f"[{name}] {' '.join(command)}", flush=True)
    before = os.times()
    start = time.time()
    with open(folder / "fit.log", "w") as log:
        code = subprocess.call(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=project_env())
    wall = time.time() - start
    after = os.times()
    if code != 0:
        raise SystemExit(f"error: the {name} fit exited {code}; see {folder / 'fit.log'}")
    leg = Leg(name, command[1:], read_curve(newest_run(folder), start), wall=wall)
    leg.cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return leg


def project_path(option: str) -> str:
    """A config named relative to the project (``configs/x.yaml``), made absolute: each fit runs in its own folder."""
    return str(ROOT / option) if option.endswith((".yaml", ".yml")) and (ROOT / option).is_file() else option


def from_run(spec: str) -> Leg:
    """``NAME=DIR@START``."""
    try:
        name, rest = spec.split("=", 1)
        folder, start = rest.rsplit("@", 1)
        start_time = float(start)
    except ValueError:
        raise SystemExit(f"error: --from-runs {spec!r}: expected NAME=RUN_DIR@START_UNIX_TIME") from None
    curve = read_curve(Path(folder), start_time)
    return Leg(name, [], curve, wall=curve[-1][0], note=f"from {folder}")


def table(legs: list[Leg], target: float) -> str:
    notebook = legs[0]
    reach_notebook = notebook.time_to(target)
    lines = [
        f"target: the notebook recipe's best validation accuracy in this run, {target:.2%}",
        "",
        f"{'run':<12} {'best val':>9} {'final val':>10} {'to target':>12} {'epochs':>7} {'to final':>10} "
        f"{'vs notebook':>12}",
        "-" * 80,
    ]
    for leg in legs:
        reach = leg.time_to(target)
        final_time, final_acc = leg.final
        ratio = f"1/{reach_notebook[0] / reach[0]:.0f}" if reach and reach_notebook and reach[0] > 0 else "-"
        to_target = f"{reach[0]:.0f} s" if reach else "not reached"
        epochs = f"{reach[1]:.2f}" if reach else "-"
        lines.append(
            f"{leg.name:<12} {leg.best:>9.2%} {final_acc:>10.2%} {to_target:>12} {epochs:>7} "
            f"{final_time:>8.0f} s {ratio:>12}"
        )
    return "\n".join(lines)


def plot(legs: list[Leg], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for leg in legs:
        ax.plot([t / 60 for t, _, _ in leg.curve], [a for _, a, _ in leg.curve], marker=".", label=leg.name)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:.2%}")
    ax.set_xscale("log")
    ax.set_xlabel("wall time from the command's start (minutes, log scale)")
    ax.set_ylabel("validation accuracy (Smiling)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/celeba-sample", help="the CelebA folder")
    parser.add_argument("--out", type=Path, default=Path("runs/time-to-accuracy"), help="folder for the runs")
    parser.add_argument("--notebook-config", default="configs/notebook.yaml")
    parser.add_argument("--recipe-config", default="benchmarks/configs/resnet.yaml")
    parser.add_argument("--notebook-args", default="", help="extra options of the notebook's fit, one string")
    parser.add_argument("--recipe-args", default="", help="extra options of the recipe's fit, one string")
    parser.add_argument(
        "--leg",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "OPTIONS"),
        help="one more fit after the two, with these options (one string; configs relative to the project)",
    )
    parser.add_argument("--from-runs", nargs="+", metavar="NAME=DIR@START", help="tabulate finished runs")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "time-to-accuracy.png")
    parser.add_argument("--results", type=Path, default=None, help="JSON (default: beside --plot)")
    args = parser.parse_args(argv)

    if args.from_runs:
        legs = [from_run(spec) for spec in args.from_runs]
    else:
        specs = [
            ("notebook", ["--config", str(ROOT / args.notebook_config), *shlex.split(args.notebook_args)]),
            ("recipe", ["--config", str(ROOT / args.recipe_config), *shlex.split(args.recipe_args)]),
            *(
                (name, [project_path(option) for option in shlex.split(options)])
                for name, options in args.leg
            ),
        ]
        legs = [run_leg(name, options, args.root, args.out) for name, options in specs]
    target = legs[0].best
    text = table(legs, target)
    print(text)
    plot(legs, target, args.plot)
    results = args.results or args.plot.with_suffix(".json")
    with atomic_write(results) as handle:
        json.dump({"target": target, "legs": [asdict(leg) for leg in legs], "table": text}, handle, indent=1)
    print(f"\nWrote {args.plot} and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
