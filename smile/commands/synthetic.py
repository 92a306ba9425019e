"""``smile synthetic OUT``: write a synthetic CelebA-format dataset, faces drawn with known attributes
(:mod:`smile.data.synthetic`), for trying the whole pipeline without a download."""

from __future__ import annotations

import argparse
from pathlib import Path

from smile.commands import SmileParser


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile synthetic",
        description="Write a synthetic CelebA-format dataset (drawn faces with consistent labels) in the "
        "official layout.",
    )
    parser.add_argument("out", type=Path, help="output folder (created; kept if already complete)")
    parser.add_argument("--num_images", type=int, default=3000, help="number of images (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--split_fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VALID", "TEST")
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from smile.data.synthetic import generate_dataset

    try:
        out = generate_dataset(
            args.out,
            args.num_images,
            seed=args.seed,
            split_fractions=tuple(args.split_fractions),
            progress=False if args.no_progress else None,
        )
    except (ValueError, FileExistsError) as err:
        parser.exit(2, f"error: {err}\n")
    print(out)
    return 0
