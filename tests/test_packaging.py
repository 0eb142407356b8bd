"""Packaging: pyproject.toml's metadata, requirements.txt's pins, the installed commands and what the sdist and
the wheel hold."""

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import vampkeras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
# What a virtualenv brings or tensorflow asks for without a version: requirements.txt leaves them alone.
LEFT_TO_THE_VIRTUALENV = {"pip", "setuptools", "wheel"}
REINSTALL = 'pip install -c requirements.txt -e ".[test,docs]"'
# The optional extras: the test tools, and the documentation site's (mkdocs.yml) and the examples' (jupytext).
EXTRAS = ("test", "docs")


def read_pins() -> dict[str, Version]:
    """requirements.txt as {canonical name: pinned version}; every line that is not a comment is `name==version`."""
    pins = {}
    for number, line in enumerate((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==" and not requirement.marker, \
            f"requirements.txt:{number}: {line!r} is not an exact pin name==version"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"requirements.txt:{number}: {name} is pinned twice"
        pins[name] = Version(specifiers[0].version)
    return pins


def declared_requirements() -> list[Requirement]:
    """pyproject.toml's runtime dependencies and its extras (test, docs)."""
    extras = PROJECT["optional-dependencies"]
    return [Requirement(text) for text in PROJECT["dependencies"] + [text for name in EXTRAS for text in extras[name]]]


def run(*command, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_version_is_vampkeras_version_read_by_setuptools_without_importing_tensorflow():
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "vampkeras.__version__"}
    assert str(Version(vampkeras.__version__)) == vampkeras.__version__       # a normalised PEP 440 version
    # What setuptools makes of pyproject.toml, and that importing vampkeras (as a fallback `attr:` would) stays light.
    probe = ("import sys, warnings; warnings.simplefilter('ignore')\n"
             "from setuptools.config.pyprojecttoml import read_configuration\n"
             "print(read_configuration('pyproject.toml')['project']['version'])\n"
             "import vampkeras; print(sorted(m for m in ('tensorflow', 'keras', 'click') if m in sys.modules))\n")
    done = run(sys.executable, "-c", probe, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [vampkeras.__version__, "[]"]
    # The installed metadata is this checkout's version (a stale install would test other code).
    assert importlib.metadata.version("vampkeras") == vampkeras.__version__


def test_the_console_script_and_python_m_vampkeras_print_the_version(tmp_path):
    """Run from outside the checkout, as installed: a `pip install -e .` that fell back to the legacy
    `setup.py develop` (which ignores package-dir) fails here with ModuleNotFoundError: vampkeras_cli."""
    script = Path(sys.executable).with_name("vampkeras")
    assert script.is_file(), f"no console script {script}: install the project ({REINSTALL})"
    expected = f"vampkeras, version {vampkeras.__version__}"
    for command in ([script, "--version"], [sys.executable, "-m", "vampkeras", "--version"]):
        done = run(*command, cwd=tmp_path)
        assert (done.returncode, done.stdout.strip()) == (0, expected), done.stderr[-2000:]


def test_python_m_vampkeras_runs_the_commands(tmp_path):
    done = run(sys.executable, "-m", "vampkeras", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: python -m vampkeras [OPTIONS] COMMAND" in done.stdout
    for command in ("train", "evaluate", "sample"):
        assert f"\n  {command} " in done.stdout


def test_requires_python_is_3_11_or_newer():
    assert PROJECT["requires-python"] == ">=3.11"
    supported = SpecifierSet(PROJECT["requires-python"])
    assert "3.11.0" in supported and "3.10.12" not in supported
    assert importlib.metadata.metadata("vampkeras")["Requires-Python"] == ">=3.11"


def test_the_build_backend_always_gives_pep_660_editable_installs():
    """With a [build-system] table pip never runs the legacy `setup.py develop`, provided the setuptools it
    builds with has PEP 660 (64.0)."""
    build_system = PYPROJECT["build-system"]
    assert build_system["build-backend"] == "setuptools.build_meta"
    (setuptools,) = [Requirement(text) for text in build_system["requires"]]
    assert setuptools.name == "setuptools" and "63.4.3" not in setuptools.specifier and "64.0" in setuptools.specifier
    setup_py = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert "requirements.txt" not in setup_py                   # the sdist does not ship it


def test_every_package_folder_is_packaged():
    setuptools_table = PYPROJECT["tool"]["setuptools"]
    package_folders = {".".join(init.parent.relative_to(ROOT).parts)
                       for init in (ROOT / "vampkeras").rglob("__init__.py")}
    assert set(setuptools_table["packages"]) == package_folders | {"vampkeras_cli"}
    assert setuptools_table["package-dir"] == {"vampkeras_cli": "cli"}
    assert PROJECT["scripts"] == {"vampkeras": "vampkeras_cli.main:main"}


def test_dependencies_are_ranges_and_every_pin_satisfies_them():
    pins = read_pins()
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), \
            f"pyproject.toml pins {requirement}: declare a compatible range, pin in requirements.txt"
        assert name in pins, f"{name} is a dependency in pyproject.toml but requirements.txt does not pin it"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
    dependencies = {Requirement(text).name: Requirement(text) for text in PROJECT["dependencies"]}
    assert dependencies["tensorflow-probability"].extras == {"tf"} and "tf-keras" not in dependencies
    # Keras is bounded above (the fused Adam update uses its private optimizer attributes).
    assert any(spec.operator == "<" for spec in dependencies["keras"].specifier)


def test_the_extras_are_the_test_tools_and_the_documentation_tools_and_ci_installs_both():
    """The docs extra holds what `mkdocs build --strict` (mkdocs.yml) and the examples' notebooks need; the suite
    builds the site, so CI installs both extras, in both of .ci/run's installs."""
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == set(EXTRAS)
    docs = {canonicalize_name(Requirement(text).name) for text in extras["docs"]}
    assert docs == {"mkdocs", "mkdocs-material", "mkdocstrings", "mkdocstrings-python", "mkdocs-click",
                    "mkdocs-include-markdown-plugin", "jupytext"}
    # .ci/run's first install and its last line (the README's test command) install the checkout with extras
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.findall(r'-e "\.\[([^\]]*)\]"', ci) == ["test,docs", "test,docs"]


def walk_the_requirements(pins: dict[str, Version]) -> tuple[set[str], list[str]]:
    """Follows the installed distributions' requirements from pyproject.toml's down, extras included (so
    tensorflow-probability[tf] reaches tf-keras), as pip resolves them on this platform. Returns the canonical
    names reached and what is wrong: a requirement without a pin, or whose pin it does not accept."""
    to_visit, seen, problems = declared_requirements(), set(), []
    while to_visit:
        requirement = to_visit.pop()
        name = canonicalize_name(requirement.name)
        if name in LEFT_TO_THE_VIRTUALENV:
            continue
        if name not in pins:
            problems.append(f"{requirement} is needed but not pinned")
            continue
        if not requirement.specifier.contains(pins[name], prereleases=True):   # every requirer's range counts
            problems.append(f"{requirement} does not accept the pin {name}=={pins[name]}")
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            needs = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed ({REINSTALL})")
            continue
        for text in needs:
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra})
                                            for extra in {""} | requirement.extras):
                to_visit.append(needed)
    return {name for name, _ in seen}, problems


