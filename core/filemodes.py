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
    """Take group/other bits off each root, the files in it, and open subtrees; return what changed.

    A root's own files (database, config) are always checked. A
    subdirectory is walked only when it was itself open: files the server
    writes are private by the umask, so an open tree is one an earlier
    version wrote, and a private one need not cost a walk over millions of
    message files at every start (mox's fixperms walks only a tree whose
    top needed fixing, likewise). Symbolic links, sockets and files of other
    owners are left alone (a certificate shared from elsewhere is not ours
    to change). Errors are logged and skipped: a mode we cannot fix must
    not stop the server.
    """
    changed: list[Path] = []
    uid = os.getuid()

    def fix(p: Path) -> bool:
        try:
            st = os.lstat(p)
            ours = (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) and st.st_uid == uid
            if ours and _fix_one(p, st):
                changed.append(p)
                return True
        except OSError as exc:
            log.warning("cannot fix permissions of %s: %s", p, exc)
        return False

    for root in dict.fromkeys(Path(r) for r in roots):
        if not root.is_dir() or root.is_symlink():
            continue
        walk_all = fix(root)
        todo = [(root, walk_all)]
        while todo:
            directory, open_tree = todo.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:
                log.warning("cannot fix permissions in %s: %s", directory, exc)
                continue
            for entry in entries:
                p = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    was_open = fix(p)
                    if open_tree or was_open:
                        todo.append((p, True))
                elif open_tree or directory == root:
                    fix(p)
    if changed:
        # One line, not one per message file: a data directory can hold millions.
        shown = ", ".join(str(p) for p in changed[:3]) + (", ..." if len(changed) > 3 else "")
        log.info(
            "removed group and other permissions from %d files and directories (%s)",
            len(changed),
            shown,
        )
    return changed
