"""The app's state (settings, metrics, engine, readiness) and the FastAPI dependencies of the routes FastAPI serves."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service import http
from service.config import Settings
from service.engine import Engine
from service.errors import UnauthorizedError
from service.metrics import Metrics
from service.usecases import UseCases


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None
    cases: UseCases | None = None
    ready: bool = False
    draining: bool = False
    reason: str | None = "loading the bundle"


async def app_state(request: Request) -> AppState:
    # async: a plain ``def`` dependency would run on AnyIO's thread pool, a thread hop per request.
    state: AppState = request.app.state.dae
    return state


StateDep = Annotated[AppState, Depends(app_state)]


# -- dependencies of the framework-served routes (the OIP routes); product routes get the same checks from
# service/middleware.py without dependency solving. All async: a plain ``def`` would run on the thread pool.
async def check_auth(request: Request) -> None:
    """Bearer-token auth when ``DAE_AUTH_TOKEN`` is set (health, metrics exempt)."""
    state: AppState = request.app.state.dae
    try:
        http.check_auth(state.settings, {"authorization": request.headers.get("authorization", "")})
    except UnauthorizedError:
        state.metrics.rejections.labels("auth").inc()
        raise


async def ready_engine(state: StateDep) -> Engine:
    """The engine, or 503: inference runs only when ready and not draining."""
    if state.draining or not state.ready or state.engine is None:
        state.metrics.rejections.labels("draining" if state.draining else "not_ready").inc()
        raise http.not_ready(state.draining, state.reason)
    return state.engine


EngineDep = Annotated[Engine, Depends(ready_engine)]


def deadline(request: Request, state: AppState) -> float:
    """Absolute (monotonic) deadline of this request: arrival + ``DAE_DEADLINE_S``."""
    arrival = float(request.scope.get("state", {}).get("arrival", time.monotonic()))
    return arrival + state.settings.deadline_s
