"""`python -m tests.web.screenshot docs/web_page.jpg`: the page as the tests' own browser shows it, a photo painted
in a painting's style, for the README (`make docs`)."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from selenium.webdriver.common.by import By

from streamstyle.io.images import write_image

from ..conftest import SAMPLES
from .browser import SERVER_START_S, PageServer, chromium, open_page


def wait_for_renders(driver, count: int) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while int(driver.execute_script("return document.getElementById('result').dataset.renders || 0")) < count:
        assert time.monotonic() < deadline, "the page did not paint"
        time.sleep(0.2)


def main(path: Path) -> None:
    with PageServer() as server, chromium() as driver:
        driver.set_window_size(1280, 900)
        open_page(driver, server.url)
        driver.find_element(By.ID, "photo-input").send_keys(str(SAMPLES / "photos" / "skimage_chelsea.png"))
        wait_for_renders(driver, 1)
        driver.find_element(By.ID, "painting-input").send_keys(str(SAMPLES / "paintings" / "hokusai_great_wave.png"))
        wait_for_renders(driver, 2)
        screenshot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        write_image(np.asarray(screenshot), path, quality=85)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
