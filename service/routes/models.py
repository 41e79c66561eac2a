"""Model metadata and readiness (Open Inference Protocol): ``GET /v2/models/{name}[/versions/{v}]`` and
``.../ready``, for the model (``mnist``) and its decoders (``mnist-decoder``). No auth, like the probes.

Shapes are integers, -1 for the variable (batch) dimension, as the protocol wants.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import render
from service.engine import Engine
from service.errors import NotReadyError
from service.oip import OipModel, resolve
from service.routes.oip import oip_models
from service.schemas import ModelMetadata, OipError, OipModelMetadata, TensorInfo
from service.state import StateDep

router = APIRouter(tags=["operations"])
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": OipError, "description": "no such model or version"},
    503: {"model": OipError, "description": "not loaded yet"},
}


def _model(state: StateDep, name: str, version: str | None = None) -> tuple[Engine, OipModel]:
    engine = state.engine
    if engine is None:
        raise NotReadyError(f"the model is not loaded yet ({state.reason})", "not_ready")
    return engine, resolve(oip_models(engine), name, version)


def metadata(engine: Engine) -> ModelMetadata:
    m = engine.manifest
    s = engine.settings

    def infos(specs: list[Any]) -> list[TensorInfo]:
        return [
            TensorInfo(
                name=t.name,
                datatype=t.dtype.upper().replace("FLOAT32", "FP32"),
                shape=[d if isinstance(d, int) else -1 for d in t.shape],
            )
            for t in specs
        ]

    graphs = {k: {"inputs": infos(g.inputs), "outputs": infos(g.outputs)} for k, g in m.graphs.items()}
    model = oip_models(engine)[engine.name]
    return ModelMetadata(
        **model.metadata(),
        variant=m.variant,
        image_size=m.image_size,
        channels=m.channels,
        latents={lat.name: lat.size for lat in m.latents},
        class_names=m.class_names,
        sha256=m.sha256,
        providers=engine.runtime.providers,
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
        decoder_model=next(n for n, x in oip_models(engine).items() if x.kind == "decoder"),
    )


def _metadata(state: StateDep, name: str, version: str | None) -> JSONResponse:
    engine, model = _model(state, name, version)
    body = metadata(engine) if model.kind == "reconstruct" else OipModelMetadata(**model.metadata())
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/v2/models/{name}", response_model=ModelMetadata | OipModelMetadata, responses=ERRORS)
async def model_metadata(name: str, state: StateDep) -> JSONResponse:
    """Model metadata: the OIP tensors (integer shapes, -1 = batch), and for the model itself also latent
    sizes, classes, checksums, limits and the providers really active."""
    return _metadata(state, name, None)


@router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata | OipModelMetadata, responses=ERRORS)
async def model_version_metadata(name: str, version: str, state: StateDep) -> JSONResponse:
    """Model metadata of one version (this server has one per model: the bundle's)."""
    return _metadata(state, name, version)


def _ready(state: StateDep, name: str, version: str | None) -> dict[str, object]:
    _model(state, name, version)
    if not state.ready or state.draining:
        raise NotReadyError(
            "draining" if state.draining else f"not ready ({state.reason})",
            "draining" if state.draining else "not_ready",
        )
    return {"name": name, "ready": True}


@router.get("/v2/models/{name}/ready", responses=ERRORS)
async def model_ready(name: str, state: StateDep) -> dict[str, object]:
    """200 when this model is ready to serve."""
    return _ready(state, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready", responses=ERRORS)
async def model_version_ready(name: str, version: str, state: StateDep) -> dict[str, object]:
    """200 when this version of the model is ready to serve."""
    return _ready(state, name, version)
