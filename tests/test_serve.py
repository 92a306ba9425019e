"""``python -m smile serve``: a real HTTP client against the service on 127.0.0.1 with real face photos
and every kind of bad input; dynamic batching; the command line."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import photos as face_photos
from helpers.photos import needs_mtcnn
from PIL import Image

pytest.importorskip("fastapi")
requests = pytest.importorskip("requests")

from helpers.serving import running  # noqa: E402

import smile  # noqa: E402
from smile.serve.app import ServeSettings, create_app  # noqa: E402
from smile.serve.batching import MicroBatcher  # noqa: E402

LIMIT = 1_000_000  # bytes, small so that "large" uploads are quick to send
NODE = shutil.which("node")
MESSAGES = Path(smile.__file__).parent / "serve" / "static" / "messages.js"


@pytest.fixture(scope="module")
def predictor(smiling_checkpoint: Path) -> smile.Predictor:
    return smile.load(smiling_checkpoint)


@pytest.fixture(scope="module")
def url(predictor: smile.Predictor):
    settings = ServeSettings(
        max_bytes=LIMIT, max_pixels=20_000_000, workers=2, batch_size=8, batch_timeout=0.02
    )
    with running(create_app(predictor, settings)) as base:
        yield base


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _post(url: str, data: bytes, content_type: str | None = "image/jpeg") -> requests.Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return requests.post(url + "/predict", data=data, headers=headers, timeout=60)


@needs_mtcnn
def test_real_faces_raw_and_multipart(url: str, predictor: smile.Predictor) -> None:
    one, group = face_photos.jpeg(face_photos.faces()[1]), face_photos.jpeg(face_photos.group(3))
    answer = _post(url, one)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (face,) = body["faces"]
    expected = predictor.predict(one)[0]
    assert face["box"] == dict(zip("xywh", expected.box))
    assert face["probabilities"]["Smiling"] == pytest.approx(expected.probabilities["Smiling"], abs=1e-6)
    assert body["attributes"] == ["Smiling"] and body["time_ms"]["total"] > 0
    width, height = face_photos.faces()[1].size
    assert body["image"] == {"width": width, "height": height}
    form = requests.post(url + "/predict", files={"file": ("group.jpg", group, "image/jpeg")}, timeout=60)
    assert form.status_code == 200 and len(form.json()["faces"]) == 3
    none = _post(url, face_photos.jpeg(face_photos.empty()))
    (whole,) = none.json()["faces"]  # no face found: the whole image, taken as a face crop
    assert none.status_code == 200 and whole["method"] == "whole_image" and whole["score"] is None


def test_health_page_and_openapi(url: str) -> None:
    health = requests.get(url + "/health", timeout=10).json()
    assert health["status"] == "ok" and health["attributes"] == ["Smiling"]
    page = requests.get(url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<input id="file" type="file"' in page.text and "http" not in page.text.split("<body>")[1]
    assert requests.get(url + "/static/app.js", timeout=10).status_code == 200
    schema = requests.get(url + "/openapi.json", timeout=10).json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"image/*", "application/octet-stream", "multipart/form-data"} <= set(body)
    missing = requests.get(url + "/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "http_error"


@needs_mtcnn
def test_bad_inputs_get_a_4xx_json_error_and_the_service_goes_on(url: str) -> None:
    good = face_photos.jpeg(face_photos.faces()[0])
    rgba = face_photos.faces()[0].convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    grey16 = Image.fromarray(np.asarray(face_photos.faces()[0].convert("L"), dtype=np.uint16) * 257)
    cases = {  # name: (body, content type, expected status, error code or None for a 200)
        "empty body": (b"", "image/jpeg", 400, "empty"),
        "text file": (b"name,smiling\nann,1\n", "application/octet-stream", 422, "not_an_image"),
        "truncated JPEG": (good[: len(good) // 3], "image/jpeg", 422, "not_an_image"),
        "huge image": (_png(Image.new("1", (12_000, 12_000))), "image/png", 413, "too_many_pixels"),
        "wrong content type": (good, "application/json", 415, "unsupported_content_type"),
        "too large upload": (b"\xff" * (2 * LIMIT), "image/jpeg", 413, "too_large"),
        "PNG with alpha": (_png(rgba), "image/png", 200, None),
        "16-bit image": (_png(grey16), "image/png", 200, None),
    }
    for name, (data, content_type, status, code) in cases.items():
        answer = _post(url, data, content_type)
        assert answer.status_code == status, (name, answer.text)
        if code is None:
            assert len(answer.json()["faces"]) == 1, name  # accepted, and the face found
        else:
            assert answer.json()["error"] == code and answer.json()["detail"], name
        assert _post(url, good).status_code == 200, f"not served after {name}"
    files = {"file": ("notes.txt", b"just text", "text/plain")}
    text_form = requests.post(url + "/predict", files=files, timeout=60)
    assert text_form.status_code == 422 and "not an image" in text_form.json()["detail"]
    no_file = requests.post(url + "/predict", files={"x": (None, "1")}, timeout=60)
    assert no_file.status_code == 400 and no_file.json()["error"] == "no_file"


@pytest.mark.skipif(NODE is None, reason="the page's script is run with node")
def test_the_page_says_a_refused_file_is_not_a_photo(url: str) -> None:
    """The page words the service's refusals for the person who chose the file, not in the API's terms
    (the raw body, Content-Type image/*, a multipart form), which it showed as they were."""
    noise = _png(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)))
    answers = {
        "notes.txt": _post(url, b"name,smiling\nann,1\n", "application/octet-stream"),
        "cut.png": _post(url, noise[: len(noise) // 2], "image/png"),
        "empty.jpg": _post(url, b"", "image/jpeg"),
        "huge.png": _post(url, _png(Image.new("1", (5_000, 5_000))), "image/png"),
        "big.jpg": _post(url, b"\xff" * (2 * LIMIT), "image/jpeg"),
    }
    script = (
        "const {failureText} = require(process.argv[1]);"
        "const answers = JSON.parse(process.argv[2]);"
        "const texts = Object.entries(answers).map(([name, [code, body]]) => [name, failureText(name, code, body)]);"
        "console.log(JSON.stringify(Object.fromEntries(texts)));"
    )
    given = json.dumps({name: [answer.status_code, answer.json()] for name, answer in answers.items()})
    run = subprocess.run(
        [NODE, "-e", script, str(MESSAGES), given], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "notes.txt": "notes.txt is not a photo: choose a JPEG, PNG, WebP or BMP file.",
        "cut.png": "cut.png is a damaged or cut-short image: choose another photo.",
        "empty.jpg": "empty.jpg is empty: choose a photo.",
        "huge.png": "huge.png has too many pixels (5000x5000; at most 20,000,000): choose a smaller photo.",
        "big.jpg": "big.jpg is larger than this server accepts (1.0 MiB): choose a smaller photo.",
    }
    assert "/static/messages.js" in requests.get(url + "/", timeout=10).text
    assert requests.get(url + "/static/messages.js", timeout=10).status_code == 200


@needs_mtcnn
def test_concurrent_large_uploads_are_refused_and_the_service_goes_on(url: str) -> None:
    large = np.random.default_rng(0).integers(0, 256, 3 * LIMIT, dtype=np.uint8).tobytes()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: _post(url, large), range(20)))
    assert [a.status_code for a in answers] == [413] * 20
    assert all(a.json()["error"] == "too_large" for a in answers)
    assert _post(url, face_photos.jpeg(face_photos.faces()[0])).status_code == 200


@needs_mtcnn
def test_batched_answers_match_single_requests(url: str, predictor: smile.Predictor) -> None:
    photos = [face_photos.jpeg(face_photos.group(3)), *map(face_photos.jpeg, face_photos.faces())] * 2
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: _post(url, data), photos))
    assert all(a.status_code == 200 for a in answers)
    for data, answer in zip(photos, answers):
        want = [f.probabilities["Smiling"] for f in predictor.predict(data)]
        got = [f["probabilities"]["Smiling"] for f in answer.json()["faces"]]
        assert got == pytest.approx(want, abs=1e-5)


def test_micro_batcher_runs_concurrent_requests_together() -> None:
    import torch

    sizes = []

    def network(batch: torch.Tensor) -> np.ndarray:
        sizes.append(len(batch))
        if (batch < 0).any():
            raise ValueError("negative input")
        return batch.sum(1).numpy()

    batcher = MicroBatcher(network, max_batch=16, timeout=0.5)
    barrier = threading.Barrier(4)

    def call(k: int) -> np.ndarray:
        barrier.wait()
        return batcher(torch.full((k, 2), float(k)))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, [1, 2, 3, 4]))
    assert [r.tolist() for r in results] == [[2.0 * k] * k for k in (1, 2, 3, 4)]  # each its own rows
    assert sizes == [10] and batcher.runs == 1 and batcher.faces == 10
    with pytest.raises(ValueError, match="negative"):
        batcher(torch.full((1, 2), -1.0))
    assert batcher(torch.ones(1, 2)).tolist() == [2.0]  # still running after the error
    batcher.close()


def test_the_docs_and_the_help_give_the_pixel_limit_the_service_has(capsys: pytest.CaptureFixture) -> None:
    """docs/serving.md said 36 million in one place and 50 million in another; --help and /health say the
    default of FaceOptions (the service's own)."""
    import re

    from smile.commands.serve import build_parser
    from smile.faces.options import FaceOptions

    default = FaceOptions.max_pixels
    assert ServeSettings().max_pixels == default
    text = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    stated = re.findall(r"`--max_pixels` \(largest image, ([\d.]+) million pixels", text)
    assert stated == [f"{default / 1e6:g}"] and f"max_pixels={default:_}" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert f"(default: {default / 1e6:g} million)" in " ".join(capsys.readouterr().out.split())
