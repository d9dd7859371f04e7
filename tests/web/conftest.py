"""Browser-test fixtures: a real sim bridge, the real server and Debian's Chromium.

``stack`` (one per session) starts ``python -m tandem bridge --robot sim:lift
--policy expert`` as a subprocess on free loopback ports and the real FastAPI
app under uvicorn in a thread, wired to it through settings, with its data
directory, SQLite database and a learner-metrics endpoint of its own. Tests
observe the robot through the server (``/api/robots``) and reset it between
tests with an e-stop and clear.

``open_stack`` builds it; a test module may override ``stack`` with one of its
own (e.g. a short episode limit). ``page`` opens a fresh browser context logged
in as the default operator, fails the test on any page error or console error,
and saves a screenshot to ``tests/web/artifacts/<test>.png`` (git-ignored). Chromium is Debian's
(``$CHROMIUM`` or ``/usr/bin/chromium``); when it is missing the fixture fails
with instructions, it never skips.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from server.app import create_app
from tandem.settings import load_settings
from tests.polling import free_port
from tests.web.harness import (
    ARTIFACTS,
    BRIDGE_START_S,
    CHROMIUM_ARGS,
    REPO,
    PageErrors,
    Stack,
    chromium_executable,
    new_context,
    safe_name,
    serve,
    session_token,
    start_bridge,
    wait_for,
)


@contextlib.contextmanager
def open_stack(root: Path, horizon: int = 2000) -> Iterator[Stack]:
    """A sim bridge (episode limit ``horizon`` steps) and the real server, until closed."""
    data_dir = root / "data"
    pub, cmd = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    metrics = f"tcp://127.0.0.1:{free_port()}"
    port = free_port()
    bridge_log = root / "bridge.log"
    bridge = start_bridge(pub, cmd, data_dir, bridge_log, horizon)
    settings = load_settings(
        data_dir=data_dir,
        server={
            "host": "127.0.0.1",
            "port": port,
            "bridges": [pub],
            "bridge_cmd_endpoints": [cmd],
            "learner_metrics_endpoint": metrics,
            "web_dir": str(REPO / "web"),
        },
    )
    login_urls: list[str] = []
    app = create_app(settings, on_login_url=login_urls.append)
    server, thread = serve(app, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        token = session_token(base_url, wait_for(lambda: login_urls, 10, "the login URL")[0])
        assert server.loop is not None
        st = Stack(base_url, token, app, server.loop, bridge, metrics, data_dir, bridge_log)

        def bridge_up() -> bool:
            if bridge.poll() is not None:
                pytest.fail(f"bridge exited with {bridge.returncode}:\n{bridge_log.read_text()}")
            return st.status() is not None

        wait_for(bridge_up, BRIDGE_START_S, "the sim bridge's first status", interval=0.2)
        yield st
        st.http.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        bridge.terminate()
        try:
            bridge.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait(timeout=10)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("web-stack")) as st:
        yield st


@pytest.fixture
def robot(stack: Stack) -> Stack:
    """The stack with the robot idle at the start of the test."""
    stack.to_idle()
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not per session: while Playwright's sync API is
    started, its event loop counts as running and ``asyncio.run`` in other tests fails."""
    executable = chromium_executable()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = new_context(browser, stack)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors = PageErrors()
    pg.on("console", errors.console)
    pg.on("pageerror", errors.page_error)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        pg.screenshot(path=str(ARTIFACTS / f"{safe_name(request.node.name)}.png"), full_page=True)
    context.close()
    assert not errors.messages, "the page logged errors:\n" + "\n".join(errors.messages)
