"""Durable storage: SQLite (WAL, group commit) plus message files.

``Store`` is what the rest of the server holds; table-level helpers live
in :mod:`core.store.accounts`, :mod:`core.store.messages` and
:mod:`core.store.queue_rows`, typed rows in :mod:`core.store.models`.
"""

from core.store.db import Store, StoreClosed, WriteAborted
from core.store.files import MessageFiles, TempMessage
from core.store.migrations import Migration, MigrationError

__all__ = [
    "Migration",
    "MigrationError",
    "MessageFiles",
    "Store",
    "StoreClosed",
    "TempMessage",
    "WriteAborted",
]
