"""Where the tests' own fixtures live: ``tests/data`` inside the repository.

A clone of the repository alone passes the test suite, so every file a test
reads is here (see ``tests/data/README.md`` for what each one exercises).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CONFIGS = DATA / "configs"
MESSAGES = DATA / "messages"
DSN_SAMPLES = DATA / "dsn"
