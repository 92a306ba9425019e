"""``smile serve``: a checkpoint (or ONNX file) over HTTP, with a web page to try it.

    smile serve --ckpt_path best.ckpt [--host 127.0.0.1] [--port 8000]
    curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/predict

Routes and errors: :mod:`smile.serve.app`. The service listens on 127.0.0.1 unless ``--host`` says
otherwise; it reads only image bytes from clients, never a path or a pickle.
"""

from __future__ import annotations

import argparse
import os
import sys

from smile.commands import SmileParser, add_face_options
from smile.errors import SmileError
from smile.install import install_hint
from smile.serve.settings import ServeSettings
from smile.trained.shipped import DEFAULT as DEFAULT_MODEL


def _app_module():
    try:
        from smile.serve import app
    except ImportError as err:
        raise SmileError(f"serving needs FastAPI and uvicorn ({err}): {install_hint('serve')}") from err
    return app


def build_parser() -> argparse.ArgumentParser:
    defaults = ServeSettings()
    parser = SmileParser(
        prog="smile serve",
        description="Serve a checkpoint or exported ONNX file over HTTP: POST /predict with an image, GET / "
        "for a web page, GET /health, GET /openapi.json.",
    )
    parser.add_argument(
        "--ckpt_path",
        default=DEFAULT_MODEL,
        help="a shipped model (smiling, attributes), a checkpoint, best / last, or an .onnx file "
        "(default: smiling)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    add_face_options(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        help="one probability above which every attribute is predicted (default: the model's own thresholds)",
    )
    limits = (  # option, type, default, help
        ("--max_bytes", int, defaults.max_bytes, "largest upload (default: 8 MiB)"),
        (
            "--max_pixels",
            int,
            defaults.max_pixels,
            f"largest image, width x height (default: {(defaults.max_pixels or 0) / 1e6:g} million)",
        ),
        ("--workers", int, os.cpu_count() or 1, "threads decoding and detecting (default: one per core)"),
        ("--max_pending", int, defaults.max_pending, "requests admitted at once; more get 503"),
        (
            "--batch_size",
            int,
            defaults.batch_size,
            "most faces per network run across requests (1: no batching)",
        ),
        ("--batch_timeout_ms", float, 1000 * defaults.batch_timeout, "how long a batch waits to fill"),
        ("--max_video_bytes", int, defaults.max_video_bytes, "largest uploaded video (default: 256 MiB)"),
        ("--max_video_seconds", float, defaults.max_video_seconds, "longest uploaded video (default: 600)"),
    )
    for option, kind, default, text in limits:
        parser.add_argument(option, type=kind, default=default, help=text)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    app = _app_module()
    import uvicorn

    import smile

    predictor = smile.load(
        args.ckpt_path,
        args.device,
        args.detector,
        args.min_face,
        args.threshold,
        max_pixels=args.max_pixels,
        no_face=args.no_face,
    )
    settings = app.ServeSettings(
        max_bytes=args.max_bytes,
        max_pixels=args.max_pixels,
        workers=args.workers,
        max_pending=args.max_pending,
        batch_size=args.batch_size,
        batch_timeout=args.batch_timeout_ms / 1000,
        max_video_bytes=args.max_video_bytes,
        max_video_seconds=args.max_video_seconds,
    )
    predictor.pipeline.aligner()  # load the detector now, not on the first request
    print(
        f"Serving {predictor.source} ({', '.join(predictor.attributes)}) at http://{args.host}:{args.port}/",
        file=sys.stderr,
    )
    uvicorn.run(app.create_app(predictor, settings), host=args.host, port=args.port, log_level="warning")
    return 0
