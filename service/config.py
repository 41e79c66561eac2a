"""Service settings: one pydantic-settings class, every knob an environment variable with the ``DAE_`` prefix.

    DAE_BUNDLE=models/mnist DAE_PORT=8000 python -m service

Every field below is documented (with its default) in docs/service.md; keep the two in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The default bundle lives in the repository next to the package, not relative to the caller's CWD.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO_ROOT / "models" / "mnist"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# Pillow warns above 89 M pixels and refuses above twice that; our own limit must sit below its warning.
PILLOW_WARN_PIXELS = 89_478_485


class Settings(BaseSettings):
    """All settings of the inference service (env prefix ``DAE_``; e.g. ``DAE_MAX_BATCH=64``)."""

    model_config = SettingsConfigDict(env_prefix="DAE_", extra="ignore", frozen=True)

    # -- server ------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    bundle: Path = DEFAULT_BUNDLE
    model_name: str | None = None  # served name; default: the manifest's name
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # HTTP/1.1 parser: httptools (several times cheaper per request; service/protocol.py gives it h11's limits)
    # or h11 (pure Python, uvicorn's fallback).
    http: Literal["h11", "httptools"] = "httptools"
    log_json: bool = True  # one JSON object per log line (False: plain text for a terminal)
    cors_origins: str = ""  # comma-separated origins allowed by CORS; empty disables CORS
    auth_token: SecretStr | None = None  # when set, product endpoints need "Authorization: Bearer <token>"
    drain_timeout_s: float = Field(default=20.0, gt=0)  # SIGTERM: how long accepted requests may take to finish
    shutdown_delay_s: float = Field(default=0.0, ge=0)  # SIGTERM: keep serving (ready=503) this long before closing
    # Service processes on the one port (service/workers.py): each loads the bundle and runs its own event loop, so
    # N workers use up to N cores for the per-request Python one process runs on one core. The admission limit,
    # the refusal rate and the CPU cores are the service's, shared out between the workers (``worker_inflight``,
    # ``worker_refusal_rate``, ``threads``); queues are each worker's own. 1: no supervisor.
    workers: int = Field(default=1, ge=1, le=64)

    # -- runtime -----------------------------------------------------------------------------------------
    providers: str = f"{CUDA},{CPU}"  # priority order, filtered by what onnxruntime offers
    require_cuda: bool = False  # refuse to start unless CUDA is really active for every graph
    intra_op_threads: int = Field(default=0, ge=0)  # 0: one per CPU core
    # On CPU, batches of at most this many images run on a second, one-thread session of each graph: a second
    # intra-op thread does not speed a batch of one up and costs a thread wake-up per operator (service/runtime.py).
    # 0: every batch runs on the intra_op_threads sessions.
    solo_max_batch: int = Field(default=1, ge=0)
    warmup: bool = True  # run every graph before reporting ready
    fused_decoder: bool = True  # decode with the bundle's fused decoder graph when it has one (one run, not three)
    io_binding: Literal["auto", "on", "off"] = "auto"  # auto: I/O binding on CUDA only

    # -- batching and overload ------------------------------------------------------------------------------
    max_batch: int = Field(default=32, ge=1, le=4096)  # images (or latent rows) per model call
    max_wait_ms: float = Field(default=0.0, ge=0)  # extra wait of the oldest item for company (see batching.py)
    queue_size: int = Field(default=256, ge=1)  # images waiting per stage; beyond it: 429 + Retry-After
    deadline_s: float = Field(default=10.0, gt=0)  # per request, from arrival; beyond it: 504
    max_inflight: int = Field(default=128, ge=1)  # product requests in progress at once; beyond: 429 at once
    # 429s answered at once per second; each one beyond waits its turn (at most 1 s, its Retry-After), so clients
    # that retry at once cannot keep the event loop busy refusing (service/pacing.py). 0: every 429 at once.
    refusal_rate: float = Field(default=1000.0, ge=0)
    # Batches each queue runs at once, each in its own worker thread. 0: one per CPU core (at most 4) on CPU, where two
    # concurrent runs of a small graph do ~1.7x the images/s of one run on two intra-op threads
    # (docs/benchmarks.md), and 1 on CUDA, where one stream is kept busy by bigger batches.
    batch_loops: int = Field(default=0, ge=0, le=64)
    # A request alone in the service runs on the event loop, without the hand-off to a worker thread and back.
    lone_inline: bool = True

    # -- input limits ---------------------------------------------------------------------------------------
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)  # whole request body; beyond it: 413
    max_pixels: int = Field(default=16_777_216, ge=1, le=PILLOW_WARN_PIXELS)  # per decoded image (w*h); 413
    max_images_per_request: int = Field(default=64, ge=1)  # images in one request; 413
    max_steps: int = Field(default=64, ge=2)  # interpolation frames; 422
    code_dtype: Literal["float32", "float16"] = "float32"  # precision of latent codes (float32 is exact)
    viz_scale: int = Field(default=4, ge=1, le=16)  # integer upscaling of pictures (PNG strips, grids, flow colours)

    @field_validator("bundle")
    @classmethod
    def _absolute_bundle(cls, v: Path) -> Path:
        # A relative DAE_BUNDLE means the CWD when it exists there, else the repository root (as the default),
        # so `make run` and `python -m service` from anywhere find models/mnist.
        if v.is_absolute() or v.exists():
            return v.resolve()
        return REPO_ROOT / v

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.max_images_per_request > self.queue_size:
            raise ValueError(
                f"max_images_per_request ({self.max_images_per_request}) > queue_size ({self.queue_size}): "
                "such a request could never be admitted"
            )
        if not self.provider_list:
            raise ValueError("providers is empty")
        return self

    @property
    def provider_list(self) -> list[str]:
        return [p.strip() for p in self.providers.split(",") if p.strip()]

    @property
    def cors_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def worker_inflight(self) -> int:
        """Each worker's share of ``max_inflight`` (so the service's memory bound does not grow with workers)."""
        return -(-self.max_inflight // self.workers)

    @property
    def worker_refusal_rate(self) -> float:
        """Each worker's share of ``refusal_rate`` (the loop time a storm may take is the machine's, not a worker's)."""
        return self.refusal_rate / self.workers

    @property
    def threads(self) -> int:
        """Intra-op threads per session: the cores shared out between the workers unless set."""
        return self.intra_op_threads or max(1, (os.cpu_count() or 1) // self.workers)
