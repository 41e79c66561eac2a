"""Model metadata: ``GET /v2/models/{name}`` (and ``/v2/models/{name}/ready``). No auth, like the probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import render
from service.engine import Engine
from service.errors import NotFoundError, NotReadyError
from service.routes.deps import StateDep
from service.schemas import ErrorResponse, ModelMetadata, TensorInfo

router = APIRouter(tags=["operations"])


def _engine(state: StateDep, name: str) -> Engine:
    engine = state.engine
    if engine is None:
        raise NotReadyError(f"the model is not loaded yet ({state.reason})", "not_ready")
    if name != engine.name:
        raise NotFoundError(f"no model named {name!r}; this server serves {engine.name!r}", "model_not_found")
    return engine


def metadata(engine: Engine) -> ModelMetadata:
    m = engine.manifest
    s = engine.settings

    def infos(specs: list[Any]) -> list[TensorInfo]:
        return [
            TensorInfo(name=t.name, datatype=t.dtype.upper().replace("FLOAT32", "FP32"), shape=list(t.shape))
            for t in specs
        ]

    graphs = {k: {"inputs": infos(g.inputs), "outputs": infos(g.outputs)} for k, g in m.graphs.items()}
    return ModelMetadata(
        name=engine.name,
        versions=[m.version],
        variant=m.variant,
        image_size=m.image_size,
        channels=m.channels,
        latents={lat.name: lat.size for lat in m.latents},
        class_names=m.class_names,
        sha256=m.sha256,
        providers=engine.runtime.providers,
        inputs=graphs["encoder"]["inputs"],
        outputs=[o for g in graphs.values() for o in g["outputs"]],
        graphs=graphs,
        preprocessing=m.preprocessing.model_dump(),
        warp=m.warp.model_dump() if m.warp else None,
        provenance=m.provenance.model_dump(),
        limits={
            "max_batch": s.max_batch,
            "max_wait_ms": s.max_wait_ms,
            "queue_size": s.queue_size,
            "deadline_s": s.deadline_s,
            "max_body_bytes": s.max_body_bytes,
            "max_pixels": s.max_pixels,
            "max_images_per_request": s.max_images_per_request,
            "max_steps": s.max_steps,
        },
        outputs_available=render.available(m),
    )


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses={404: {"model": ErrorResponse}})
async def model_metadata(name: str, state: StateDep) -> JSONResponse:
    """Model metadata: tensors, latent sizes, classes, checksums, and the providers really active."""
    return JSONResponse(metadata(_engine(state, name)).model_dump(mode="json"))


@router.get(
    "/v2/models/{name}/ready", responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
)
async def model_ready(name: str, state: StateDep) -> dict[str, object]:
    """200 when this model is ready to serve."""
    _engine(state, name)
    if not state.ready or state.draining:
        raise NotReadyError(
            "draining" if state.draining else f"not ready ({state.reason})",
            "draining" if state.draining else "not_ready",
        )
    return {"name": name, "ready": True}
