"""The service's limits and batching, apart from the service so that ``smile serve --help`` shows their
defaults without loading FastAPI or torch."""

from __future__ import annotations

from dataclasses import dataclass

from smile.faces.options import FaceOptions
from smile.video import DEFAULT_SMOOTHING


@dataclass
class ServeSettings:
    """Limits and batching of the service.

    ``max_bytes``: largest upload; ``max_pixels``: largest image (width x height), refused before it is
    decoded; ``workers``: threads that decode and detect; ``max_pending``: requests admitted at once (more
    get 503); ``batch_size``: most faces per network run (1: no batching); ``batch_timeout``: seconds the
    first face of a batch waits for others.

    Moving faces (:mod:`smile.serve.video`): ``max_sessions`` camera sessions at once (the one idle
    longest gives way), each ended after ``session_idle`` seconds unused; ``smoothing``: each track's
    time constant, seconds; uploaded videos of at most ``max_video_bytes`` and ``max_video_seconds``,
    the last ``keep_jobs`` of them kept.
    """

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int | None = FaceOptions.max_pixels
    workers: int = 2
    max_pending: int = 64
    batch_size: int = 16
    batch_timeout: float = 0.005
    max_sessions: int = 8
    session_idle: float = 60.0
    smoothing: float = DEFAULT_SMOOTHING
    max_video_bytes: int = 256 * 1024 * 1024
    max_video_seconds: float | None = 600.0
    keep_jobs: int = 4
