"""Opening a self-contained HTML page in headless Chromium (Debian's package, which .ci/run installs): every
image must load, the page must render something, and the browser's console must report no error. And a
page that runs scripts over time (a served site's search) through chromedriver (:class:`WebDriver`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files"]


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium)")
    return browser


def check_page(page, scratch) -> dict:
    """Load ``page`` (a file) in an iframe of a checker page and count its images and the broken ones; take a
    screenshot. Returns {"images": n, "broken": k, "console_errors": [...], "screenshot_std": float}."""
    browser = chromium()
    checker = scratch / "check.html"
    checker.write_text(
        f"<html><body><iframe id='f' src='{page.as_uri()}' width='1200' height='800'></iframe><div id='result'>"
        "pending</div><script>document.getElementById('f').onload = function () {"
        "  const images = Array.from(this.contentDocument.images);"
        "  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;"
        "  document.getElementById('result').textContent = 'images=' + images.length + ' broken=' + broken;"
        "};</script></body></html>")
    flags = [*FLAGS, f"--user-data-dir={scratch / 'profile'}", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([browser, *flags, "--virtual-time-budget=10000", "--dump-dom", checker.as_uri()],
                          capture_output=True, text=True, timeout=120)
    result = done.stdout.split("<div id=\"result\">", 1)[-1].split("</div>", 1)[0]
    counts = dict(part.split("=") for part in result.split()) if "images=" in result else {}
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    shot = scratch / "shot.png"
    subprocess.run([browser, *FLAGS, f"--user-data-dir={scratch / 'profile2'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64) if shot.is_file() else np.zeros(1)
    return {"images": int(counts.get("images", -1)), "broken": int(counts.get("broken", -1)),
            "console_errors": console, "screenshot_std": float(pixels.std()), "dom": done.stdout[-500:]}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers 200 (failing early if ``process``, the server, has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}) before {url} answered")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.2)


class WebDriver:
    """Headless Chromium driven through chromedriver's W3C WebDriver HTTP interface (Debian's chromium-driver,
    which .ci/run installs with chromium), for pages that must run scripts over time: a served site's search.
    A context manager: the browser and the driver are stopped on exit."""

    def __init__(self, scratch):
        driver = shutil.which("chromedriver")
        if driver is None:
            pytest.skip("chromedriver is not installed (CI installs Debian's chromium-driver)")
        browser = chromium()
        port = free_port()
        self._driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{self._base}/status", 30, self._driver)
        options = {"binary": browser, "args": [*FLAGS, f"--user-data-dir={scratch / 'webdriver-profile'}"]}
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}}})
        self._session = f"/session/{session['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(self._base + path, method=method, headers={"Content-Type": "application/json"},
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["value"]

    def open(self, url: str) -> None:
        self._call("POST", f"{self._session}/url", {"url": url})

    def run(self, script: str, *args):
        """The value the JavaScript function body ``script`` returns (``arguments`` are ``args``)."""
        return self._call("POST", f"{self._session}/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, timeout: float = 30):
        """Run ``script`` until it returns something truthy; return that (or the last value after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not (value := self.run(script)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return value

    def console(self) -> list[dict]:
        """The browser console's entries so far ({"level", "message", ...})."""
        return self._call("POST", f"{self._session}/se/log", {"type": "browser"})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self._call("DELETE", self._session)
        finally:
            self._driver.terminate()
            self._driver.wait(timeout=30)
