"""The pytest plugin's fixtures as a user's test suite sees them (pytest run in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_FILE = '''
async def test_uses_the_simulator(nls_simulator):
    """The fixture gives a started simulator."""
    assert nls_simulator.gateway_url.startswith("ws://")
'''


def _pytest(tmp_path: Path, ini: str, *options: str) -> subprocess.CompletedProcess[str]:
    """pytest on a one-test file in its own folder (its own ini), with this checkout first."""
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}")
    (tmp_path / "test_user.py").write_text(TEST_FILE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options, "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nls_simulator_without_pytest_asyncio_says_what_is_missing(tmp_path: Path) -> None:
    """With pytest-asyncio disabled, the test errors at setup naming pytest-asyncio and
    nls_gateway, instead of the fixture vanishing."""
    run = _pytest(tmp_path, "", "-p", "no:asyncio")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout
    assert "needs the pytest-asyncio plugin, which is disabled" in run.stdout
    assert "nls_gateway" in run.stdout


def test_nls_simulator_with_pytest_asyncio_runs(tmp_path: Path) -> None:
    """With pytest-asyncio in auto mode the same test passes."""
    run = _pytest(tmp_path, "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
