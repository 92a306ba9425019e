"""``smile ensemble A.ckpt B.ckpt [...] --out ensemble.ckpt``: trained checkpoints joined into one that
predicts the mean of their logits (:func:`smile.trained.ensemble.join`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smile.commands import SmileParser


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile ensemble",
        description="Join trained checkpoints into one that predicts the mean of their logits.",
    )
    parser.add_argument("checkpoints", nargs="+", help="two or more .ckpt files (or best / last)")
    parser.add_argument(
        "--out", type=Path, required=True, help="the new checkpoint (never over an existing file)"
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from smile.io import fresh_path
    from smile.trained.checkpoints import save_checkpoint
    from smile.trained.ensemble import join
    from smile.trained.sources import resolve

    paths = [resolve(value).checkpoint_path() for value in args.checkpoints]
    checkpoint = join(paths)
    out = save_checkpoint(checkpoint, fresh_path(args.out))
    members = ", ".join(m["net"] for m in checkpoint["hyper_parameters"]["net_kwargs"]["members"])
    print(f"Wrote {out}: the mean logit of {len(paths)} models ({members})", file=sys.stderr)
    return 0
