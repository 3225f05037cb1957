"""Changing an account in domains.conf from the running server (the account web interface).

As mox's ``admin.AccountSave``: read the current file, change the account,
check that the whole new configuration is valid, write it atomically (a new
file beside it, fsync, rename, fsync of the directory: the running server,
a concurrent ``config test`` or a crash see the old file or the new one,
never half of one) and activate it without a restart.

mox rewrites the whole file from its structs and so drops every comment.
We replace only the changed account's block: the rest of the file, comments
included, stays byte for byte; comments *inside* that account's block are
dropped (the block is written from the parsed settings).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import sconf
from core.config.errors import ConfigError
from core.config.models import Account, Dynamic
from core.config.validate import build_dynamic

_lock = threading.Lock()


class SaveError(Exception):
    """The change cannot be saved: unknown account, or the new configuration is invalid."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip("\t"))


def _account_block(lines: list[str], name: str) -> tuple[int, int] | None:
    """Line range [start, end) of account ``name``'s block under ``Accounts:``."""
    try:
        top = lines.index("Accounts:")
    except ValueError:
        return None
    start = None
    for i in range(top + 1, len(lines)):
        line = lines[i]
        if line.strip() and _indent(line) == 0 and not line.startswith("#"):
            break
        if line == f"\t{name}:" or line.startswith(f"\t{name}: "):
            start = i
            break
    if start is None:
        return None
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and _indent(line) <= 1:
            break
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # keep the blank lines before the next key
    return start, end


def render(text: str, path: str, account: str, change: Callable[[Account], None],
           static: Any) -> str:
    """The new domains.conf text with ``change`` applied to ``account``; ConfigError if invalid."""
    dynamic = sconf.parse(Dynamic, text, path)
    acc = dynamic.Accounts.get(account)
    if acc is None:
        raise SaveError(f"account {account!r} not found")
    change(acc)
    whole = sconf.write(dynamic).split("\n")
    new_block = _account_block(whole, account)
    lines = text.split("\n")
    old_block = _account_block(lines, account)
    if new_block is None or old_block is None:
        out = "\n".join(whole)
    else:
        lines[old_block[0] : old_block[1]] = whole[new_block[0] : new_block[1]]
        out = "\n".join(lines)
    # The file we write must be what we meant: parse it back and validate it whole.
    check = sconf.parse(Dynamic, out, path)
    if check != dynamic:
        out = "\n".join(whole)
        check = sconf.parse(Dynamic, out, path)
    build_dynamic(check, static, path)
    return out


def write_atomic(path: Path, data: str) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    mode = 0o644
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save_account(config: Any, account: str, change: Callable[[Account], None]) -> None:
    """Apply ``change`` to ``account`` in domains.conf and activate it (blocking: run in a thread).

    Raises SaveError; nothing is written then.
    """
    path = Path(config.domains_conf_path)
    with _lock:
        text = path.read_text(encoding="utf-8")
        try:
            out = render(text, str(path), account, change, config.static)
        except ConfigError as exc:
            raise SaveError(str(exc)) from exc
        write_atomic(path, out)
        if not config.reload_dynamic(force=True):
            raise SaveError(f"activating new {path.name}: {config.last_reload_error}")
