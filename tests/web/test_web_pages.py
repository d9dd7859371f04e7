"""Every page loads against the real server and bridge, connects, and logs no errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.harness import ARTIFACTS, PageErrors, Stack, new_context

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.mark.parametrize("path", ["/", "/vr.html", "/training.html"])
def test_page_connects_and_shows_the_robot_mode(page: Page, stack: Stack, path: str) -> None:
    page.goto(path)
    expect(page.locator("#link")).to_have_text("connected")
    mode = stack.status()["mode"]  # type: ignore[index]
    expect(page.locator("#mode")).to_have_attribute("data-mode", mode)
    expect(page.locator("#user")).to_contain_text("(operator)")


def test_operate_page_draws_camera_frames(page: Page, stack: Stack) -> None:
    page.goto("/")
    for cam in ("front", "wrist"):
        canvas = page.locator(f'canvas[data-cam="{cam}"]')
        expect(canvas).to_be_visible()
    page.wait_for_function(
        "() => [...window.tandem.cams.values()].every((v) => v.drawn >= 3)", timeout=15_000
    )
    # The canvas took the image's size and holds non-black pixels.
    lit = page.evaluate(
        """() => {
          const c = document.querySelector('canvas[data-cam="front"]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let lit = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
          return { w: c.width, h: c.height, lit };
        }"""
    )
    assert lit["w"] > 16 and lit["h"] > 16
    assert lit["lit"] > lit["w"] * lit["h"] // 10
    expect(page.locator("#frame-age")).to_contain_text("ms")
    expect(page.locator("#rtt")).to_contain_text("ms")


def test_one_time_login_link_on_a_page(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    """``/?token=<one-time token>`` logs a fresh browser in; the token is then used up."""
    operator = (
        stack.state.store.auth.get_operator("admin") or stack.state.store.auth.list_operators()[0]
    )
    once = stack.state.store.auth.issue_token(operator.id, 60, one_time=True)
    context = browser.new_context(base_url=stack.base_url)
    try:
        pg = context.new_page()
        pg.goto(f"/?token={once}")
        expect(pg.locator("#user")).to_contain_text(operator.name)
        expect(pg.locator("#link")).to_have_text("connected")
        assert "token=" not in pg.url
        assert pg.evaluate("localStorage.getItem('tandem.session')")
        again = stack.http.post("/api/auth/exchange", json={"token": once})
        assert again.status_code == 401
    finally:
        context.close()


@pytest.mark.parametrize("size", [(1832, 1920), (412, 915)], ids=["headset", "narrow"])
def test_pages_fit_headset_and_narrow_screens(browser, stack: Stack, size) -> None:  # type: ignore[no-untyped-def]
    """No page scrolls sideways at a Quest-browser window size or on a narrow screen."""
    width, height = size
    context = new_context(browser, stack, viewport={"width": width, "height": height})
    errors = PageErrors()
    try:
        pg = context.new_page()
        pg.on("console", errors.console)
        pg.on("pageerror", errors.page_error)
        for path in ("/", "/vr.html", "/episodes.html", "/training.html"):
            pg.goto(path)
            expect(pg.locator("#user")).to_contain_text("(operator)")
            overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            name = path.strip("/").replace(".html", "") or "operate"
            pg.screenshot(path=str(ARTIFACTS / f"size_{width}x{height}_{name}.png"))
            assert overflow <= 1, f"{path} scrolls sideways by {overflow} px at {width} px"
    finally:
        context.close()
    assert not errors.messages, errors.messages
