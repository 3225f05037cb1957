"""Private file modes: nothing the server writes is readable by other local users.

The database holds password-derived secrets (SCRAM salts and keys), webhook
Authorization values and mail metadata; the config holds keys. The server
runs with umask 077, so every file and directory it creates is 0600/0700,
and at start-up it takes group and other permission bits off what an older
version or another tool left behind, logging what it changed. mox does the
same with umask 007 and a group it owns; moxtrio has no group of its own, so
it keeps files to the owner alone.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("moxtrio.filemodes")

PRIVATE_UMASK = 0o077


def restrict_umask() -> None:
    """Make every file and directory created from now on private to the owner."""
    os.umask(PRIVATE_UMASK)


def _fix_one(path: Path, st: os.stat_result) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    if not mode & PRIVATE_UMASK:
        return False
    os.chmod(path, mode & ~PRIVATE_UMASK, follow_symlinks=False)
    return True


def fix_modes(roots: Iterable[Path]) -> list[Path]:
    """Take group/other bits off each root and everything below it; return what changed.

    Symbolic links, sockets and files of other owners are left alone (a
    certificate shared from elsewhere is not ours to change). Errors are
    logged and skipped: a mode we cannot fix must not stop the server.
    """
    changed: list[Path] = []
    seen: set[Path] = set()
    uid = os.getuid()
    for root in roots:
        root = Path(root)
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        for dirpath, dirnames, filenames in os.walk(root):
            base = Path(dirpath)
            for name in [".", *dirnames, *filenames]:
                p = base if name == "." else base / name
                try:
                    st = os.lstat(p)
                    kind_ok = stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
                    if kind_ok and st.st_uid == uid and _fix_one(p, st):
                        changed.append(p)
                except OSError as exc:
                    log.warning("cannot fix permissions of %s: %s", p, exc)
            # Directories of the data tree only; do not descend into links.
            dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
    if changed:
        # One line, not one per message file: a data directory can hold millions.
        shown = ", ".join(str(p) for p in changed[:3]) + (", ..." if len(changed) > 3 else "")
        log.info(
            "removed group and other permissions from %d files and directories (%s)",
            len(changed),
            shown,
        )
    return changed
