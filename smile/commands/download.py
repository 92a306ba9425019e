"""``smile download``: CelebA from Google Drive, the Hugging Face mirror or the Kaggle mirror
(:mod:`smile.download`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from smile.commands import SmileParser
from smile.install import install_hint

SOURCES = ("gdrive", "huggingface", "kaggle")
DESCRIPTION = f"""\
Download CelebA (aligned images, 40 attributes, official train/valid/test partition) into ROOT.

Sources (--source auto tries them in this order and says what it did):
  gdrive       the official files on Google Drive, through gdown; every file MD5-checked
  huggingface  the parquet mirror flwrlabs/celeba, converted to the official layout
  kaggle       the Kaggle mirror jessicali9530/celeba-dataset (needs Kaggle API credentials)

Partial downloads are kept and resumed by the next run; nothing appears under its final name before
it is complete and verified. The optional packages come with:
  {install_hint("download")}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile download",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data.root",
        dest="root",
        type=Path,
        default=Path("data/celeba"),
        help="where CelebA goes, the data.root of the other commands (default: %(default)s)",
    )
    parser.add_argument("--source", choices=("auto", *SOURCES), default="auto", help="default: %(default)s")
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="resumes after a dropped connection, per file (default: %(default)s)",
    )
    parser.add_argument(
        "--keep_archives",
        action="store_true",
        help="keep the zip / parquet files after they are unpacked (default: delete them)",
    )
    parser.add_argument(
        "--gdrive_url",
        default=None,
        help="Google Drive download endpoint (default: $SMILE_GDRIVE_URL or https://drive.google.com/uc)",
    )
    parser.add_argument("--hf_repo", default=None, help="Hugging Face dataset (default: flwrlabs/celeba)")
    parser.add_argument(
        "--hf_revision",
        default=None,
        help="branch, tag or commit of --hf_repo (default: main)",
    )
    parser.add_argument(
        "--hf_endpoint",
        default=None,
        help="Hugging Face Hub address (default: $HF_ENDPOINT or the Hub)",
    )
    parser.add_argument(
        "--image_format",
        choices=("keep", "jpg"),
        default="keep",
        help="huggingface: keep the mirror's image bytes as they are (default), or re-encode non-JPEG images "
        "to JPEG (quality 95) so that every file is a .jpg as in the official release",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-file download progress bars")
    return parser


def main(argv: list[str]) -> int:
    from smile.download.celeba import download

    return download(build_parser().parse_args(argv))
