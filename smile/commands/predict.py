"""``smile predict``: a model's predictions on your photos, or on the test split of its CelebA data.

Two modes, said explicitly:

- ``smile predict PHOTO [PHOTO ...]`` (files or folders) runs the photos through the photo pipeline
  (:mod:`smile.photos.pipeline`: find the faces, frame them like CelebA, predict), prints a table of the
  faces and writes the CSV or JSON, in the current folder unless ``--out`` names another place
  (:mod:`smile.photos.predictions`); the model defaults to ``smiling``.
- ``smile predict --split test --ckpt_path MODEL`` is Lightning's predict loop over the test split of the
  model's run data (:mod:`smile.commands.lightning`), which writes ``predictions.csv`` into the run; it
  takes every option of ``smile test`` and, like it, needs a model.

In either mode an unknown option is named, with the nearest known one.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from smile.commands import SmileParser, add_face_options
from smile.commands.predict_video import add_video_options, output_folder, predict_videos, split_videos
from smile.trained.shipped import DEFAULT as DEFAULT_MODEL

DESCRIPTION = """\
Predict the attributes of the faces in your photos: each photo's faces are found, framed like
CelebA's aligned images and predicted; a table goes to the terminal and every face gets a row of
predictions.csv in the current folder (--out names another file, or a folder for all the outputs;
--format json, or an --out ending in .json, writes JSON with the same fields).
Videos (by suffix: .mp4 .mov .avi .mkv .webm ...) are read as a stream, each face tracked and its
probabilities smoothed over time: CLIP.frames.csv, CLIP.tracks.json/.csv and CLIP.timeline.png
(docs/video.md).

Many photos (more than {many}, or with --num_workers, a --trainer.* option, a .parquet --out, or
under torchrun) go through Lightning's predict loop: DataLoader workers read and align the photos in
parallel, the network runs in batches on the accelerator (several processes with --trainer.devices,
--trainer.num_nodes, torchrun or SLURM), each process streams its rows to OUT.parts/, merged into OUT
at the end. Stopped, the same command again continues: photos already in OUT or its parts are not
predicted again. Fewer photos, --annotate_dir and .onnx models run in this process.

smile predict --split test --ckpt_path MODEL predicts the test split of a model's CelebA data through
Lightning instead (predictions.csv in the run folder); that form needs a model and takes every option
of smile test (smile predict --split test --help)."""
#: The splits ``--split`` takes (the data module's predict loop reads the test split).
SPLITS = ("test",)


#: The formats of the predictions file (:mod:`smile.photos.predictions`; Parquet: :mod:`smile.photos.bulk`).
FORMATS = ("csv", "json", "parquet")


def output_file(out: Path | None, fmt: str | None, folder: Path = Path(".")) -> tuple[Path, str]:
    """Where the predictions go and in which format: ``out`` (replaced), else a fresh ``predictions.csv``
    (or ``.json``) in ``folder``; the format is ``fmt``, else ``out``'s suffix, else CSV."""
    from smile.errors import OptionError
    from smile.io import fresh_path

    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if fmt and suffix in FORMATS and suffix != fmt:
        raise OptionError(f"--format {fmt} and --out {out}: give an --out ending in .{fmt}, or no --format")
    fmt = fmt or (suffix if suffix in FORMATS else "csv")
    return (out if out is not None else fresh_path(folder / f"predictions.{fmt}")), fmt


def _written_by_smile(path: Path) -> bool:
    """A file an earlier ``smile predict`` wrote (photos' predictions, a video's outputs), not an input."""
    from smile.photos.predictions import written_here
    from smile.video.files import OUTPUTS

    return written_here(path) or path.name.endswith(OUTPUTS)


