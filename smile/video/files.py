"""One video file predicted into its output files (``smile predict CLIP.mp4`` and ``smile serve``'s
video upload share it): ``STEM.frames.csv``, ``STEM.tracks.json``, ``STEM.tracks.csv``,
``STEM.timeline.png`` and, when asked, the annotated video.

The CSV is written frame by frame as the results come. Whatever stops the run part-way (Ctrl-C, the
caller's ``on_frame`` raising :class:`Stop`, a truncated file) leaves it valid, and the summary and
timeline are still written for the frames done; a Ctrl-C is then raised again for the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smile.video import DEFAULT_DETECT_EVERY, DEFAULT_SMOOTHING
from smile.video.decode import VideoError, VideoInfo, VideoReader
from smile.video.outputs import AnnotatedVideo, FrameCSV, TrackSummary, write_timeline
from smile.video.pipeline import FrameResult, VideoStream

if TYPE_CHECKING:
    from smile.api import Predictor

#: The outputs of one video, by their suffix after its name.
OUTPUTS = (".frames.csv", ".tracks.json", ".tracks.csv", ".timeline.png")


class Stop(Exception):
    """Raised by an ``on_frame`` callback to end a run early (a cancelled upload)."""


@dataclass
class VideoRun:
    """What one run wrote and found: the files, the summary, how long it took, and whether it stopped
    early (``problem``: the file's damage; ``stopped``: ``"interrupted"`` or the :class:`Stop`'s
    message)."""

    video: Path
    info: VideoInfo
    rate: float | None
    summary: TrackSummary
    files: dict[str, Path]
    annotated: Path | None
    seconds: float
    problem: str | None
    stopped: str | None

    @property
    def frames(self) -> int:
        return self.summary.frames

    @property
    def speed(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def output_stem(folder: Path, video: Path) -> Path:
    """``folder/NAME`` for the first ``NAME`` (the video's stem, else ``stem-2``...) none of whose
    outputs exists: one video's outputs share one name, and an earlier run's are never replaced."""
    number = 1
    while True:
        name = video.stem if number == 1 else f"{video.stem}-{number}"
        stem = folder / name
        if not any(Path(f"{stem}{suffix}").exists() for suffix in OUTPUTS):
            return stem
        number += 1


def predict_to_files(
    predictor: Predictor,
    video: Path,
    stem: Path,
    every: int | None = None,
    fps: float | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    detect_every: int = DEFAULT_DETECT_EVERY,
    annotate: Path | None = None,
    name: str | None = None,
    on_start: Callable[[VideoReader], Any] | None = None,
    on_frame: Callable[[FrameResult], Any] | None = None,
    frames: Callable[[VideoReader], Any] | None = None,
) -> VideoRun:
    """Predict ``video`` into ``STEM`` + :data:`OUTPUTS` (and the annotated copy at ``annotate``, its
    suffix the encoder's). ``name``: the video's name in the outputs (default: the file's);
    ``on_start(reader)`` is called once the file is open, ``on_frame(result)`` after each frame's rows
    are written; ``frames(reader)`` may wrap the frames (a progress bar). Raises :class:`VideoError`
    when not one frame could be read."""
    reader = VideoReader(video, every, fps)
    name = name or video.name
    attributes, thresholds = predictor.attributes, predictor.thresholds.tolist()
    summary = TrackSummary(attributes, thresholds, name)
    files = {suffix: Path(f"{stem}{suffix}") for suffix in OUTPUTS}
    annotated: AnnotatedVideo | None = None
    stopped: str | None = None
    started = time.perf_counter()
    try:
        stream = VideoStream(predictor, smoothing, detect_every, reader.rate)  # its options checked first
        if on_start is not None:
            on_start(reader)
        table = FrameCSV(files[".frames.csv"], attributes, name)
        try:
            if annotate is not None:
                annotated = AnnotatedVideo(annotate, reader.rate, summary.attribute, summary.threshold)
            for frame, result in stream.run(frames(reader) if frames is not None else reader):
                table.add(result)
                summary.add(result)
                if annotated is not None:
                    annotated.add(frame.rgb, result)
                if on_frame is not None:
                    on_frame(result)
        except KeyboardInterrupt:
            stopped = "interrupted"
        except Stop as err:
            stopped = str(err) or "stopped"
        finally:
            table.close()
            if annotated is not None:
                annotated.close()
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    if summary.frames == 0 and stopped is None:
        files[".frames.csv"].unlink(missing_ok=True)
        raise VideoError(reader.describe_problem() or f"{video}: no frame could be decoded")
    problem = reader.describe_problem()
    extra = {
        "source": name,
        "info": reader.info.describe(),
        "sampling": {"every": every, "fps": fps, "rate": reader.rate},
        "smoothing_seconds": smoothing,
        "detect_every": detect_every,
        "model": predictor.model.source.name,
        "complete": stopped is None and problem is None,
        "problem": problem or stopped,
        "seconds": round(seconds, 2),
    }
    summary.write_json(files[".tracks.json"], extra)
    summary.write_csv(files[".tracks.csv"])
    write_timeline(summary, files[".timeline.png"])
    run = VideoRun(
        video,
        reader.info,
        reader.rate,
        summary,
        files,
        annotated.path if annotated is not None and annotated.frames else None,
        seconds,
        problem,
        stopped,
    )
    if stopped == "interrupted":
        raise Interrupted(run)
    return run


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`predict_to_files`, after its outputs were written for the frames done."""

    def __init__(self, run: VideoRun) -> None:
        super().__init__(f"interrupted after {run.frames} frames")
        self.run = run
