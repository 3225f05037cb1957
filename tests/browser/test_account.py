"""The account interface in a real browser: login, the suppression list stopping a
webapi Send, saving an outgoing webhook and its "test" call."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.browser.conftest import UI, Receiver, send, sherpa, wait_until, webapi
from tests.support.procs import ServerProcess


def login_account(ui: UI) -> None:
    ui.goto("/account/")
    ui.page.get_by_label("Email address").fill("mox@localhost")
    ui.page.get_by_label("Password").fill("moxmoxmox")
    ui.page.get_by_role("button", name="Log in").click()
    expect(ui.page.get_by_role("heading", name=re.compile("^Account"))).to_be_visible()


def test_account_login_and_overview(ui: UI) -> None:
    ui.goto("/account/")
    ui.page.get_by_label("Email address").fill("mox@localhost")
    ui.page.get_by_label("Password").fill("not the password")
    ui.page.get_by_label("Password").press("Enter")
    ui.expect_message("Login failed: invalid credentials")
    login_account(ui)
    expect(ui.page.locator("dl.fields")).to_contain_text("mox@localhost")
    ui.shot("account-overview")


def test_suppression_added_in_page_stops_webapi_send(ui: UI, server: ServerProcess) -> None:
    login_account(ui)
    ui.page.get_by_role("navigation").get_by_role("link", name="Suppression list").click()
    form = ui.page.get_by_role("form", name="add suppression")
    form.get_by_label("Address").fill("blocked@example.org")
    form.get_by_label("Reason").fill("asked not to be mailed")
    form.get_by_role("button", name="Add").click()
    ui.expect_message(re.compile("^Added "))
    expect(ui.page.get_by_role("row").filter(has_text="blocked@example.org")).to_contain_text("asked not to be mailed")
    ui.shot("account-suppressions")
    assert webapi(server, "SuppressionPresent", {"EmailAddress": "blocked@example.org"}).json() == {"Present": True}
    qid = send(server, "blocked@example.org", subject="to a suppressed address")
    admin = sherpa(server, "/admin/", "moxadmin")
    retired = wait_until(lambda: admin("RetiredList", {"IDs": [qid]}, {}), "the suppressed send to retire")
    assert retired[0]["Success"] is False
    assert "suppress" in retired[0]["Results"][-1]["Error"]
    # Removing it from the list in the page, after confirming.
    ui.page.get_by_role("button", name="remove blocked@example.org").click()
    ui.expect_message("Removed blocked@example.org.")
    assert webapi(server, "SuppressionPresent", {"EmailAddress": "blocked@example.org"}).json() == {"Present": False}


def test_outgoing_webhook_save_and_test(ui: UI, server: ServerProcess, receiver: Receiver) -> None:
    login_account(ui)
    ui.page.get_by_role("navigation").get_by_role("link", name="Webhooks").click()
    form = ui.page.get_by_role("form", name="outgoing webhook")
    form.get_by_label("URL").fill(receiver.url("/hook"))
    form.get_by_label("Authorization header").fill("Bearer from-the-browser")
    form.get_by_label("failed").check()
    form.get_by_role("button", name="Save").click()
    ui.expect_message("Outgoing webhook saved.")
    text = (server.directory / "domains.conf").read_text()
    assert f"URL: {receiver.url('/hook')}" in text and "Authorization: Bearer from-the-browser" in text
    expect(ui.page.get_by_role("form", name="outgoing webhook").get_by_label("URL")).to_have_value(receiver.url("/hook"))
    ui.page.get_by_role("form", name="test outgoing webhook").get_by_role("button", name="Test").click()
    expect(ui.page.locator("#out-result")).to_have_text("HTTP status: 200\nResponse: ok\nError: -")
    body = json.loads(receiver.on("/hook")[0])
    assert body["Event"] == "delivered" and body["QueueMsgID"] == 101
    ui.shot("account-webhooks")
    # Turn it off again for the other tests.
    ui.page.get_by_role("form", name="outgoing webhook").get_by_label("URL").fill("")
    ui.page.get_by_role("form", name="outgoing webhook").get_by_role("button", name="Save").click()
    ui.expect_message("Outgoing webhook saved.")
    assert "Bearer from-the-browser" not in (server.directory / "domains.conf").read_text()


def test_mail_viewer_shows_new_mail_live_with_html_in_sandboxed_frame(ui: UI, server: ServerProcess) -> None:
    login_account(ui)
    ui.page.get_by_role("navigation").get_by_role("link", name="Mail").click()
    expect(ui.page.get_by_role("heading", name="Mail")).to_be_visible()
    # Sent while the page is open: it appears without a reload.
    r = webapi(server, "Send", {"To": [{"Address": "mox@localhost"}], "Subject": "live arrival",
                                "Text": "plain version\n",
                                "HTML": '<h1 id="greeting">Hello from HTML</h1><p class="x">styled</p>'})
    assert r.status_code == 200, r.text
    link = ui.page.get_by_role("link", name="live arrival")
    expect(link).to_be_visible(timeout=20000)
    expect(ui.page.locator("#live-state")).to_have_text("New message: live arrival")
    ui.shot("account-mail")
    link.click()
    expect(ui.page.get_by_role("heading", name="live arrival")).to_be_visible()
    frame = ui.page.frame_locator("iframe.html-part")
    expect(frame.locator("#greeting")).to_have_text("Hello from HTML")
    # The frame is sandboxed: its document is in an opaque origin the page cannot reach.
    assert ui.page.evaluate("document.querySelector('iframe.html-part').getAttribute('sandbox')") == ""
    assert ui.page.evaluate("document.querySelector('iframe.html-part').contentDocument") is None
    expect(ui.page.locator("pre.text-part")).to_contain_text("plain version")
    expect(ui.page.get_by_role("heading", name="Deliveries of this message")).to_be_visible()
    ui.shot("account-message")
