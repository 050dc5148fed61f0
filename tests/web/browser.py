"""The web page's server and headless Chromium (Debian's, driven by Selenium through Debian's chromedriver), for
the page's tests and its benchmark. Nothing is downloaded: Selenium Manager is kept offline."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from ..conftest import REPO, STARTUP_S

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never looks for browsers or drivers online
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The first start of the server exports three networks to ONNX and paints 26 thumbnails: minutes on a busy
# 2-core machine; later starts take them from the cache.
SERVER_START_S = 3 * STARTUP_S

# Runs `stylize` of streamstyle.js on pictures handed over as bytes: arguments (photo, style, options, done);
# `style` is a built-in index, a painting's bytes (base64), or [[index or bytes, weight], ...]. Gives back the
# RGBA result as base64, or { error }.
STYLIZE_SCRIPT = """
const [photo, style, options, done] = arguments;
const decode = async (bytes) => createImageBitmap(
  await (await fetch('data:application/octet-stream;base64,' + bytes)).blob(),
  { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
const styleOf = async (which) => (typeof which === 'number' ? which : decode(which));
(async () => {
  const { stylize } = await import('/streamstyle.js');
  const chosen = Array.isArray(style)
    ? await Promise.all(style.map(async ([which, weight]) => [await styleOf(which), weight]))
    : await styleOf(style);
  const started = performance.now();
  const image = await stylize(await decode(photo), { ...options, style: chosen });
  const ms = performance.now() - started;
  let text = '';
  for (let i = 0; i < image.data.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, image.data.subarray(i, i + 0x8000));
  }
  return { rgba: btoa(text), width: image.width, height: image.height, ms };
})().then(done, (error) => done({ error: String((error && error.stack) || error) }));
"""


def chromium_unavailable() -> str | None:
    """Why the browser tests cannot run here (a reason for pytest.skip), or None when they can."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        return f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver (make system-deps)"
    return None


def as_base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def stylize_in_page(driver, photo: Path, style: object, **options: object) -> tuple[np.ndarray, float]:
    """The page's `stylize` of `photo`: [H,W,3] uint8 RGB, and the milliseconds it took in the page. Painting
    paths in `style` (alone or in a blend) are handed over as bytes."""

    def handed(which: object) -> object:
        return as_base64(which) if isinstance(which, Path) else which

    style = [[handed(which), weight] for which, weight in style] if isinstance(style, list) else handed(style)
    result = driver.execute_async_script(STYLIZE_SCRIPT, as_base64(photo), style, options)
    if "error" in result:
        raise AssertionError(f"stylize failed in the page: {result['error']}")
    rgba = np.frombuffer(base64.b64decode(result["rgba"]), np.uint8).reshape(result["height"], result["width"], 4)
    return rgba[..., :3].copy(), result["ms"]


class PageServer:
    """`streamstyle serve --port 0` (and the options given) in a process of its own; `env` adds to its
    environment (TMPDIR: where its video jobs are kept)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args, self.env = args, env or {}
        self.url = ""
        self.lines: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> PageServer:
        command = [sys.executable, "-m", "streamstyle.cli", "serve", "--port", "0", *self.args]
        self._process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, env={**os.environ, **self.env})  # fmt: skip
        announced = threading.Event()

        def pump(stdout) -> None:
            for line in stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("serving the page at "):
                    self.url = line.removeprefix("serving the page at ").strip()
                    announced.set()
            announced.set()  # the process ended without announcing

        threading.Thread(target=pump, args=(self._process.stdout,), daemon=True).start()
        if not announced.wait(SERVER_START_S) or not self.url:
            self.__exit__()
            raise AssertionError(f"streamstyle serve did not start within {SERVER_START_S:g} s: {self.lines}")
        return self

    def __exit__(self, failure: type[BaseException] | None = None, *_exc: object) -> None:
        if failure is not None:  # what the server said goes with the test's failure (pytest shows what was printed)
            print("streamstyle serve said:", *self.lines, sep="\n")
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def origin(self) -> str:
        return self.url.split("?")[0]


def write_y4m(clip: Path, path: Path, seconds: float = 4.0, width: int = 320) -> Path:
    """The first `seconds` of `clip` as a raw YUV4MPEG2 file, Chromium's fake camera's format, shrunk to `width`."""
    with av.open(str(clip)) as source, av.open(str(path), "w", format="yuv4mpegpipe") as sink:
        stream = source.streams.video[0]
        height = round(stream.height * width / stream.width / 2) * 2
        out = sink.add_stream("rawvideo", rate=stream.average_rate or 25)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        for frame in source.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                break
            for packet in out.encode(frame.reformat(width=width, height=height, format="yuv420p")):
                sink.mux(packet)
        for packet in out.encode():
            sink.mux(packet)
    return path


@contextmanager
def chromium(fake_camera: Path | None = None, refuse_camera: bool = False, webgpu: bool = False) -> Iterator:
    """Headless Chromium under Selenium, its network log kept (`requested_urls`): a y4m file as its camera, or
    every camera request refused as a user would; with `webgpu`, WebGPU on the machine's adapter (headless and
    without a GPU: SwiftShader, Chromium's own Vulkan on the CPU), which Chromium offers only when told."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                     "--use-fake-device-for-media-stream"):  # fmt: skip
        options.add_argument(argument)
    options.add_argument("--use-fake-ui-for-media-stream" + ("=deny" if refuse_camera else ""))
    if fake_camera:
        options.add_argument(f"--use-file-for-fake-video-capture={fake_camera}")
    if webgpu:
        options.add_argument("--enable-unsafe-webgpu")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(SERVER_START_S)
    driver.set_page_load_timeout(STARTUP_S)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, url: str) -> None:
    """Load the page and wait until it says it is ready (the runtime and the styles loaded) or shows an error."""
    driver.get(url)
    deadline = time.monotonic() + SERVER_START_S
    while driver.execute_script("return document.body.dataset.ready") != "true":
        message = driver.find_element(By.ID, "message")
        assert not message.is_displayed(), f"the page did not come up: {message.text}"
        assert time.monotonic() < deadline, "the page did not come up"
        time.sleep(0.2)


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call, from its network log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
