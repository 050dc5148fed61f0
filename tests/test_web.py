"""The web page in a real browser: headless Chromium from Debian, driven by Selenium, against `streamstyle serve`
started by the tests; its fake camera plays a sample clip converted to y4m."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import re
import threading
from typing import ClassVar
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from streamstyle.engines.fidelity import psnr
from streamstyle.io.images import fit_within, read_image, write_image
from streamstyle.processing.stages import resized
from streamstyle.processing.stylizer import Stylizer

from .conftest import SAMPLES, run_cli, wait_for_count, wait_until
from .web.browser import (
    PageServer,
    chromium,
    chromium_unavailable,
    open_page,
    requested_urls,
    stylize_in_page,
    write_y4m,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.browser,
    pytest.mark.skipif(chromium_unavailable() is not None, reason=str(chromium_unavailable())),
]

PHOTO = SAMPLES / "photos" / "skimage_chelsea.png"  # 451 px wide: the networks see it padded by reflection
HOKUSAI = SAMPLES / "paintings" / "hokusai_great_wave.png"
KANDINSKY = SAMPLES / "paintings" / "kandinsky_composition_viii.png"
PARITY_DB = 35.0
PAGE_WAIT_S = 240.0  # a bound for a hang; the page's runs take seconds, more on a busy machine


@pytest.fixture(scope="module")
def server():
    with PageServer() as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    camera = write_y4m(SAMPLES / "clips" / "bikes.mp4", tmp_path_factory.mktemp("camera") / "bikes.y4m")
    with chromium(fake_camera=camera) as driver:
        yield driver


@pytest.fixture
def page(browser, server):
    open_page(browser, server.url)
    return browser


def python_output(style, strength: float = 1.0) -> np.ndarray:
    """What the Python package makes of PHOTO, on the reference engine."""
    stylizer = Stylizer(style, strength=strength, device="cpu", precision="fp32", backend="torch")
    return stylizer(read_image(PHOTO))


@pytest.mark.parametrize(
    ("style", "python_style", "strength"),
    [
        (7, 7, 1.0),
        ([[3, 0.5], [12, 0.5]], "3:0.5,12:0.5", 0.6),
        (HOKUSAI, str(HOKUSAI), 1.0),
        ([[HOKUSAI, 0.5], [KANDINSKY, 0.5]], f"{HOKUSAI}:0.5,{KANDINSKY}:0.5", 0.7),
    ],
    ids=["builtin", "builtin-blend", "painting", "painting-blend"],
)
def test_the_page_paints_as_the_python_package_does(page, style, python_style, strength):
    painted, _ms = stylize_in_page(page, PHOTO, style, strength=strength)
    expected = python_output(python_style, strength)
    assert painted.shape == expected.shape
    assert psnr(painted, expected) >= PARITY_DB


def test_on_webgpu_the_page_paints_as_the_python_package_does(server, tmp_path):
    # Headless and without a GPU, Chromium's WebGPU adapter is SwiftShader, on the CPU: slow, so a small photo.
    photo = tmp_path / "small.png"
    write_image(fit_within(read_image(PHOTO), 160), photo)
    with chromium(webgpu=True) as browser:
        open_page(browser, server.url)
        assert page_text(browser, "engine") == "WebGPU"
        for style, python_style in [(7, 7), (HOKUSAI, str(HOKUSAI))]:
            painted, _ms = stylize_in_page(browser, photo, style)
            expected = Stylizer(python_style, device="cpu", precision="fp32", backend="torch")(read_image(photo))
            assert painted.shape == expected.shape
            assert psnr(painted, expected) >= PARITY_DB, python_style


def page_text(driver, element: str) -> str:
    return driver.find_element(By.ID, element).text


def counter(driver, element: str, name: str) -> int:
    return int(driver.execute_script(f"return document.getElementById('{element}').dataset.{name} || 0"))


def drop_file(driver, zone: str, name: str, content: str, kind: str) -> None:
    """A file dropped on a drop zone, as the browser hands it to the page."""
    driver.execute_script(
        """const [zone, name, content, kind] = arguments;
        const transfer = new DataTransfer();
        transfer.items.add(new File([content], name, { type: kind }));
        document.getElementById(zone).dispatchEvent(
          new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));""",
        zone, name, content, kind,
    )  # fmt: skip


def test_a_text_file_dropped_is_refused_on_the_page_and_the_next_photo_works(page):
    assert re.fullmatch(r"WASM \(SIMD, \d+ threads?\)|WebGPU", page_text(page, "engine"))
    assert page.execute_script("return self.crossOriginIsolated")  # the server's headers: WASM may use threads
    drop_file(page, "photo-drop", "notes.txt", "not a picture", "text/plain")
    message = page.find_element(By.ID, "message")
    wait_until(message.is_displayed, PAGE_WAIT_S, "the page to say what is wrong")
    assert message.text.startswith("notes.txt is not an image (text/plain)")
    page.find_element(By.ID, "photo-input").send_keys(str(PHOTO))
    wait_until(lambda: counter(page, "result", "renders") >= 1, PAGE_WAIT_S, "the photo to be painted")
    assert not message.is_displayed()
    size = page.execute_script("const c = document.getElementById('result'); return [c.width, c.height]")
    assert max(size) == 384  # the page's default size
    assert page.find_element(By.ID, "download").get_attribute("href").startswith("blob:")
    # Another style, then a painting: each paints again.
    page.find_element(By.CSS_SELECTOR, "#styles button[data-style='3']").click()
    wait_until(lambda: counter(page, "result", "renders") >= 2, PAGE_WAIT_S, "the new style")
    page.find_element(By.ID, "painting-input").send_keys(str(HOKUSAI))
    wait_until(lambda: counter(page, "result", "renders") >= 3, PAGE_WAIT_S, "the painting's style")
    assert not message.is_displayed()


# The canvas's pixels as RGB, and the page's own stylize() of the camera's current frame in each of two styles.
LIVE_SNAPSHOT = """
const [first, second, done] = arguments;
(async () => {
  const { stylize } = await import('/streamstyle.js');
  const canvas = document.getElementById('result');
  const shown = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const video = document.getElementById('camera');
  const size = Math.max(canvas.width, canvas.height);
  const painted = [];
  for (const style of [first, second]) painted.push(await stylize(video, { style, maxSize: size }));
  const rgb = (image) => Array.from(image.data.filter((_, i) => i % 4 !== 3));
  return { shown: rgb(shown), first: rgb(painted[0]), second: rgb(painted[1]) };
})().then(done, (error) => done({ error: String(error) }));
"""


def test_the_webcam_is_stylized_live_a_style_switch_changes_it_and_it_records(page):
    frames = functools.partial(counter, page, "result", "frames")
    page.find_element(By.ID, "webcam-start").click()
    wait_for_count(frames, 3, "stylized camera frames")
    assert re.fullmatch(r"\d+\.\d fps", page_text(page, "fps"))
    assert float(page_text(page, "fps").split()[0]) > 0
    page.find_element(By.CSS_SELECTOR, "#styles button[data-style='1']").click()
    wait_for_count(frames, frames() + 2, "camera frames in the new style")
    # What the page shows now is closer to the camera painted in the new style than in the old one.
    snapshot = page.execute_async_script(LIVE_SNAPSHOT, 7, 1)
    assert "error" not in snapshot, snapshot
    shown, old, new = (np.array(snapshot[key], np.float32) for key in ("shown", "first", "second"))
    assert np.abs(shown - new).mean() < np.abs(shown - old).mean()

    page.find_element(By.ID, "record").click()
    wait_for_count(frames, frames() + 5, "camera frames while recording")
    page.find_element(By.ID, "record").click()
    recording = page.find_element(By.ID, "recording")
    wait_until(recording.is_displayed, PAGE_WAIT_S, "the recording to be offered")
    webm = page.execute_async_script(
        """const done = arguments[0];
        fetch(document.getElementById('recording').href).then((r) => r.arrayBuffer()).then((buffer) => {
          let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
          done(btoa(text)); });"""
    )  # fmt: skip
    data = base64.b64decode(webm)
    assert data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    with av.open(io.BytesIO(data)) as container:
        pictures = sum(1 for _ in container.decode(video=0))
    with av.open(io.BytesIO(data)) as container:
        sound = sum(frame.samples for frame in container.decode(audio=0))  # the fake microphone's
    assert pictures >= 1 and sound > 0
    page.find_element(By.ID, "webcam-stop").click()


# The served picture's pixels as RGB, and the page's own stylize() of the camera's current frame, at the served
# size, in each of two styles.
SERVED_SNAPSHOT = """
const [first, second, done] = arguments;
(async () => {
  const { stylize, pixelsOf } = await import('/streamstyle.js');
  const served = document.getElementById('served');
  const size = Math.max(served.videoWidth, served.videoHeight);
  const shown = await pixelsOf(served);
  const camera = document.getElementById('camera');
  const painted = [];
  for (const style of [first, second]) painted.push(await stylize(camera, { style, maxSize: size }));
  const picture = (image) => ({ width: image.width, height: image.height,
                                rgb: Array.from(image.data.filter((_, i) => i % 4 !== 3)) });
  return { shown: picture(shown), first: picture(painted[0]), second: picture(painted[1]) };
})().then(done, (error) => done({ error: String(error) }));
"""


def closer_to_second(driver, first: int, second: int) -> bool:
    snapshot = driver.execute_async_script(SERVED_SNAPSHOT, first, second)
    if "error" in snapshot:  # a picture not there yet: try again
        return False
    shown, old, new = (np.array(snapshot[key]["rgb"], np.uint8).reshape(snapshot[key]["height"],
                                                                         snapshot[key]["width"], 3)
                       for key in ("shown", "first", "second"))  # fmt: skip
    # The server rounds its sizes its own way, and may change size between the reads: compare at the shown size.
    old, new = (resized(image, shown.shape[:2]).astype(np.float32) for image in (old, new))
    return bool(np.abs(shown - new).mean() < np.abs(shown - old).mean())


def test_the_page_can_paint_the_webcam_on_the_server_over_webrtc(page):
    frames = functools.partial(counter, page, "result", "frames")
    wait_until(page.find_element(By.ID, "run-on-label").is_displayed, PAGE_WAIT_S, "the server's offer of live")
    Select(page.find_element(By.ID, "run-on")).select_by_value("server")
    page.find_element(By.ID, "webcam-start").click()
    wait_for_count(frames, 5, "pictures from the server")
    assert float(page_text(page, "fps").split()[0]) > 0
    wait_until(lambda: closer_to_second(page, 3, 7), PAGE_WAIT_S, "the server's pictures in style 7")
    page.find_element(By.CSS_SELECTOR, "#styles button[data-style='1']").click()
    wait_for_count(frames, frames() + 5, "pictures in the new style")
    wait_until(lambda: closer_to_second(page, 7, 1), PAGE_WAIT_S, "the server's pictures in style 1")
    assert "dropped" in page_text(page, "status")  # the server's figures reach the page
    page.find_element(By.ID, "webcam-stop").click()
    assert not page.find_element(By.ID, "message").is_displayed()


def test_the_page_sends_a_video_file_to_the_server_and_offers_the_result(page):
    wait_until(page.find_element(By.ID, "video-job").is_displayed, PAGE_WAIT_S, "the server's offer of video jobs")
    Select(page.find_element(By.ID, "size")).select_by_value("256")
    page.find_element(By.ID, "video-input").send_keys(str(SAMPLES / "clips" / "bigbuckbunny_2s.mp4"))
    result = page.find_element(By.ID, "video-result")
    script = "return Math.round(document.getElementById('video-progress').value * 100)"
    progress = functools.partial(page.execute_script, script)
    wait_for_count(lambda: progress() + 100 * result.is_displayed(), 200, "the video job to finish")
    assert page_text(page, "video-state") == "done"
    size = page.execute_async_script(
        "const done = arguments[0]; fetch(document.getElementById('video-result').href)"
        ".then((r) => r.blob()).then((b) => done(b.size));"
    )  # fmt: skip
    assert size > 10_000


def test_a_refused_camera_is_said_on_the_page_and_photos_still_work(server):
    with chromium(refuse_camera=True) as driver:
        open_page(driver, server.url)
        driver.find_element(By.ID, "webcam-start").click()
        message = driver.find_element(By.ID, "message")
        wait_until(message.is_displayed, PAGE_WAIT_S, "the page to say the camera was refused")
        assert message.text.startswith("The camera could not be opened (NotAllowedError")
        driver.find_element(By.ID, "photo-input").send_keys(str(PHOTO))
        wait_until(lambda: counter(driver, "result", "renders") >= 1, PAGE_WAIT_S, "the photo to be painted")


def test_the_page_loads_nothing_from_outside_this_server(page, server):
    page.find_element(By.ID, "photo-input").send_keys(str(PHOTO))
    wait_until(lambda: counter(page, "result", "renders") >= 1, PAGE_WAIT_S, "the photo to be painted")
    page.find_element(By.ID, "painting-input").send_keys(str(KANDINSKY))
    wait_until(lambda: counter(page, "result", "renders") >= 2, PAGE_WAIT_S, "the painting's style")
    urls = requested_urls(page)
    assert {"/", "/page.js", "/streamstyle.js", "/models/site.json"} <= {urlsplit(url).path for url in urls}, urls
    outside = [url for url in urls if not url.startswith((server.origin, "data:", "blob:"))]
    assert not outside


class StaticFiles(http.server.SimpleHTTPRequestHandler):
    """A plain static host: no special headers."""

    extensions_map: ClassVar = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}  # fmt: skip

    def log_message(self, *_args) -> None:
        pass


def test_the_static_export_works_from_a_plain_static_host_and_a_lost_network_is_said(tmp_path, browser):
    folder = tmp_path / "site"
    result = run_cli("export-web", folder)
    assert result.returncode == 0, result.stderr
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(StaticFiles, directory=folder))
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        open_page(browser, f"http://127.0.0.1:{host.server_address[1]}/")
        # Without the isolation headers the engine runs on one thread, and still paints.
        assert page_text(browser, "engine") == "WASM (SIMD, 1 thread)"
        painted, _ms = stylize_in_page(browser, PHOTO, 7)
        assert psnr(painted, python_output(7)) >= PARITY_DB
        # A network that does not load (the host lost it) is said on the page, and the rest goes on working.
        (folder / "models" / "magenta-predictor.onnx").unlink()
        browser.find_element(By.ID, "photo-input").send_keys(str(PHOTO))
        wait_until(lambda: counter(browser, "result", "renders") >= 1, PAGE_WAIT_S, "the photo to be painted")
        browser.find_element(By.ID, "painting-input").send_keys(str(HOKUSAI))
        message = browser.find_element(By.ID, "message")
        wait_until(message.is_displayed, PAGE_WAIT_S, "the page to say the network did not load")
        assert message.text.startswith("the magenta-predictor network did not load")
        browser.find_element(By.CSS_SELECTOR, "#styles button[data-style='3']").click()
        wait_until(lambda: counter(browser, "result", "renders") >= 2, PAGE_WAIT_S, "a built-in style after that")
        assert not message.is_displayed()
    finally:
        host.shutdown()
