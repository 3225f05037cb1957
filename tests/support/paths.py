"""Where the shared test data lives: ../shared/testdata beside the repository
(as CI lays it out), or $MOXTRIO_TESTDATA."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(os.environ.get("MOXTRIO_TESTDATA", ROOT.parent / "shared" / "testdata"))
