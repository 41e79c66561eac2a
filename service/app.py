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

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.config import Settings
from service.engine import Engine
from service.errors import install_handlers
from service.metrics import Metrics
from service.middleware import RequestContext
from service.routes import docs, health, images, latents, models, oip, page
from service.routes.deps import AppState
from service.runtime import Runtime

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
    state.engine = engine
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

    app = FastAPI(
        title="Deforming Autoencoder service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from service/routes/docs.py, with their assets served locally
        redoc_url=None,
    )
    app.state.dae = state
    install_handlers(app)
    for router in (health.router, models.router, oip.router, images.router, latents.router, page.router):
        app.include_router(router)
    docs.install(app)
    if settings.cors_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Server-Timing", "X-Execution-Provider", "ETag"],
        )

    def provider() -> str | None:
        return state.engine.runtime.primary_provider if state.engine is not None else None

    app.add_middleware(
        RequestContext,
        metrics=state.metrics,
        max_body_bytes=settings.max_body_bytes,
        provider=provider,
        max_inflight=settings.max_inflight,
    )
    return app
