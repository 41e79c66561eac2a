"""Browser-test fixtures: a real uvicorn serving a tiny class-aware bundle, and Chromium pages on it.

.venv/bin/python -m pytest tests/service/e2e -q   # needs scripts/install_browser.sh (else skipped, unless strict)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import launch, missing_reason, strict


@pytest.fixture(scope="session")
def page_server(tiny: Callable[[str], Any], serve: Callable[..., Any]) -> Any:
    """The service on loopback with a tiny class-aware model (it has a warp and classes: every page feature)."""
    return serve(tiny("class-aware").bundle, max_wait_ms=1)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium, closed after each module: while Playwright's sync API is open, the main thread counts as
    running an asyncio loop, so any later ``asyncio.run`` (other test modules) would fail."""
    reason = missing_reason()
    if reason is not None:
        if strict():
            pytest.fail(f"DAE_BROWSER_STRICT is set but {reason}")
        pytest.skip(reason)
    with launch(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


@pytest.fixture
def page(browser: Any, page_server: Any) -> Iterator[Any]:
    """A fresh tab on the page, with console errors collected in ``page.errors_seen``."""
    tab = browser.new_page()
    tab.errors_seen = []
    tab.on("pageerror", lambda e: tab.errors_seen.append(f"pageerror: {e}"))
    tab.on("console", lambda m: m.type == "error" and tab.errors_seen.append(f"console: {m.text}"))
    tab.goto(page_server.url + "/")
    tab.wait_for_selector("body[data-ready='true']", timeout=15_000)
    yield tab
    tab.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go (the test's own tmp output)."""
    out = tmp_path / "screenshots"
    out.mkdir()
    return out
