"""The documentation site: `mkdocs build --strict` (as CI runs it, with the docs extra .ci/run installs), every
internal link and image of the built site resolving to a file (and an anchor that exists), nothing loaded from
elsewhere, the generated references there, and every page opened in headless Chromium with no console error
and no broken image; and the README's `mkdocs serve` with its search, driven in headless Chromium."""

from __future__ import annotations

import html.parser
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser import FLAGS, WebDriver, chromium, free_port, wait_for_http
from tests.test_docs import README, shell_blocks

ROOT = Path(__file__).resolve().parents[2]
# Attributes that load something (a page that fails to load one is broken), and links a reader follows.
LOADS = {("img", "src"), ("script", "src"), ("link", "href"), ("source", "src"), ("iframe", "src")}
FOLLOWS = {("a", "href")}


class Page(html.parser.HTMLParser):
    """The URLs an HTML page loads and links to, and the ids its anchors can point at."""

    def __init__(self):
        super().__init__()
        self.loads, self.links, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name, value in attrs.items():
            if value is None:
                continue
            if (tag, name) in LOADS and not (tag == "link" and attrs.get("rel") in ("canonical", "alternate")):
                self.loads.append(value)
            elif (tag, name) in FOLLOWS:
                self.links.append(value)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built as CI builds it: --strict turns any warning (a broken link, a page missing from the
    navigation, a reference that does not resolve) into a failure."""
    folder = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return folder


@pytest.fixture(scope="module")
def pages(site):
    parsed = {}
    for path in sorted(site.rglob("*.html")):
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        parsed[path] = page
    return parsed


def nav_pages(site: Path) -> list[Path]:
    """The built pages of mkdocs.yml's navigation (every page of the site but 404.html)."""
    return sorted(path for path in site.rglob("*.html") if path.name != "404.html" and "assets" not in path.parts)


def test_every_page_of_the_navigation_is_built(site):
    built = {path.relative_to(site).as_posix() for path in nav_pages(site)}
    assert {"index.html", "getting-started.html", "training.html", "data.html", "comparing.html",
            "evaluating.html", "serving.html", "python-api.html", "runs-and-safety.html", "security.html",
            "RESULTS.html", "speed.html", "development.html", "changelog.html", "reference/cli.html",
            "reference/api/index.html", "reference/api/vampkeras.config.html"} <= built
    modules = {path.stem for path in (ROOT / "docs" / "reference" / "api").glob("vampkeras*.md")}
    assert {f"reference/api/{module}.html" for module in modules} <= built


