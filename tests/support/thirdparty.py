"""Build a small third-party plugin *distribution* in a directory.

It is a real installed-distribution layout (a package plus a ``.dist-info``
with ``entry_points.txt``), so ``importlib.metadata`` finds its
``moxtrio.plugins`` entry point exactly as it would after ``pip install``,
once the directory is on ``sys.path`` / ``PYTHONPATH``.
"""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

DEFAULT_SOURCE = '''
"""A third-party moxtrio plugin used by the tests."""

from moxtrio import CtlCommand, CtlResult, hookimpl

CALLS = []


async def _hello(ctx, req):
    return CtlResult("hello from {name} " + " ".join(req.args) + "\\n")


@hookimpl
def moxtrio_ctl_commands(ctx):
    CALLS.append("moxtrio_ctl_commands")
    return [CtlCommand(("hello",), _hello, "say hello")]
'''


def write_dist_info(root: Path, module: str, entry: str, dist: str | None = None) -> None:
    """The ``.dist-info`` a ``pip install`` leaves: metadata and the entry point."""
    info = root / f"{module}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist or module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[moxtrio.plugins]\n{entry} = {module}\n")
    (info / "RECORD").write_text("")


def install_package(package: Path, site: Path, entry: str, dist: str | None = None) -> Path:
    """Install the plugin package directory ``package`` into ``site`` as pip would."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    write_dist_info(site, package.name, entry, dist)
    return site


def imported_modules(package: Path) -> set[str]:
    """Top-level names of every module a package's sources import."""
    names: set[str] = set()
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def build_plugin_dist(root: Path, name: str = "hello", module: str = "moxtrio_hello",
                      source: str | None = None) -> Path:
    """Write package ``module`` and a dist-info declaring entry point ``name``."""
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / module
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(source or DEFAULT_SOURCE).replace("{name}", name))
    write_dist_info(root, module, name)
    return root
