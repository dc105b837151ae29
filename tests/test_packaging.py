"""What ships: the version the CLI reports, the LICENSE and py.typed in the sdist and the wheel,
the supported Pythons, and a CHANGELOG section for the release."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hatchling.builders.sdist import SdistBuilder
from hatchling.builders.wheel import WheelBuilder
from packaging.requirements import Requirement

import asr_resilience as ar
from asr_resilience import cli
from asr_resilience._extras import EXTRAS

ROOT = Path(__file__).resolve().parent.parent
VERSION = importlib.metadata.version("asr-resilience")
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`asr-resilience --version` prints the package's version and exits 0."""
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"asr-resilience {VERSION}\n"
    assert ar.__version__ == VERSION


def test_version_flag_from_the_command_line() -> None:
    """`python -m asr_resilience --version` prints the same line in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "asr_resilience", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"asr-resilience {VERSION}\n", "")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from this source tree."""
    out = tmp_path_factory.mktemp("wheel")
    (path,) = WheelBuilder(str(ROOT)).build(directory=str(out))
    with zipfile.ZipFile(path) as built:
        yield built


def test_wheel_ships_the_license_and_py_typed(wheel: zipfile.ZipFile) -> None:
    """The wheel holds the Apache-2.0 text as LICENSE, the py.typed marker and the policies,
    and its metadata names the licence and the supported Pythons."""
    names = wheel.namelist()
    (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert "asr_resilience/py.typed" in names
    assert "asr_resilience/policies/default.yaml" in names
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = wheel.read(metadata_name).decode("utf-8")
    assert "License-Expression: Apache-2.0\n" in metadata
    assert "License-File: LICENSE\n" in metadata
    assert "Requires-Python: >=3.10\n" in metadata
    versions = re.findall(
        r"^Classifier: Programming Language :: Python :: (3\.\d+)$", metadata, re.M
    )
    assert versions == SUPPORTED


def test_license_is_the_apache_2_text() -> None:
    """LICENSE is the full Apache License 2.0, terms and appendix."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text


def test_sdist_ships_the_license_changelog_and_noxfile(tmp_path: Path) -> None:
    """The sdist holds LICENSE, CHANGELOG.md, noxfile.py and the tests next to the sources."""
    (path,) = SdistBuilder(str(ROOT)).build(directory=str(tmp_path))
    with tarfile.open(path) as built:
        names = {name.partition("/")[2] for name in built.getnames()}
    for name in ("LICENSE", "CHANGELOG.md", "noxfile.py", "asr_resilience/py.typed"):
        assert name in names
    assert any(name.startswith("tests/") for name in names)


def test_changelog_has_the_release_under_unreleased(wheel: zipfile.ZipFile) -> None:
    """CHANGELOG.md opens with an Unreleased section, then the dated release of the version
    pyproject.toml declares (read from the wheel built from it)."""
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    version = re.search(r"^Version: (.+)$", wheel.read(metadata_name).decode(), re.M)
    assert version is not None
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[0] == "[Unreleased]"
    assert re.fullmatch(rf"\[{re.escape(version[1])}\] - \d{{4}}-\d{{2}}-\d{{2}}", headings[1])


def test_noxfile_runs_every_supported_python() -> None:
    """The nox sessions are the classifiers' versions (nox reads them from pyproject.toml)."""
    done = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-f", str(ROOT / "noxfile.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    sessions = re.findall(r'"session": "tests-(3\.\d+)"', done.stdout)
    assert sessions == SUPPORTED


def _top_level_modules(distribution: str) -> set[str]:
    """The importable top-level names an installed distribution's files provide (Python 3.10's
    ``packages_distributions`` only reads ``top_level.txt``, which many wheels lack)."""
    files = importlib.metadata.distribution(distribution).files or []
    return {
        f.parts[0].removesuffix(".py")
        for f in files
        if f.parts[0] != ".."
        and not f.parts[0].endswith((".dist-info", ".data"))
        and (len(f.parts) > 1 or f.suffix == ".py")
    }


def test_each_extra_pulls_only_what_the_package_imports(wheel: zipfile.ZipFile) -> None:
    """Every distribution an extra names provides a module asr_resilience imports for that
    extra (the table behind MissingExtraError), so an extra installs nothing unused."""
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = wheel.read(metadata_name).decode("utf-8")
    unused = []
    for line in re.findall(r"^Requires-Dist: (.+)$", metadata, re.M):
        requirement = Requirement(line)
        if requirement.marker is None:
            continue  # a runtime dependency, not an extra's
        (extra,) = re.findall(r"extra == [\"']([\w-]+)[\"']", str(requirement.marker))
        modules = _top_level_modules(requirement.name)
        if not any(EXTRAS.get(module) == extra for module in modules):
            unused.append(f"{extra}: {requirement.name} ({sorted(modules)})")
    assert unused == []
