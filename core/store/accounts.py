"""Accounts, their derived login secrets, and their mailboxes.

Plain synchronous functions of a ``conn``: call them inside
``store.write``/``store.read``. Passwords are never stored, only what
:mod:`core.passwords` derives: the SCRAM-SHA-256 verifier (RFC 5802/7677)
in the accounts row, which serves SCRAM logins directly and PLAIN/Basic
logins through :func:`verify_password`, and the SCRAM-SHA-1 and CRAM-MD5
secrets in ``account_secrets``.
"""

from __future__ import annotations

import hmac
import secrets

from core.passwords import (
    SALT_LEN,
    SCRAM_SHA1_ITERATIONS,
    SCRAM_SHA256_ITERATIONS,
    InvalidPassword,
    derive_cram_md5,
    derive_scram,
    salted_password,
    scram_keys,
)
from core.store.models import (
    Account,
    CramMD5Secret,
    LoginSecrets,
    Mailbox,
    ScramCredentials,
    to_db_time,
    utcnow,
)
from core.store.sql import Connection, IntegrityError, upsert

#: Mailboxes every new account gets, with their special-use flags (as mox).
DEFAULT_MAILBOXES: tuple[tuple[str, str], ...] = (
    ("Inbox", ""),
    ("Sent", "\\Sent"),
    ("Archive", "\\Archive"),
    ("Trash", "\\Trash"),
    ("Drafts", "\\Drafts"),
    ("Junk", "\\Junk"),
)


class AccountNotFound(LookupError):
    """No account by that name."""


class MailboxNotFound(LookupError):
    """No mailbox by that (exact, case-sensitive) name. Text as mox: ``not found``."""

    def __init__(self, name: str = "") -> None:
        super().__init__("not found")
        self.name = name


class MailboxExists(ValueError):
    """A mailbox by that name already exists in the account."""


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------


_SECRET_COLUMNS = (
    "account", "scram_sha1_salt", "scram_sha1_iterations", "scram_sha1_stored_key",
    "scram_sha1_server_key", "crammd5_ipad", "crammd5_opad",
)

def get_account(conn: Connection, name: str) -> Account | None:
    row = conn.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
    return None if row is None else Account.from_row(row)


def ensure_account(conn: Connection, name: str) -> Account:
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


def list_accounts(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM accounts ORDER BY name")]


# --------------------------------------------------------------------------
# passwords: derived secrets only (see core.passwords)
# --------------------------------------------------------------------------

SCRAM_ITERATIONS = SCRAM_SHA256_ITERATIONS


def make_scram_credentials(
    password: str, *, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None
) -> ScramCredentials:
    """SCRAM-SHA-256 verifier (at least mox's 4096 iterations)."""
    if iterations < SCRAM_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be >= {SCRAM_ITERATIONS}")
    return derive_scram(password, "sha256", iterations, salt)


def set_password(
    conn: Connection, name: str, password: str, *, iterations: int = SCRAM_ITERATIONS
) -> None:
    """Replace the account's derived secrets for every mechanism (fresh salts each time)."""
    creds = make_scram_credentials(password, iterations=iterations)
    sha1 = derive_scram(password, "sha1", SCRAM_SHA1_ITERATIONS)
    cram = derive_cram_md5(password)
    cur = conn.execute(
        "UPDATE accounts SET scram_salt = ?, scram_iterations = ?, scram_stored_key = ?,"
        " scram_server_key = ? WHERE name = ?",
        (creds.salt, creds.iterations, creds.stored_key, creds.server_key, name),
    )
    if cur.rowcount == 0:
        raise AccountNotFound(name)
    conn.execute(
        upsert("account_secrets", _SECRET_COLUMNS, ["account"]),
        (name, sha1.salt, sha1.iterations, sha1.stored_key, sha1.server_key, cram.ipad, cram.opad),
    )


def get_scram_credentials(conn: Connection, name: str) -> ScramCredentials | None:
    """The verifier for a SCRAM-SHA-256 exchange; None if no account or no password."""
    acc = get_account(conn, name)
    return None if acc is None else acc.scram


def get_login_secrets(conn: Connection, name: str) -> LoginSecrets | None:
    """Every derived secret of the account; None if there is no such account."""
    acc = get_account(conn, name)
    if acc is None:
        return None
    row = conn.execute("SELECT * FROM account_secrets WHERE account = ?", (name,)).fetchone()
    if row is None:
        return LoginSecrets(scram_sha256=acc.scram)
    sha1 = ScramCredentials(
        salt=bytes(row["scram_sha1_salt"]),
        iterations=int(row["scram_sha1_iterations"]),
        stored_key=bytes(row["scram_sha1_stored_key"]),
        server_key=bytes(row["scram_sha1_server_key"]),
    )
    cram = CramMD5Secret(ipad=bytes(row["crammd5_ipad"]), opad=bytes(row["crammd5_opad"]))
    return LoginSecrets(scram_sha256=acc.scram, scram_sha1=sha1, cram_md5=cram)


def server_secret(conn: Connection, name: str, size: int = 32) -> bytes:
    """A random server-wide secret, created on first use and kept across restarts."""
    row = conn.execute("SELECT value FROM server_secrets WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return bytes(row[0])
    value = secrets.token_bytes(size)
    conn.execute("INSERT INTO server_secrets (name, value) VALUES (?, ?)", (name, value))
    return value


_DUMMY = ScramCredentials(
    salt=b"\0" * SALT_LEN, iterations=SCRAM_ITERATIONS, stored_key=b"\0" * 32, server_key=b""
)


def verify_password(conn: Connection, name: str, password: str) -> bool:
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


def mailbox_by_name(conn: Connection, account: str, name: str) -> Mailbox:
    """Exact, case-sensitive lookup (mox: ``inbox`` does not match ``Inbox``)."""
    row = conn.execute(
        "SELECT * FROM mailboxes WHERE account = ? AND name = ?", (account, name)
    ).fetchone()
    if row is None:
        raise MailboxNotFound(name)
    return Mailbox.from_row(row)


def mailbox_by_id(conn: Connection, mailbox_id: int) -> Mailbox:
    row = conn.execute("SELECT * FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    if row is None:
        raise MailboxNotFound(str(mailbox_id))
    return Mailbox.from_row(row)


def mailbox_by_special_use(
    conn: Connection, account: str, special_use: str
) -> Mailbox | None:
    """The account's mailbox with a special-use flag (``\\Sent`` for SaveSent), if any."""
    row = conn.execute(
        "SELECT * FROM mailboxes WHERE account = ? AND special_use = ? ORDER BY id LIMIT 1",
        (account, special_use),
    ).fetchone()
    return None if row is None else Mailbox.from_row(row)


def list_mailboxes(conn: Connection, account: str) -> list[Mailbox]:
    rows = conn.execute("SELECT * FROM mailboxes WHERE account = ? ORDER BY id", (account,))
    return [Mailbox.from_row(r) for r in rows]


def create_mailbox(
    conn: Connection, account: str, name: str, special_use: str = ""
) -> Mailbox:
    if not name:
        raise ValueError("empty mailbox name")
    if get_account(conn, account) is None:
        raise AccountNotFound(account)
    try:
        cur = conn.execute(
            "INSERT INTO mailboxes (account, name, special_use) VALUES (?, ?, ?) RETURNING id",
            (account, name, special_use),
        )
    except IntegrityError as exc:
        raise MailboxExists(f"mailbox {name!r} already exists") from exc
    return mailbox_by_id(conn, int(cur.fetchone()[0]))
