"""The web page in a real browser: headless Chromium opens ``/``, uploads face photos and a text file,
and shows boxes, probability bars and messages. Skips where Chromium, its driver or Selenium is missing
(``.ci/run`` installs them). The screenshot goes to ``$SMILE_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import photos as face_photos
from helpers.photos import needs_mtcnn

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")

from helpers.serving import BROWSER, DRIVER, needs_chromium, running  # noqa: E402

import smile  # noqa: E402
from smile.serve.app import ServeSettings, create_app  # noqa: E402

pytestmark = [needs_mtcnn, needs_chromium]


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,760"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_shows_boxes_bars_and_errors(browser, smiling_checkpoint: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    group, notes = tmp_path / "group.jpg", tmp_path / "notes.jpg"
    group.write_bytes(face_photos.jpeg(face_photos.group(3)))
    notes.write_text("this is not a photo")
    predictor = smile.load(smiling_checkpoint)
    with running(create_app(predictor, ServeSettings(workers=2))) as url:
        browser.get(url + "/")
        WebDriverWait(browser, 20).until(lambda d: "Smiling" in d.find_element(By.ID, "model").text)
        for element in ("result", "photo", "faces"):  # nothing shows before a photo is sent
            assert not browser.find_element(By.ID, element).is_displayed(), element
        browser.find_element(By.ID, "file").send_keys(str(group))
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#boxes .box")) == 3)
        boxes = browser.find_elements(By.CSS_SELECTOR, "#boxes .box")
        assert all(box.size["width"] > 20 and box.size["height"] > 20 for box in boxes)
        xs = [box.location["x"] for box in boxes]
        assert xs == sorted(xs) and len(set(xs)) == 3
        bars = browser.find_elements(By.CSS_SELECTOR, "#faces .bar")
        assert [bar.get_attribute("data-attribute") for bar in bars] == ["Smiling"] * 3
        expected = [f.probabilities["Smiling"] for f in predictor.predict(group)]
        shown = [float(bar.find_element(By.CSS_SELECTOR, ".p").text) for bar in bars]
        assert shown == pytest.approx(expected, abs=0.006)
        fills = [bar.find_element(By.CSS_SELECTOR, ".fill").size["width"] for bar in bars]
        tracks = [bar.find_element(By.CSS_SELECTOR, ".track").size["width"] for bar in bars]
        assert [f / t for f, t in zip(fills, tracks)] == pytest.approx(expected, abs=0.02)
        status = browser.find_element(By.ID, "status").text
        assert "3 faces in group.jpg" in status and " ms" in status
        artifacts = Path(os.environ.get("SMILE_ARTIFACTS", tmp_path))
        artifacts.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(artifacts / "serve-page.png"))
        print(f"screenshot: {artifacts / 'serve-page.png'}")

        browser.find_element(By.ID, "file").send_keys(str(notes))
        WebDriverWait(browser, 30).until(lambda d: "notes.jpg is" in d.find_element(By.ID, "status").text)
        status = browser.find_element(By.ID, "status")
        assert status.text == "notes.jpg is not a photo: choose a JPEG, PNG, WebP or BMP file."
        assert status.get_attribute("class") == "error"
        # the failed upload left nothing of the earlier photo's result on view
        for element in ("result", "photo", "faces"):
            assert not browser.find_element(By.ID, element).is_displayed(), element
        assert not browser.find_elements(By.CSS_SELECTOR, "#boxes .box, #faces .bar")
