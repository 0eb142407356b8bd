"""Opening a self-contained HTML page in headless Chromium (Debian's package, which .ci/run installs): every
image must load, the page must render something, and the browser's console must report no error."""

from __future__ import annotations

import shutil
import subprocess

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
