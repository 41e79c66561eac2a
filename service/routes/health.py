"""Operations: liveness, readiness, Prometheus metrics, server metadata. No auth (probes and scrapers).

curl -fsS http://127.0.0.1:8000/v2/health/live     # 200 while the process serves; never touches the model
curl -fsS http://127.0.0.1:8000/v2/health/ready    # 200 once loaded and warmed up; 503 while loading/draining
curl -s  http://127.0.0.1:8000/metrics
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.routes.oip import EXTENSIONS, oip_models
from service.schemas import HealthResponse, ServerMetadata
from service.state import AppState, StateDep

router = APIRouter(tags=["operations"])


# Bodies carry the protocol's booleans (KServe's client reads "live" and "ready") beside our "status".
def _live() -> JSONResponse:
    return JSONResponse(HealthResponse(status="live", live=True).model_dump(exclude_none=True))


def _ready(state: AppState) -> JSONResponse:
    if state.draining:
        body = HealthResponse(status="draining", reason="shutting down", live=True, ready=False)
    elif not state.ready:
        body = HealthResponse(status="not_ready", reason=state.reason, live=True, ready=False)
    else:
        return JSONResponse(HealthResponse(status="ready", live=True, ready=True).model_dump(exclude_none=True))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503, headers={"Retry-After": "1"})


@router.get("/v2/health/live", response_model=HealthResponse)
async def live() -> JSONResponse:
    """Liveness: the process answers HTTP (never touches the model)."""
    return _live()


@router.get("/v2/health/ready", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def ready(state: StateDep) -> JSONResponse:
    """Readiness: bundle loaded, warmed up, and not draining (else 503)."""
    return _ready(state)


@router.get("/livez", include_in_schema=False)
@router.get("/healthz", include_in_schema=False)
async def livez() -> JSONResponse:
    return _live()


@router.get("/readyz", include_in_schema=False)
async def readyz(state: StateDep) -> JSONResponse:
    return _ready(state)


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata(state: StateDep) -> ServerMetadata:
    """Server metadata (Open Inference Protocol): name, version, protocol extensions, the models served."""
    models = list(oip_models(state.engine)) if state.engine is not None else []
    return ServerMetadata(name="dae-service", version="1", extensions=list(EXTENSIONS), models=models)
