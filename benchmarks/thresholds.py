"""Which decision thresholds to ship: each criterion's thresholds judged on validation images they were
not tuned on.

``model.threshold_criterion`` tunes every attribute's threshold on the whole validation split. To
choose the criterion without reading test, this script divides the validation split into two halves by
person (no one in both), tunes on one half and scores on the other, both ways round, and prints for
0.5 and each criterion the mean accuracy and mean balanced accuracy over the attributes (the two
halves' figures averaged), beside the majority-class baseline. Nothing here reads the test split.

Usage::

    python benchmarks/thresholds.py --ckpt_path CKPT [--data.root ../shared/celeba-sample] \\
        [--cache_dir DIR] [--out benchmarks/results/thresholds.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the project on sys.path
import numpy as np


def person_halves(identities: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean masks that split the images by person, about half the images each."""
    people = np.unique(identities)
    np.random.default_rng(seed).shuffle(people)
    counts = {person: int(np.sum(identities == person)) for person in people}
    first, total, taken = set(), len(identities), 0
    for person in people:
        if taken < total / 2:
            first.add(person)
            taken += counts[person]
    mask = np.isin(identities, list(first))
    return mask, ~mask


def cross_fitted(
    probs: np.ndarray, labels: np.ndarray, halves: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """Per criterion (and 0.5): figures on each half at thresholds tuned on the other, averaged."""
    from smile.evaluation.metrics import mean_rates
    from smile.evaluation.thresholds import CRITERIA, MIN_TUNE_COUNT, tune_thresholds

    rows: dict[str, Any] = {}
    for criterion in ("0.5", *CRITERIA):
        figures = []
        for tune, score in (halves, halves[::-1]):
            if criterion == "0.5":
                thresholds = np.full(probs.shape[1], 0.5)
            else:  # half the images: half the usual minimum of each class
                thresholds, _ = tune_thresholds(probs[tune], labels[tune], criterion, MIN_TUNE_COUNT // 2)
            figures.append(mean_rates(probs[score], labels[score], thresholds))
        rows[criterion] = {key: float(np.mean([f[key] for f in figures])) for key in figures[0]}
    prevalence = labels.mean(axis=0)
    rows["majority"] = {
        "mean_acc": float(np.mean(np.maximum(prevalence, 1 - prevalence))),
        "mean_balanced_acc": 0.5,
    }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--data.root", dest="root", help="the data root (default: the checkpoint's)")
    parser.add_argument("--cache_dir", help="the decoded cache's folder (default: the checkpoint's setting)")
    parser.add_argument("--tta", action="store_true", help="average each image's and its mirror's logits")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    from smile.evaluation.runner import predict_split
    from smile.system import restore

    overrides = {"root": args.root, "cache_dir": args.cache_dir}
    model, data, _, _ = restore(args.ckpt_path, "validate", "cpu", **overrides)
    model.hparams.tta = model.hparams.tta or args.tta
    shifts = model.test_time_views[1]
    val = predict_split(model, data, "val")
    identities = data.split_identities("val")
    if identities is None:
        raise SystemExit("error: the data has no identity_CelebA.txt, so val cannot be split by person")
    halves = person_halves(identities)
    rows = cross_fitted(val.probs, val.labels, halves)
    print(
        f"{len(val.probs)} validation images, {len(np.unique(identities))} people, halves of "
        f"{int(halves[0].sum())} and {int(halves[1].sum())} images; {len(val.attributes)} attributes"
        + (", flip averaging" if model.hparams.tta else "")
        + (f", vertical shifts {list(shifts)}" if shifts else "")
    )
    print(f"{'thresholds':<24} {'mean acc':>9} {'mean bal. acc':>14}")
    for name, row in rows.items():
        label = name if name in ("0.5", "majority") else f"tuned for {name}"
        print(f"{label:<24} {row['mean_acc']:>9.4f} {row['mean_balanced_acc']:>14.4f}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "checkpoint": str(args.ckpt_path),
                    "images": len(val.probs),
                    "tta": bool(model.hparams.tta),
                    "tta_shifts": list(shifts),
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
