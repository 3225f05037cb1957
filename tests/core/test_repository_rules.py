"""Rules of the repository's shape: localserve lives in its plugin, plugins stay apart, tests stay inside.

* The core names ``localserve`` only for the mode switch that no hook can
  replace (which command started the server), each place with a comment
  saying why it stays; the development server's behaviour is in
  ``plugins/localserve``.
* ``core`` never imports ``plugins``; a plugin never imports another plugin.
* No test reads a path outside the repository.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.procs import ROOT

#: How far above a line naming localserve its "kept" comment may start.
COMMENT_REACH = 6


def _python_files(folder: str) -> list[Path]:
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths, f"no Python files under {folder}/"
    return paths


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_names_localserve_only_for_the_commented_mode_switch() -> None:
    for gone in ("core/localserve_init.py", "core/smtp/localserve_sim.py", "core/mailauth/localserve.py"):
        assert not (ROOT / gone).exists(), gone
    hits: dict[str, list[int]] = {}
    uncommented: list[str] = []
    for path in sorted((ROOT / "core").rglob("*")):
        if not path.is_file() or path.suffix not in (".py", ".html", ".js", ".css", ".txt"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if "localserve" not in line.lower():
                continue
            rel = str(path.relative_to(ROOT))
            hits.setdefault(rel, []).append(i + 1)
            window = lines[max(0, i - COMMENT_REACH) : i + 1]
            if not any("#" in w and "kept" in w.lower() for w in window):
                uncommented.append(f"{rel}:{i + 1}: {line.strip()}")
    assert uncommented == []
    # Only the mode switch: the context's flag, the Server that sets it, the CLI helper that passes it on.
    assert set(hits) <= {"core/plugin_api.py", "core/runtime.py", "core/cli.py"}, hits


def test_core_never_imports_plugins_and_plugins_never_import_each_other() -> None:
    bad: list[str] = []
    for path in _python_files("core"):
        bad += [f"{path.relative_to(ROOT)}: {m}" for m in _imported_modules(path)
                if m == "plugins" or m.startswith("plugins.")]
    for path in _python_files("plugins"):
        own = path.relative_to(ROOT / "plugins").parts[0]
        for m in _imported_modules(path):
            parts = m.split(".")
            if parts[0] == "plugins" and (len(parts) < 2 or parts[1] != own):
                bad.append(f"{path.relative_to(ROOT)}: {m}")
    assert bad == []


# Spelled in pieces so that this file does not match its own patterns.
_OUTSIDE = [
    re.compile(re.escape(".." + "/shared")),
    re.compile(re.escape("parents[" + "3]")),
    re.compile(r"""["'](?:/work|/home|/root|/Users|/opt|/srv)""" + r"/"),
]


def test_no_test_names_a_path_outside_the_repository() -> None:
    found: list[str] = []
    for path in _python_files("tests"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(p.search(line) for p in _OUTSIDE):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []
