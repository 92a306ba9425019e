"""What predicting a video writes: the per-frame CSV (streamed, valid at every moment), the per-track
summary (JSON and CSV: first and last seen, frames, share of time with the attribute, its episodes),
a timeline figure, and an annotated copy of the video.

The CSV is written as the frames come: each frame's rows in one write, so that a stop at any moment
(Ctrl-C, a kill, a truncated input) leaves whole rows of the frames done, and nothing is held back.
A frame without a face gets one row with an empty track (``status`` ``no_face``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from smile.io import atomic_write
from smile.video.pipeline import FrameResult

FRAME_COLUMNS = (
    "video",
    "frame",
    "time",
    "track",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "score",
    "found",
    "status",
)


def main_attribute(attributes: Sequence[str]) -> str:
    """The attribute whose episodes are summarised: ``Smiling`` when the model has it, else its first."""
    return "Smiling" if "Smiling" in attributes else attributes[0]


class FrameCSV:
    """The per-frame CSV at ``path``: ``video, frame, time, track, box_x, box_y, box_w, box_h, score,
    found, status``, then for each attribute ``A``: ``A_raw`` (this frame's probability), ``A_smoothed``
    (over the track's recent frames) and ``A`` (the decision, 1 or 0, on the smoothed probability)."""

    def __init__(self, path: Path, attributes: Sequence[str], video: str) -> None:
        self.path, self.attributes, self.video = Path(path), list(attributes), video
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self.rows = self.frames = 0
        columns = [*FRAME_COLUMNS]
        for name in self.attributes:
            columns += [f"{name}_raw", f"{name}_smoothed", name]
        self._write([columns])

    def _write(self, rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        data = buffer.getvalue().encode()
        while data:  # one write for a frame's rows (a short write only on a full disk or a signal)
            written = os.write(self._fd, data)
            data = data[written:]

    def add(self, result: FrameResult) -> None:
        """Write the rows of one frame."""
        base = [self.video, result.index, f"{result.time:.4f}"]
        if not result.faces:
            rows = [[*base, "", "", "", "", "", "", "detected" if result.detected else "", "no_face"]]
            rows[0] += [""] * (3 * len(self.attributes))
        else:
            rows = []
            for face in result.faces:
                score = "" if face.score is None else f"{face.score:.4f}"
                row = [*base, face.track, *face.box, score, face.found, "ok"]
                for name in self.attributes:
                    row += [
                        f"{face.probabilities[name]:.6f}",
                        f"{face.smoothed[name]:.6f}",
                        int(face.predicted[name]),
                    ]
                rows.append(row)
        self._write(rows)
        self.rows += len(rows)
        self.frames += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FrameCSV:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class TrackRecord:
    """What is kept of one track while the video runs (a few numbers a frame, for the timeline)."""

    track: int
    first: float
    last: float
    frames: int = 0
    positive: dict[str, int] = field(default_factory=dict)
    episodes: list[list[float]] = field(default_factory=list)  # [start, end] of the main attribute
    times: array = field(default_factory=lambda: array("d"))
    smoothed: array = field(default_factory=lambda: array("d"))
    raw: array = field(default_factory=lambda: array("f"))
    _open: bool = False


class TrackSummary:
    """The per-track summary, built as the frames come: for each track, when it was first and last
    seen, in how many frames, the share of them with each attribute (by the smoothed decision), and the
    episodes of the main attribute (:func:`main_attribute`): runs of frames with it, from the first
    frame's time to the end of the last one."""

    def __init__(self, attributes: Sequence[str], thresholds: Sequence[float], video: str) -> None:
        self.attributes, self.video = list(attributes), video
        self.attribute = main_attribute(self.attributes)
        self.threshold = float(thresholds[self.attributes.index(self.attribute)])
        self.tracks: dict[int, TrackRecord] = {}
        self.frames = 0
        self.frames_with_faces = 0
        self.step: float | None = None  # the time between frames, for an episode's last frame
        self._last_time: float | None = None
        self.end = 0.0

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        if self._last_time is not None and result.time > self._last_time and self.step is None:
            self.step = result.time - self._last_time
        self._last_time = result.time
        self.end = result.time
        self.frames_with_faces += bool(result.faces)
        seen = set()
        for face in result.faces:
            record = self.tracks.get(face.track)
            if record is None:
                record = self.tracks[face.track] = TrackRecord(face.track, result.time, result.time)
            seen.add(face.track)
            record.last = result.time
            record.frames += 1
            for name in self.attributes:
                record.positive[name] = record.positive.get(name, 0) + int(face.predicted[name])
            record.times.append(result.time)
            record.smoothed.append(face.smoothed[self.attribute])
            record.raw.append(face.probabilities[self.attribute])
            on = face.predicted[self.attribute]
            if on and not record._open:
                record.episodes.append([result.time, result.time])
            if on:
                record.episodes[-1][1] = result.time
            record._open = on
        for track, record in self.tracks.items():
            if track not in seen:
                record._open = False

    def _frame_step(self) -> float:
        return self.step or 0.0

    def to_dict(self) -> dict[str, Any]:
        step = self._frame_step()
        tracks = []
        for record in sorted(self.tracks.values(), key=lambda r: r.track):
            episodes = [
                {"start": round(a, 4), "end": round(b + step, 4), "duration": round(b + step - a, 4)}
                for a, b in record.episodes
            ]
            tracks.append(
                {
                    "track": record.track,
                    "first_seen": round(record.first, 4),
                    "last_seen": round(record.last, 4),
                    "frames": record.frames,
                    "share": {n: round(record.positive[n] / record.frames, 4) for n in self.attributes},
                    "episodes": episodes,
                }
            )
        return {
            "video": self.video,
            "attribute": self.attribute,
            "threshold": self.threshold,
            "frames": self.frames,
            "frames_with_faces": self.frames_with_faces,
            "duration": round(self.end + step, 4),
            "tracks": tracks,
        }

    def write_json(self, path: Path, extra: dict[str, Any] | None = None) -> Path:
        data = {**self.to_dict(), **(extra or {})}
        with atomic_write(path) as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        return path

    def write_csv(self, path: Path) -> Path:
        """One row per track: ``video, track, first_seen, last_seen, frames, share_A`` (the main
        attribute's share of the track's frames), ``episodes`` (its count) and ``episode_times``
        (``start-end`` in seconds, separated by spaces)."""
        data = self.to_dict()
        name = self.attribute
        with atomic_write(path, newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(
                [
                    "video",
                    "track",
                    "first_seen",
                    "last_seen",
                    "frames",
                    f"share_{name}",
                    "episodes",
                    "episode_times",
                ]
            )
            for track in data["tracks"]:
                times = " ".join(f"{e['start']:.2f}-{e['end']:.2f}" for e in track["episodes"])
                writer.writerow(
                    [
                        self.video,
                        track["track"],
                        f"{track['first_seen']:.3f}",
                        f"{track['last_seen']:.3f}",
                        track["frames"],
                        f"{track['share'][name]:.4f}",
                        len(track["episodes"]),
                        times,
                    ]
                )
        return path

    def line(self) -> str:
        """One line for the terminal."""
        if not self.tracks:
            return f"{self.video}: {self.frames:,} frames, no face found"
        parts = []
        for record in sorted(self.tracks.values(), key=lambda r: r.track):
            share = record.positive[self.attribute] / record.frames
            parts.append(
                f"track {record.track}: {record.first:.1f}-{record.last:.1f} s, {share:.0%} {self.attribute}, "
                f"{len(record.episodes)} episode{'s' if len(record.episodes) != 1 else ''}"
            )
        return f"{self.video}: {self.frames:,} frames, {len(self.tracks)} track(s); " + "; ".join(parts)


def write_timeline(summary: TrackSummary, path: Path, max_tracks: int = 8) -> Path:
    """The timeline figure: for each track (the ``max_tracks`` seen longest), its smoothed probability
    of the main attribute over time (the raw one faint behind it), the threshold, and its episodes
    shaded."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    records = sorted(summary.tracks.values(), key=lambda r: -r.frames)[:max_tracks]
    records.sort(key=lambda r: r.track)
    rows = max(1, len(records))
    figure = Figure(figsize=(9, 1.2 + 1.5 * rows), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    end = max(summary.end + summary._frame_step(), 1e-3)
    step = summary._frame_step()
    for ax, record in zip(axes, records):
        for start, stop in record.episodes:
            ax.axvspan(start, stop + step, color="#2e7d32", alpha=0.18, lw=0)
        times = np.frombuffer(record.times, dtype=np.float64)
        ax.plot(times, np.frombuffer(record.raw, dtype=np.float32), ".", ms=2, color="#999999", label="raw")
        ax.plot(
            times,
            np.frombuffer(record.smoothed, dtype=np.float64),
            "-",
            lw=1.5,
            color="#1f4e9c",
            label="smoothed",
        )
        ax.axhline(summary.threshold, ls="--", lw=0.8, color="#b00020", label="threshold")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"track {record.track}")
        ax.set_xlim(0, end)
        ax.grid(alpha=0.25)
    if not records:
        axes[0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_xlim(0, end)
        axes[0].set_yticks([])
    else:
        from matplotlib.patches import Patch

        handles, _ = axes[0].get_legend_handles_labels()
        handles += [Patch(color="#2e7d32", alpha=0.18, label="episode")]
        axes[0].legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False
        )
    axes[-1].set_xlabel("time (s)")
    figure.suptitle(
        f"{summary.video}: P({summary.attribute}) per track, smoothed; episodes shaded, threshold dashed",
        fontsize=10,
    )
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path


# --- the annotated video ----------------------------------------------------------------------------

#: Encoders tried in turn for the annotated video: H.264 in MP4 (every browser, phone and player), else
#: VP9, then VP8, in WebM (Chromium and Firefox).
ENCODERS = (("libx264", ".mp4"), ("libvpx-vp9", ".webm"), ("libvpx", ".webm"))


def annotated_encoder() -> tuple[str, str]:
    """The first encoder of :data:`ENCODERS` this PyAV's FFmpeg has, and its file suffix."""
    import av

    for codec, suffix in ENCODERS:
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # not in this build
            continue
        return codec, suffix
    raise RuntimeError("this PyAV's FFmpeg has none of the encoders libx264, libvpx-vp9, libvpx")


def draw(rgb: np.ndarray, result: FrameResult, attribute: str, threshold: float) -> np.ndarray:
    """A copy of the frame with each face's box, track id and smoothed probability of ``attribute``:
    green when the smoothed decision is positive, red when not."""
    import cv2

    image = np.ascontiguousarray(rgb).copy()
    side = max(image.shape[:2])
    thick = max(2, round(side / 300))
    scale = max(0.45, side / 1000)
    for face in result.faces:
        x, y, w, h = face.box
        p = face.smoothed[attribute]
        colour = (40, 200, 60) if face.predicted[attribute] else (230, 50, 50)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, thick)
        text = f"#{face.track} {attribute} {p:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thick // 2))
        ty = y - 4 if y - th - base - 4 >= 0 else min(y + h + th + 4, image.shape[0] - base)
        cv2.rectangle(image, (x, ty - th - 3), (x + tw + 4, ty + base), (0, 0, 0), -1)
        cv2.putText(
            image, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, thick // 2), cv2.LINE_AA
        )
    return image


class AnnotatedVideo:
    """The annotated copy of a video, written frame by frame: H.264 MP4 (yuv420p, ``+faststart`` so a
    browser starts playing before the end), else VP9/VP8 WebM. ``path``'s suffix is replaced by the
    encoder's; :attr:`path` is the file written. Even sizes (4:2:0) crop the last odd row or column."""

    def __init__(self, path: Path, rate: float | None, attribute: str, threshold: float) -> None:
        import av

        codec, suffix = annotated_encoder()
        self.path = Path(path).with_suffix(suffix)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.attribute, self.threshold = attribute, threshold
        options = {"movflags": "+faststart"} if suffix == ".mp4" else {}
        self._container = av.open(str(self.path), "w", options=options)
        self._codec = codec
        self._rate = Fraction(rate or 30.0).limit_denominator(1001)
        self._stream = None
        self.frames = 0

    def _open(self, width: int, height: int) -> None:
        stream = self._container.add_stream(self._codec, rate=self._rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if self._codec == "libx264":
            stream.options = {"crf": "23", "preset": "veryfast"}
        else:
            stream.options = {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        self._stream = stream

    def add(self, rgb: np.ndarray, result: FrameResult) -> None:
        import av

        height, width = rgb.shape[:2]
        even_w, even_h = width - width % 2, height - height % 2
        if self._stream is None:
            self._open(even_w, even_h)
        picture = draw(rgb, result, self.attribute, self.threshold)[
            : self._stream.height, : self._stream.width
        ]
        if picture.shape[:2] != (self._stream.height, self._stream.width):  # a stream changed size
            import cv2

            picture = cv2.resize(picture, (self._stream.width, self._stream.height))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (the frames written so far make a valid video)."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
            if self.frames == 0:
                self.path.unlink(missing_ok=True)
