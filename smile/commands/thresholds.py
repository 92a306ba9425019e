"""``smile thresholds``: choose a trained model's per-attribute decision thresholds on its
validation split and save them in a new checkpoint, without training again.

A fit with ``--model.threshold_criterion`` does this after every validation; this command does it for a
model trained without it (or before thresholds existed), or for another criterion: ``acc`` for the
fewest errors, ``balanced_acc`` so that rare attributes are found as often as common ones are rejected,
``f1``. The new checkpoint (``<name>-<criterion>.ckpt`` beside the original unless ``--out`` says
otherwise; never over an existing file) is the original with the thresholds and the criterion set;
test, predict, the Python API, serving and export then decide with them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smile.commands import SmileParser
from smile.commands.report import add_checkpoint_data_options, add_model_option
from smile.evaluation.thresholds import CRITERIA, DEFAULT_THRESHOLD, MIN_TUNE_COUNT


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile thresholds",
        description="Choose a checkpoint's decision thresholds on the validation split and save them in a new "
        "checkpoint.",
    )
    add_model_option(parser, "choose thresholds for")
    parser.add_argument(
        "--criterion",
        choices=CRITERIA,
        required=True,
        help="what each attribute's threshold maximises on val",
    )
    parser.add_argument(
        "--out", type=Path, help="the new checkpoint (default: <name>-<criterion>.ckpt beside it)"
    )
    add_checkpoint_data_options(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    import numpy as np
    import torch

    from smile.evaluation.metrics import mean_rates
    from smile.evaluation.runner import predict_split
    from smile.evaluation.thresholds import tune_thresholds
    from smile.io import fresh_path
    from smile.system import restore
    from smile.trained.checkpoints import save_checkpoint
    from smile.trained.sources import required

    source = required(args.ckpt_path, "thresholds")
    overrides = {"root": args.root, "batch_size": args.batch_size, "num_workers": args.num_workers}
    model, datamodule, checkpoint, path = restore(source.given, "validate", args.device, **overrides)
    val = predict_split(model, datamodule, "val")
    chosen, tuned = tune_thresholds(val.probs, val.labels, args.criterion)
    checkpoint["state_dict"]["thresholds"] = torch.as_tensor(chosen, dtype=torch.float32)
    checkpoint["hyper_parameters"]["threshold_criterion"] = args.criterion
    out = fresh_path(args.out or path.with_name(f"{path.stem}-{args.criterion}{path.suffix}"))
    save_checkpoint(checkpoint, out)
    before = mean_rates(val.probs, val.labels, np.full(len(chosen), DEFAULT_THRESHOLD))
    after = mean_rates(val.probs, val.labels, chosen)
    untuned = [name for name, done in zip(val.attributes, tuned) if not done]
    print(
        f"Thresholds for {args.criterion} on {len(val.probs)} validation images, {int(tuned.sum())} of "
        f"{len(tuned)} attributes tuned"
        + (
            f" ({', '.join(untuned)} keep 0.5: fewer than {MIN_TUNE_COUNT} images of a class)"
            if untuned
            else ""
        )
        + f". On val (tuned there, so optimistic): mean accuracy {before['mean_acc']:.4f} -> "
        f"{after['mean_acc']:.4f}, mean balanced accuracy {before['mean_balanced_acc']:.4f} -> "
        f"{after['mean_balanced_acc']:.4f}.\nWrote {out}",
        file=sys.stderr,
    )
    return 0
