"""``smile report``: the evaluation report of a checkpoint (metrics.json, report.md and PNG figures) in its
run folder's ``report/``, on the checkpoint's own data (:mod:`smile.evaluation.runner`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smile.commands import SmileParser, boolean
from smile.evaluation import DEFAULT_GROUPS
from smile.evaluation.thresholds import CRITERIA, MIN_TUNE_COUNT


def add_model_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--ckpt_path``, which every command that evaluates a model needs (never a fresh network)."""
    parser.add_argument(
        "--ckpt_path",
        metavar="MODEL",
        help=f"required: the model to {what}: smiling / attributes (shipped), best / last (the newest run's) "
        "or a checkpoint file",
    )


def add_checkpoint_data_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that runs a checkpoint on its run's data: ``--data.root`` (when the data
    moved), ``--batch_size``, ``--num_workers`` and ``--device``."""
    parser.add_argument("--data.root", dest="root", help="the data root, when the data moved since training")
    parser.add_argument("--batch_size", type=int, help="images per batch (default: the run's)")
    parser.add_argument("--num_workers", type=int, help="loader processes (default: the run's)")
    parser.add_argument(
        "--device",
        default="auto",
        help="where to run the model: auto (a GPU when there is one), cpu, cuda...",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile report",
        description=(
            "Write the evaluation report of a checkpoint (metrics.json, report.md and PNG figures) into "
            "its run folder's report/ directory, using the checkpoint's own data settings."
        ),
    )
    add_model_option(parser, "report on")
    parser.add_argument(
        "--attributes",
        nargs="+",
        help="report only these of the checkpoint's attributes (default: all of them)",
    )
    parser.add_argument(
        "--groups",
        nargs="*",
        default=list(DEFAULT_GROUPS),
        help="attributes whose groups the fairness slices compare (default: Male Young; none: no slices)",
    )
    parser.add_argument(
        "--plot_attributes",
        nargs="+",
        help="attributes that get their own figures, or 'all' (default: all when at most 5, else Smiling "
        "if reported, else the first)",
    )
    parser.add_argument("--out", help="the report folder (default: <run folder>/report)")
    add_checkpoint_data_options(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        help="one decision threshold for every attribute (default: the model's own, 0.5 unless it was "
        "trained with model.threshold_criterion)",
    )
    parser.add_argument(
        "--tune_thresholds",
        type=boolean,
        default=True,
        help="also choose per-attribute thresholds on the val split and report test at them (default: true)",
    )
    parser.add_argument("--criterion", choices=CRITERIA, default="acc", help="what tuned thresholds maximise")
    parser.add_argument("--bins", type=int, default=15, help="reliability-diagram bins (default 15)")
    parser.add_argument("--errors", type=int, default=16, help="images in each error grid (default 16)")
    parser.add_argument(
        "--min_group_count",
        type=int,
        default=20,
        help="a fairness gap is ranked only when each group has this many images behind it (default 20)",
    )
    parser.add_argument(
        "--min_tune_count",
        type=int,
        default=MIN_TUNE_COUNT,
        help="tune an attribute's threshold only with this many val images of each class (default "
        f"{MIN_TUNE_COUNT}; fewer: it keeps --threshold)",
    )
    parser.add_argument(
        "--tensorboard",
        type=boolean,
        default=True,
        help="also log the figures to the run's TensorBoard (default: true)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from smile.evaluation.runner import REPORT_DIR, checkpoint_source, make_report
    from smile.io import fresh_path
    from smile.system import restore
    from smile.trained.checkpoints import run_folder
    from smile.trained.sources import required

    source = required(args.ckpt_path, "report")
    note = source.note()
    if note:
        print(note, file=sys.stderr)
    overrides = {"root": args.root, "batch_size": args.batch_size, "num_workers": args.num_workers}
    model, datamodule, checkpoint, path = restore(source.given, "test", args.device, **overrides)
    run = run_folder(path)
    out = (
        Path(args.out)
        if args.out
        else fresh_path(run.path / REPORT_DIR if run else path.parent / f"{path.stem}-report")
    )
    make_report(
        model,
        datamodule,
        out,
        run_dir=run.path if run else None,
        attributes=args.attributes,
        groups=args.groups,
        plot_attributes=args.plot_attributes,
        tune_thresholds=args.tune_thresholds,
        criterion=args.criterion,
        threshold=args.threshold,
        bins=args.bins,
        errors=args.errors,
        min_group_count=args.min_group_count,
        min_tune_count=args.min_tune_count,
        tensorboard=args.tensorboard,
        step=int(checkpoint.get("global_step", 0)),
        source=checkpoint_source(path, checkpoint, datamodule),
    )
    return 0
