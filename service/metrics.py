"""Prometheus metrics, base units (seconds, images), histograms not summaries; one registry per app.

dae_request_duration_seconds{endpoint, method, status}   whole request, as the client sees it
dae_queue_time_seconds{queue}                             arrival in a batcher queue → batch start
dae_inference_seconds{stage}                              encoder | texture | deformation | warp (per batch)
dae_batch_size{queue}                                     images (or latent rows) per model call
dae_batches_total{queue}, dae_batch_images_total{queue}   average batch size = images / batches
dae_queue_depth{queue}                                    images waiting now
dae_rejections_total{reason}                              queue_full | inflight | deadline | draining | not_ready | auth
dae_client_disconnects_total{endpoint}                    clients gone before their request was read (499)
dae_model_info{name, version, sha256, variant, providers} 1 while a model is loaded

Under ``DAE_WORKERS`` > 1 every worker process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
the supervisor, service/workers.py) and ``/metrics``, whichever worker answers it, renders all of them summed
(prometheus_client's multiprocess mode): counters and histograms over every worker that ever ran, queue depth
summed over the live ones, model info their maximum.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is first imported

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's metrics in their own registry (so several apps in one process never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "dae_request_duration_seconds",
            "Request duration by endpoint and status",
            ["endpoint", "method", "status"],
            buckets=_LATENCY,
            registry=r,
        )
        self.queue_time = Histogram(
            "dae_queue_time_seconds",
            "Time from enqueue to batch start",
            ["queue"],
            buckets=_LATENCY,
            registry=r,
        )
        self.inference = Histogram(
            "dae_inference_seconds", "Model time per batch by stage", ["stage"], buckets=_LATENCY, registry=r
        )
        self.batch_size = Histogram(
            "dae_batch_size", "Images (or latent rows) per model call", ["queue"], buckets=_BATCH, registry=r
        )
        self.batches = Counter("dae_batches", "Model calls per queue", ["queue"], registry=r)
        self.batch_images = Counter("dae_batch_images", "Images (or latent rows) run per queue", ["queue"], registry=r)
        self.queue_depth = Gauge(
            "dae_queue_depth", "Images waiting in a queue", ["queue"], registry=r, multiprocess_mode="livesum"
        )
        self.rejections = Counter("dae_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.disconnects = Counter(
            "dae_client_disconnects",
            "Clients that hung up before their request was read (logged as 499)",
            ["endpoint"],
            registry=r,
        )
        self.model_info = Gauge(
            "dae_model_info",
            "The loaded model",
            ["name", "version", "sha256", "variant", "providers"],
            registry=r,
            multiprocess_mode="livemax",
        )
        # Multiprocess mode: this process's metrics live in files beside the other workers'; a scrape reads them all.
        self.exposed = self.registry
        if os.environ.get(MULTIPROC_ENV):
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed)  # type: ignore[no-untyped-call]  # (untyped in the client)

    def render(self) -> bytes:
        return generate_latest(self.exposed)
