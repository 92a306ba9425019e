"""``smile check-data``: check a CelebA copy completely, every annotation row and every image, all
problems in one report (:mod:`smile.data.check`)."""

from __future__ import annotations

import argparse

import yaml

from smile.commands import SmileParser


def _root_from_config(path: str) -> str | None:
    from smile.recipes import resolve

    with open(resolve(path)) as handle:
        config = yaml.safe_load(handle) or {}
    return (config.get("data") or {}).get("root")


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile check-data",
        description="Check a CelebA copy completely: every annotation row and every image, all problems "
        "in one report. Exit status 0: nothing to fix; 1: problems; 2: no dataset there.",
    )
    parser.add_argument("--data.root", dest="root", help="the folder holding CelebA (default: data/celeba)")
    parser.add_argument(
        "--config", help="take data.root from this config: a recipe's name (smile, attributes, ...) or a file"
    )
    parser.add_argument("--examples", type=int, default=3, help="examples shown per kind of problem")
    parser.add_argument("--workers", type=int, default=None, help="threads decoding images")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from smile.data.check import scan

    root = args.root or (args.config and _root_from_config(args.config)) or "data/celeba"
    report = scan(root, examples=args.examples, workers=args.workers)
    print(report)
    if report.layout is None:
        return 2
    return 0 if report.ok else 1
