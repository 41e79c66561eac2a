"""Debian's chromium driven by Playwright (no ``playwright install``: its downloads are unreachable here).

    scripts/install_browser.sh            # apt chromium + the playwright package
    from tests.service.e2e.browser import launch
    with launch(tmp_path / "profile") as browser: page = browser.new_page()

The browser tests skip only where chromium is missing *and* ``DAE_BROWSER_STRICT`` is unset; CI sets it, so
there a missing browser fails instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]


def chromium_path() -> str | None:
    """The chromium binary ($DAE_CHROMIUM, else Debian's), or None."""
    given = os.environ.get("DAE_CHROMIUM")
    for path in ([given] if given else []) + list(CHROMIUM_CANDIDATES):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    return found


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (run scripts/install_browser.sh)"
    if chromium_path() is None:
        return "chromium is not installed (run scripts/install_browser.sh, or set DAE_CHROMIUM)"
    return None


def strict() -> bool:
    return os.environ.get("DAE_BROWSER_STRICT", "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def launch(profile: Path, **context: Any) -> Iterator[Any]:
    """A persistent Chromium context on a fresh user-data-dir ``profile`` (a BrowserContext: ``.new_page()``)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError(missing_reason() or "chromium not found")
    profile.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=exe,
            headless=True,
            args=ARGS,
            viewport=context.pop("viewport", {"width": 1280, "height": 900}),
            device_scale_factor=context.pop("device_scale_factor", 1),
            **context,
        )
        try:
            yield ctx
        finally:
            ctx.close()
