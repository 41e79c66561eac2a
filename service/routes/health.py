"""Operations: liveness, readiness, Prometheus metrics, server metadata. No auth (probes and scrapers).

curl -fsS http://127.0.0.1:8000/v2/health/live     # 200 while the process serves; never touches the model
curl -fsS http://127.0.0.1:8000/v2/health/ready    # 200 once loaded and warmed up; 503 while loading/draining
curl -s  http://127.0.0.1:8000/metrics
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.routes.deps import AppState, StateDep
from service.schemas import HealthResponse

router = APIRouter(tags=["operations"])


def _live() -> JSONResponse:
    return JSONResponse(HealthResponse(status="live").model_dump(exclude_none=True))


def _ready(state: AppState) -> JSONResponse:
    if state.draining:
        body = HealthResponse(status="draining", reason="shutting down")
    elif not state.ready:
        body = HealthResponse(status="not_ready", reason=state.reason)
    else:
        return JSONResponse(HealthResponse(status="ready").model_dump(exclude_none=True))
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


@router.get("/v2")
async def server_metadata(state: StateDep) -> dict[str, object]:
    """Server metadata (Open Inference Protocol v2 style)."""
    models = [state.engine.name] if state.engine is not None else []
    return {"name": "dae-service", "version": "1", "extensions": [], "models": models}
