"""``smile serve``'s moving faces: a live camera (the page sends a few frames a second; the server
keeps a tracker and smoother per camera session) and uploaded video files (predicted one at a time in
the background; the page polls, then plays the annotated video and downloads the CSV and timeline).

Routes:

- ``POST /camera`` starts a camera session: ``{"session": id}``. Sessions are bounded in number
  (``max_sessions``; the one idle longest gives way) and end after ``session_idle`` seconds unused.
- ``POST /camera/{id}/frame?t=SECONDS`` with one JPEG or PNG frame as the body: its tracked faces,
  each with its ``track`` id, raw and smoothed probabilities and decision. ``t`` is the frame's time
  on the page's clock (the smoothing is in seconds); without it, the time it arrived.
- ``DELETE /camera/{id}`` ends a session.
- ``POST /video`` with a video file as the body (``Content-Type: video/*`` or
  ``application/octet-stream``; ``X-Filename`` names it): ``202 {"job": id}``; ``GET /video/{id}``
  says how far it is (``queued``, ``running`` with ``frames`` of ``total``, ``done`` with the summary
  and the files' URLs, or ``failed`` with the one-line reason); ``GET /video/{id}/FILE`` gives
  ``frames.csv``, ``tracks.json``, ``tracks.csv``, ``timeline.png`` or ``annotated.mp4``. The last
  ``keep_jobs`` jobs are kept, in a temporary folder removed at shutdown.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from smile.api import Predictor
from smile.faces.images import ImageError, ImageTooLarge
from smile.video import DEFAULT_SMOOTHING
from smile.video.decode import Frame, VideoError
from smile.video.pipeline import VideoStream

VIDEO_TYPES = ("video/", "application/octet-stream")
#: What ``GET /video/{id}/FILE`` serves: the file's name in the job's folder, and its media type.
JOB_FILES = {
    "frames.csv": ("upload.frames.csv", "text/csv"),
    "tracks.json": ("upload.tracks.json", "application/json"),
    "tracks.csv": ("upload.tracks.csv", "text/csv"),
    "timeline.png": ("upload.timeline.png", "image/png"),
    "annotated.mp4": ("upload.annotated.mp4", "video/mp4"),
}


class VideoServeError(Exception):
    """An error answered as JSON ``{"error": code, "detail": message}`` (as :class:`smile.serve.app.ServeError`)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class CameraSession:
    stream: VideoStream
    lock: threading.Lock = field(default_factory=threading.Lock)
    used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    last_time: float = -1.0


class CameraSessions:
    """Camera sessions by id, each with its own tracker and smoother, at most ``limit`` at once (the
    one idle longest ends to make room) and each ended after ``idle`` seconds unused."""

    def __init__(self, predictor: Predictor, limit: int, idle: float, smoothing: float = DEFAULT_SMOOTHING):
        self.predictor, self.limit, self.idle, self.smoothing = predictor, limit, idle, smoothing
        self._sessions: OrderedDict[str, CameraSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.used > self.idle]:
            del self._sessions[key]

    def start(self) -> str:
        # a camera's frames come a few a second: a full detection on each (detect_every=1)
        stream = VideoStream(self.predictor, self.smoothing, detect_every=1, rate=5.0)
        key = uuid.uuid4().hex
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            while len(self._sessions) >= self.limit:
                self._sessions.popitem(last=False)
            self._sessions[key] = CameraSession(stream)
        return key

    def get(self, key: str) -> CameraSession:
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            session = self._sessions.get(key)
            if session is None:
                raise VideoServeError(
                    404,
                    "no_session",
                    f"no camera session {key!r} (it ended, or the server restarted): POST /camera",
                )
            session.used = now
            self._sessions.move_to_end(key)
            return session

    def end(self, key: str) -> bool:
        with self._lock:
            return self._sessions.pop(key, None) is not None

    def frame(self, key: str, data: bytes, when: float | None) -> dict[str, Any]:
        """The tracked faces of one camera frame (runs in a pool thread)."""
        session = self.get(key)
        started = time.perf_counter()
        picture = self.predictor.pipeline.read(data)
        rgb = np.asarray(picture)
        with session.lock:  # one frame of a session at a time: its tracker is sequential
            if when is None:
                when = time.monotonic() - session.started
            when = max(float(when), session.last_time + 1e-3)  # frames in order, even if the clock is not
            session.last_time = when
            session.stream.add(Frame(session.frames, round(when, 4), rgb))
            session.frames += 1
            (_, result), *_ = session.stream.flush()
        payload = result.to_dict()
        payload["image"] = {"width": picture.width, "height": picture.height}
        payload["attributes"] = self.predictor.attributes
        payload["time_ms"] = {"total": 1000 * (time.perf_counter() - started)}
        return payload


