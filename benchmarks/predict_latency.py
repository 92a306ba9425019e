"""One photo, from process start to answer: ``smile predict PHOTO`` against ``python -c "import torch"``,
the floor any command that runs a torch model stands on. Both run in turn, several times, in fresh
processes of this interpreter; the table gives each one's wall times and the difference of the medians.

    python benchmarks/predict_latency.py [--photo PATH] [--model smiling] [--runs 7] [--out FILE]
                                         [--baseline CHECKOUT]

``--baseline`` also times ``smile predict`` from another checkout of the project (e.g. ``git worktree
add /tmp/base main``), in the same turns: a change's cost to one photo, on the same machine load.

The photo defaults to the first image of celeba-wild (a real, unaligned face crop), else a photo drawn
from a synthetic face. ``smile predict`` writes its CSV to a temporary folder; its first run also writes
nothing else that a later run reuses, except Python's bytecode caches, which both commands have.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, WILD, load_average, project_env, smile_command


def a_photo(folder: Path) -> Path:
    """The first celeba-wild image, or a synthetic face placed in a photo."""
    images = sorted((WILD / "images").glob("*.jpg"))
    if images:
        return images[0]
    import numpy as np

    from smile.data.synthetic import render_face, sample_face, sample_identity
    from smile.faces.synthetic import make_photo

    rng = np.random.default_rng(0)
    face = render_face(sample_face(rng, sample_identity(rng, 0))).image
    path = folder / "photo.jpg"
    make_photo(face, rng)[0].save(path, quality=92)
    return path


def wall_time(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env or project_env(), check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--model", default="smiling", help="what smile predict runs (--ckpt_path)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict-latency.json")
    parser.add_argument("--baseline", type=Path, help="another checkout whose smile predict is timed too")
    args = parser.parse_args()
    baseline_env = None
    if args.baseline is not None:
        baseline_env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        photo = args.photo or a_photo(Path(tmp))
        torch_only = [sys.executable, "-c", "import torch"]
        predict = smile_command("predict", str(photo), "--ckpt_path", args.model, "--out", f"{tmp}/p.csv")
        wall_time(predict)  # warm the disk cache and the shipped model's files
        times: dict[str, list[float]] = {"import torch": [], "smile predict": []}
        if baseline_env is not None:
            wall_time(predict, baseline_env)
            times["smile predict (baseline)"] = []
        for _ in range(args.runs):
            times["import torch"].append(wall_time(torch_only))
            times["smile predict"].append(wall_time(predict))
            if baseline_env is not None:
                times["smile predict (baseline)"].append(wall_time(predict, baseline_env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    difference = medians["smile predict"] - medians["import torch"]
    print(f"{photo.name}, {args.model}, {args.runs} runs each, in turn (load average {load_average()})")
    print("| command | min (s) | median (s) | max (s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        print(f"| {name} | {min(values):.2f} | {medians[name]:.2f} | {max(values):.2f} |")
    print(f"smile predict takes {difference:.2f} s more than import torch (median)")
    if baseline_env is not None:
        change = medians["smile predict"] - medians["smile predict (baseline)"]
        print(f"smile predict takes {change:+.2f} s against the baseline's (median; {args.baseline})")
    result = {
        "photo": str(photo),
        "model": args.model,
        "seconds": times,
        "median_difference": difference,
        **(
            {
                "baseline": str(args.baseline),
                "median_change_from_baseline": medians["smile predict"] - medians["smile predict (baseline)"],
            }
            if baseline_env is not None
            else {}
        ),
        "load_average": load_average(),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
