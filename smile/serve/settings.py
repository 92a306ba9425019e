"""The service's limits and batching, apart from the service so that ``smile serve --help`` shows their
defaults without loading FastAPI or torch."""

from __future__ import annotations

from dataclasses import dataclass

from smile.faces.options import FaceOptions


@dataclass
class ServeSettings:
    """Limits and batching of the service.

    ``max_bytes``: largest upload; ``max_pixels``: largest image (width x height), refused before it is
    decoded; ``workers``: threads that decode and detect; ``max_pending``: requests admitted at once (more
    get 503); ``batch_size``: most faces per network run (1: no batching); ``batch_timeout``: seconds the
    first face of a batch waits for others.
    """

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int | None = FaceOptions.max_pixels
    workers: int = 2
    max_pending: int = 64
    batch_size: int = 16
    batch_timeout: float = 0.005
