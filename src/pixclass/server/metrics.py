"""Prometheus metrics of one server app, in its own `CollectorRegistry` (apps and tests never collide).

Owns `ServerMetrics`: requests by route and status, request latency, errors by kind, images
predicted, batch sizes, and whether the model is ready. `/metrics` renders `exposition()`.
With `--workers N` each worker process counts its own requests (scrape each, or run one worker
per container).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Routes are labelled by name, never by the raw path: a scanner requesting random URLs must not
# create a time series per URL.
ROUTES = ("/", "/predict", "/health", "/ready", "/info", "/metrics", "/static")
# Latency buckets (seconds): one 224-px image on 2 cores is ~10-20 ms; a full request of 32 under
# load takes seconds; the request timeout is 30 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def route_label(path: str) -> str:
    """The metrics label of a request path: a known route, "/static" for page assets, else "other"."""
    if path.startswith("/static/"):
        return "/static"
    return path if path in ROUTES else "other"


class ServerMetrics:
    """The metrics of one app; `registry` holds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("pixclass_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=r)
        self.latency = Histogram("pixclass_request_duration_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("pixclass_errors", "Requests answered with an error, by kind "
                              "(too_large, too_many_files, not_an_image, unreadable, timeout, unauthorized, "
                              "bad_request, not_found, not_ready, internal)", ["kind"], registry=r)
        self.images = Counter("pixclass_images_predicted", "Images the model predicted", registry=r)
        self.batch_size = Histogram("pixclass_batch_size", "Images per forward pass of the model",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.ready = Gauge("pixclass_model_ready", "1 when the model is loaded and warmed up", registry=r)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = route_label(path)
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, n_images: int) -> None:
        self.batch_size.observe(n_images)
        self.images.inc(n_images)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