def test_every_internal_link_and_image_resolves_and_nothing_comes_from_elsewhere(site, pages):
    broken, external = [], []
    for path, page in pages.items():
        for url, loaded in [(url, True) for url in page.loads] + [(url, False) for url in page.links]:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") or url.startswith("//"):
                if loaded:
                    external.append(f"{path.relative_to(site)}: {url}")
                continue
            if parts.scheme:            # mailto:, data:, javascript:
                continue
            where = f"{path.relative_to(site)}: {url}"
            if parts.path.startswith("/"):
                # only the 404 page, which a web server shows at any depth, names files from the site's root
                if path.name != "404.html":
                    broken.append(f"{where} (from the root: broken when the site is opened from disk)")
                    continue
                target = (site / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.is_relative_to(site) or not target.exists():
                broken.append(where)
            elif target.is_dir():
                # (docs/RESULTS.md links each row's records folder: one that exists and holds them)
                if not any(target.iterdir()):
                    broken.append(where)
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in pages[target].ids:
                broken.append(f"{where} (no such anchor)")
    assert not broken, broken
    assert not external, f"loaded from elsewhere: {external}"
    # no web fonts: the theme uses the system's (mkdocs.yml: font: false)
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css", ".js"):
            assert "fonts.googleapis" not in path.read_text(encoding="utf-8", errors="replace"), path


def test_the_references_are_generated_from_the_code(site):
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for command in ("train", "evaluate", "sample", "score", "report", "compare", "datasets"):
        assert f"vampkeras {command}" in cli, command
    assert "--pseudo-init-mean" in cli and "--versioned" in cli          # options, from the click commands
    config = (site / "reference" / "api" / "vampkeras.config.html").read_text(encoding="utf-8")
    assert "RunConfig" in config and "Fill the dataset-dependent defaults" in config     # RunConfig.resolve's docstring
    priors = (site / "reference" / "api" / "vampkeras.priors.html").read_text(encoding="utf-8")
    assert "VampPrior" in priors and "Variational mixture of posteriors" in priors     # the class's docstring
    assert ":class:" not in priors and ":func:" not in config                   # (docs/hooks/sphinx_roles.py)
    # the pages that live elsewhere are included, not copied
    assert "Report a vulnerability" in (site / "security.html").read_text(encoding="utf-8")
    assert "Keep a Changelog" in (site / "changelog.html").read_text(encoding="utf-8")
    assert "Recorded results" in (site / "speed.html").read_text(encoding="utf-8")


CHECKER = """<html><body><iframe id="frame" width="1200" height="900"></iframe><pre id="result">pending</pre>
<script>
const pages = PAGES;
const results = [];
const frame = document.getElementById("frame");
function next(index) {
  if (index >= pages.length) {
    document.getElementById("result").textContent = JSON.stringify(results);
    return;
  }
  frame.onload = function () {
    const page = frame.contentDocument;
    const images = Array.from(page.images);
    const content = page.querySelector("article");
    results.push({page: pages[index], title: page.title, images: images.length,
                  broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
                  text: content ? content.innerText.length : 0});
    setTimeout(function () { next(index + 1); }, 50);
  };
  frame.src = pages[index];
}
next(0);
</script></body></html>"""


def test_every_page_renders_in_headless_chromium_without_console_errors(site, tmp_path):
    """One browser for the whole site: a checker page loads every page in turn in a frame (the first a canary
    that logs an error, so that a console error in a frame is known to be seen)."""
    browser = chromium()
    canary = tmp_path / "canary.html"
    canary.write_text("<html><head><title>canary</title></head><body><article>canary page</article>"
                      "<script>console.error('canary error seen')</script></body></html>")
    urls = [canary.as_uri()] + [path.as_uri() for path in nav_pages(site)]
    checker = tmp_path / "check.html"
    checker.write_text(CHECKER.replace("PAGES", json.dumps(urls)))
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([browser, *flags, "--virtual-time-budget=120000", "--dump-dom", checker.as_uri()],
                          capture_output=True, text=True, timeout=300)
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found and found.group(1) != "pending", done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [result["page"] for result in results] == urls
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert any("canary error seen" in line for line in console), done.stderr[-3000:]
    errors = [line for line in console if "canary" not in line]
    assert not errors, errors
    for result in results[1:]:
        assert result["title"] and result["text"] > 100 and not result["broken"], result
    assert sum(result["images"] for result in results) >= 4          # the figures of the home page and RESULTS.md


def test_the_readmes_serve_command_serves_the_site_with_a_search_that_finds_pages(tmp_path):
    """README's `VAMPKERAS_DOCS_SEARCH=true .venv/bin/mkdocs serve`, run as written but on a free port (the
    documented 8000 may be taken): the served site has its search index, and in headless Chromium a query
    typed into the search box lists the pages that hold it, with everything loaded from the server itself and
    no console error. (The built site has no search: the static build above checks it loads nothing else.)"""
    lines = {page.name: [shlex.split(line, comments=True)
                         for _, block in shell_blocks(page.read_text(encoding="utf-8"))
                         for line in block.splitlines() if "mkdocs serve" in line]
             for page in (README, ROOT / "docs" / "getting-started.md")}       # the same command on both
    assert lines["README.md"] == lines["getting-started.md"] and len(lines["README.md"]) == 1, lines
    (words,) = lines["README.md"]
    line = shlex.join(words)
    environment = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    program, *arguments = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    assert environment == {"VAMPKERAS_DOCS_SEARCH": "true"} and program == ".venv/bin/mkdocs", line
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mkdocs", *arguments, "--dev-addr", f"127.0.0.1:{port}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **environment, "NO_MKDOCS_2_WARNING": "1"})
    site = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{site}/index.html", 180, server)
        with urllib.request.urlopen(f"{site}/search/search_index.json", timeout=30) as response:
            index = json.loads(response.read())
        locations = {entry["location"].split("#")[0] for entry in index["docs"]}
        assert {"index.html", "serving.html", "data.html", "reference/api/vampkeras.priors.html"} <= locations
        with WebDriver(tmp_path) as browser:
            browser.open(f"{site}/index.html")
            assert browser.run("const box = document.querySelector('[data-md-component=search-query]');"
                               "box.focus(); box.value = 'pseudo-inputs';"
                               "box.dispatchEvent(new Event('input', {bubbles: true})); return true")
            found = browser.wait_for("return Array.from(document.querySelectorAll('.md-search-result__item a'),"
                                     " link => link.href)")
            loaded = browser.run("return performance.getEntriesByType('resource').map(entry => entry.name)")
            errors = [entry for entry in browser.console() if entry["level"] == "SEVERE"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert any(link.startswith(f"{site}/reference/api/vampkeras.priors.html") for link in found), found
    assert loaded and all(url.startswith(site) for url in loaded), loaded
    assert not errors, errors