#: More photos than this go through Lightning's predict loop (smile.photos.bulk) unless an option says.
#: Its start is about 5 s longer (Lightning's import, the workers'); on 2 cores its 2 workers then save
#: about 5.5 ms a photo: 500 photos took 11.8 s against 10.0 in-process, 2,000 took 26.2 against 32.7
#: (benchmarks/results/predict-scale.json), even at about 800.
MANY = 1000
#: The Trainer's options that photo mode passes to Lightning (--trainer.NAME).
TRAINER_OPTIONS = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def build_parser() -> argparse.ArgumentParser:
    parser = SmileParser(
        prog="smile predict",
        description=DESCRIPTION.format(many=MANY),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "photos",
        nargs="*",
        metavar="PHOTO",
        help="image or video files, or folders of them (recursively); videos go by their suffix",
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
        help="the photos' predictions file: .csv, .json, or .parquet (many photos), the same fields; "
        "default: predictions.csv in the current folder, or predictions-2.csv, -3, ... beside an earlier "
        "one, which is never replaced; a given file is replaced, except that with many photos an unfinished "
        "one is continued and a finished one's photos are not predicted again. Or a folder (one that "
        "exists, or a name without a suffix) for it and the videos' outputs",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="csv, json or parquet (many photos): the same fields, one row or object per face (default: "
        "the --out's suffix, else csv)",
    )
    parser.add_argument(
        "--annotate_dir",
        type=Path,
        help="also write copies of the photos with boxes and labels here (and CLIP.annotated.mp4 of each video)",
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
    parser.add_argument(
        "--split",
        choices=SPLITS,
        help="instead of photos, predict this split of the model's CelebA data through Lightning (needs "
        "--ckpt_path; takes smile test's options)",
    )
    add_video_options(parser)
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


def engine_wanted(args: argparse.Namespace, files: list[Path], backend: str, fmt: str) -> bool:
    """Whether the photos go through Lightning's predict loop (:mod:`smile.photos.bulk`): asked for
    (``--num_workers``, a ``--trainer.*`` option, Parquet, several processes launched), or more than
    :data:`MANY` photos that can go (no annotated copies, not an ONNX model, not JSON)."""
    from smile.errors import OptionError

    asked = (
        args.num_workers is not None
        or any(getattr(args, f"trainer_{name}") is not None for name in TRAINER_OPTIONS)
        or fmt == "parquet"
        or os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1")
    )
    if asked and args.annotate_dir is not None:
        raise OptionError(
            "--annotate_dir runs in this process: leave out --num_workers, --trainer.* and .parquet"
        )
    if asked and fmt == "json":
        raise OptionError("JSON is written in this process: for many photos give an --out ending in .csv or .parquet")
    return asked or (len(files) > MANY and args.annotate_dir is None and backend != "onnx" and fmt != "json")


def _trainer_options(args: argparse.Namespace) -> dict[str, str | None]:
    options = {name: getattr(args, f"trainer_{name}") for name in TRAINER_OPTIONS}
    if options["accelerator"] is None and args.device != "cpu":
        options["accelerator"] = "auto" if args.device == "auto" else "gpu"
    return options


def split_mode(argv: list[str]) -> str | None:
    """The split ``--split`` names in ``argv``, or ``None`` (photo mode)."""
    for index, arg in enumerate(argv):
        if arg == "--split":
            return argv[index + 1] if index + 1 < len(argv) else ""
        if arg.startswith("--split="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str]) -> int:
    split = split_mode(argv)
    if split is not None:
        if split not in SPLITS:
            build_parser().error(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
        from smile.commands import trainer

        rest = [
            arg
            for index, arg in enumerate(argv)
            if arg != "--split"
            and not arg.startswith("--split=")
            and not (index > 0 and argv[index - 1] == "--split")
        ]
        return trainer.predict(rest)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.photos:
        parser.error(
            "give photos (files or folders), or --split test --ckpt_path MODEL to predict a model's test split"
        )
    return predict_photos(args)


def predict_photos(args: argparse.Namespace) -> int:
    from smile.api import DRAWN_FACES, load
    from smile.console import say
    from smile.data.cache import CACHE_FOLDER
    from smile.errors import DataError
    from smile.faces.images import list_photos
    from smile.photos import predictions

    folder = output_folder(args.out)
    out, fmt = output_file(None if args.out == folder else args.out, args.format, folder)

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
    note = predictor.model.source.note()
    if note:
        say(note)  # once, under torchrun too
    if predictor.synthetic:
        say(f"note: {DRAWN_FACES.format(source=predictor.source)}")
    exclude = [args.annotate_dir] if args.annotate_dir else []
    # smile's own files in a folder given are no photos: its caches, and what it wrote there
    own = {"skip_folders": (CACHE_FOLDER,), "leave_out": _written_by_smile}
    inputs, videos = split_videos(
        [(Path(path), list_photos(path, exclude=exclude, **own)) for path in args.photos]
    )
    attributes, thresholds = predictor.attributes, predictor.thresholds.tolist()
    roots = {file: path if path.is_dir() else path.parent for path, files in inputs for file in files}

    def annotate(photo, rows) -> None:
        if args.annotate_dir is None or photo.picture is None:
            return
        out = predictions.annotated_path(photo.source, roots[photo.source], args.annotate_dir)
        predictions.annotate(photo.picture, rows, attributes, thresholds, out)

    files = [file for _, found in inputs for file in found]
    if files and engine_wanted(args, files, predictor.backend, fmt):
        from smile.photos.bulk import predict_many

        predict_many(predictor, files, out, args.batch_size, args.num_workers, _trainer_options(args))
        return predict_videos(predictor, videos, args, photos_read=len(files)) if videos else 0
    if not files:
        return predict_videos(predictor, videos, args)
    rows = predictor.predict_files(_progress(files), args.batch_size, on_photo=annotate)
    readable = sum(not row.status.startswith("unreadable") for row in rows)
    if not readable and not videos:
        raise DataError(
            f"none of the {len(rows)} files given could be read as an image ({rows[0].image}: "
            f"{rows[0].status.split(': ', 1)[-1]}); give photos (JPEG, PNG, WebP, BMP, ...) or folders of them"
        )
    predictions.write(rows, attributes, thresholds, out, fmt)
    print(predictions.table(rows, attributes, thresholds))
    print(predictions.summary(rows), file=sys.stderr)
    print(f"Wrote {len(rows)} rows to {out}", file=sys.stderr)
    if args.annotate_dir is not None:
        print(f"Annotated copies in {args.annotate_dir}", file=sys.stderr)
    return predict_videos(predictor, videos, args, photos_read=readable) if videos else 0


def _progress(files: list[Path]):
    if len(files) < 20:
        return files
    from tqdm import tqdm

    return tqdm(files, desc="Predicting", unit="photo", file=sys.stderr, disable=None)
