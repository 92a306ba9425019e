"""Faces that move: a video's frames through the photo pipeline's detector and aligner, a tracker (a
stable id per person), the model in batches, and a per-track smoother.

:class:`VideoStream` is the state of one stream (a file, a camera, a web page's camera): its tracker
and smoother. Frame by frame it finds the faces (a full detection every ``detect_every`` frames, and in
between MTCNN's cheap second look at the boxes the tracks expect: landmarks on every frame for a tenth
of the cost), gives each a track id, and queues its aligned crop; :meth:`VideoStream.flush` runs the
queued crops of several frames through the network at once, smooths each track's probabilities over
time and answers one :class:`FrameResult` per frame, in order.

:func:`predict_video` (``smile.load().predict_video``) runs a file, or an iterable of numpy frames,
through a stream and yields each frame's result as it comes; only a batch of frames is ever held.

With ``detect_every=1`` and ``smoothing=0`` every frame is predicted exactly as a photo of it would be
by ``smile.load().predict`` (``benchmarks/video.py`` checks it to 1e-5); videos never take the photo
rule for a frame without a face (predicting it whole), since a frame without a face has no track.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smile.errors import OptionError
from smile.faces.aligner import Face
from smile.video import DEFAULT_DETECT_EVERY
from smile.video.decode import Frame, VideoReader, array_frames
from smile.video.smoothing import DEFAULT_TAU, TrackSmoother
from smile.video.tracking import FaceTracker

if TYPE_CHECKING:
    from smile.api import Predictor

#: Frames whose faces go through the network together (at most; and at most :data:`BATCH_FACES` faces).
BATCH_FRAMES = 16
BATCH_FACES = 48

DETECTED, REFOUND = "detected", "refound"


@dataclass
class TrackedFace:
    """One tracked face in one frame: its ``track`` id (the same person keeps it from frame to frame),
    box ``(x, y, w, h)`` in the frame's pixels, detector score, how it was found (``found``: ``detected``
    by a full detection, ``refound`` by the detector's second look near where its track was) and
    framed (``method``: ``landmarks``, ``eyes`` or ``box``); the raw ``probabilities`` of this frame
    alone, the ``smoothed`` ones over the track's recent frames, and the decision on the smoothed one
    (``predicted``: above the attribute's threshold)."""

    track: int
    box: tuple[int, int, int, int]
    score: float | None
    probabilities: dict[str, float]
    smoothed: dict[str, float]
    predicted: dict[str, bool]
    found: str = DETECTED
    method: str = "landmarks"

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.box
        return {
            "track": self.track,
            "box": {"x": x, "y": y, "w": w, "h": h},
            "score": self.score,
            "found": self.found,
            "method": self.method,
            "probabilities": self.probabilities,
            "smoothed": self.smoothed,
            "predicted": self.predicted,
        }


@dataclass
class FrameResult:
    """One predicted frame: its ``index`` in the source (counting every frame, sampled or not), its
    ``time`` in seconds, its tracked faces (left to right) and whether a full detection ran on it."""

    index: int
    time: float
    faces: list[TrackedFace] = field(default_factory=list)
    detected: bool = True
    width: int = 0
    height: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.index,
            "time": self.time,
            "detected": self.detected,
            "faces": [face.to_dict() for face in self.faces],
        }


@dataclass
class _Pending:
    frame: Frame
    detected: bool
    faces: list[tuple[int, Face, str]]  # (track, face, found)


