"""Property-based fuzzing of every operation in the service's own OpenAPI schema (schemathesis + hypothesis).

    .venv/bin/python -m pytest tests/service/reliability/test_schema_fuzz.py -q

Why a real uvicorn rather than the ASGI app: the bytes go through the same HTTP parser, body-limit middleware
and process as in production, and a crash would show as a dead process (checked after every operation), not
as an exception inside the test.

Each operation gets a bounded number of examples (``FUZZ_EXAMPLES``), half schema-conforming, half not. Random
bytes never get past the image decoder, so image bodies are sometimes replaced by real images (MNIST digits and
random arrays in every mode the decoder converts) and latent fields by a real code of this model, so that the
handlers themselves are reached. Checks: no 5xx, the status is documented, and the body, content type and
headers match the schema.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.config import Settings
from tests.service.reliability.helpers import png

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
MODEL = "tiny-class-aware"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# The schema the service publishes, read without loading a model: the operations to fuzz are the schema's own.
OPENAPI = create_app(Settings()).openapi()
OPERATIONS = sorted((method.upper(), path) for path, ops in OPENAPI["paths"].items() for method in ops)
IMAGE_OPS = {("POST", "/encode"), ("POST", "/reconstruct"), ("POST", "/swap")}


def image_strategy() -> st.SearchStrategy[bytes]:
    """Real images: random arrays of any small size in the modes the decoder converts, as PNG."""
    modes = st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"])
    side = st.integers(1, 40)

    def make(args: tuple[str, int, int, int]) -> bytes:
        mode, w, h, seed = args
        rng = np.random.default_rng(seed)
        if mode == "I;16":
            from PIL import Image

            im = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
            import io

            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
        chans = {"L": 0, "RGB": 3, "RGBA": 4, "LA": 2, "P": 0, "1": 0}[mode]
        arr = rng.integers(0, 256, (h, w, chans) if chans else (h, w), dtype=np.uint8)
        if mode == "LA":
            arr = arr[..., 0]
        return png(arr)

    return st.tuples(modes, side, side, st.integers(0, 2**16)).map(make)


@pytest.fixture(scope="module")
def schema(rel_server: Any) -> Any:
    loaded = schemathesis.openapi.from_url(f"{rel_server.url}/openapi.json")
    return loaded


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_survives_fuzzing(
    schema: Any, rel_server: Any, rel_code: str, digit: bytes, method: str, path: str
) -> None:
    op = schema[path][method]
    cases = st.one_of(
        op.as_strategy(generation_mode=GenerationMode.POSITIVE), op.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )
    images = st.one_of(st.just(digit), image_strategy())
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if (method, path) in IMAGE_OPS and data.draw(st.booleans(), label="real image"):

            def real() -> bytes:
                return data.draw(images, label="image")

            if case.media_type == "multipart/form-data":
                fields = ("shape", "appearance") if path == "/swap" else ("images",)
                case.body = {
                    f: (real() if f != "images" else [real() for _ in range(data.draw(st.integers(1, 3)))])
                    for f in fields
                }
            elif case.media_type in ("image/png", "image/jpeg", "image/webp", "image/gif"):
                case.body = real()
        if path == "/interpolate" and data.draw(st.booleans(), label="real codes"):
            # both ends a real code, and no explicit values beside them (that would be latent_ambiguous)
            query = {k: v for k, v in (case.query or {}).items() if not k.startswith(("start", "end"))}
            case.query = {**query, "start": rel_code, "end": rel_code}
        if "{name}" in path and data.draw(st.booleans(), label="real model name"):
            case.path_parameters = {**(case.path_parameters or {}), "name": MODEL}
        if path == "/decode" and isinstance(case.body, dict) and data.draw(st.booleans(), label="real code"):
            case.body = {"latents": [{"code": rel_code}]}
        response = case.call_and_validate(base_url=rel_server.url, checks=CHECKS, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    assert rel_server.proc.poll() is None, rel_server.logs()[-2000:]
    assert httpx.get(f"{rel_server.url}/v2/health/ready", timeout=10).status_code == 200
    assert seen, "no example reached the server"
    if (method, path) in IMAGE_OPS or path in ("/decode", "/interpolate", "/v2/models/{name}"):
        assert 200 in seen, f"no generated input reached the handler: {seen}"
    assert all(s < 500 for s in seen), seen
