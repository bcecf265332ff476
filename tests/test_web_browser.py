"""`m2aenet web` in a real headless browser: upload the real clock photo, wait for the result,
download it through the page's link and compare it with what `Deblurrer` returns.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (the `test` extra);
`make browser` installs the Debian packages. Nothing is downloaded while the test runs: Selenium
is pointed at the system's chromedriver, and the browser resolves no name but the server's.
Set M2AENET_WEB_SCREENSHOT=PATH to keep the screenshot (docs/images/web.png is made that way).
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2aenet.web.handlers import EXAMPLES_DIR, DeblurService
from m2aenet.web.server import WebServer, make_server, page_address

HOW_TO_RUN = (
    "needs a headless browser: `apt-get install chromium chromium-driver` (or `make browser`) "
    "and `pip install selenium` (in the test extra)"
)
CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None
)
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    webdriver = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        webdriver is None or CHROMIUM is None or CHROMEDRIVER is None, reason=HOW_TO_RUN
    ),
]
PHOTO = EXAMPLES_DIR / "clock_motion_real.png"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The page with the shipped weights on the CPU, on a free port."""
    from m2aenet.api import Deblurrer

    deblurrer = Deblurrer.from_pretrained("default", device="cpu")
    service = DeblurService(deblurrer, tmp_path_factory.mktemp("web"), examples_dir=EXAMPLES_DIR)
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,900",
        "--hide-scrollbars",
        # Offline: any name but the server's fails, so a script or font from elsewhere would
        # show up as a failed resource below.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _wait_for_state(driver: webdriver.Chrome, states: tuple[str, ...], timeout: float = 120) -> str:
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in states
    )
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def test_the_page_restores_the_clock_photo_as_the_api_does(
    server: WebServer, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    address = page_address(server)
    browser.get(address)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#examples button img")
    )
    names = [
        b.get_attribute("data-name")
        for b in browser.find_elements(By.CSS_SELECTOR, "#examples button")
    ]
    assert "clock_motion_real.png" in names

    browser.find_element(By.ID, "file").send_keys(str(PHOTO))
    assert _wait_for_state(browser, ("done", "error")) == "done", browser.find_element(
        By.ID, "error"
    ).text
    stats = browser.find_element(By.ID, "stats").text
    assert "Blurred share" in stats and "%" in stats

    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "clock_motion_real_deblurred.png"
    with urllib.request.urlopen(link.get_attribute("href"), timeout=60) as response:
        downloaded = np.asarray(Image.open(BytesIO(response.read())))
    service = server.service
    with service.model_lock:
        expected = np.asarray(service.deblurrer(PHOTO).image)
    assert downloaded.shape == expected.shape
    assert np.array_equal(downloaded, expected)
    with Image.open(PHOTO) as original:
        assert not np.array_equal(downloaded, np.asarray(original.convert("RGB")))

    screenshot = tmp_path / "web.png"
    browser.save_screenshot(str(screenshot))
    if os.environ.get("M2AENET_WEB_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["M2AENET_WEB_SCREENSHOT"])
    with Image.open(screenshot) as picture:
        assert picture.size[0] >= 1000

    # The mask over the photo, then the threshold slider runs the photo again.
    browser.find_element(By.ID, "tab-mask").click()
    overlay = browser.find_element(By.ID, "overlay")
    assert overlay.is_displayed() and int(overlay.get_attribute("naturalWidth")) == 400
    first_run = browser.find_element(By.ID, "result").get_attribute("data-run")
    browser.execute_script(
        "const slider = document.getElementById('threshold'); slider.value = 0.1;"
        "slider.dispatchEvent(new Event('change'));"
    )
    WebDriverWait(browser, 120).until(
        lambda d: (
            d.find_element(By.ID, "result").get_attribute("data-run") != first_run
            and d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
        )
    )
    assert "0.10" in browser.find_element(By.ID, "stats").text

    # Everything the page loaded came from the server itself.
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert origins and all(url.startswith(address) or url.startswith("blob:") for url in origins)


def test_an_example_is_one_click_away(server: WebServer, browser: webdriver.Chrome) -> None:
    browser.get(page_address(server))
    button = WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#examples button[data-name^='synth']")
    )
    button.click()
    assert _wait_for_state(browser, ("done", "error")) == "done"
    assert "current" in button.get_attribute("class")
    assert browser.find_element(By.ID, "download").get_attribute("download").startswith("synth")


def test_a_broken_file_is_one_line_on_the_page(
    server: WebServer, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    browser.get(page_address(server))
    browser.find_element(By.ID, "file").send_keys(str(broken))
    _wait_for_state(browser, ("idle", "error"), timeout=60)
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 30).until(lambda d: error.is_displayed())
    assert error.text.startswith("broken.png: not a readable")
    assert "\n" not in error.text and "Traceback" not in error.text