class VideoStream:
    """The state of one stream of frames: tracker, smoother, and the frames whose faces await the network.

    ``predictor``: a :class:`smile.api.Predictor` (its detector, aligner, network and thresholds);
    ``smoothing``: the smoother's time constant in seconds (0: off); ``filter``: ``ema`` or ``one_euro``
    (:mod:`smile.video.smoothing`); ``detect_every``: a full detection every this many frames (1: on
    every frame), the detector's second look at the tracked boxes in between (MTCNN only; the other
    detectors detect on every frame); ``rate``: the stream's frames a second (how many frames a lost
    face keeps its id: ``max_lost`` seconds)."""

    def __init__(
        self,
        predictor: Predictor,
        smoothing: float = DEFAULT_TAU,
        detect_every: int = DEFAULT_DETECT_EVERY,
        rate: float | None = None,
        filter: str = "ema",
        max_lost: float = 1.0,
    ) -> None:
        if detect_every < 1:
            raise OptionError(f"detect_every is {detect_every}: give 1 (every frame) or more")
        self.predictor = predictor
        self.tracker = FaceTracker(rate or 30.0, max_lost=max_lost)
        self.smoother = TrackSmoother(smoothing, filter)
        self.detect_every = detect_every
        self.pending: list[_Pending] = []
        self.frames = 0
        self._since_detection = detect_every  # the first frame gets a full detection

    @property
    def queued_faces(self) -> int:
        return sum(len(p.faces) for p in self.pending)

    def add(self, frame: Frame) -> None:
        """Find and track the faces of ``frame`` and queue them for the network (:meth:`flush`)."""
        aligner = self.predictor.pipeline.aligner()  # this thread's (a server runs streams in a pool)
        expected = self.tracker.predict()
        detections = None
        if self.detect_every > 1 and self._since_detection + 1 < self.detect_every:
            # between full detections: the tracked faces looked for again where the tracker expects
            # them (none tracked: nothing to do; a newcomer waits for the next full detection)
            boxes = np.array(list(expected.values()), dtype=np.float64).reshape(-1, 4)
            detections = aligner.refine(frame.rgb, boxes)  # None: this detector has no second look
            if detections is not None and len(detections) < len(expected):
                detections = None  # a face lost by the second look: a full detection now
        if detections is None:
            detections = aligner.detect(frame.rgb)
            self._since_detection = 0
            found = DETECTED
        else:
            self._since_detection += 1
            found = REFOUND
        detections = sorted(detections, key=lambda d: d.box[0])
        # Haar's scores are cascade weights, not probabilities: its faces all count as sure ones
        scores = [None if aligner.detector_name == "haar" else d.score for d in detections]
        ids = self.tracker.update([d.box for d in detections], scores)
        faces = [
            (track, aligner.face(frame.rgb, det), found)
            for det, track in zip(detections, ids)
            if track is not None
        ]
        self.pending.append(_Pending(frame, found == DETECTED, faces))
        self.frames += 1

    def flush(self) -> list[tuple[Frame, FrameResult]]:
        """Run the queued faces through the network (one batch), smooth them, and answer each queued
        frame with its result, in order."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        predictor = self.predictor
        crops = [face.aligned for item in pending for _, face, _ in item.faces]
        probabilities = predictor.probabilities(predictor.tensor(crops))
        names, thresholds = predictor.attributes, predictor.thresholds
        answers, start = [], 0
        for item in pending:
            faces = []
            for track, face, found in item.faces:
                raw = probabilities[start].astype(np.float64)
                start += 1
                smooth = self.smoother(track, item.frame.time, raw)
                faces.append(
                    TrackedFace(
                        track=track,
                        box=tuple(int(v) for v in face.box),  # type: ignore[arg-type]
                        score=None if face.score is None else float(face.score),
                        probabilities={n: float(p) for n, p in zip(names, raw)},
                        smoothed={n: float(p) for n, p in zip(names, smooth)},
                        predicted={n: bool(p > t) for n, p, t in zip(names, smooth, thresholds)},
                        found=found,
                        method=face.method,
                    )
                )
            height, width = item.frame.rgb.shape[:2]
            result = FrameResult(item.frame.index, item.frame.time, faces, item.detected, width, height)
            answers.append((item.frame, result))
        self.smoother.forget({t.id for t in self.tracker.tracks})
        return answers

    def run(
        self, frames: Iterable[Frame], batch_frames: int = BATCH_FRAMES, batch_faces: int = BATCH_FACES
    ) -> Iterator[tuple[Frame, FrameResult]]:
        """Every frame of ``frames`` with its result, in order, ``batch_frames`` frames (or
        ``batch_faces`` faces) at a time through the network."""
        for frame in frames:
            self.add(frame)
            if len(self.pending) >= batch_frames or self.queued_faces >= batch_faces:
                yield from self.flush()
        yield from self.flush()


def open_frames(
    source: str | Path | Iterable[Any],
    every: int | None = None,
    fps: float | None = None,
    channels: str = "RGB",
    rate: float | None = None,
) -> tuple[Iterable[Frame], float | None, VideoReader | None]:
    """The sampled frames of ``source`` (a video file, or an iterable of numpy frames or ``(time,
    frame)`` pairs), their frames a second, and the reader to close (``None`` for numpy frames)."""
    if isinstance(source, (str, Path)):
        reader = VideoReader(source, every, fps)
        return reader, reader.rate, reader
    frames = array_frames(source, rate=rate, channels=channels, every=every, fps=fps)
    if rate is None:
        kept = fps
    else:
        kept = rate / every if every else (min(rate, fps) if fps else rate)
    return frames, kept, None


def predict_video(
    predictor: Predictor,
    source: str | Path | Iterable[Any],
    every: int | None = None,
    fps: float | None = None,
    smoothing: float = DEFAULT_TAU,
    detect_every: int = DEFAULT_DETECT_EVERY,
    channels: str = "RGB",
    rate: float | None = None,
    batch_frames: int = BATCH_FRAMES,
    filter: str = "ema",
) -> Iterator[FrameResult]:
    """Each sampled frame's :class:`FrameResult`, in order, as it comes (:class:`VideoStream`)."""
    for _, result in stream_frames(
        predictor, source, every, fps, smoothing, detect_every, channels, rate, batch_frames, filter
    ):
        yield result


def stream_frames(
    predictor: Predictor,
    source: str | Path | Iterable[Any],
    every: int | None = None,
    fps: float | None = None,
    smoothing: float = DEFAULT_TAU,
    detect_every: int = DEFAULT_DETECT_EVERY,
    channels: str = "RGB",
    rate: float | None = None,
    batch_frames: int = BATCH_FRAMES,
    filter: str = "ema",
    reader_out: list | None = None,
) -> Iterator[tuple[Frame, FrameResult]]:
    """As :func:`predict_video`, each result with its frame (the annotated video draws on it);
    ``reader_out`` (a list) receives the file's :class:`VideoReader`, to read its problems after."""
    frames, kept_rate, reader = open_frames(source, every, fps, channels, rate)
    if reader_out is not None and reader is not None:
        reader_out.append(reader)
    try:
        stream = VideoStream(predictor, smoothing, detect_every, kept_rate, filter)
        yield from stream.run(frames, batch_frames=batch_frames)
    finally:
        if reader is not None:
            reader.close()
