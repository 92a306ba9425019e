"""Every attribute of a model on celeba-wild, as ``smile predict`` runs it: 2,000 real, unaligned face
crops with CelebA's labels through the photo pipeline (detection, alignment to CelebA's framing, the
whole-image rule), scored per attribute against ``list_attr_celeba.txt``.

    python benchmarks/wild.py --model attributes [--model smiling] [--wild ../shared/celeba-wild] \\
        [--limit N] [--out benchmarks/results/wild.json]

Per model: accuracy at 0.5, accuracy and balanced accuracy at the model's own thresholds, AUROC, for
each attribute it predicts, and their means; the per-attribute rows go to the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import ROOT, WILD


def score(name: str, wild: Path, limit: int | None) -> dict:
    import numpy as np

    import smile
    from smile.data.layouts import read_attributes
    from smile.evaluation.metrics import auroc, confusion

    table = read_attributes(wild / "list_attr_celeba.txt")
    files = [wild / "images" / file for file in table.files[:limit]]
    model = smile.load(name)
    started = time.perf_counter()
    rows = model.predict_files(files)
    seconds = time.perf_counter() - started
    by_file: dict[Path, tuple[int, list[float]]] = {}
    for row in rows:  # the largest face of each photo: its labels are of one face
        if row.probabilities is not None and row.box is not None:
            area = row.box[2] * row.box[3]
            if row.image not in by_file or area > by_file[row.image][0]:
                by_file[row.image] = (area, row.probabilities)
    probs = np.array(
        [by_file[file][1] if file in by_file else [0.0] * len(model.attributes) for file in files]
    )
    labels = table.columns(model.attributes)[: len(files)]
    attributes = {}
    for k, attribute in enumerate(model.attributes):
        at_half = confusion(probs[:, k], labels[:, k], 0.5).rates()
        own = confusion(probs[:, k], labels[:, k], model.thresholds[k]).rates()
        attributes[attribute] = {
            "acc": at_half["acc"],
            "acc_own": own["acc"],
            "balanced_acc_own": own["balanced_acc"],
            "auroc": auroc(probs[:, k], labels[:, k]),
        }
    means = {
        key: float(np.nanmean([a[key] for a in attributes.values()]))
        for key in next(iter(attributes.values()))
    }
    missing = sum(1 for file in files if file not in by_file)
    return {
        "model": name,
        "images": len(files),
        "no_prediction": missing,
        "seconds": seconds,
        "mean": means,
        "attributes": attributes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="a shipped model's name or a checkpoint")
    parser.add_argument("--wild", type=Path, default=WILD)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wild.json")
    args = parser.parse_args()
    if not (args.wild / "list_attr_celeba.txt").is_file():
        print(f"{args.wild}: no celeba-wild here (list_attr_celeba.txt); nothing to score", file=sys.stderr)
        return 1
    results = [score(name, args.wild, args.limit) for name in args.model or ["smiling"]]
    print(
        "| model | images | acc (0.5) | acc (own thresholds) | bal. acc (own thresholds) | AUROC | images/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        m = r["mean"]
        print(
            f"| {r['model']} | {r['images']} | {100 * m['acc']:.2f} | {100 * m['acc_own']:.2f} | "
            f"{100 * m['balanced_acc_own']:.2f} | {m['auroc']:.4f} | {r['images'] / r['seconds']:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
