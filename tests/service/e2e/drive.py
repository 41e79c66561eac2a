"""Steps that drive the page, shared by the browser tests and the README screenshot
(``tests/service/e2e/screenshot.py``).

Everything waits on the page's own ``data-state`` attributes (empty / loading / ready / error), never on sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TIMEOUT_MS = 20_000
DATA_PNG = "data:image/png;base64,"


def wait_state(page: Any, selector: str, state: str) -> None:
    page.wait_for_selector(f"{selector}[data-state='{state}']", timeout=TIMEOUT_MS)


def upload(page: Any, slot: str, path: Path) -> None:
    page.set_input_files(f"#slot-{slot} input.file", str(path))


def pick_sample(page: Any, slot: str, index: int) -> str:
    """Click the ``index``-th sample thumbnail of ``slot``; returns the sample's file name."""
    button = page.locator(f"#slot-{slot} .samples button").nth(index)
    name = str(button.get_attribute("data-sample"))
    button.click()
    return name


def panel_png(page: Any, root: str, panel: str) -> str:
    """The base64 PNG an output panel shows (``""`` when it shows nothing)."""
    src = page.get_attribute(f"{root} .panel[data-panel='{panel}'] img", "src") or ""
    return src[len(DATA_PNG) :] if src.startswith(DATA_PNG) else ""


def rendered(page: Any, root: str, panel: str) -> bool:
    """Whether the panel's image really decoded in the browser (natural size > 0), not just has a src."""
    return bool(
        page.eval_on_selector(f"{root} .panel[data-panel='{panel}'] img", "img => img.complete && img.naturalWidth > 0")
    )


def swap(page: Any) -> None:
    page.click("#swap-run")
    wait_state(page, "#swap", "ready")


def interpolate(page: Any, factor: str, steps: int = 9) -> None:
    page.check(f"input[name='factor'][value='{factor}']")
    page.fill("#interp-steps", str(steps))
    page.click("#interp-run")
    page.wait_for_selector(f"#interp[data-state='ready'][data-factor='{factor}']", timeout=TIMEOUT_MS)


def set_frame(page: Any, i: int) -> None:
    """Move the slider to frame ``i`` the way a user does (keyboard on the focused range input)."""
    slider = page.locator("#interp-slider")
    slider.focus()
    slider.press("Home")
    for _ in range(i):
        slider.press("ArrowRight")
    page.wait_for_selector(f"#interp[data-frame='{i}']", timeout=TIMEOUT_MS)
