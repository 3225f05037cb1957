"""Accounts, their SCRAM-SHA-256 credentials, and their mailboxes.

Plain synchronous functions of a ``conn``: call them inside
``store.write``/``store.read``. Passwords are never stored, only the SCRAM
verifier (RFC 5802/7677), which serves SCRAM logins directly and PLAIN/
Basic logins through :func:`verify_password`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import unicodedata

from core.store.models import (
    Account,
    Mailbox,
    ScramCredentials,
    to_db_time,
    utcnow,
)

#: Mailboxes every new account gets, with their special-use flags (as mox).
DEFAULT_MAILBOXES: tuple[tuple[str, str], ...] = (
    ("Inbox", ""),
    ("Sent", "\\Sent"),
    ("Archive", "\\Archive"),
    ("Trash", "\\Trash"),
    ("Drafts", "\\Drafts"),
    ("Junk", "\\Junk"),
)

SCRAM_ITERATIONS = 4096
_SALT_LEN = 16


class AccountNotFound(LookupError):
    """No account by that name."""


class MailboxNotFound(LookupError):
    """No mailbox by that (exact, case-sensitive) name. Text as mox: ``not found``."""

    def __init__(self, name: str = "") -> None:
        super().__init__("not found")
        self.name = name


class MailboxExists(ValueError):
    """A mailbox by that name already exists in the account."""


class InvalidPassword(ValueError):
    """The password cannot be used (empty after normalization)."""


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------


def get_account(conn: sqlite3.Connection, name: str) -> Account | None:
    row = conn.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
    return None if row is None else Account.from_row(row)


def ensure_account(conn: sqlite3.Connection, name: str) -> Account:
    """Create the account (with mox's default mailboxes) if it does not exist yet.

    Accounts come from domains.conf; the server calls this for each at start.
    """
    acc = get_account(conn, name)
    if acc is not None:
        return acc
    if not name:
        raise ValueError("empty account name")
    conn.execute("INSERT INTO accounts (name, created) VALUES (?, ?)", (name, to_db_time(utcnow())))
    for mbname, special in DEFAULT_MAILBOXES:
        conn.execute(
            "INSERT INTO mailboxes (account, name, special_use) VALUES (?, ?, ?)",
            (name, mbname, special),
        )
    acc = get_account(conn, name)
    assert acc is not None
    return acc


def list_accounts(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM accounts ORDER BY name")]


# --------------------------------------------------------------------------
# passwords (SCRAM-SHA-256)
# --------------------------------------------------------------------------


def normalize_password(password: str) -> str:
    """PRECIS OpaqueString-style preparation, as mox does before hashing.

    Non-ASCII spaces become U+0020 and the result is NFC-normalized, so the
    same password typed on different systems gives the same key.
    """
    mapped = "".join(" " if unicodedata.category(c) == "Zs" else c for c in password)
    prepared = unicodedata.normalize("NFC", mapped)
    if not prepared:
        raise InvalidPassword("empty password")
    return prepared


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3)."""
    return hashlib.pbkdf2_hmac("sha256", normalize_password(password).encode(), salt, iterations)


def scram_keys(salted: bytes) -> tuple[bytes, bytes, bytes]:
    """(ClientKey, StoredKey, ServerKey) for a SaltedPassword."""
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return client_key, stored_key, server_key


def make_scram_credentials(
    password: str, *, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None
) -> ScramCredentials:
    if iterations < SCRAM_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be >= {SCRAM_ITERATIONS}")
    salt = secrets.token_bytes(_SALT_LEN) if salt is None else salt
    _, stored_key, server_key = scram_keys(salted_password(password, salt, iterations))
    return ScramCredentials(
        salt=salt, iterations=iterations, stored_key=stored_key, server_key=server_key
    )


def set_password(
    conn: sqlite3.Connection, name: str, password: str, *, iterations: int = SCRAM_ITERATIONS
) -> None:
    """Replace the account's credentials (fresh salt each time)."""
    creds = make_scram_credentials(password, iterations=iterations)
    cur = conn.execute(
        "UPDATE accounts SET scram_salt = ?, scram_iterations = ?, scram_stored_key = ?,"
        " scram_server_key = ? WHERE name = ?",
        (creds.salt, creds.iterations, creds.stored_key, creds.server_key, name),
    )
    if cur.rowcount == 0:
        raise AccountNotFound(name)


def get_scram_credentials(conn: sqlite3.Connection, name: str) -> ScramCredentials | None:
    """The verifier for a SCRAM-SHA-256 exchange; None if no account or no password."""
    acc = get_account(conn, name)
    return None if acc is None else acc.scram


_DUMMY = ScramCredentials(
    salt=b"\0" * _SALT_LEN, iterations=SCRAM_ITERATIONS, stored_key=b"\0" * 32, server_key=b""
)


def verify_password(conn: sqlite3.Connection, name: str, password: str) -> bool:
    """Check a plaintext password (PLAIN, Basic auth) against the SCRAM verifier.

    The key derivation runs even for unknown accounts, and the comparison is
    constant-time, so timing does not tell which accounts exist.
    """
    creds = get_scram_credentials(conn, name)
    known = creds is not None
    use = creds if creds is not None else _DUMMY
    try:
        salted = salted_password(password, use.salt, use.iterations)
    except InvalidPassword:
        salted = b"\0" * 32
        known = False
    _, stored_key, _ = scram_keys(salted)
    return hmac.compare_digest(stored_key, use.stored_key) and known


# --------------------------------------------------------------------------
# mailboxes
# --------------------------------------------------------------------------


def mailbox_by_name(conn: sqlite3.Connection, account: str, name: str) -> Mailbox:
    """Exact, case-sensitive lookup (mox: ``inbox`` does not match ``Inbox``)."""
    row = conn.execute(
        "SELECT * FROM mailboxes WHERE account = ? AND name = ?", (account, name)
    ).fetchone()
    if row is None:
        raise MailboxNotFound(name)
    return Mailbox.from_row(row)


def mailbox_by_id(conn: sqlite3.Connection, mailbox_id: int) -> Mailbox:
    row = conn.execute("SELECT * FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise MailboxNotFound(str(mailbox_id))
    return Mailbox.from_row(row)


def mailbox_by_special_use(
    conn: sqlite3.Connection, account: str, special_use: str
) -> Mailbox | None:
    """The account's mailbox with a special-use flag (``\\Sent`` for SaveSent), if any."""
    row = conn.execute(
        "SELECT * FROM mailboxes WHERE account = ? AND special_use = ? ORDER BY id LIMIT 1",
        (account, special_use),
    ).fetchone()
    return None if row is None else Mailbox.from_row(row)


def list_mailboxes(conn: sqlite3.Connection, account: str) -> list[Mailbox]:
    rows = conn.execute("SELECT * FROM mailboxes WHERE account = ? ORDER BY id", (account,))
    return [Mailbox.from_row(r) for r in rows]


def create_mailbox(
    conn: sqlite3.Connection, account: str, name: str, special_use: str = ""
) -> Mailbox:
    if not name:
        raise ValueError("empty mailbox name")
    if get_account(conn, account) is None:
        raise AccountNotFound(account)
    try:
        cur = conn.execute(
            "INSERT INTO mailboxes (account, name, special_use) VALUES (?, ?, ?)",
            (account, name, special_use),
        )
    except sqlite3.IntegrityError as exc:
        raise MailboxExists(f"mailbox {name!r} already exists") from exc
    assert cur.lastrowid is not None
    return mailbox_by_id(conn, cur.lastrowid)
