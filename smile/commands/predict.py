"""``smile predict``: a model's predictions on your photos, or on the test split of its CelebA data.

``smile predict PHOTO [PHOTO ...]`` (files or folders) runs the photos through the photo pipeline
(:mod:`smile.photos.pipeline`: find the faces, frame them like CelebA, predict), prints a table of the
faces and writes the CSV (:mod:`smile.photos.predictions`). Without a photo, and with any
``--trainer.*``/``--data.*``/``--model.*`` option, it is Lightning's predict loop over the test split
of the checkpoint's data (:mod:`smile.commands.lightning`), which writes ``predictions.csv`` into the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from smile.commands import add_face_options
from smile.shipped import DEFAULT as DEFAULT_MODEL

DESCRIPTION = """\
Predict the attributes of the faces in your photos: each photo's faces are found, framed like
CelebA's aligned images and predicted; a table goes to the terminal and every face gets a CSV row.

Many photos (more than {many}, or with --num_workers, a --trainer.* option, a .parquet --out, or
under torchrun) go through Lightning's predict loop: DataLoader workers read and align the photos in
parallel, the network runs in batches on the accelerator (several processes with --trainer.devices,
--trainer.num_nodes, torchrun or SLURM), each process streams its rows to OUT.parts/, merged into OUT
at the end. Stopped, the same command again continues: photos already in OUT or its parts are not
predicted again. Fewer photos, --annotate_dir and .onnx models run in this process.

