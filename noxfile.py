"""The test suite on every Python the package supports: ``nox`` (or ``nox -s tests-3.13``).

The supported versions are read from pyproject.toml's classifiers, so a version is tested
exactly when it is declared. The sdist and the wheel are built once (the wheel from the sdist,
as an installer builds it) and every session installs that wheel with every extra and the
``dev`` group, so the suite runs against what users install. Dependency wheels come from pip's
cache after the first session that needed them (a package published only as an sdist is built
once, not once per version).

Interpreters are found on PATH and in pyenv's versions; none is downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.10.14"  # download_python
nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
DIST = ROOT / ".nox" / "_dist"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)
EXTRAS = ",".join(PYPROJECT["project"]["optional-dependencies"])


def _activate_pyenv_versions() -> None:
    """Let ``python3.X`` find every Python pyenv has installed, not only its global one.

    pyenv's shims run only the versions it considers active (``pyenv global``, a
    ``.python-version`` file, ``PYENV_VERSION``), and nox resolves a shim the same way. Unless the
    caller chose versions, every installed one is made active for this run.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if "PYENV_VERSION" in os.environ or not (root / "versions").is_dir():
        return
    chosen = root / "version"  # `pyenv global`: it stays first, so `python` does not change
    first = chosen.read_text(encoding="utf-8").split() if chosen.is_file() else []
    rest = sorted(p.name for p in (root / "versions").iterdir() if p.name not in first)
    os.environ["PYENV_VERSION"] = ":".join(first + rest)


_activate_pyenv_versions()


@nox.session(python=PYTHONS[-1])
def dist(session: nox.Session) -> None:
    """Build the sdist, then the wheel from it, into .nox/_dist."""
    shutil.rmtree(DIST, ignore_errors=True)
    session.install("build>=1.2")
    session.run("python", "-m", "build", "--outdir", str(DIST), str(ROOT))


@nox.session(python=PYTHONS, requires=["dist"])
def tests(session: nox.Session) -> None:
    """The whole suite against the built wheel with every extra (pytest arguments pass through)."""
    wheels = sorted(DIST.glob("*.whl"))
    if len(wheels) != 1:
        session.error(f"expected one wheel in {DIST}, found {len(wheels)}: run the dist session")
    session.install(f"{wheels[0]}[{EXTRAS}]", *nox.project.dependency_groups(PYPROJECT, "dev"))
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)