@dataclass
class VideoJob:
    id: str
    name: str
    folder: Path
    state: str = "queued"
    frames: int = 0
    total: int | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None
    seconds: float | None = None
    cancelled: bool = False


class VideoJobs:
    """Uploaded videos, predicted one at a time by one worker thread, each into its own folder."""

    def __init__(self, predictor: Predictor, keep: int, max_seconds: float | None, smoothing: float) -> None:
        self.predictor, self.keep, self.max_seconds, self.smoothing = predictor, keep, max_seconds, smoothing
        self._root: Path | None = None  # made at the first upload
        self._jobs: OrderedDict[str, VideoJob] = OrderedDict()
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="smile-video")

    def close(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancelled = True
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    @property
    def root(self) -> Path:
        """The folder of the jobs' files (a temporary one, removed at :meth:`close`)."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="smile-serve-videos-"))
        return self._root

    def submit(self, name: str) -> VideoJob:
        """A new job whose upload goes to :meth:`upload_path`; :meth:`start` queues it."""
        job = VideoJob(uuid.uuid4().hex, name, self.root / uuid.uuid4().hex)
        job.folder.mkdir()
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                _, old = self._jobs.popitem(last=False)
                old.cancelled = True
                shutil.rmtree(old.folder, ignore_errors=True)
        return job

    def forget(self, job: VideoJob) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    @staticmethod
    def upload_path(job: VideoJob) -> Path:
        return job.folder / "upload.video"

    def start(self, job: VideoJob) -> None:
        self._worker.submit(self._run, job)

    def get(self, key: str) -> VideoJob:
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            raise VideoServeError(404, "no_job", f"no video job {key!r} (only the last {self.keep} are kept)")
        return job

    def _run(self, job: VideoJob) -> None:
        from smile.video.files import Stop, predict_to_files

        job.state = "running"

        def opened(reader) -> None:
            info = reader.info
            if self.max_seconds and info.duration and info.duration > self.max_seconds:
                raise VideoError(
                    f"{job.name}: {info.duration:.0f} s long; this server predicts videos of at most "
                    f"{self.max_seconds:.0f} s (smile serve --max_video_seconds)"
                )
            job.total = info.frames

        def progress(result) -> None:
            job.frames += 1
            if job.cancelled:
                raise Stop("cancelled")

        try:
            run = predict_to_files(
                self.predictor,
                self.upload_path(job),
                job.folder / "upload",
                smoothing=self.smoothing,
                annotate=job.folder / "upload.annotated.mp4",
                name=job.name,
                on_start=opened,
                on_frame=progress,
            )
        except VideoError as err:
            job.state, job.error = "failed", str(err).replace(str(self.upload_path(job)), job.name)
            return
        except Exception as err:  # a fault of the server's own: said, and the next job runs
            job.state, job.error = "failed", f"{type(err).__name__}: {err}"
            return
        finally:
            self.upload_path(job).unlink(missing_ok=True)
        job.summary = run.summary.to_dict()
        job.summary["line"] = run.summary.line()
        if run.problem:
            job.summary["problem"] = run.problem.replace(str(self.upload_path(job)), job.name)
        job.seconds = run.seconds
        job.state = "done"

    def describe(self, job: VideoJob) -> dict[str, Any]:
        out: dict[str, Any] = {"job": job.id, "name": job.name, "state": job.state, "frames": job.frames}
        if job.total:
            out["total"] = job.total
        if job.error:
            out["error"] = job.error
        if job.state == "done":
            out["summary"] = job.summary
            out["seconds"] = job.seconds
            out["files"] = {
                key: f"/video/{job.id}/{key}"
                for key, (filename, _) in JOB_FILES.items()
                if (job.folder / filename).is_file()
            }
        return out


def _safe_name(name: str | None) -> str:
    from urllib.parse import unquote

    text = unquote(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r"[^\w.\- ]+", "_", text).strip() or "video"
    return text[:120]


async def _save_body(request: Request, path: Path, limit: int) -> int:
    """Stream the request body to ``path``, refusing (413) beyond ``limit`` bytes."""
    size = 0
    with open(path, "wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise VideoServeError(
                    413,
                    "too_large",
                    f"the video is larger than the limit of {limit:,} bytes ({limit / 2**20:.0f} MiB)",
                )
            handle.write(chunk)
    return size


def add_video_routes(app: FastAPI, predictor: Predictor, settings, pool: ThreadPoolExecutor) -> VideoJobs:
    """Add the camera and video routes to ``app``; the job runner, for the app to close at shutdown."""
    cameras = CameraSessions(predictor, settings.max_sessions, settings.session_idle, settings.smoothing)
    jobs = VideoJobs(predictor, settings.keep_jobs, settings.max_video_seconds, settings.smoothing)
    app.state.cameras, app.state.videos = cameras, jobs

    @app.exception_handler(VideoServeError)
    async def video_error(request: Request, err: VideoServeError) -> JSONResponse:
        return JSONResponse({"error": err.code, "detail": err.detail}, status_code=err.status)

    @app.post(
        "/camera", status_code=201, summary="Start a camera session (a tracker and smoother of its own)"
    )
    async def camera_start() -> dict[str, Any]:
        return {"session": cameras.start(), "smoothing_seconds": settings.smoothing}

    @app.post(
        "/camera/{session}/frame",
        summary="The tracked faces of one camera frame (a JPEG or PNG body; t: its time in seconds)",
    )
    async def camera_frame(session: str, request: Request, t: float | None = None) -> dict[str, Any]:
        cameras.get(session)
        data = await request.body()
        if not data:
            raise VideoServeError(400, "empty", "the frame is empty: send one JPEG or PNG image as the body")
        if len(data) > settings.max_bytes:
            raise VideoServeError(413, "too_large", f"a frame is at most {settings.max_bytes:,} bytes")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, cameras.frame, session, data, t)
        except ImageTooLarge as err:
            raise VideoServeError(413, "too_many_pixels", str(err)) from err
        except ImageError as err:
            raise VideoServeError(422, "not_an_image", f"{err}; expected one JPEG or PNG frame") from err

    @app.delete("/camera/{session}", status_code=204, summary="End a camera session")
    async def camera_end(session: str) -> Response:
        cameras.end(session)
        return Response(status_code=204)

    @app.post("/video", status_code=202, summary="Upload a video file to predict; poll GET /video/{job}")
    async def video_upload(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "application/octet-stream").lower()
        if not content_type.startswith(VIDEO_TYPES):
            raise VideoServeError(
                415,
                "unsupported_content_type",
                f"Content-Type {content_type}: send the video file as the raw body, with Content-Type "
                "video/* or application/octet-stream",
            )
        job = jobs.submit(_safe_name(request.headers.get("x-filename")))
        try:
            size = await _save_body(request, jobs.upload_path(job), settings.max_video_bytes)
        except BaseException:
            jobs.forget(job)
            raise
        if size == 0:
            jobs.forget(job)
            raise VideoServeError(400, "empty", "the upload is empty: send a video file as the body")
        jobs.start(job)
        return jobs.describe(job)

    @app.get("/video/{job_id}", summary="How far a video job is; its summary and files when done")
    async def video_status(job_id: str) -> dict[str, Any]:
        return jobs.describe(jobs.get(job_id))

    @app.get("/video/{job_id}/{name}", summary="A finished video job's file", response_model=None)
    async def video_file(job_id: str, name: str) -> FileResponse:
        job = jobs.get(job_id)
        if name not in JOB_FILES:
            raise VideoServeError(404, "no_file", f"{name!r}: a job has {', '.join(JOB_FILES)}")
        filename, media = JOB_FILES[name]
        path = job.folder / filename
        if job.state != "done" or not path.is_file():
            raise VideoServeError(
                404, "not_ready", f"{name} of job {job_id} is not there (state: {job.state})"
            )
        download = f"{Path(job.name).stem}.{name}"
        disposition = "inline" if name in ("timeline.png", "annotated.mp4") else "attachment"
        return FileResponse(path, media_type=media, filename=download, content_disposition_type=disposition)

    return jobs
