"""The Gradio demo in a real browser: Debian's headless Chromium driven by Playwright.

The app runs as its own process (``demos/gradio_app.py --tiny-random``) on a free localhost
port, exactly as a user starts it; Chromium types a 150-word prompt, reads the token meter,
clicks Generate, waits for both images and saves a screenshot of the page.

Chromium is a system program: without it this test skips with the install command, unless
``LONGCLIP_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs it) turns the skip into a
failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from longclip_diffusers import tiny

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Debian's package; Playwright's own browser download is not reachable from every machine.
CHROMIUM_INSTALL = "sudo apt-get install -y chromium"
REQUIRE_BROWSER_ENV = "LONGCLIP_REQUIRE_BROWSER"
STARTUP_SECONDS = 180
GENERATE_MS = 180_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"needs Chromium at {CHROMIUM}: {CHROMIUM_INSTALL}"
        if os.environ.get(REQUIRE_BROWSER_ENV):
            pytest.fail(f"{REQUIRE_BROWSER_ENV} is set but the browser is missing; {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def demo_url(chromium, tmp_path):
    port = _free_port()
    env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(
        [sys.executable, str(REPO / "demos" / "gradio_app.py"), "--tiny-random", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, app, tmp_path / "app.log")
        yield url
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        log.close()


def _wait_until_serving(url: str, app: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise AssertionError(f"the demo exited with {app.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the demo did not serve {url} in {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def _artifacts_dir() -> Path:
    """Where the screenshot is kept for people to look at (issue 6): ``$LONGCLIP_ARTIFACTS``,
    else ``<repo>/artifacts`` (git-ignored)."""
    folder = Path(os.environ.get("LONGCLIP_ARTIFACTS") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _local_only(route, demo_url: str, outside: list) -> None:
    """Serve requests to the app; record and refuse everything else (fonts, CDNs, analytics)."""
    url = route.request.url
    if url.startswith(demo_url) or url.startswith(("data:", "blob:")):
        route.continue_()
    else:
        outside.append(url)
        route.abort()


def test_browser_types_long_prompt_sees_dropped_words_and_gets_both_images(chromium, demo_url):
    from playwright.sync_api import expect, sync_playwright

    words = [tiny.TINY_WORDS[i % len(tiny.TINY_WORDS)] for i in range(150)]
    prompt = " ".join(words)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            outside = []
            page.route("**/*", lambda route: _local_only(route, demo_url, outside))
            page.goto(demo_url)
            expect(page.locator("#random-weights")).to_contain_text("Random weights")

            page.locator("#prompt textarea").fill(prompt)
            count = page.locator("#token-count")
            expect(count).to_contain_text("150 words, 150 tokens", timeout=30_000)
            expect(count).to_contain_text("drops 75 words")
            meter = page.locator("#token-meter")
            # 75 words fit a 77-token encoder (start and end token take two slots); the other
            # 75 are highlighted as dropped, and nothing is past 248.
            expect(meter.locator(".highlighted")).to_have_text(" ".join(words[75:]))
            expect(meter.locator(".unlabeled")).to_have_text(" ".join(words[:75]))
            expect(meter).to_contain_text("dropped by a 77-token encoder")

            page.locator("#generate").click()
            for image in ("#stock-image img", "#long-image img"):
                expect(page.locator(image)).to_be_visible(timeout=GENERATE_MS)
            expect(page.locator("#status")).to_contain_text("Seed 0")
            shot = _artifacts_dir() / "browser_demo.png"
            shot.unlink(missing_ok=True)  # a screenshot of an earlier run must not pass for this one
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(PNG_SIGNATURE)
            assert shot.stat().st_size > 10_000
            assert outside == [], f"the page tried to reach the internet: {outside}"
        finally:
            browser.close()
