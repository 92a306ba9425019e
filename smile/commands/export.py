"""``smile export``: a checkpoint as an ONNX or ``torch.export`` (.pt2) file that runs without this
project (:mod:`smile.trained.export`)."""

from __future__ import annotations

import argparse

from smile.commands import SmileParser
from smile.commands.report import add_model_option


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile export",
        description="Export a checkpoint as an ONNX or torch.export (.pt2) model that maps aligned face images "
        "(N, 3, S, S) to attribute probabilities, with the attribute names and preprocessing in its metadata.",
    )
    add_model_option(parser, "export")
    parser.add_argument("--format", default="onnx", help="onnx (default) or pt2")
    parser.add_argument(
        "--out", default=None, help="output file (default: beside the checkpoint, .onnx / .pt2)"
    )
    parser.add_argument(
        "--input_dtype",
        default="float32",
        help="float32: pixels / 255 in [0, 1] (default); uint8: raw 0-255 pixels",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default and lowest: 18)")
    parser.add_argument(
        "--no_check",
        action="store_true",
        help="skip running the file against the checkpoint afterwards",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from smile.trained.export import export
    from smile.trained.exported import INPUT_NAME, OUTPUT_NAME, read_metadata
    from smile.trained.sources import required

    source = required(args.ckpt_path, "export")
    target = export(source.given, args.format, args.out, args.input_dtype, args.opset, not args.no_check)
    metadata = read_metadata(target)
    print(
        f"Wrote {target}: {args.format}, input {INPUT_NAME} {metadata['input']['dtype']} "
        f"{metadata['input']['shape']} -> {OUTPUT_NAME} for {', '.join(metadata['attributes'])}"
    )
    return 0
