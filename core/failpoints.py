"""Named crash points for crash-consistency tests (like etcd's gofail).

A test starts the server with ``MOXTRIO_FAILPOINTS=name[,name...]`` in its
environment; when the code reaches :func:`failpoint` with one of those
names, the process kills itself with SIGKILL, exactly as ``kill -9`` at
that moment would. Without the variable (every real deployment) a
failpoint is a set lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

ENV = "MOXTRIO_FAILPOINTS"

_ACTIVE = frozenset(n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip())


def failpoint(name: str) -> None:
    """Die here (SIGKILL) when ``name`` is enabled in ``MOXTRIO_FAILPOINTS``."""
    if name in _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
