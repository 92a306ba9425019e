"""Every command's entry point: a thin parser that calls the library. :data:`smile.cli.COMMANDS` lists
them; each module's ``main(argv) -> int`` runs one."""

from __future__ import annotations

import argparse

from smile.faces.options import DETECTORS, NO_FACE_RULES, FaceOptions


def boolean(value: str) -> bool:
    """``true``/``false`` (as LightningCLI spells its booleans: ``--report false``)."""
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return lowered == "true"


def add_face_options(parser: argparse.ArgumentParser) -> None:
    """The photo pipeline's options (:class:`~smile.faces.options.FaceOptions`), as ``smile predict`` and
    ``smile serve`` take them."""
    parser.add_argument("--detector", choices=DETECTORS, default=FaceOptions.detector, help="face detector")
    parser.add_argument(
        "--min_face",
        type=int,
        default=FaceOptions.min_face,
        help="narrowest face kept, in pixels of the photo",
    )
    parser.add_argument(
        "--no_face",
        choices=NO_FACE_RULES,
        default=FaceOptions.no_face,
        help="a photo without a detected face: whole (predict the whole image as a face crop) or skip",
    )