def test_the_pins_cover_everything_the_dependencies_need():
    pins = read_pins()
    reached, problems = walk_the_requirements(pins)
    assert not problems, problems
    assert {"tf-keras", "tensorboard", "h5py", "pytest", "sortedcontainers"} <= reached
    if sys.platform == "linux":     # where the pins were resolved: elsewhere some (array-record) are not needed
        assert not set(pins) - reached, f"requirements.txt pins what nothing needs: {sorted(set(pins) - reached)}"


def test_the_installed_versions_are_the_pinned_ones():
    """CI installs with `-c requirements.txt`: what the tests run against is the pinned set. (A pin that this
    platform does not need, array-record off Linux say, may be absent.)"""
    pins = read_pins()
    needed, _ = walk_the_requirements(pins)
    wrong = {}
    for name, pinned in pins.items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned and (installed is not None or name in needed):
            wrong[name] = f"pinned {pinned}, installed {installed or 'nothing'}"
    assert not wrong, f"{wrong}; reinstall with {REINSTALL}"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("build") is None,
                    reason=f"needs the `build` package (the test extra: {REINSTALL})")
def test_the_sdist_builds_the_wheel_and_the_wheel_holds_the_packages(tmp_path):
    """`python -m build` makes the sdist, then the wheel from the unpacked sdist: a file the build needs but the
    sdist lacks (the old setup.py read requirements.txt) fails it. No isolation: the installed setuptools, offline."""
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "runs", "saved_models", "build", "dist", "*.egg-info", "__pycache__",
        ".pytest_cache", "benchmarks", "docs"))
    done = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path / "dist", source, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    version = vampkeras.__version__
    sources = {path.relative_to(ROOT).as_posix() for folder in ("vampkeras", "cli")
               for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}

    with tarfile.open(tmp_path / "dist" / f"vampkeras-{version}.tar.gz") as sdist:
        in_sdist = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "setup.py", "README.md", "PKG-INFO"} | sources <= in_sdist

    with zipfile.ZipFile(tmp_path / "dist" / f"vampkeras-{version}-py3-none-any.whl") as wheel:
        in_wheel = set(wheel.namelist())
        dist_info = f"vampkeras-{version}.dist-info"
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
    packaged = {name for name in in_wheel if not name.startswith(dist_info)}
    assert packaged == {path.replace("cli/", "vampkeras_cli/", 1) for path in sources}
    assert "vampkeras = vampkeras_cli.main:main" in entry_points
    assert f"\nVersion: {version}\n" in metadata and "\nRequires-Python: >=3.11\n" in metadata
    assert "Requires-Dist: tensorflow-probability[tf]" in metadata
    assert 'extra == "test"' in metadata and 'extra == "docs"' in metadata
