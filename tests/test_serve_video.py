"""``smile serve``'s moving faces over real HTTP: camera sessions (a tracker each, bounded and expiring),
uploaded videos (a job, its progress, its files) and their bad inputs. The page itself, with a fake
camera in Chromium, is tests/test_page_video.py."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from helpers import photos as face_photos
from helpers import videos
from helpers.photos import needs_mtcnn

pytest.importorskip("fastapi")
pytest.importorskip("av")
requests = pytest.importorskip("requests")

from helpers.serving import running  # noqa: E402

import smile  # noqa: E402
from smile.serve.app import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def server():
    settings = ServeSettings(workers=2, max_sessions=2, session_idle=30, max_video_bytes=2_000_000)
    app = create_app(smile.load(), settings)
    with running(app) as url:
        yield url, app


def wait_for(url: str, job: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{url}/video/{job}", timeout=30).json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish: {body}")


@needs_mtcnn
def test_a_camera_session_keeps_each_face_its_id(server) -> None:
    url, app = server
    frames = videos.moving_faces(face_photos.faces()[:2], count=4)
    session = requests.post(f"{url}/camera", timeout=30).json()["session"]
    answers = []
    for index, rgb in enumerate(frames):
        from PIL import Image

        data = face_photos.jpeg(Image.fromarray(rgb))
        reply = requests.post(
            f"{url}/camera/{session}/frame",
            params={"t": index * 0.2},
            data=data,
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    assert [[f["track"] for f in a["faces"]] for a in answers] == [[1, 2]] * 4
    assert [a["time"] for a in answers] == pytest.approx([0, 0.2, 0.4, 0.6])
    face = answers[-1]["faces"][0]
    assert set(face) >= {"track", "box", "probabilities", "smoothed", "predicted"}
    assert answers[-1]["image"] == {"width": frames[0].shape[1], "height": frames[0].shape[0]}
    # another session has its own tracker: its first face is #1 again
    other = requests.post(f"{url}/camera", timeout=30).json()["session"]
    reply = requests.post(
        f"{url}/camera/{other}/frame", data=face_photos.jpeg(face_photos.faces()[0]), timeout=60
    )
    assert [f["track"] for f in reply.json()["faces"]] == [1]
    # at most max_sessions (2): a third makes the one idle longest give way
    third = requests.post(f"{url}/camera", timeout=30).json()["session"]
    gone = requests.post(
        f"{url}/camera/{session}/frame", data=face_photos.jpeg(face_photos.faces()[0]), timeout=60
    )
    assert gone.status_code == 404 and gone.json()["error"] == "no_session"
    bad = requests.post(f"{url}/camera/{third}/frame", data=b"not a picture", timeout=60)
    assert bad.status_code == 422 and bad.json()["error"] == "not_an_image"
    assert requests.delete(f"{url}/camera/{third}", timeout=30).status_code == 204
    assert len(app.state.cameras) == 1


@needs_mtcnn
def test_an_uploaded_video_is_predicted_with_its_files(server, tmp_path: Path) -> None:
    url, _ = server
    clip = videos.write_clip(tmp_path / "clip.mp4", videos.moving_faces(face_photos.faces()[:2], count=8))
    reply = requests.post(
        f"{url}/video",
        data=clip.read_bytes(),
        headers={"Content-Type": "video/mp4", "X-Filename": "my%20clip.mp4"},
        timeout=60,
    )
    assert reply.status_code == 202, reply.text
    body = wait_for(url, reply.json()["job"])
    assert body["state"] == "done", body
    assert body["name"] == "my clip.mp4" and body["frames"] == 8 and body["total"] == 8
    assert [t["track"] for t in body["summary"]["tracks"]] == [1, 2]
    assert set(body["files"]) == {"frames.csv", "tracks.json", "tracks.csv", "timeline.png", "annotated.mp4"}
    table = requests.get(url + body["files"]["frames.csv"], timeout=30)
    assert table.headers["content-type"].startswith("text/csv")
    assert "my%20clip.frames.csv" in table.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == 16 and rows[0]["video"] == "my clip.mp4"
    picture = requests.get(url + body["files"]["timeline.png"], timeout=30)
    assert picture.content[:4] == b"\x89PNG"
    film = requests.get(url + body["files"]["annotated.mp4"], timeout=30)
    assert film.headers["content-type"] == "video/mp4" and film.content[4:8] == b"ftyp"


def test_bad_uploads_are_refused_in_one_line(server, tmp_path: Path) -> None:
    url, _ = server
    reply = requests.post(f"{url}/video", data=b"hello", headers={"Content-Type": "text/plain"}, timeout=30)
    assert reply.status_code == 415 and reply.json()["error"] == "unsupported_content_type"
    reply = requests.post(f"{url}/video", data=b"", headers={"Content-Type": "video/mp4"}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error"] == "empty"
    reply = requests.post(
        f"{url}/video", data=b"x" * 2_000_001, headers={"Content-Type": "video/mp4"}, timeout=30
    )
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"
    reply = requests.post(
        f"{url}/video",
        data=b"my notes",
        headers={"Content-Type": "video/mp4", "X-Filename": "notes.mp4"},
        timeout=30,
    )
    body = wait_for(url, reply.json()["job"])
    assert body["state"] == "failed" and body["error"].startswith("notes.mp4: not a video"), body
    assert "\n" not in body["error"] and "/tmp" not in body["error"]
    assert requests.get(f"{url}/video/nosuchjob", timeout=30).status_code == 404
    missing = requests.get(f"{url}/video/{body['job']}/frames.csv", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "not_ready"
