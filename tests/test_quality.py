"""ruff and mypy run as part of the test suite, so CI and the README's test
command check them without a separate step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "core", "plugins", "moxtrio", "tests", "bench", "docs")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy", "core", "plugins", "moxtrio")
    assert result.returncode == 0, result.stdout + result.stderr
