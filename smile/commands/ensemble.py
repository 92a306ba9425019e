"""``smile ensemble A.ckpt B.ckpt [...] --out ensemble.ckpt``: trained checkpoints joined into one that
predicts the mean of their logits (:func:`smile.ensemble.join`)."""

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

    import torch

    from smile.checkpoints import resolve_checkpoint
    from smile.ensemble import join
    from smile.io import atomic_write, fresh_path

    paths = [resolve_checkpoint(value) for value in args.checkpoints]
    checkpoint = join(paths)
    out = fresh_path(args.out)
    with atomic_write(out, "wb") as handle:
        torch.save(checkpoint, handle)
    members = ", ".join(m["net"] for m in checkpoint["hyper_parameters"]["net_kwargs"]["members"])
    print(f"Wrote {out}: the mean logit of {len(paths)} models ({members})", file=sys.stderr)
    return 0
