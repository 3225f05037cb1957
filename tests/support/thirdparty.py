"""Build a small third-party plugin *distribution* in a directory.

It is a real installed-distribution layout (a package plus a ``.dist-info``
with ``entry_points.txt``), so ``importlib.metadata`` finds its
``moxtrio.plugins`` entry point exactly as it would after ``pip install``,
once the directory is on ``sys.path`` / ``PYTHONPATH``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

DEFAULT_SOURCE = '''
"""A third-party moxtrio plugin used by the tests."""

from core.hookspecs import hookimpl
from core.plugin_api import CtlCommand, CtlResult

CALLS = []


async def _hello(ctx, req):
    return CtlResult("hello from {name} " + " ".join(req.args) + "\\n")


@hookimpl
def moxtrio_ctl_commands(ctx):
    CALLS.append("moxtrio_ctl_commands")
    return [CtlCommand(("hello",), _hello, "say hello")]
'''


def build_plugin_dist(root: Path, name: str = "hello", module: str = "moxtrio_hello",
                      source: str | None = None) -> Path:
    """Write package ``module`` and a dist-info declaring entry point ``name``."""
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / module
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(source or DEFAULT_SOURCE).replace("{name}", name))
    dist = root / f"{module}-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[moxtrio.plugins]\n{name} = {module}\n")
    (dist / "RECORD").write_text("")
    return root
