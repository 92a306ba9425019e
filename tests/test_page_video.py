"""The page's camera and video modes in real headless Chromium: a fake camera fed from a real clip
(../shared/videos/d0.mp4 as Y4M; a drawn-face clip without it) draws tracked boxes over the live
picture; a refused camera is said in words; an uploaded video plays, annotated, in the page's
``<video>`` element. Skips where Chromium, its driver or Selenium is missing, like tests/test_page.py.
The screenshot of the camera page goes to ``$SMILE_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import photos as face_photos
from helpers import videos
from helpers.photos import needs_mtcnn

pytest.importorskip("fastapi")
pytest.importorskip("av")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")

from helpers.serving import BROWSER, DRIVER, needs_chromium, running  # noqa: E402

import smile  # noqa: E402
from smile.serve.app import ServeSettings, create_app  # noqa: E402

pytestmark = [needs_mtcnn, needs_chromium]


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 25) -> Path:
    """Frames as a Y4M file (4:2:0), the format Chromium's fake camera reads."""
    import cv2

    height, width = frames[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake camera's picture: the real clip d0 (a man who breaks into a smile), else drawn faces."""
    from smile.video.decode import VideoReader

    folder = tmp_path_factory.mktemp("camera")
    real = videos.REAL / "d0.mp4"
    if real.is_file():
        with VideoReader(real) as reader:
            frames = [frame.rgb for frame in reader]
    else:
        frames = videos.moving_faces(face_photos.faces()[:1], count=30, step=1)
    return write_y4m(frames, folder / "camera.y4m")


def chromium(*flags: str):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
        *flags,
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def browser(camera_file: Path):
    driver = chromium(
        "--use-fake-ui-for-media-stream",  # the camera prompt answered yes
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera_file}",
        "--autoplay-policy=no-user-gesture-required",
    )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def url():
    with running(create_app(smile.load(), ServeSettings(workers=2))) as base:
        yield base


def test_the_camera_mode_draws_tracked_faces_over_the_live_picture(browser, url: str, tmp_path: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/?mode=camera")
    WebDriverWait(browser, 20).until(lambda d: "Smiling" in d.find_element(By.ID, "model").text)
    assert browser.find_element(By.ID, "camera-mode").is_displayed()
    assert not browser.find_element(By.ID, "photo-mode").is_displayed()
    browser.find_element(By.ID, "camera-start").click()
    WebDriverWait(browser, 60).until(
        lambda d: int(d.execute_script("return document.body.dataset.cameraFrames || 0")) >= 6
    )
    state = browser.execute_script(
        """const o = document.getElementById('overlay'), v = document.getElementById('camera');
        const pixels = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
        let drawn = 0; for (let i = 3; i < pixels.length; i += 4) drawn += pixels[i] > 0;
        return {faces: +o.dataset.faces, drawn, width: o.width, video: [v.videoWidth, v.videoHeight, v.readyState],
                tracks: [...document.querySelectorAll('#camera-faces li')].map(li => li.dataset.track)};"""
    )
    assert state["faces"] >= 1 and state["drawn"] > 500, state  # a box and its label are on the overlay
    assert state["video"][0] > 0 and state["video"][2] >= 2, state  # the live picture plays under it
    assert state["tracks"] and set(state["tracks"]) <= {"1", "2"}, state  # one person keeps id #1
    status = browser.find_element(By.ID, "camera-status").text
    assert "frames a second to the server" in status, status
    with contextlib.suppress(TimeoutException):  # the screenshot: while the man smiles, if he does
        WebDriverWait(browser, 15, poll_frequency=0.05).until(
            lambda d: ": smiling" in d.find_element(By.ID, "camera-faces").text
        )
    artifacts = Path(os.environ.get("SMILE_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(artifacts / "camera-page.png"))
    print(f"screenshot: {artifacts / 'camera-page.png'}")
    browser.find_element(By.ID, "camera-stop").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "camera-status").text == "Camera off.")


def test_a_refused_camera_is_said_on_the_page(url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    refusing = chromium("--use-fake-device-for-media-stream", "--deny-permission-prompts")  # the prompt: no
    try:
        refusing.get(url + "/?mode=camera")
        refusing.find_element(By.ID, "camera-start").click()
        WebDriverWait(refusing, 20).until(
            lambda d: d.execute_script("return document.body.dataset.camera") == "refused"
        )
        status = refusing.find_element(By.ID, "camera-status")
        assert "The camera was refused" in status.text and status.get_attribute("class") == "error"
        assert not refusing.find_element(By.ID, "live").is_displayed()
    finally:
        refusing.quit()


def test_an_uploaded_video_plays_annotated_in_the_page(browser, url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = videos.write_clip(tmp_path / "clip.mp4", videos.moving_faces(face_photos.faces()[:2], count=20))
    browser.get(url + "/?mode=video")
    browser.find_element(By.ID, "video-file").send_keys(str(clip))
    WebDriverWait(browser, 180).until(
        lambda d: d.execute_script("return document.body.dataset.video") in ("done", "failed")
    )
    assert browser.execute_script("return document.body.dataset.video") == "done", browser.find_element(
        By.ID, "video-status"
    ).text
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.getElementById('annotated').readyState") >= 2
    )
    browser.execute_script("document.getElementById('annotated').play()")
    first = browser.execute_script("return document.getElementById('annotated').currentTime")
    time.sleep(1.0)
    state = browser.execute_script(
        """const v = document.getElementById('annotated');
        return {t: v.currentTime, duration: v.duration, error: v.error && v.error.message, width: v.videoWidth,
                paused: v.paused, ready: v.readyState, src: v.currentSrc};"""
    )
    assert state["error"] is None and state["width"] > 0 and state["duration"] > 0.5, state
    assert state["t"] > first, state  # it plays: the clock advances
    assert "track" in browser.find_element(By.ID, "video-summary").text
    assert browser.execute_script("return document.getElementById('timeline').naturalWidth") > 100
    links = [
        browser.find_element(By.ID, i).get_attribute("href") for i in ("csv-link", "tracks-link", "json-link")
    ]
    assert [link.rsplit("/", 1)[-1] for link in links] == ["frames.csv", "tracks.csv", "tracks.json"]
