"""Celery's side of observability, connected by crm/celery.py in every process that loads the app.

- Task metrics (crm/metrics.py): started, finished by result (succeeded, failed, retried) and run time, by task
  name, counted in the process that runs the task. A prefork worker's children share them through
  PROMETHEUS_MULTIPROC_DIR.
- Log context (crm/logs.py): the task's id and name, the session or run its arguments name, and the id of the
  request that queued it.
- The worker's log handlers write the application's format (JSON in production) instead of Celery's.
- With CELERY_METRICS_PORT set, the worker's main process serves its metrics (every child's) on that port,
  under the same rule as the web's /metrics.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals

# crm.metrics before anything of prometheus_client: it settles PROMETHEUS_MULTIPROC_DIR first.
from crm import logs, metrics

logger = logging.getLogger(__name__)

# The header that carries the id of the request that queued a task.
REQUEST_ID_HEADER = "callbook_request_id"

# Per task id: when it started, and the log context tokens to restore when it ends. A stack, because an eager
# task's retry runs again, under the same id, inside the first run.
_running: dict[str, list[tuple[float, list[tuple[Any, Any]]]]] = {}
_signatures: dict[str, inspect.Signature | None] = {}


def _arguments(task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """The task's arguments by parameter name (tasks take ids, positionally or by name)."""
    name = getattr(task, "name", "")
    if name not in _signatures:
        try:
            _signatures[name] = inspect.signature(task.run)
        except (TypeError, ValueError):
            _signatures[name] = None
    signature = _signatures[name]
    if signature is None:
        return dict(kwargs or {})
    try:
        return dict(signature.bind_partial(*(args or ()), **(kwargs or {})).arguments)
    except TypeError:
        return dict(kwargs or {})


def _task_prerun(*, task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    name = task.name
    metrics.TASKS_STARTED.labels(name).inc()
    arguments = _arguments(task, args, kwargs)
    fields: dict[ContextVar[str | None], str | None] = {
        logs.task_id: task_id,
        logs.task_name: name,
        logs.session_id: logs.clip(arguments["session_id"]) if arguments.get("session_id") else None,
        logs.run_id: logs.clip(arguments["run_id"]) if arguments.get("run_id") else None,
    }
    queued_by = getattr(task.request, REQUEST_ID_HEADER, None)
    if queued_by:
        fields[logs.request_id] = logs.clip(queued_by)
    tokens = [(var, var.set(value)) for var, value in fields.items()]
    _running.setdefault(task_id, []).append((time.monotonic(), tokens))


def _task_postrun(*, task_id: str, task: Any, **_: Any) -> None:
    runs = _running.get(task_id)
    if not runs:
        return
    started, tokens = runs.pop()
    if not runs:
        del _running[task_id]
    metrics.TASK_SECONDS.labels(task.name).observe(time.monotonic() - started)
    for var, token in reversed(tokens):
        var.reset(token)


def _task_success(*, sender: Any, **_: Any) -> None:
    metrics.TASKS_FINISHED.labels(sender.name, "succeeded").inc()


def _task_failure(*, sender: Any, **_: Any) -> None:
    # Also sent by the worker's main process for a task killed by the hard time limit.
    metrics.TASKS_FINISHED.labels(sender.name, "failed").inc()


def _task_retry(*, sender: Any, **_: Any) -> None:
    metrics.TASKS_FINISHED.labels(sender.name, "retried").inc()


def _before_publish(*, headers: dict[str, Any] | None = None, **_: Any) -> None:
    """A task queued while serving a request carries that request's id into the worker's log lines."""
    rid = logs.request_id.get()
    if rid and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, rid)


def _use_application_format(*, logger: logging.Logger, **_: Any) -> None:
    """Celery configures the worker's handlers (level, log file); they keep them but write our format."""
    from django.conf import settings  # noqa: PLC0415  # read when the worker sets up logging

    formatter = logs.formatter_for(settings.LOG_FORMAT)
    for handler in logger.handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_CONTEXT)


_CONTEXT = logs.ContextFilter()


# --- The worker's metrics endpoint -------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a line each."""


def metrics_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The worker's /metrics: every process's metrics (no backlog gauges: the web serves those once)."""
    from prometheus_client import make_wsgi_app  # noqa: PLC0415  # after crm.metrics, see the imports above

    from crm.observability import metrics_allowed, process_registry  # noqa: PLC0415  # Django settings needed

    allowed = metrics_allowed(
        authorization=environ.get("HTTP_AUTHORIZATION", ""), remote_addr=environ.get("REMOTE_ADDR", "")
    )
    if not allowed or environ.get("PATH_INFO", "/") not in {"/", "/metrics"}:
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not found.\n"]
    app: Any = make_wsgi_app(process_registry())
    result: Iterable[bytes] = app(environ, start_response)
    return result


def metrics_server_start(*, address: str, port: int) -> WSGIServer:
    server = make_server(address, port, metrics_app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="callbook-metrics", daemon=True).start()
    return server


def _worker_init(*, sender: Any = None, **_: Any) -> None:
    from django.conf import settings  # noqa: PLC0415

    if not settings.CELERY_METRICS_PORT:
        return
    # Before the pool starts its children: files of an earlier run would be added to this one's totals.
    metrics.multiprocess_dir_reset()
    # The pool is still named by its alias or class here ("prefork", celery.concurrency.prefork.TaskPool).
    if not metrics.multiprocess_dir() and "prefork" in str(getattr(sender, "pool_cls", "")):
        logger.warning(
            "CELERY_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: the prefork pool's children keep "
            "their metrics to themselves and the endpoint will not show them (docs/operations.md)"
        )
    try:
        metrics_server_start(address=settings.CELERY_METRICS_ADDRESS, port=settings.CELERY_METRICS_PORT)
    except OSError as exc:
        # A worker without its metrics still does its work; the scrape failing is what tells.
        logger.error(
            "could not serve metrics on %s:%s: %s", settings.CELERY_METRICS_ADDRESS, settings.CELERY_METRICS_PORT, exc
        )
        return
    logger.info("serving metrics on %s:%s", settings.CELERY_METRICS_ADDRESS, settings.CELERY_METRICS_PORT)


def freeze_startup_objects(**_: Any) -> None:
    """Take every object alive now (Django, the app's modules and classes, settings) out of the cyclic garbage
    collector's scans: they live as long as the process, yet each full collection walked all of them again. A
    task that makes many short-lived objects (a first sweep adopting thousands of folders) spent about a third of
    its time in those collections (bench/bench_sweep.py). Sent in each pool process once it is set up, and in the
    main process when it is ready (the solo and threads pools run tasks there); the benches call it too, to
    measure what the worker runs."""
    gc.freeze()


def _worker_process_shutdown(**_: Any) -> None:
    metrics.multiprocess_mark_dead(os.getpid())


def connect() -> None:
    """Connect the receivers (once per process, whatever imports this)."""
    receivers: list[tuple[Any, Any]] = [
        (signals.task_prerun, _task_prerun),
        (signals.task_postrun, _task_postrun),
        (signals.task_success, _task_success),
        (signals.task_failure, _task_failure),
        (signals.task_retry, _task_retry),
        (signals.before_task_publish, _before_publish),
        (signals.after_setup_logger, _use_application_format),
        (signals.after_setup_task_logger, _use_application_format),
        (signals.worker_init, _worker_init),
        (signals.worker_process_init, freeze_startup_objects),
        (signals.worker_ready, freeze_startup_objects),
        (signals.worker_process_shutdown, _worker_process_shutdown),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False, dispatch_uid=f"callbook.{receiver.__name__}")
