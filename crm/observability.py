"""Request context for the logs, and the Prometheus endpoint: who may read it and what it serves.

- ``RequestContextMiddleware`` gives every request an id (a sane incoming ``X-Request-ID``, else a new one),
  echoes it in the response, puts it with the user, session and run into the log context (crm/logs.py) and
  writes one log line per request.
- ``MetricsEndpointMiddleware`` answers ``/metrics`` to an allowed scraper before host validation and HTTPS
  redirects (Prometheus addresses targets by IP, over plain HTTP, like the health probes); anyone else goes
  on to the URL route, whose view answers the 404 of any unknown address.
- ``metrics_exposition`` is the body: this process's metrics, or in multiprocess mode every process's, plus
  the backlog gauges measured at scrape time.

Nothing here imports models at load time: crm/celery.py imports this module's neighbours before Django is set up.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from crm import logs, metrics

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("crm.requests")

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy or client may hand us as a request id: ids of the usual generators (UUIDs, hex, base64,
# "Root=1-...;Parent=..." style trace ids), nothing that could forge a log field or split a header.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:;=+/-]{0,127}$")
# URL keyword arguments that name what a request is about.
_URL_CONTEXT = {"session_id": logs.session_id, "run_id": logs.run_id}


def request_id_for(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if incoming and _SANE_REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Request id, log context and one log line per request (``crm.requests``, INFO; 5xx at ERROR would
    duplicate Django's own error line, so every request is INFO and carries its status)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        tokens = [
            (logs.request_id, logs.request_id.set(rid)),
            (logs.current_request, logs.current_request.set(request)),
            (logs.session_id, logs.session_id.set(None)),
            (logs.run_id, logs.run_id.set(None)),
        ]
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            path = request.path[:500]
            request_logger.info(
                "%s %s %s",
                request.method,
                path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            for var, token in reversed(tokens):
                var.reset(token)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: dict[str, Any]
    ) -> None:
        for name, var in _URL_CONTEXT.items():
            if view_kwargs.get(name) is not None:
                var.set(logs.clip(view_kwargs[name]))


# --- /metrics ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in allowed)


def _address_allowed(remote_addr: str) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


def metrics_allowed(*, authorization: str, remote_addr: str) -> bool:
    """With METRICS_TOKEN set, only ``Authorization: Bearer <token>``; without, only METRICS_ALLOWED_IPS."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return _address_allowed(remote_addr)


def metrics_request_allowed(request: HttpRequest) -> bool:
    return metrics_allowed(
        authorization=request.headers.get("Authorization", ""), remote_addr=request.META.get("REMOTE_ADDR", "")
    )


class _Forward:
    """Collects what another registry holds (this process's own, when not in multiprocess mode)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def process_registry() -> CollectorRegistry:
    """Every process's metrics in multiprocess mode, else this process's."""
    registry = CollectorRegistry()
    if metrics.multiprocess_dir():
        MultiProcessCollector(registry, path=metrics.multiprocess_dir())  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    return registry


class BacklogCollector:
    """What is waiting, measured when scraped: recordings not yet ingested (and the age of the oldest), and
    the tasks in the broker's default queue. A source that does not answer is left out of the scrape (and
    logged); ``/readyz`` says which one is down."""

    def collect(self) -> Iterable[Metric]:
        yield from self._ingest_backlog()
        yield from self._queue_length()

    def _ingest_backlog(self) -> Iterable[Metric]:
        from django.db.models import Count, Min  # noqa: PLC0415  # models load after this module
        from django.utils import timezone  # noqa: PLC0415

        from calls.models import Recording  # noqa: PLC0415

        waiting = [Recording.Status.PENDING, Recording.Status.PROCESSING]
        try:
            # Served by recording_unfinished_idx (the partial index of the recordings not yet available).
            rows = list(
                Recording.objects.filter(status__in=waiting)
                .order_by()
                .values("status")
                .annotate(n=Count("id"), oldest=Min("updated_at"))
            )
        except Exception as exc:  # the database is down: the scrape still answers, without these
            logger.warning("metrics: could not measure the ingest backlog: %s", exc)
            return
        backlog = GaugeMetricFamily(
            "callbook_ingest_backlog", "Recordings waiting for ingest (pending) or being ingested.", labels=["status"]
        )
        counts = {row["status"]: row["n"] for row in rows}
        for status in waiting:
            backlog.add_metric([status], counts.get(status, 0))
        yield backlog
        oldest = min((row["oldest"] for row in rows if row["status"] == Recording.Status.PENDING), default=None)
        age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "callbook_ingest_backlog_oldest_seconds",
            "Seconds since the oldest pending recording last changed (0 when none is pending).",
            value=max(age, 0.0),
        )

    def _queue_length(self) -> Iterable[Metric]:
        from kombu import Connection  # noqa: PLC0415
        from kombu.exceptions import ChannelError  # noqa: PLC0415

        from crm.celery import app  # noqa: PLC0415

        queue = app.conf.task_default_queue
        timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
        try:
            with Connection(
                app.conf.broker_url,
                transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                connect_timeout=timeout,
            ) as conn:
                conn.ensure_connection(max_retries=0, timeout=timeout)
                try:
                    channel: Any = conn.default_channel  # kombu's stub types it as the abstract StdChannel
                    length = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # Redis forgets an empty queue: nothing waits in it
                    length = 0
        except Exception as exc:  # the broker is down: the scrape still answers, without this
            logger.warning("metrics: could not measure the length of queue %s: %s", queue, exc)
            return
        gauge = GaugeMetricFamily(
            "callbook_queue_length", "Tasks waiting in the broker queue, not yet taken by a worker.", labels=["queue"]
        )
        gauge.add_metric([queue], length)
        yield gauge


def metrics_exposition(*, accept: str = "", backlog: bool = True) -> tuple[bytes, str]:
    """The scrape's body and content type (text format, or OpenMetrics when the scraper asks for it)."""
    registry = process_registry()
    if backlog:
        registry.register(BacklogCollector())
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


class MetricsEndpointMiddleware:
    """Serves ``/metrics`` to allowed scrapers before host validation and HTTPS redirects (place it first);
    everyone else continues down the stack to the same 404 as any unknown address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from crm import views  # noqa: PLC0415  # views import models: only once the app registry is ready

        self.get_response = get_response
        self.view = views.metrics

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/metrics" and metrics_request_allowed(request):
            return self.view(request)
        return self.get_response(request)
