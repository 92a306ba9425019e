"""Load test of ``python -m smile serve`` on this machine: N requests at C concurrent, loopback only.

    python benchmarks/serve_load.py [--ckpt_path best.ckpt] [--requests 200] [--concurrency 8]
        [--batching on off] [--servers smile litserve] [--out benchmarks/results/serve-load.json]

Each configuration starts its own server in a subprocess on 127.0.0.1 and a free port, sends a few
warm-up requests, then ``--requests`` photos (cycling through ``--images``: the first 64 of
../shared/celeba-wild/images, else synthetic faces) from ``--concurrency`` client threads, stopping
early at ``--time_limit`` seconds. It reports throughput, p50/p95/p99 latency and errors, with the
service's dynamic batching on (``--batch_size 16``) and off (``--batch_size 1``). ``--servers litserve``
measures the same predictor behind LitServe (JSON body with the image in base64, as LitServe reads
requests; ``workers_per_device`` = the number of cores, batching on and off), for comparison. Without
``--ckpt_path`` an untrained checkpoint is used (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import WILD, project_env, quiet_trainer, smile_command


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def untrained_checkpoint(folder: Path) -> Path:
    from smile.system import AttributeClassifier

    model = AttributeClassifier(["Smiling"])
    trainer = quiet_trainer()
    trainer.strategy.connect(model)
    path = folder / "untrained.ckpt"
    trainer.save_checkpoint(path)
    return path


def load_images(folder: Path | None, count: int) -> list[bytes]:
    folder = folder or (WILD / "images" if (WILD / "images").is_dir() else None)
    if folder is not None:
        return [file.read_bytes() for file in sorted(folder.glob("*.jpg"))[:count]]
    import numpy as np
    from PIL import Image

    from smile.data.synthetic import render_face, sample_face, sample_identity

    rng, images = np.random.default_rng(0), []
    for _ in range(count):
        face = render_face(sample_face(rng, sample_identity(rng))).image.convert("RGB")
        canvas = Image.new("RGB", (260, 300), (90, 120, 150))
        canvas.paste(face, (41, 41))
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=92)
        images.append(buffer.getvalue())
    return images


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not answer /health in time")


def load(url: str, send, images: list[bytes], total: int, concurrency: int, time_limit: float) -> dict:
    """Send ``total`` requests from ``concurrency`` threads; latencies and errors."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock, counter = threading.Lock(), iter(range(total))
    deadline = time.monotonic() + time_limit

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            started = time.perf_counter()
            try:
                answer = send(session, url, images[index % len(images)])
                ok, key = answer.status_code == 200, f"HTTP {answer.status_code}"
            except requests.RequestException as err:
                ok, key = False, type(err).__name__
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[key] = errors.get(key, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
        )

    return {
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": errors,
        "seconds": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
    }


def send_raw(session: requests.Session, url: str, data: bytes) -> requests.Response:
    return session.post(url + "/predict", data=data, headers={"Content-Type": "image/jpeg"}, timeout=60)


def send_json(session: requests.Session, url: str, data: bytes) -> requests.Response:
    return session.post(url + "/predict", json={"image": base64.b64encode(data).decode()}, timeout=60)


try:  # optional: only --servers litserve needs it
    import litserve as ls
except ImportError:
    ls = None

if ls is not None:

    class SmileAPI(ls.LitAPI):
        """The predictor behind LitServe: detection in ``decode_request``, the network in ``predict``."""

        def __init__(self, checkpoint: str, batch_size: int) -> None:
            super().__init__(max_batch_size=batch_size, batch_timeout=0.005 if batch_size > 1 else 0.0)
            self.checkpoint, self.batch_size = checkpoint, batch_size

        def setup(self, device):
            import smile

            self.predictor = smile.load(self.checkpoint)

        def decode_request(self, request):
            _, faces = self.predictor.detect(base64.b64decode(request["image"]))
            return faces, self.predictor.tensor([face.aligned for face in faces])

        def batch(self, inputs):
            return inputs

        def unbatch(self, output):
            return output

        def predict(self, inputs):
            import torch

            inputs = inputs if self.batch_size > 1 else [inputs]
            rows = self.predictor.probabilities(torch.cat([batch for _, batch in inputs]))
            out, start = [], 0
            for faces, batch in inputs:
                out.append(self.predictor.records(faces, rows[start : start + len(batch)]))
                start += len(batch)
            return out if self.batch_size > 1 else out[0]

        def encode_response(self, records):
            return {"faces": [record.to_dict() for record in records]}


def litserve_worker(checkpoint: str, port: int, batch_size: int) -> None:
    """Serve the predictor with LitServe (run in its own process by :func:`run_config`)."""
    if ls is None:
        raise SystemExit("--servers litserve needs LitServe: pip install litserve")
    server = ls.LitServer(
        SmileAPI(checkpoint, batch_size), accelerator="cpu", workers_per_device=os.cpu_count() or 1
    )
    server.run(host="127.0.0.1", port=port, generate_client_file=False)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)


def run_config(
    kind: str, batching: bool, args: argparse.Namespace, checkpoint: Path, images: list[bytes]
) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    batch = "16" if batching else "1"
    if kind == "smile":
        command = smile_command(
            "serve", "--ckpt_path", str(checkpoint), "--port", str(port), "--batch_size", batch
        )
        send = send_raw
    else:
        command = [sys.executable, __file__, "--litserve-worker", str(checkpoint), str(port), batch]
        send = send_json
    # its own process group, so that stopping it stops the worker processes it starts too
    process = subprocess.Popen(
        command,
        env=project_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.perf_counter()
        wait_ready(url, process)
        ready = time.perf_counter() - started
        load(
            url, send, images, 2 * args.concurrency, args.concurrency, 60
        )  # warm-up: every thread's detector
        result = load(url, send, images, args.requests, args.concurrency, args.time_limit)
    finally:
        stop(process)
    return {"server": kind, "batching": batching, "startup_s": round(ready, 1), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", default=None)
    parser.add_argument("--images", type=Path, default=None, help="folder of JPEGs (default: celeba-wild)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time_limit", type=float, default=120.0, help="seconds per configuration, at most")
    parser.add_argument("--batching", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument(
        "--servers", nargs="+", choices=["smile", "litserve"], default=["smile"], help="default: smile only"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 5000 or not 1 <= args.concurrency <= 64:
        parser.error("keep --requests within 1-5000 and --concurrency within 1-64")
    images = load_images(args.images, 64)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(args.ckpt_path) if args.ckpt_path else untrained_checkpoint(Path(folder))
        results = []
        for kind in args.servers:
            for batching in args.batching:
                result = run_config(kind, batching == "on", args, checkpoint, images)
                results.append(result)
                print(json.dumps(result), flush=True)
    print(f"\n{args.requests} requests at concurrency {args.concurrency}, {os.cpu_count()} cores\n")
    print("| server | batching | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        print(
            f"| {r['server']} | {'on' if r['batching'] else 'off'} | {r['throughput_rps']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['p99_ms']} | {errors} |"
        )
    if args.out is not None:
        from smile.io import atomic_write

        with atomic_write(args.out) as handle:
            json.dump({"cores": os.cpu_count(), "images": len(images), "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--litserve-worker":
        litserve_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
