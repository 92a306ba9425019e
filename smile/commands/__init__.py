"""Every command's entry point: a thin parser that calls the library. :data:`smile.cli.COMMANDS` lists
them; each module's ``main(argv) -> int`` runs one."""

from __future__ import annotations

import argparse
import difflib
import re

from smile.faces.options import DETECTORS, NO_FACE_RULES, FaceOptions


class CommandParser(argparse.ArgumentParser):
    """argparse for smile's commands: no abbreviated options (``--thresh`` is not ``--threshold``), and an
    unknown option named as such, with the nearest known one (hyphens read as the underscores smile's
    options are spelt with)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        unknown = re.match(r"unrecognized arguments: (.+)", message)
        if unknown:
            first = unknown.group(1).split()[0]
            option = first.split("=", 1)[0]
            if option.startswith("-"):
                known = [name for name in self._option_string_actions if name.startswith("--")]
                spelt = "--" + option.lstrip("-").replace("-", "_")
                close = difflib.get_close_matches(spelt, known, n=1, cutoff=0.6)
                message = f"unknown option {option}" + (f" (did you mean {close[0]}?)" if close else "")
            else:
                message = f"unexpected argument {first!r}"
        super().error(message)


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
