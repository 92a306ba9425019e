"""``smile models``: the trained models that ship with smile, a line each; ``smile models NAME`` prints
one's model card (:mod:`smile.trained.shipped`)."""

from __future__ import annotations

import argparse

from smile.commands import SmileParser
from smile.errors import OptionError


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile models",
        description="List the trained models that ship with smile, or print one's model card.",
    )
    parser.add_argument("name", nargs="?", help="a shipped model's name: print its model card")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from smile.trained.checkpoints import describe
    from smile.trained.shipped import card_markdown, checkpoint_dict, read_weights, shipped_models

    models = shipped_models()
    if args.name is None:
        width = max((len(name) for name in models), default=0) + 2
        for name, model in models.items():
            print(f"{name:<{width}}{model.summary}")
        print("\nsmile models NAME prints a model's card; smile predict PHOTO uses smiling.")
        return 0
    if args.name not in models:
        raise OptionError(f"no shipped model {args.name!r}: choose one of {', '.join(models)}")
    model = models[args.name]
    print(card_markdown(model.card, describe(checkpoint_dict(*read_weights(model)))), end="")
    return 0
