"""The page in a real Chromium on a real uvicorn: what it shows is exactly what the public API serves.

    .venv/bin/python -m pytest tests/service/e2e -q       # scripts/install_browser.sh first; DAE_BROWSER_STRICT=1 in CI

Each check compares the PNG a panel shows with the PNG the API returns for the same request made with httpx,
so a page that shows stale, swapped or made-up images fails. Screenshots go to each test's tmp output.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from . import drive

pytestmark = pytest.mark.browser
STATIC = Path(__file__).resolve().parents[3] / "service" / "static"
PANELS = ("texture", "warped_grid", "reconstruction")


def digit_file(mnist_digits: tuple[np.ndarray, np.ndarray], i: int, tmp_path: Path) -> Path:
    path = tmp_path / f"mnist-{i}-label{int(mnist_digits[1][i])}.png"
    Image.fromarray(mnist_digits[0][i]).save(path)
    return path


def api_decode(url: str, code: str, klass: int | None = None) -> dict[str, Any]:
    latent: dict[str, Any] = {"code": code} if klass is None else {"code": code, "class": klass}
    r = httpx.post(f"{url}/decode", params={"outputs": ",".join(PANELS)}, json={"latents": [latent]}, timeout=30)
    r.raise_for_status()
    return dict(r.json()["items"][0]["outputs"])


def api_encode(url: str, data: bytes) -> dict[str, Any]:
    r = httpx.post(f"{url}/encode", files={"images": ("x.png", data, "image/png")}, timeout=30)
    r.raise_for_status()
    return dict(r.json()["items"][0])


def assert_panels(page: Any, root: str, expected: dict[str, Any]) -> None:
    for name in PANELS:
        shown = drive.panel_png(page, root, name)
        assert shown, f"{root}: panel {name} shows nothing"
        assert shown == expected[name]["png"], f"{root}: panel {name} differs from what the API serves"
        assert drive.rendered(page, root, name), f"{root}: panel {name} did not decode in the browser"


def no_script_errors(page: Any) -> None:
    bad = [e for e in page.errors_seen if e.startswith("pageerror") or "Uncaught" in e]
    assert not bad, bad


def test_upload_renders_the_four_panels_as_served(
    page: Any, page_server: Any, mnist_digits: Any, tmp_path: Path, shots: Path
) -> None:
    digit = digit_file(mnist_digits, 10, tmp_path)
    drive.upload(page, "A", digit)
    drive.wait_state(page, "#slot-A", "ready")

    enc = api_encode(page_server.url, digit.read_bytes())
    assert_panels(page, "#slot-A", api_decode(page_server.url, enc["code"]))
    assert drive.rendered(page, "#slot-A", "input")
    size = page.eval_on_selector("#slot-A .panel[data-panel='input'] img", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [28, 28]  # the uploaded digit itself, not a served picture
    assert page.inner_text("#slot-A .predicted") == f"looks like: {enc['predicted_label']}"
    assert page.inner_text("#slot-A .source-name") == digit.name
    assert page.inner_text("#model-text").startswith("tiny-class-aware · class-aware · 32×32")
    page.screenshot(path=str(shots / "upload.png"), full_page=True)
    no_script_errors(page)


def test_swap_and_interpolation(page: Any, page_server: Any, mnist_digits: Any, tmp_path: Path, shots: Path) -> None:
    sample = drive.pick_sample(page, "A", 7)
    drive.wait_state(page, "#slot-A", "ready")
    digit = digit_file(mnist_digits, 5, tmp_path)
    drive.upload(page, "B", digit)
    drive.wait_state(page, "#slot-B", "ready")
    a, b = (STATIC / "samples" / sample).read_bytes(), digit.read_bytes()

    drive.swap(page)
    for pair, (shape, appearance) in {"ab": (a, b), "ba": (b, a)}.items():
        r = httpx.post(
            f"{page_server.url}/swap",
            params={"outputs": ",".join(PANELS)},
            timeout=30,
            files={"shape": ("s.png", shape, "image/png"), "appearance": ("a.png", appearance, "image/png")},
        )
        r.raise_for_status()
        assert_panels(page, f".swap-result[data-pair='{pair}']", r.json()["items"][0]["outputs"])

    code_a, code_b = api_encode(page_server.url, a)["code"], api_encode(page_server.url, b)["code"]
    frames: dict[str, list[dict[str, Any]]] = {}
    for factor in ("shape", "appearance"):
        drive.interpolate(page, factor, steps=5)
        r = httpx.get(
            f"{page_server.url}/interpolate",
            timeout=30,
            params={
                "start": code_a,
                "end": code_b,
                "steps": 5,
                "factor": factor,
                "outputs": ",".join((*PANELS, "grid")),
            },
        )
        r.raise_for_status()
        frames[factor] = [item["outputs"] for item in r.json()["items"]]
        assert page.locator("#interp-strip img").count() == 5
        for i in (0, 2, 4):
            drive.set_frame(page, i)
            assert_panels(page, ".interp-view", frames[factor][i])
            assert page.inner_text("#interp-t") == f"t = {i / 4:.2f}"
        page.screenshot(path=str(shots / f"interpolate-{factor}.png"), full_page=True)
    # moving the shape keeps A's texture; moving the appearance keeps A's deformation field
    shape_f, app_f = frames["shape"], frames["appearance"]
    assert shape_f[0]["texture"]["png"] == shape_f[4]["texture"]["png"]
    assert shape_f[0]["grid"]["values"] != shape_f[4]["grid"]["values"]
    assert app_f[0]["grid"]["values"] == app_f[4]["grid"]["values"]
    assert app_f[0]["texture"]["png"] != app_f[4]["texture"]["png"]

    page.click("#interp-play")  # the animation walks the frames on its own
    page.wait_for_function("document.querySelector('#interp').dataset.frame !== '4'", timeout=5_000)
    page.wait_for_function("document.querySelector('#interp').dataset.frame === '2'", timeout=5_000)
    page.click("#interp-play")
    assert page.inner_text("#interp-play").endswith("Play")
    no_script_errors(page)


def test_invalid_file_shows_the_api_error_in_plain_words(
    page: Any, page_server: Any, mnist_digits: Any, tmp_path: Path, shots: Path
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is a text file, not a picture\n")
    drive.upload(page, "A", bad)
    drive.wait_state(page, "#slot-A", "error")
    error = page.locator("#error")
    assert error.is_visible()
    assert error.get_attribute("data-code") == "image_undecodable"
    assert page.inner_text("#error-title") == "Could not use “notes.png” as image A."
    assert "not an image the service can read" in page.inner_text("#error-text")
    detail = page.inner_text("#error-detail")
    assert "code image_undecodable, HTTP 400" in detail and "request " in detail
    for name in ("input", *PANELS):  # nothing half-shown: the slot is empty again
        assert page.get_attribute(f"#slot-A .panel[data-panel='{name}'] img", "src") is None
    assert page.is_disabled("#swap-run")
    page.screenshot(path=str(shots / "invalid-file.png"), full_page=True)

    drive.upload(page, "A", digit_file(mnist_digits, 3, tmp_path))  # a good file clears the error
    drive.wait_state(page, "#slot-A", "ready")
    assert not error.is_visible()
    no_script_errors(page)


def test_class_choice_decodes_as_that_class(
    page: Any, page_server: Any, mnist_digits: Any, tmp_path: Path, shots: Path
) -> None:
    digit = digit_file(mnist_digits, 0, tmp_path)
    drive.upload(page, "A", digit)
    drive.wait_state(page, "#slot-A", "ready")
    code = api_encode(page_server.url, digit.read_bytes())["code"]
    options = page.eval_on_selector_all("#class-select option", "os => os.map(o => o.textContent)")
    assert options == ["as predicted", *[str(i) for i in range(10)]]
    page.select_option("#class-select", "3")
    page.wait_for_function("document.querySelector('#slot-A').dataset.state === 'ready'", timeout=drive.TIMEOUT_MS)
    expected = api_decode(page_server.url, code, klass=3)
    page.wait_for_function(
        "png => document.querySelector(\"#slot-A .panel[data-panel='reconstruction'] img\").src.endsWith(png)",
        arg=expected["reconstruction"]["png"],
        timeout=drive.TIMEOUT_MS,
    )
    assert_panels(page, "#slot-A", expected)
    page.screenshot(path=str(shots / "class-3.png"), full_page=True)
    no_script_errors(page)


def test_drawing_is_encoded(page: Any, page_server: Any) -> None:
    page.click("#slot-B .draw-toggle")
    box = page.locator("#slot-B canvas").bounding_box()
    assert box is not None
    x, y = box["x"], box["y"]
    page.mouse.move(x + 60, y + 40)
    page.mouse.down()
    for k in range(1, 11):  # a rough "1"
        page.mouse.move(x + 60 + 4 * k, y + 40 + 12 * k)
    page.mouse.up()
    page.click("#slot-B .draw-use")
    drive.wait_state(page, "#slot-B", "ready")
    assert page.inner_text("#slot-B .source-name") == "drawing.png"
    src = page.get_attribute("#slot-B .panel[data-panel='input'] img", "src") or ""
    drawn = page.evaluate("async u => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", src)
    img = np.asarray(Image.open(io.BytesIO(bytes(drawn))).convert("L"))
    assert img.shape == (196, 196) and img.max() > 200 and (img > 128).mean() < 0.2  # white strokes on black
    for name in PANELS:
        assert drive.rendered(page, "#slot-B", name)
    no_script_errors(page)
