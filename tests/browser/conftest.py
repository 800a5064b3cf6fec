"""A real Chromium (Debian's package) driven by Playwright, against the live test server.

``REQUIRE_BROWSER=1`` (set by CI) turns a missing browser into a failure instead of a skip.
"""

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Screenshots for docs/ when asked (HITL_SCREENSHOTS=1), else a scratch folder.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """Playwright's sync API runs an event loop in the test's thread while the browser is up;
    the ORM calls a test makes between browser steps are still synchronous, so Django may
    allow them, for browser tests only (the variable must not leak into other tests)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _no_database_connection_left_open():
    """Django keeps a connection per thread and per context (``asgiref.local``), and one opened
    while Playwright's sync API drives the browser from this thread outlived the test: nothing
    closed it, and the test database's teardown at the suite's end found it in use ("is being
    accessed by other users"). After each browser test, every connection this thread opened is
    closed (the test's own reconnects when next used)."""
    import gc
    import threading

    from django.db.backends.base.base import BaseDatabaseWrapper

    yield
    me = threading.get_ident()
    for wrapper in gc.get_objects():
        if (
            issubclass(type(wrapper), BaseDatabaseWrapper)  # (type(): isinstance would evaluate lazy objects)
            and wrapper._thread_ident == me
            and wrapper.connection is not None
            and not wrapper.in_atomic_block
        ):
            wrapper.close()


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        if REQUIRE_BROWSER:
            pytest.fail("REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if REQUIRE_BROWSER:
            raise
        pytest.skip("needs playwright (requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_for(chromium, live_server):
    """A new browser page per person; console errors (CSP violations included) are collected."""
    contexts = []

    def open_page():
        context = chromium.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 950})
        contexts.append(context)
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda message: page.problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot_path(tmp_path):
    def path(name: str) -> str:
        if os.environ.get("HITL_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            return str(SCREENSHOTS / name)
        return str(tmp_path / name)

    return path
