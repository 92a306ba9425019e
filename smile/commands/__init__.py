"""Every command's entry point: a thin parser that calls the library. :data:`smile.cli.COMMANDS` lists
them; each module's ``main(argv) -> int`` runs one."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable

from smile.faces.options import DETECTORS, NO_FACE_RULES, FaceOptions


def did_you_mean(option: str, known: Iterable[str]) -> str | None:
    """The option of ``known`` that ``option`` most likely meant, or ``None``: the same with hyphens for
    underscores (``--annotate-dir``: ``--annotate_dir``), the one option whose last part it names
    (``--max_epochs``: ``--trainer.max_epochs``), else the nearest spelling (``--trainer.max_epohcs``)."""
    known = [name for name in known if name.startswith("--")]
    given = option.split("=", 1)[0]
    spelled = "--" + given.lstrip("-").replace("-", "_")
    if spelled in known:
        return spelled
    last = spelled[2:].rsplit(".", 1)[-1]
    ending = [name for name in known if name.rsplit(".", 1)[-1].lstrip("-") == last]
    if len(ending) == 1:
        return ending[0]
    close = difflib.get_close_matches(spelled, known, n=1)
    return close[0] if close else None


def first_unknown_option(message: str) -> str | None:
    """The first option (``--name``) among an ``unrecognized arguments: ...`` message's arguments."""
    found = re.search(r"unrecognized arguments: (.*)", message)
    options = [arg for arg in found.group(1).split() if arg.startswith("--")] if found else []
    return options[0] if options else None


class SmileParser(argparse.ArgumentParser):
    """An ``argparse`` parser for smile's commands: an option must be spelled out (no abbreviations:
    ``--ckpt`` is not taken for ``--ckpt_path``), and an unknown one gets the nearest known one."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        unknown = first_unknown_option(message)
        close = unknown and did_you_mean(unknown, self._option_string_actions)
        if close:
            message += f" (did you mean {close}?)"
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
