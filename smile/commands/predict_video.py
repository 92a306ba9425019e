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
import time
from pathlib import Path
from typing import TYPE_CHECKING

from smile.errors import DataError, OptionError

if TYPE_CHECKING:
    from smile.api import Predictor

#: The outputs of one video, by their suffix after the video's name.
OUTPUTS = (".frames.csv", ".tracks.json", ".tracks.csv", ".timeline.png")


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """``smile predict``'s options for videos."""
    from smile.video import DEFAULT_DETECT_EVERY
    from smile.video import DEFAULT_SMOOTHING as DEFAULT_TAU

    group = parser.add_argument_group(
        "videos (.mp4 .mov .avi .mkv .webm ...: CLIP.frames.csv, CLIP.tracks.json/.csv and "
        "CLIP.timeline.png in the current folder, or in --out when it is a folder)"
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


def output_stem(folder: Path, video: Path) -> Path:
    """``folder/NAME`` for the first ``NAME`` (the video's stem, else ``stem-2``...) none of whose
    outputs exists: one video's outputs keep one name, and an earlier run's are never replaced."""
    number = 1
    while True:
        name = video.stem if number == 1 else f"{video.stem}-{number}"
        stem = folder / name
        if not any(Path(f"{stem}{suffix}").exists() for suffix in OUTPUTS):
            return stem
        number += 1


def predict_videos(
    predictor: Predictor, videos: list[tuple[Path, Path]], args: argparse.Namespace, photos_read: int = 0
) -> int:
    """Predict each video; the command's exit status (130 after a Ctrl-C, which stops at once; the
    video in progress keeps the rows of its frames done). A video that cannot be read is one line and
    the others still run; :class:`DataError` (exit 2) when nothing at all could be read (no video,
    and ``photos_read`` photos)."""
    from smile.video.decode import VideoError

    if getattr(args, "aligned", False):
        raise OptionError("--aligned is for photos that are already aligned crops, not for videos")
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
    """Predict one video and write its outputs; the number of frames predicted."""
    from smile.video import outputs
    from smile.video.decode import VideoError, VideoReader
    from smile.video.pipeline import VideoStream

    reader = VideoReader(video, args.every, args.fps)
    stem = output_stem(folder, video)
    frames_csv = Path(f"{stem}.frames.csv")
    attributes, thresholds = predictor.attributes, predictor.thresholds.tolist()
    summary = outputs.TrackSummary(attributes, thresholds, video.name)
    annotated = None
    started = time.perf_counter()
    interrupted = False
    print(f"{video}: {reader.info.describe()}", file=sys.stderr)
    try:
        table = outputs.FrameCSV(frames_csv, attributes, video.name)
        try:
            if args.annotate_dir is not None:
                annotated = outputs.AnnotatedVideo(
                    args.annotate_dir / f"{video.stem}.annotated.mp4",
                    reader.rate,
                    summary.attribute,
                    summary.threshold,
                )
            stream = VideoStream(predictor, args.smoothing, args.detect_every, reader.rate)
            for frame, result in stream.run(_progress(reader)):
                table.add(result)
                summary.add(result)
                if annotated is not None:
                    annotated.add(frame.rgb, result)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            table.close()
            if annotated is not None:
                annotated.close()
    finally:
        reader.close()
    elapsed = time.perf_counter() - started
    if summary.frames == 0 and not interrupted:
        frames_csv.unlink(missing_ok=True)
        raise VideoError(reader.describe_problem() or f"{video}: no frame could be decoded")
    extra = {
        "source": str(video),
        "info": reader.info.describe(),
        "sampling": {"every": args.every, "fps": args.fps, "rate": reader.rate},
        "smoothing_seconds": args.smoothing,
        "detect_every": args.detect_every,
        "model": str(predictor.source),
        "complete": not interrupted and reader.problem is None,
        "problem": reader.describe_problem() or ("interrupted" if interrupted else None),
    }
    summary.write_json(Path(f"{stem}.tracks.json"), extra)
    summary.write_csv(Path(f"{stem}.tracks.csv"))
    outputs.write_timeline(summary, Path(f"{stem}.timeline.png"))
    print(summary.line())
    speed = summary.frames / elapsed if elapsed > 0 else float("nan")
    written = ", ".join(f"{stem}{suffix}" for suffix in OUTPUTS)
    print(
        f"{summary.frames:,} frames in {elapsed:.1f} s ({speed:.1f} frames/s); wrote {written}",
        file=sys.stderr,
    )
    if annotated is not None and annotated.frames:
        print(f"Annotated video: {annotated.path}", file=sys.stderr)
    problem = reader.describe_problem()
    if problem:
        print(f"note: {problem}; the rows of the frames before it are written", file=sys.stderr)
    if interrupted:
        print(
            f"Interrupted after {summary.frames:,} frames: {frames_csv} holds their rows, the summary "
            "and timeline cover them",
            file=sys.stderr,
        )
        raise KeyboardInterrupt
    return summary.frames


def _progress(reader):
    frames, fps, rate = reader.info.frames, reader.info.fps, reader.rate
    if not frames or frames < 300 or not sys.stderr.isatty():
        return reader
    from tqdm import tqdm

    total = round(frames * rate / fps) if fps and rate else frames
    return tqdm(reader, total=total, desc=reader.path.name, unit="frame", file=sys.stderr)
