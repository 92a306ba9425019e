"""The HTTP service: FastAPI routes over a :class:`smile.api.Predictor`.

``POST /predict`` takes one image, as the raw body (``Content-Type: image/*`` or
``application/octet-stream``) or as the file of a ``multipart/form-data`` form, and answers the faces
as JSON. ``GET /health`` says whether the model is loaded, ``GET /`` is the web page, ``GET
/openapi.json`` describes the routes (the camera's and the video uploads' are :mod:`smile.serve.video`'s).
Every error is JSON ``{"error": code, "detail": message}`` with a 4xx status (5xx only for the server's
own faults), and the next request is served as usual.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from smile.api import Predictor
from smile.faces.images import ImageError, ImageTooLarge
from smile.serve.batching import MicroBatcher
from smile.serve.settings import ServeSettings
from smile.serve.video import add_video_routes

RAW_TYPES = ("image/", "application/octet-stream")
MULTIPART = "multipart/form-data"
ACCEPTED = (
    "an image (JPEG, PNG, WebP, BMP, ...) as the raw body with Content-Type image/* or "
    "application/octet-stream, or as the file of a multipart/form-data form"
)


class ServeError(Exception):
    """An error answered as JSON ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class FaceOut(BaseModel):
    face: int
    box: Box
    score: float | None
    method: str
    probabilities: dict[str, float]
    predicted: dict[str, bool]


class PredictionOut(BaseModel):
    faces: list[FaceOut]
    image: dict[str, int]
    attributes: list[str]
    thresholds: dict[str, float]
    time_ms: dict[str, float]


class ErrorOut(BaseModel):
    error: str
    detail: str


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


class Service:
    """The work behind the routes: admission, the thread pool, the batcher."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        predictor = predictor.with_options(max_pixels=settings.max_pixels)
        self.predictor, self.settings = predictor, settings
        self.pool = ThreadPoolExecutor(
            max(1, settings.workers),
            thread_name_prefix="smile-detect",
            initializer=predictor.pipeline.aligner,
        )
        self.batcher = (
            MicroBatcher(predictor.probabilities, settings.batch_size, settings.batch_timeout)
            if settings.batch_size > 1
            else None
        )
        self._pending = threading.BoundedSemaphore(settings.max_pending)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()

    def predict(self, data: bytes) -> dict[str, Any]:
        """JSON-ready result for the bytes of one image (runs in a pool thread)."""
        started = time.perf_counter()
        picture, faces = self.predictor.detect(data)
        detected = time.perf_counter()
        batch = self.predictor.tensor([face.aligned for face in faces])
        network = self.batcher or self.predictor.probabilities
        records = self.predictor.records(faces, network(batch))
        done = time.perf_counter()
        return {
            "faces": [record.to_dict() for record in records],
            "image": {"width": picture.width, "height": picture.height},
            "attributes": self.predictor.attributes,
            "thresholds": dict(zip(self.predictor.attributes, self.predictor.thresholds.tolist())),
            "time_ms": {"detect": 1000 * (detected - started), "classify": 1000 * (done - detected)},
        }

    async def run(self, data: bytes) -> dict[str, Any]:
        if not self._pending.acquire(blocking=False):
            raise ServeError(
                503, "busy", f"{self.settings.max_pending} requests are in progress; retry shortly"
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.predict, data)
        except ImageTooLarge as err:
            raise ServeError(413, "too_many_pixels", str(err)) from err
        except ImageError as err:
            code = "empty" if "empty" in str(err) else "not_an_image"
            raise ServeError(400 if code == "empty" else 422, code, f"{err}; expected {ACCEPTED}") from err
        finally:
            self._pending.release()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) beyond ``limit`` bytes. A client still sending is read to the end
    (up to 4x the limit, discarding) so that it sees the answer instead of a reset connection."""
    declared = request.headers.get("content-length")
    too_large = ServeError(
        413, "too_large", f"the upload is larger than the limit of {limit:,} bytes ({limit / 2**20:.1f} MiB)"
    )
    if declared is not None and declared.isdigit() and int(declared) > 4 * limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > 4 * limit:
            break
    if size > limit:
        raise too_large
    return b"".join(chunks)


async def upload(request: Request, settings: ServeSettings) -> bytes:
    """The image bytes of a ``/predict`` request (raw body or the multipart form's file)."""
    content_type = request.headers.get("content-type", "application/octet-stream").lower()
    is_multipart = content_type.startswith(MULTIPART)
    if not is_multipart and not content_type.startswith(RAW_TYPES):
        raise ServeError(415, "unsupported_content_type", f"Content-Type {content_type}: expected {ACCEPTED}")
    multipart_overhead = 64 * 1024 if is_multipart else 0
    body = await read_body(request, settings.max_bytes + multipart_overhead)
    if not body:
        raise ServeError(400, "empty", f"the request body is empty; expected {ACCEPTED}")
    if not is_multipart:
        return body

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except Exception as err:  # malformed multipart
        raise ServeError(
            400, "bad_form", f"the multipart form could not be read ({err}); expected {ACCEPTED}"
        ) from err
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise ServeError(400, "no_file", f"the form holds no file; expected {ACCEPTED}")
    data = await files[0].read()
    await form.close()
    if not data:
        raise ServeError(
            400, "empty", f"the uploaded file {files[0].filename!r} is empty; expected {ACCEPTED}"
        )
    if len(data) > settings.max_bytes:
        raise ServeError(
            413, "too_large", f"the file is larger than the limit of {settings.max_bytes:,} bytes"
        )
    return data


_REQUEST_BODY = {
    "required": True,
    "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        MULTIPART: {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
_ERRORS = {status: {"model": ErrorOut} for status in (400, 413, 415, 422, 503)}


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``predictor``."""
    settings = settings or ServeSettings()
    service = Service(predictor, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()
        app.state.videos.close()

    app = FastAPI(
        title="smile",
        version="1",
        summary=f"Face attributes ({', '.join(predictor.attributes)}) for the faces of a photo",
        docs_url=None,  # Swagger UI loads its scripts from a CDN; the description is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return _error(err.status, err.code, err.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, "http_error", str(err.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        return _error(500, "internal", f"{type(err).__name__}: {err}")

    @app.post(
        "/predict",
        response_model=PredictionOut,
        responses=_ERRORS,
        openapi_extra={"requestBody": _REQUEST_BODY},
        summary="The faces of one image, each with its box, detector score and attribute probabilities",
    )
    async def predict(request: Request) -> dict[str, Any]:
        started = time.perf_counter()
        result = await service.run(await upload(request, settings))
        result["time_ms"]["total"] = 1000 * (time.perf_counter() - started)
        return result

    @app.get("/health", summary="Whether the model is loaded, and which")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": predictor.source.name,
            "backend": predictor.backend,
            "trained_on": "synthetic faces" if predictor.synthetic else "photographs of faces",
            "attributes": predictor.attributes,
            "thresholds": dict(zip(predictor.attributes, predictor.thresholds.tolist())),
            "batching": {"batch_size": settings.batch_size, "batch_timeout_s": settings.batch_timeout},
            "limits": {"max_bytes": settings.max_bytes, "max_pixels": settings.max_pixels},
        }

    add_video_routes(app, service.predictor, settings, service.pool)  # the camera and video uploads
    static = resources.files("smile.serve") / "static"

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
