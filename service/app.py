"""The FastAPI application: ``create_app(settings)``; the bundle loads in the lifespan, off the event loop.

    from service.app import create_app
    from service.config import Settings
    app = create_app(Settings(bundle="models/mnist"))   # or: uvicorn --factory service.app:create_app

Lifespan: load + verify the bundle in a thread, warm every graph up, start the batchers, then report ready.
On shutdown: ``draining`` (ready → 503, new work refused); batchers finish what they accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import Settings
from service.engine import Engine
from service.errors import install_handlers
from service.metrics import Metrics
from service.middleware import RequestContext
from service.routes import docs, health, images, latents, models, oip, page
from service.runtime import Runtime
from service.state import AppState
from service.usecases import UseCases

log = logging.getLogger("service.app")
DESCRIPTION = """Deforming Autoencoder inference: an image splits into a **shape** latent (drives a dense
deformation field) and an **appearance** latent (drives a texture in a template frame); the texture
warped by the field is the reconstruction.

Latent codes from `/encode` can be passed back to `/decode` and `/interpolate`. Every error has the shape
`{"error": {"code", "message", "request_id"}}`, except under `/v2` (the Open Inference Protocol: `mnist` takes
preprocessed images, `mnist-decoder` latents, in JSON or binary tensors), where it is the protocol's
`{"error": "<message>"}` with the stable code in the `X-Error-Code` header. Deformation fields are `(2, N, N)`,
channel 0 = x (width), channel 1 = y (height), in normalised coordinates (-1 and +1 = centres of the border
pixels)."""


async def startup(state: AppState) -> None:
    s = state.settings
    runtime = await asyncio.to_thread(Runtime.load, s)
    engine = Engine(s, runtime, state.metrics)
    if s.warmup:
        state.reason = "warming up"
        seconds = await asyncio.to_thread(engine.pipeline.warm_up, min(s.max_batch, 64))
        log.info("warmed up", extra={"seconds": round(seconds, 3)})
    engine.start()
    m = runtime.manifest
    providers = runtime.providers
    state.metrics.model_info.labels(
        engine.name, m.version, m.sha256[:12], m.variant, ",".join(providers["encoder"])
    ).set(1)
    state.engine, state.cases = engine, UseCases(engine)
    state.ready, state.reason = True, None
    log.info(
        "ready",
        extra={
            "model": engine.name,
            "variant": m.variant,
            "bundle": str(runtime.bundle_dir),
            "providers": providers,
            "sha256": m.sha256,
        },
    )


PRODUCT = (*images.ENDPOINTS, *latents.ENDPOINTS)


class ServiceApp(FastAPI):
    """FastAPI whose outermost layer is ``RequestContext``: it serves the product routes itself (no router,
    no dependency solving on the hot path) and passes everything else to FastAPI's own stack."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.front(scope, receive, send)
        else:  # lifespan (and websockets, which we do not serve)
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's schema plus the product routes, described by their ``Endpoint`` records."""
        if self.openapi_schema is None:
            self.openapi_schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=[*(e.doc_route() for e in PRODUCT), *self.routes],
            )
        return self.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = AppState(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await startup(state)
        except Exception as e:
            log.error("cannot start", extra={"error": str(e), "bundle": str(settings.bundle)})
            raise
        yield
        state.draining, state.ready = True, False
        if state.engine is not None:
            await state.engine.stop(settings.drain_timeout_s)
        log.info("stopped")

    app = ServiceApp(
        title="Deforming Autoencoder service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from service/routes/docs.py, with their assets served locally
        redoc_url=None,
    )
    app.state.dae = state
    install_handlers(app)
    routers = (health.router, models.router, oip.router, page.router)
    for router in routers:
        app.include_router(router)
    docs.install(app)
    cors = settings.cors_list

    def with_cors(inner: ASGIApp) -> ASGIApp:
        return CORSMiddleware(
            inner,
            allow_origins=cors,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Server-Timing", "X-Execution-Provider", "ETag"],
        )

    app.front = RequestContext(
        app.framework,
        state=state,
        endpoints=PRODUCT,
        wrap=with_cors if cors else None,
        # the routes themselves (FastAPI keeps included routers as opaque entries): their metadata and templates
        framework_routes=[*(r for router in routers for r in router.routes), *app.routes],
    )
    return app
