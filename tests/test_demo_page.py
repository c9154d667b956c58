"""The demo page in a real browser: Debian's Chromium driven by Playwright. The handler serves the
page itself (/demo, and / to a browser), as the deployed function does; the local server only
turns HTTP into its events.

No browser is downloaded: Playwright launches /usr/bin/chromium (installed by .ci/run with
apt-get). Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import MODEL_DIR, REPO, SHIPPED_NAMED, UPPER, model_variant

from captcha_ocr.app import create_app
from captcha_ocr.config import load_config
from captcha_ocr.server import make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found (apt-get install chromium)")]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    page.goto(base_url + "/demo")
    yield page
    hosts = {urlsplit(url).netloc for url in page.requested_urls if not url.startswith("data:")}
    assert hosts == {urlsplit(base_url).netloc}, f"the page reached other hosts: {hosts}"
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_sample_is_recognised(page):
    page.click("#sample-button")
    result = page.locator("#sample-result [data-testid=text]")
    result.wait_for(timeout=20_000)
    truth = page.locator("#sample-truth").get_attribute("data-text")
    assert truth and result.inner_text() == truth
    assert "confidence" in page.locator("#sample-result [data-testid=confidence]").inner_text()
    assert "matches" in page.locator("#sample-result [data-testid=verdict]").inner_text()
    assert page.locator("#sample-preview img").is_visible()
    screenshot(page, "demo-laptop.png")


def upload(page, data: bytes, folder: Path) -> str:
    """Choose the image in the file input; the text the page shows once the reply lands."""
    image = folder / "upload.png"
    image.write_bytes(data)
    page.set_input_files("#file", str(image))
    result = page.locator("#upload-result [data-testid=text]")
    result.wait_for(timeout=20_000)
    return result.inner_text()


def test_uploaded_image_is_recognised(page, fresh_captchas, tmp_path):
    sample = fresh_captchas[5]
    assert upload(page, sample.data, tmp_path) == sample.text
    assert page.locator("#upload-preview img").is_visible()


def test_non_image_shows_a_readable_error(page, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not an image")
    page.set_input_files("#file", str(junk))
    error = page.locator("#upload-result [data-testid=error]")
    error.wait_for(timeout=20_000)
    assert error.inner_text().startswith("UnsupportedImage: ")
    screenshot(page, "demo-error.png")


def test_phone_layout(browser, base_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(base_url + "/demo")
    page.click("#sample-button")
    page.locator("#sample-result [data-testid=text]").wait_for(timeout=20_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    screenshot(page, "demo-phone.png")
    context.close()


@pytest.fixture(scope="module")
def staged_url(app):
    """The handler behind an API path prefix, as an API Gateway stage mounts it ("/release")."""
    server = make_server(app.handle, "127.0.0.1", 0, api_path="/release")
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}/release"
    server.close()


@pytest.mark.parametrize("entry", ["/demo", "/", ""])
def test_the_page_works_behind_a_path_prefix(browser, staged_url, entry):
    """The function serves its own page; every URL in it is relative, so a stage prefix is kept."""
    context = browser.new_context()
    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(urlsplit(request.url).path))
    page.goto(staged_url + entry)
    page.click("#sample-button")
    result = page.locator("#sample-result [data-testid=text]")
    result.wait_for(timeout=20_000)
    assert result.inner_text() == page.locator("#sample-truth").get_attribute("data-text")
    api_calls = [path for path in requested if not path.endswith(("/demo", "/release"))]
    assert api_calls and all(path.startswith("/release/") for path in api_calls), requested
    context.close()


@pytest.fixture(scope="module")
def two_models_url(tmp_path_factory):
    """A server with the shipped model and "upper", which reads its captchas upper-cased."""
    models = tmp_path_factory.mktemp("models")
    model_variant(models, "upper", charset=UPPER)
    server = make_server(create_app(MODEL_DIR, models).handle, "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


def test_the_model_picker_reads_with_the_model_picked(browser, two_models_url, fresh_captchas, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    page.goto(two_models_url + "/demo")
    picker = page.locator("[data-testid=model]")
    options = 2 + len(SHIPPED_NAMED)
    page.wait_for_function(f"document.querySelectorAll('#model option').length === {options}", timeout=20_000)
    default = load_config(MODEL_DIR).name
    assert picker.locator("option").all_inner_texts() == [f"{default} (default)", *SHIPPED_NAMED, "upper"]
    assert "33 characters, length 4" in page.locator("#model-info").inner_text()
    picker.select_option("upper")
    assert '--data-urlencode "model=upper"' in page.locator("#curl").inner_text()
    sample = fresh_captchas[6]
    assert upload(page, sample.data, tmp_path) == sample.text.upper()
    assert page.locator("#upload-result [data-testid=confidence]").inner_text().endswith("model upper")
    screenshot(page, "demo-model-picker.png")
    context.close()


def test_a_sample_slider_is_solved_and_its_gap_drawn(page):
    page.click("#slider-button")
    found = page.locator("#slider-result [data-testid=slide-x]")
    found.wait_for(timeout=20_000)
    assert "from the gap" in page.locator("#slider-result [data-testid=slide-meta]").inner_text()
    assert page.locator("#slider-preview [data-testid=gap-box]").is_visible()
    assert page.locator("#slider-preview img").count() == 2
    screenshot(page, "demo-slider.png")
