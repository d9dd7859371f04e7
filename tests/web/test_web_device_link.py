"""Connect a device: the dashboard issues a fresh one-time login link as a QR code; the
code decodes to the link shown, the link logs a second browser in once, and a viewer gets
no link."""

from __future__ import annotations

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from server.db.models import Role
from tests.web.docshots import doc_screenshot
from tests.web.harness import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def decode_qr(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    return str(text)


def open_dialog(page: Page) -> str:
    """Click "Connect a device"; the link the dialog shows once it is ready."""
    page.get_by_role("button", name="Connect a device").click()
    dialog = page.locator("#device-dialog")
    expect(dialog).to_have_attribute("data-state", "ready")
    return str(page.locator("#device-url").text_content())


def test_connect_a_device_shows_a_one_time_link_as_a_qr_code(
    page: Page, stack: Stack, browser: Browser
) -> None:
    page.goto("/training.html")
    url = open_dialog(page)
    assert url.startswith(f"{stack.base_url}/login?token=")
    # The QR code on screen is that link.
    assert decode_qr(page.locator("#device-qr svg").screenshot()) == url
    # This server listens on loopback only: the dialog says another device cannot reach it.
    expect(page.locator("#device-warning")).to_be_visible()
    expect(page.locator("#device-note")).to_contain_text("usable once")
    doc_screenshot(page, "device_link.png")

    # "New link" issues another one; each works once, in a browser with no session.
    page.get_by_role("button", name="New link").click()
    expect(page.locator("#device-url")).not_to_have_text(url)
    second = str(page.locator("#device-url").text_content())
    assert decode_qr(page.locator("#device-qr svg").screenshot()) == second
    device = browser.new_context()
    try:
        assert device.request.get(f"{stack.base_url}/api/auth/me").status == 401
        res = device.request.get(second)
        assert res.ok, res.status
        me = device.request.get(f"{stack.base_url}/api/auth/me")
        assert me.ok and me.json()["role"] == "operator"
    finally:
        device.close()
    used = httpx.get(second, follow_redirects=False, timeout=10)
    assert used.status_code == 401
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#device-dialog")).to_be_hidden()


def test_a_viewer_cannot_issue_device_links(page: Page, stack: Stack) -> None:
    store = stack.state.store
    viewer = store.auth.get_operator("watcher") or store.auth.create_operator(
        "watcher", Role.VIEWER, "a-long-password"
    )
    token = store.auth.issue_token(viewer.id, 600)
    res = httpx.post(
        f"{stack.base_url}/api/auth/device-link",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert res.status_code == 403
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "tandem_token", "value": token, "url": stack.base_url}])
    page.goto("/training.html")
    expect(page.locator("#user")).to_have_text("watcher (viewer)")
    expect(page.locator("#connect-device")).to_be_hidden()
