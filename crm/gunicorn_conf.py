"""gunicorn settings of the image (the Dockerfile's command passes ``--config python:crm.gunicorn_conf``).

Bind address, workers and threads come from the command line (docker/entrypoint.sh); this module adds what
only a configuration file can:
- logging: gunicorn's own lines in the application's format (JSON in production), and no access log, because
  the application writes one line per request with its request id, user and timing;
- Prometheus multiprocess mode: the master clears what an earlier run left in PROMETHEUS_MULTIPROC_DIR before
  it starts its workers, and forgets each worker that exits.
Django is not loaded here: the master stays small, and the workers load the application after they fork.
"""

from __future__ import annotations

import os
from typing import Any

import environ

from crm import logs, metrics

_env = environ.Env()
_env.ENVIRON = {name: value for name, value in os.environ.items() if value != ""}  # blank is unset, as in settings

logconfig_dict = logs.gunicorn_logconfig(
    log_format=logs.log_format_for(
        requested=_env.str("LOG_FORMAT", default=""), debug=_env.bool("DEBUG", default=False)
    ),
    level=_env.str("LOG_LEVEL", default="INFO").upper(),
)


def on_starting(server: Any) -> None:
    deleted = metrics.multiprocess_dir_reset()
    if deleted:
        server.log.info("cleared %d metric files of an earlier run from %s", deleted, metrics.multiprocess_dir())


def child_exit(server: Any, worker: Any) -> None:
    metrics.multiprocess_mark_dead(worker.pid)
