"""Without a session every page shows a login screen (name and password, or the one-time
link), and logging in there starts the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.docshots import doc_screenshot
from tests.web.harness import PageErrors, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

PASSWORD = "login-screen-pw"


def logged_out_page(browser: Browser, stack: Stack, errors: PageErrors) -> Page:
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", errors.console)
    page.on("pageerror", errors.page_error)
    return page


def unexpected(errors: PageErrors) -> list[str]:
    """Errors other than the browser's own notes on the expected 401 answers."""
    return [m for m in errors.messages if "status of 401" not in m]


@pytest.mark.parametrize("path", ["/", "/training.html", "/episodes.html"])
def test_every_page_shows_a_login_screen_without_a_session(
    browser: Browser, stack: Stack, path: str
) -> None:
    errors = PageErrors()
    page = logged_out_page(browser, stack, errors)
    try:
        page.goto(path)
        form = page.locator("#login-form")
        expect(form).to_be_visible()
        expect(form).to_contain_text("Log in to Tandem")
        expect(form).to_contain_text("one-time login link")
        expect(page.locator("#login-name")).to_be_focused()
        expect(page.locator("#user")).to_have_text("not logged in")
        if path == "/":
            doc_screenshot(page, "operate_login.png")
    finally:
        page.context.close()
    assert not unexpected(errors), errors.messages


def test_logging_in_on_the_login_screen_starts_the_page(browser: Browser, stack: Stack) -> None:
    store = stack.state.store
    if store.auth.get_operator("ana") is None:
        store.auth.create_operator("ana", "operator", PASSWORD)
    errors = PageErrors()
    page = logged_out_page(browser, stack, errors)
    try:
        page.goto("/")
        page.fill("#login-name", "ana")
        page.fill("#login-password", "not the password")
        page.click("#login-submit")
        expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        expect(page.locator("#login")).to_have_count(0)
        expect(page.locator("#user")).to_have_text("ana (operator)")
        expect(page.locator("#link")).to_have_text("connected")
        mode = stack.status()["mode"]  # type: ignore[index]
        expect(page.locator("#mode")).to_have_attribute("data-mode", mode)
    finally:
        page.context.close()
    assert not unexpected(errors), errors.messages
