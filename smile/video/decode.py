"""Reading a video as a stream of frames, never whole: :class:`VideoReader` decodes a file with PyAV
(FFmpeg, as torchvision does) and yields one :class:`Frame` (index, time, RGB array) at a time, keeping
only the frames that sampling asks for (``every`` N-th, or ``fps`` a second); :func:`array_frames` does
the same for numpy frames from a camera the caller opened.

PyAV, not OpenCV's reader: both decode d6.mp4 (480x480 H.264) at about 1,200 frames a second on this
2-core machine and d13.mp4 (720x1280) at about 300 (``benchmarks/video.py``), under 3% of a predicted
frame's time either way; PyAV also says why a file will not decode (FFmpeg's own message), gives each
frame's presentation time, the declared frame count (so a truncated file is told from a short one), and
encodes H.264 for the annotated video (OpenCV's wheel has no H.264 encoder).

A file that is not a video, is empty, has no video stream or a codec this FFmpeg cannot decode raises
:class:`VideoError`, one line naming the file and what was found. A file that stops decoding part-way
(truncated, damaged) yields the frames before the damage; :attr:`VideoReader.problem` then says what
happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smile.errors import DataError, OptionError, SmileError

#: File suffixes taken for videos (``smile predict`` sends the rest to the photo pipeline).
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts",
    ".mts", ".m2ts", ".ogv", ".y4m", ".gif",
)  # fmt: skip
_INSTALL = "pip install av (PyAV, FFmpeg's Python binding; a base dependency of smile)"


class VideoError(SmileError, ValueError):
    """A video that cannot be read at all; the message names the file and what was found."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its ``index`` in the source (0-based, counting every frame, sampled or not),
    its ``time`` in seconds from the first frame, and its pixels (``HxWx3`` uint8 RGB)."""

    index: int
    time: float
    rgb: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says of itself: size, frame rate (``None`` when unknown), declared frame count
    and duration (``None`` when the container does not say), codec."""

    path: Path
    width: int
    height: int
    fps: float | None
    frames: int | None
    duration: float | None
    codec: str

    def describe(self) -> str:
        rate = f"{self.fps:.3g} fps" if self.fps else "unknown frame rate"
        length = f", {self.frames:,} frames" if self.frames else ""
        return f"{self.width}x{self.height} {self.codec}, {rate}{length}"


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is taken for a video (by its suffix, :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_videos(path: str | Path, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """``path`` itself if it is a video file, else the videos under it (recursively, sorted), hidden
    ones and those under ``exclude`` left out."""
    path = Path(path)
    if path.is_file():
        return [path] if is_video(path) else []
    if not path.is_dir():
        raise DataError(f"{path} does not exist: give a video or photo file, or a folder of them")
    skip = [Path(folder).resolve() for folder in exclude]
    found = []
    for candidate in sorted(path.rglob("*")):
        relative = candidate.relative_to(path)
        if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
            continue
        if is_video(candidate) and not any(candidate.resolve().is_relative_to(f) for f in skip):
            found.append(candidate)
    return found


def _av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - a base dependency
        raise DataError(f"reading videos needs PyAV ({err}): {_INSTALL}") from err
    return av


def ffmpeg_reason(err: BaseException) -> str:
    """FFmpeg's message of ``err``, without PyAV's errno and file name."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())[:160]


def _container_kind(path: Path) -> str | None:
    """What the first bytes say the file is (``"MP4"``, ``"Matroska/WebM"``, ``"AVI"``), or ``None``."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def _mp4_boxes(path: Path) -> list[str]:
    """The types of an MP4 file's top-level boxes, read from their headers (the file is not loaded)."""
    boxes = []
    with open(path, "rb") as handle:
        size_of_file = path.stat().st_size
        offset = 0
        while offset + 8 <= size_of_file and len(boxes) < 1000:
            handle.seek(offset)
            header = handle.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
            if size == 1 and len(header) == 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = size_of_file - offset
            boxes.append(kind)
            if size < 8:
                break
            offset += size
    return boxes


def _not_readable(path: Path, err: BaseException) -> VideoError:
    """The one line for a file FFmpeg would not open."""
    kind = _container_kind(path)
    found = ffmpeg_reason(err)
    if kind == "MP4" and "moov" not in _mp4_boxes(path):
        return VideoError(
            f"{path}: a truncated MP4 (its index, the moov box, is missing: the recording did not "
            f"finish, or the file was cut; FFmpeg: {found})"
        )
    if kind is not None:
        return VideoError(f"{path}: a damaged or truncated {kind} file (FFmpeg: {found})")
    return VideoError(f"{path}: not a video (FFmpeg: {found})")


def _fraction(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 and math.isfinite(number) else None


class Sampler:
    """Which frames to keep: all, every ``every``-th (by index), or ``fps`` a second (the first frame at
    or after each multiple of 1/``fps`` seconds)."""

    def __init__(self, every: int | None = None, fps: float | None = None) -> None:
        if every is not None and fps is not None:
            raise OptionError("give --every or --fps, not both")
        if every is not None and every < 1:
            raise OptionError(f"every is {every}: give a whole number of frames, 1 or more")
        if fps is not None and not fps > 0:
            raise OptionError(f"fps is {fps}: give a positive number of frames a second")
        self.every, self.fps = every, fps
        self._slot = -1

    def keep(self, index: int, when: float) -> bool:
        if self.every is not None:
            return index % self.every == 0
        if self.fps is None:
            return True
        # one frame in each 1/fps-second slot: the first one in it (a thousandth of a slot of slack for
        # rounded times)
        slot = math.floor(when * self.fps + 1e-3)
        if slot > self._slot:
            self._slot = slot
            return True
        return False

    def rate(self, source_fps: float | None) -> float | None:
        """The frame rate of the kept frames, for a source of ``source_fps``."""
        if source_fps is None:
            return self.fps
        if self.every is not None:
            return source_fps / self.every
        return source_fps if self.fps is None else min(source_fps, self.fps)


class VideoReader:
    """A video file opened for streaming. ``info`` describes it; iterating yields the sampled frames
    (:class:`Frame`), one decoded at a time; afterwards :attr:`decoded` counts the frames decoded and
    :attr:`problem` says why decoding stopped early (``None`` when it reached the end).

    Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, every: int | None = None, fps: float | None = None) -> None:
        self.path = Path(path)
        self.sampler = Sampler(every, fps)
        self.decoded = 0
        self.problem: str | None = None
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: an empty file (0 bytes), not a video")
        av = _av()
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as err:
            raise _not_readable(self.path, err) from err
        except (OSError, ValueError) as err:
            raise _not_readable(self.path, err) from err
        try:
            self.info = self._describe()
        except BaseException:
            self._container.close()
            raise

    def _describe(self) -> VideoInfo:
        container = self._container
        if not container.streams.video:
            audio = " (it has sound only)" if container.streams.audio else ""
            raise VideoError(f"{self.path}: no video stream in the file{audio}: a zero-length or empty video")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoError(
                f"{self.path}: an unsupported video codec (this FFmpeg has no decoder for the file's "
                "video stream); re-encode it as H.264, VP9 or AV1"
            )
        stream.thread_type = "AUTO"  # frame threads: about 1.5x the frames a second on 2 cores
        fps = _fraction(stream.average_rate) or _fraction(stream.guessed_rate)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = _fraction(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = _fraction(container.duration / 1_000_000)
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError(
                f"{self.path}: a video stream without a picture size ({stream.codec_context.name})"
            )
        return VideoInfo(
            self.path, width, height, fps, int(stream.frames) or None, duration, stream.codec_context.name
        )

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    @property
    def rate(self) -> float | None:
        """Frames a second of the frames yielded."""
        return self.sampler.rate(self.info.fps)

    def __iter__(self) -> Iterator[Frame]:
        av = _av()
        stream = self._container.streams.video[0]
        start: float | None = None
        fps = self.info.fps or 30.0
        try:
            for packet in self._container.demux(stream):
                for picture in packet.decode():
                    index = self.decoded
                    self.decoded += 1
                    stamp = picture.time
                    if stamp is None:
                        when = index / fps
                    else:
                        start = stamp if start is None else start
                        when = max(0.0, float(stamp - start))
                    if self.sampler.keep(index, when):
                        yield Frame(index, round(when, 6), picture.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as err:
            self.problem = f"decoding stopped at frame {self.decoded} (FFmpeg: {ffmpeg_reason(err)})"
            return
        except EOFError:
            pass
        if self.decoded == 0:
            self.problem = "no frame could be decoded"
        elif self.info.frames and self.decoded < self.info.frames - 1:
            self.problem = f"only {self.decoded:,} of the {self.info.frames:,} frames it declares decoded"

    def describe_problem(self) -> str | None:
        """One line for :attr:`problem`, naming the file (``None`` when there was none)."""
        if self.problem is None:
            return None
        truncated = "truncated or damaged: " if self.decoded else ""
        return f"{self.path}: {truncated}{self.problem}"


def array_frames(
    frames: Iterable[np.ndarray | tuple[float, np.ndarray]],
    rate: float | None = None,
    channels: str = "RGB",
    every: int | None = None,
    fps: float | None = None,
) -> Iterator[Frame]:
    """Numpy frames (``HxWx3`` uint8; BGR with ``channels="BGR"``, as OpenCV's camera gives them) as
    :class:`Frame`, sampled like a file. A frame's time is its own when the items are ``(time, array)``
    pairs, else ``index / rate`` when ``rate`` (the source's frames a second) is given, else the time it
    arrived since the first one (a live camera)."""
    if channels not in ("RGB", "BGR"):
        raise OptionError(f"channels={channels!r}: give 'RGB' or 'BGR'")
    sampler = Sampler(every, fps)
    started: float | None = None
    for index, item in enumerate(frames):
        if isinstance(item, tuple):
            when, array = float(item[0]), item[1]
        else:
            array = item
            if rate:
                when = index / rate
            else:
                now = time.monotonic()
                started = now if started is None else started
                when = now - started
        if not sampler.keep(index, when):
            continue
        yield Frame(index, round(when, 6), as_rgb(array, channels))


def as_rgb(array: np.ndarray, channels: str = "RGB") -> np.ndarray:
    """A frame as contiguous ``HxWx3`` uint8 RGB (grey frames repeated, an alpha channel dropped)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise OptionError(f"a video frame must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise OptionError(f"a video frame must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    array = array[:, :, :3]
    if channels == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)