Without PHOTO, predicts the test split of the checkpoint's CelebA data through Lightning instead
(predictions.csv in the run folder); that form takes every option of smile test."""

#: More photos than this go through Lightning's predict loop (smile.photos.bulk) unless an option says.
#: Its start is about 5 s longer (Lightning's import, the workers'); on 2 cores its 2 workers then save
#: about 5.5 ms a photo: 500 photos took 11.8 s against 10.0 in-process, 2,000 took 26.2 against 32.7
#: (benchmarks/results/predict-scale.json), even at about 800.
MANY = 1000
#: The Trainer's options that photo mode passes to Lightning (--trainer.NAME).
TRAINER_OPTIONS = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smile predict",
        description=DESCRIPTION.format(many=MANY),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "photos", nargs="*", metavar="PHOTO", help="image files, or folders of them (recursively)"
    )
    parser.add_argument(
        "--ckpt_path",
        default=DEFAULT_MODEL,
        help="a shipped model (smiling, attributes: smile models lists them), a checkpoint, best / last, or "
        "an .onnx file (default: smiling)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="the output, .csv or .parquet (same columns); with many photos, an unfinished one is "
        "continued and a finished one's photos are not predicted again (default: a new predictions.csv in "
        "the checkpoint's run folder, else here)",
    )
    parser.add_argument(
        "--annotate_dir", type=Path, help="also write copies of the photos with boxes and labels here"
    )
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="the photos are aligned CelebA-style crops already: no detection",
    )
    add_face_options(parser)
    parser.add_argument(
        "--threshold", type=float, help="one threshold for every attribute (default: the model's)"
    )
    parser.add_argument(
        "--batch_size", type=int, default=64, help="faces per network run (many photos: photos per batch)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    many = parser.add_argument_group("many photos (Lightning's predict loop)")
    many.add_argument(
        "--num_workers",
        type=int,
        help="processes per device that read, detect and align photos (default: the CPU cores)",
    )
    for name, text in zip(
        TRAINER_OPTIONS,
        (
            "cpu (default, or gpu with --device cuda), gpu, auto...",
            "devices per machine: one process each (default 1; under torchrun, its processes)",
            "machines (default 1; under torchrun, its nodes)",
            "Lightning's strategy (default: auto, ddp for several processes)",
            "e.g. bf16-mixed, 16-mixed (default 32-true)",
        ),
    ):
        many.add_argument(f"--trainer.{name}", dest=f"trainer_{name}", metavar=name.upper(), help=text)
    return parser


def engine_wanted(args: argparse.Namespace, files: list[Path], backend: str) -> bool:
    """Whether the photos go through Lightning's predict loop (:mod:`smile.photos.bulk`): asked for
    (``--num_workers``, a ``--trainer.*`` option, a ``.parquet`` output, several processes launched), or
    more than :data:`MANY` photos that can go (no annotated copies, not an ONNX model)."""
    asked = (
        args.num_workers is not None
        or any(getattr(args, f"trainer_{name}") is not None for name in TRAINER_OPTIONS)
        or (args.out is not None and args.out.suffix.lower() == ".parquet")
        or os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1")
    )
    if asked and args.annotate_dir is not None:
        from smile.errors import OptionError

        raise OptionError(
            "--annotate_dir runs in this process: leave out --num_workers, --trainer.* and .parquet"
        )
    return asked or (len(files) > MANY and args.annotate_dir is None and backend != "onnx")


def _trainer_options(args: argparse.Namespace) -> dict[str, str | None]:
    options = {name: getattr(args, f"trainer_{name}") for name in TRAINER_OPTIONS}
    if options["accelerator"] is None and args.device != "cpu":
        options["accelerator"] = "auto" if args.device == "auto" else "gpu"
    return options


def main(argv: list[str]) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown or not args.photos:
        from smile.commands import trainer

        return trainer.predict(argv)
    return predict_photos(args)


def predict_photos(args: argparse.Namespace) -> int:
    from smile.api import DRAWN_FACES, load
    from smile.checkpoints import run_folder, which_checkpoint
    from smile.distributed import say
    from smile.errors import DataError
    from smile.faces.images import list_photos
    from smile.io import fresh_path
    from smile.photos import predictions

    with warnings.catch_warnings():  # said below, once, as a line of the command's own
        warnings.simplefilter("ignore", UserWarning)
        predictor = load(
            args.ckpt_path,
            device=args.device,
            detector=args.detector,
            min_face=args.min_face,
            threshold=args.threshold,
            no_face=args.no_face,
        ).with_options(aligned=args.aligned)
    note = which_checkpoint(args.ckpt_path, predictor.source)
    if note:
        say(note)  # once, under torchrun too
    if predictor.synthetic:
        say(f"note: {DRAWN_FACES.format(source=predictor.source)}")
    exclude = [args.annotate_dir] if args.annotate_dir else []
    inputs = [(Path(path), list_photos(path, exclude=exclude)) for path in args.photos]
    attributes, thresholds = predictor.attributes, predictor.thresholds.tolist()
    roots = {file: path if path.is_dir() else path.parent for path, files in inputs for file in files}

    def annotate(photo, rows) -> None:
        if args.annotate_dir is None or photo.picture is None:
            return
        out = predictions.annotated_path(photo.source, roots[photo.source], args.annotate_dir)
        predictions.annotate(photo.picture, rows, attributes, thresholds, out)

    files = [file for _, found in inputs for file in found]
    run = run_folder(predictor.source)
    out = args.out or fresh_path((run.path if run else Path(".")) / "predictions.csv")
    if engine_wanted(args, files, predictor.backend):
        from smile.photos.bulk import predict_many

        predict_many(predictor, files, out, args.batch_size, args.num_workers, _trainer_options(args))
        return 0
    rows = predictor.predict_files(_progress(files), args.batch_size, on_photo=annotate)
    if all(row.status.startswith("unreadable") for row in rows):
        raise DataError(
            f"none of the {len(rows)} files given could be read as an image ({rows[0].image}: "
            f"{rows[0].status.split(': ', 1)[-1]}); give photos (JPEG, PNG, WebP, BMP, ...) or folders of them"
        )
    predictions.write_csv(rows, attributes, thresholds, out)
    print(predictions.table(rows, attributes, thresholds))
    print(predictions.summary(rows), file=sys.stderr)
    print(f"Wrote {len(rows)} rows to {out}", file=sys.stderr)
    if args.annotate_dir is not None:
        print(f"Annotated copies in {args.annotate_dir}", file=sys.stderr)
    return 0


def _progress(files: list[Path]):
    if len(files) < 20:
        return files
    from tqdm import tqdm

    return tqdm(files, desc="Predicting", unit="photo", file=sys.stderr, disable=None)
