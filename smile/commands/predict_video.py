"""``smile predict CLIP.mp4``: the video half of ``smile predict`` (:mod:`smile.commands.predict` sends
videos here by their suffix, photos to the photo pipeline).

Each video is read as a stream (:mod:`smile.video`), every frame predicted unless ``--every`` or
``--fps`` samples, each face tracked and smoothed; beside each other, in the current folder or in
``--out`` when it is a folder: ``CLIP.frames.csv`` (a row per face per frame, written as the frames
come, valid after a Ctrl-C), ``CLIP.tracks.json`` and ``CLIP.tracks.csv`` (per track: first and last
seen, frames, share of time smiling, smile episodes), ``CLIP.timeline.png``; with ``--annotate_dir``,
``CLIP.annotated.mp4`` there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from smile.errors import DataError, OptionError

if TYPE_CHECKING:
    from smile.api import Predictor


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """``smile predict``'s options for videos."""
    from smile.video import DEFAULT_DETECT_EVERY
    from smile.video import DEFAULT_SMOOTHING as DEFAULT_TAU

    group = parser.add_argument_group(
        "videos (.mp4 .mov .avi .mkv .webm ...)",
        "CLIP.frames.csv, CLIP.tracks.json, CLIP.tracks.csv and CLIP.timeline.png, in the current folder\n"
        "or in --out when it is a folder",
    )
    group.add_argument("--every", type=int, help="predict every N-th frame (default: every frame)")
    group.add_argument("--fps", type=float, help="predict at most F frames a second (default: every frame)")
    group.add_argument(
        "--smoothing",
        type=float,
        default=DEFAULT_TAU,
        help=f"time constant of each face's moving average, in seconds; decisions use the smoothed "
        f"probability (default: {DEFAULT_TAU}; 0: off)",
    )
    group.add_argument(
        "--detect_every",
        type=int,
        default=DEFAULT_DETECT_EVERY,
        help=f"a full face detection every K predicted frames, the tracked faces found again in between "
        f"(default: {DEFAULT_DETECT_EVERY}; 1: detect on every frame)",
    )


def split_videos(
    inputs: list[tuple[Path, list[Path]]],
) -> tuple[list[tuple[Path, list[Path]]], list[tuple[Path, Path]]]:
    """``(path given, files found)`` pairs with the videos taken out: the photos' pairs, and each video
    with the path it was found under."""
    from smile.video.decode import is_video

    photos, videos = [], []
    for path, files in inputs:
        videos += [(path, file) for file in files if is_video(file)]
        photos.append((path, [file for file in files if not is_video(file)]))
    return [(path, files) for path, files in photos if files], videos


def output_folder(out: Path | None) -> Path:
    """Where the videos' outputs go: ``--out`` when it is a folder (one that exists, or a name without
    a suffix), beside ``--out`` when it names the photos' CSV, else here."""
    if out is None:
        return Path(".")
    if out.is_dir() or not out.suffix:
        return out
    return out.parent


def predict_videos(
    predictor: Predictor, videos: list[tuple[Path, Path]], args: argparse.Namespace, photos_read: int = 0
) -> int:
    """Predict each video; the command's exit status (130 after a Ctrl-C, which stops at once; the
    video in progress keeps the rows of its frames done). A video that cannot be read is one line and
    the others still run; :class:`DataError` (exit 2) when nothing at all could be read (no video,
    and ``photos_read`` photos)."""
    from smile.video.decode import Sampler, VideoError
    from smile.video.smoothing import TrackSmoother

    if getattr(args, "aligned", False):
        raise OptionError("--aligned is for photos that are already aligned crops, not for videos")
    Sampler(args.every, args.fps), TrackSmoother(args.smoothing)  # noqa: B018 (their checks, before any file)
    if args.detect_every < 1:
        raise OptionError(f"--detect_every is {args.detect_every}: give 1 (every frame) or more")
    folder = output_folder(args.out)
    read, failed = 0, []
    for _, video in videos:
        try:
            read += predict_one(predictor, video, folder, args) > 0
        except VideoError as err:
            failed.append(str(err))
            print(f"skipped {err}", file=sys.stderr)
        except KeyboardInterrupt:
            return 130
    if not read and failed and not photos_read:
        raise DataError(
            failed[0] if len(failed) == 1 else f"none of the {len(failed)} videos could be read ({failed[0]})"
        )
    return 0


def predict_one(predictor: Predictor, video: Path, folder: Path, args: argparse.Namespace) -> int:
    """Predict one video and write its outputs; the number of frames predicted. A Ctrl-C stops it
    with its outputs written for the frames done, and is raised again."""
    from smile.video.files import Interrupted, output_stem, predict_to_files

    annotate = None if args.annotate_dir is None else args.annotate_dir / f"{video.stem}.annotated.mp4"
    try:
        run = predict_to_files(
            predictor,
            video,
            output_stem(folder, video),
            every=args.every,
            fps=args.fps,
            smoothing=args.smoothing,
            detect_every=args.detect_every,
            annotate=annotate,
            on_start=lambda reader: print(f"{video}: {reader.info.describe()}", file=sys.stderr),
            frames=_progress,
        )
        interrupted = False
    except Interrupted as stop:
        run, interrupted = stop.run, True
    print(run.summary.line())
    written = ", ".join(str(path) for path in run.files.values())
    print(
        f"{run.frames:,} frames in {run.seconds:.1f} s ({run.speed:.1f} frames/s); wrote {written}",
        file=sys.stderr,
    )
    if run.annotated is not None:
        print(f"Annotated video: {run.annotated}", file=sys.stderr)
    if run.problem:
        print(f"note: {run.problem}; the rows of the frames before it are written", file=sys.stderr)
    if interrupted:
        print(
            f"Interrupted after {run.frames:,} frames: {run.files['.frames.csv']} holds their rows; the "
            "summary and timeline cover them",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    return run.frames


def _progress(reader):
    frames, fps, rate = reader.info.frames, reader.info.fps, reader.rate
    if not frames or frames < 300 or not sys.stderr.isatty():
        return reader
    from tqdm import tqdm

    total = round(frames * rate / fps) if fps and rate else frames
    return tqdm(reader, total=total, desc=reader.path.name, unit="frame", file=sys.stderr)
