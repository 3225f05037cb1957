"""The admin interface in a real browser: login, queue with a held message and its
attempt history, release and delivery, hold rules, the webhook queue."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import UI, Receiver, send, sherpa, wait_until
from tests.support.procs import ServerProcess


def login_admin(ui: UI) -> None:
    ui.goto("/admin/")
    ui.page.get_by_label("Password").fill("moxadmin")
    ui.page.get_by_label("Password").press("Enter")  # keyboard only
    expect(ui.page.get_by_role("heading", name=re.compile("^Queue"))).to_be_visible()


def test_admin_login_wrong_then_right_password(ui: UI) -> None:
    ui.goto("/admin/queue")
    ui.page.get_by_label("Password").fill("wrong")
    ui.page.get_by_role("button", name="Log in").click()
    ui.expect_message("Login failed: invalid credentials")
    ui.page.get_by_label("Password").fill("moxadmin")
    ui.page.get_by_role("button", name="Log in").click()
    expect(ui.page.get_by_role("heading", name=re.compile("^Queue"))).to_be_visible()
    ui.page.get_by_role("button", name="Log out").click()
    expect(ui.page.get_by_label("Password")).to_be_visible()


def test_held_message_attempts_release_and_delivery(ui: UI, server: ServerProcess) -> None:
    admin = sherpa(server, "/admin/", "moxadmin")
    admin("QueueHoldRuleAdd", {"RecipientDomainStr": "held-release.example"})
    qid = send(server, "someone@held-release.example", subject="held for the browser")
    # A message with a failed attempt: localserve fails localparts ending in "temperror".
    failing = send(server, "user-temperror@localhost", subject="fails once")
    wait_until(lambda: admin("QueueList", {"IDs": [failing]}, {})[0]["Attempts"] > 0, "a failed attempt")
    login_admin(ui)
    row = ui.page.get_by_role("row").filter(has_text="held for the browser")
    expect(row).to_contain_text("held")
    ui.shot("admin-queue")
    ui.goto(f"/admin/queue/{failing}")
    attempts = ui.page.get_by_role("table")
    expect(attempts).to_contain_text("failed")
    expect(attempts).to_contain_text("451")
    ui.shot("admin-message")
    ui.page.goto(ui.base + "/admin/queue")
    row.get_by_role("link", name=str(qid)).click()
    expect(ui.page.get_by_role("heading", name=f"Message {qid}")).to_be_visible()
    expect(ui.page.get_by_role("table")).to_contain_text("No delivery attempts yet.")
    ui.page.get_by_role("button", name="Release").click()
    # Released, delivered and retired: the page follows it to the retired view.
    wait_until(lambda: admin("RetiredList", {"IDs": [qid], "Success": True}, {}), "delivery")
    ui.page.reload()
    expect(ui.page.get_by_role("heading", name=f"Retired message {qid}")).to_be_visible()
    expect(ui.page.locator("dl.fields")).to_contain_text("delivered")
    expect(ui.page.get_by_role("table")).to_contain_text("ok")


def test_add_and_remove_hold_rule(ui: UI) -> None:
    login_admin(ui)
    ui.page.get_by_role("navigation").get_by_role("link", name="Hold rules").click()
    form = ui.page.get_by_role("form", name="add hold rule")
    form.get_by_label("Recipient domain").fill("rule.example")
    form.get_by_label("Account").fill("mox")
    form.get_by_role("button", name="Add hold rule").click()
    ui.expect_message("Hold rule added.")
    row = ui.page.get_by_role("row").filter(has_text="rule.example")
    expect(row).to_contain_text("mox")
    ui.shot("admin-holdrules")
    row.get_by_role("button", name=re.compile("^remove hold rule")).click()
    ui.expect_message(re.compile(r"Hold rule \d+ removed\."))
    expect(ui.page.get_by_role("row").filter(has_text="rule.example")).to_have_count(0)


def failed_webhook(server: ServerProcess, receiver: Receiver, path: str, rcpt: str, subject: str) -> int:
    """The ID of a queued webhook whose first call (to ``path``, answering 500) failed.

    The account's webhook URL is left at ``path``: the caller resets it.
    """
    account = sherpa(server, "/account/", "mox@localhost", "moxmoxmox")
    admin = sherpa(server, "/admin/", "moxadmin")
    account("OutgoingWebhookSave", receiver.url(path), "", ["delivered"])
    send(server, rcpt, subject=subject)
    wait_until(lambda: receiver.on(path), "a webhook attempt")
    hooks = wait_until(lambda: [h for h in admin("HookList", {}, {}) if h["Results"]], "a failed webhook")
    return int(hooks[0]["ID"])


def test_failed_webhook_is_shown_and_rescheduled(ui: UI, server: ServerProcess, receiver: Receiver) -> None:
    account = sherpa(server, "/account/", "mox@localhost", "moxmoxmox")
    try:
        hid = failed_webhook(server, receiver, "/fail", "hooked@localhost", "webhook for the browser")
    finally:
        account("OutgoingWebhookSave", "", "", [])
    login_admin(ui)
    ui.page.get_by_role("navigation").get_by_role("link", name="Webhooks", exact=True).click()
    row = ui.page.get_by_role("row").filter(has=ui.page.get_by_role("link", name=str(hid), exact=True))
    expect(row).to_contain_text("500")
    ui.shot("admin-hooks")
    row.get_by_role("link", name=str(hid), exact=True).click()
    payload = json.loads(ui.page.locator("pre.payload").inner_text())
    assert payload["Event"] == "delivered" and payload["Subject"] == "webhook for the browser"
    expect(ui.page.get_by_role("table")).to_contain_text("server trouble")
    ui.shot("admin-hook")
    before = len(receiver.on("/fail"))
    ui.page.get_by_role("button", name="Reschedule").click()
    ui.expect_message("Rescheduled.")
    wait_until(lambda: len(receiver.on("/fail")) > before, "the rescheduled attempt")
    ui.page.get_by_role("button", name="Cancel").click()
    expect(ui.page.get_by_role("heading", name=f"Retired webhook {hid}")).to_be_visible()


def test_retired_webhook_is_redelivered_with_a_button(
    ui: UI, server: ServerProcess, receiver: Receiver
) -> None:
    account = sherpa(server, "/account/", "mox@localhost", "moxmoxmox")
    admin = sherpa(server, "/admin/", "moxadmin")
    try:
        hid = failed_webhook(server, receiver, "/fail-redeliver", "redeliver@localhost", "webhook to redeliver")
        assert admin("HookCancel", {"IDs": [hid]}) == 1
        # The receiver is back, at a new URL.
        account("OutgoingWebhookSave", receiver.url("/ok-redeliver"), "", ["delivered"])
        login_admin(ui)
        ui.page.get_by_role("navigation").get_by_role("link", name="Retired webhooks").click()
        ui.page.get_by_role("row").filter(has=ui.page.get_by_role("link", name=str(hid), exact=True)).get_by_role(
            "link", name=str(hid), exact=True).click()
        expect(ui.page.get_by_role("heading", name=f"Retired webhook {hid}")).to_be_visible()
        ui.page.get_by_role("button", name="Redeliver").click()
        ui.expect_message(re.compile(r"^Queued for redelivery as webhook \d+\.$"))
        wait_until(lambda: receiver.on("/ok-redeliver"), "the redelivered webhook")
        assert receiver.redelivery_of == [("/ok-redeliver", str(hid))]
        payload = json.loads(receiver.on("/ok-redeliver")[0])
        assert payload["Subject"] == "webhook to redeliver"
    finally:
        account("OutgoingWebhookSave", "", "", [])


def test_pages_fit_a_phone_screen(browser: object, server: ServerProcess, img_dir: Path) -> None:
    """At a phone's width the pages do not scroll sideways: wide tables scroll in their box."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    ui = UI(page, server, img_dir)
    login_admin(ui)
    for path in ("/admin/queue", "/admin/holdrules", "/admin/hooks", "/admin/retired"):
        ui.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
    ui.goto("/admin/queue")
    ui.shot("admin-queue-phone")
    context.close()
    assert errors == []
