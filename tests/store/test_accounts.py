"""Accounts, default mailboxes, SCRAM-SHA-256 credentials, password checks."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from core.store import Store
from core.store.accounts import (
    AccountNotFound,
    MailboxExists,
    MailboxNotFound,
    create_mailbox,
    ensure_account,
    get_scram_credentials,
    list_mailboxes,
    mailbox_by_name,
    mailbox_by_special_use,
    make_scram_credentials,
    salted_password,
    scram_keys,
    set_password,
    verify_password,
)


async def test_ensure_account_creates_default_mailboxes_once(store: Store) -> None:
    acc = await store.write(lambda c: ensure_account(c, "mjl"))
    again = await store.write(lambda c: ensure_account(c, "mjl"))
    assert acc.name == again.name == "mjl"
    assert acc.created == again.created
    assert acc.scram is None
    boxes = await store.read(lambda c: list_mailboxes(c, "mjl"))
    assert [(b.name, b.special_use) for b in boxes] == [
        ("Inbox", ""),
        ("Sent", "\\Sent"),
        ("Archive", "\\Archive"),
        ("Trash", "\\Trash"),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
    ]
    sent = await store.read(lambda c: mailbox_by_special_use(c, "mjl", "\\Sent"))
    assert sent is not None and sent.name == "Sent"


async def test_mailbox_lookup_is_exact_and_create_refuses_duplicates(store: Store) -> None:
    await store.write(lambda c: ensure_account(c, "a"))
    with pytest.raises(MailboxNotFound, match="^not found$"):
        await store.read(lambda c: mailbox_by_name(c, "a", "inbox"))
    mb = await store.write(lambda c: create_mailbox(c, "a", "Lists/moxtrio"))
    assert (await store.read(lambda c: mailbox_by_name(c, "a", "Lists/moxtrio"))).id == mb.id
    with pytest.raises(MailboxExists):
        await store.write(lambda c: create_mailbox(c, "a", "Inbox"))
    with pytest.raises(AccountNotFound):
        await store.write(lambda c: create_mailbox(c, "nobody", "X"))
    # Same name in another account is fine.
    await store.write(lambda c: ensure_account(c, "b"))
    assert (await store.read(lambda c: mailbox_by_name(c, "b", "Inbox"))).account == "b"


async def test_password_verification(store: Store) -> None:
    await store.write(lambda c: ensure_account(c, "mjl"))
    await store.write(lambda c: set_password(c, "mjl", "test1234"))
    assert await store.read(lambda c: verify_password(c, "mjl", "test1234"))
    assert not await store.read(lambda c: verify_password(c, "mjl", "test1235"))
    assert not await store.read(lambda c: verify_password(c, "mjl", ""))
    assert not await store.read(lambda c: verify_password(c, "nobody", "test1234"))
    # Non-ASCII spaces are prepared like mox (PRECIS OpaqueString): U+00A0 == ' '.
    await store.write(lambda c: set_password(c, "mjl", "correct horse"))
    assert await store.read(lambda c: verify_password(c, "mjl", "correct\u00a0horse"))
    assert not await store.read(lambda c: verify_password(c, "mjl", "test1234"))
    with pytest.raises(AccountNotFound):
        await store.write(lambda c: set_password(c, "nobody", "x"))


async def test_account_without_password_never_verifies(store: Store) -> None:
    await store.write(lambda c: ensure_account(c, "nopw"))
    assert await store.read(lambda c: get_scram_credentials(c, "nopw")) is None
    assert not await store.read(lambda c: verify_password(c, "nopw", ""))
    assert not await store.read(lambda c: verify_password(c, "nopw", "anything"))


async def test_scram_exchange_against_stored_credentials(store: Store) -> None:
    """A client computing its proof from the password is accepted by the stored verifier."""
    await store.write(lambda c: ensure_account(c, "mjl"))
    await store.write(lambda c: set_password(c, "mjl", "pencil"))
    creds = await store.read(lambda c: get_scram_credentials(c, "mjl"))
    assert creds is not None
    assert creds.iterations >= 4096 and len(creds.salt) >= 16
    auth_message = b"n=mjl,r=abc,r=abcdef,s=xx,i=4096,c=biws,r=abcdef"
    # client side
    client_key, _, _ = scram_keys(salted_password("pencil", creds.salt, creds.iterations))
    client_sig = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, client_sig, strict=True))
    # server side, from what is stored only
    sig = hmac.digest(creds.stored_key, auth_message, "sha256")
    recovered = bytes(a ^ b for a, b in zip(proof, sig, strict=True))
    assert hmac.compare_digest(hashlib.sha256(recovered).digest(), creds.stored_key)
    # A proof made with a wrong password fails.
    bad_key, _, _ = scram_keys(salted_password("pencil2", creds.salt, creds.iterations))
    bad_sig = hmac.digest(hashlib.sha256(bad_key).digest(), auth_message, "sha256")
    bad_proof = bytes(a ^ b for a, b in zip(bad_key, bad_sig, strict=True))
    recovered = bytes(a ^ b for a, b in zip(bad_proof, sig, strict=True))
    assert hashlib.sha256(recovered).digest() != creds.stored_key


def test_scram_rfc7677_test_vector() -> None:
    """RFC 7677 §3 example: user "user", password "pencil"."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    creds = make_scram_credentials("pencil", salt=salt, iterations=4096)
    cnonce = "rOprNGfwEbeRWgbNEkqO"
    snonce = cnonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r={cnonce},r={snonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={snonce}"
    server_sig = hmac.digest(creds.server_key, auth.encode(), "sha256")
    assert base64.b64encode(server_sig).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    client_key, stored_key, _ = scram_keys(salted_password("pencil", salt, 4096))
    assert stored_key == creds.stored_key
    client_sig = hmac.digest(stored_key, auth.encode(), "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, client_sig, strict=True))
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


def test_iterations_below_minimum_refused() -> None:
    with pytest.raises(ValueError):
        make_scram_credentials("x", iterations=1000)
