from __future__ import annotations

from pathlib import Path

import pytest

from tests.smtp.helpers import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d: Path = tmp_path_factory.mktemp("smtpcerts")
    return make_certs(d)
