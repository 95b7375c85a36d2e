# syntax=docker/dockerfile:1

# --- Dependencies -------------------------------------------------------------------------------------------
# Its own stage: this layer rebuilds only when the lock changes, and build tooling ever added here stays out
# of the final image.
FROM python:3.11-slim-bookworm AS deps

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

COPY requirements.lock /tmp/requirements.lock
# Runtime lock only (no dev tools in the image). Wheels only: every pin ships manylinux wheels for amd64 and
# arm64, so no compiler is needed and a missing wheel fails the build instead of compiling silently.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.lock

# --- Runtime ------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=crm.settings \
    CALLBOOK_VAR_DIR=/var/lib/callbook \
    RECORDINGS_ROOT=/var/lib/callbook/recordings \
    STATIC_ROOT=/app/staticfiles

# libsndfile1 and ffmpeg: audio probing of call recordings.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# A fixed UID lets hosts and orchestrators (runAsNonRoot, volume permissions) refer to it. The home directory
# holds gunicorn's control socket. /var/lib/callbook is created owned by the app user so that named volumes
# mounted there start with that ownership.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/callbook \
        --shell /usr/sbin/nologin callbook \
    && install -d -o callbook -g callbook -m 0750 /var/lib/callbook /var/lib/callbook/recordings /var/lib/callbook/media

COPY --from=deps /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/callbook-entrypoint

WORKDIR /app
# Code and static files stay owned by root: the app process can read them but not rewrite them.
COPY . .

# Settings refuse to load without a SECRET_KEY when DEBUG is off; this dummy exists only for this RUN.
# The throwaway CALLBOOK_VAR_DIR keeps settings' embedded-mode folders (SQLite, file broker) out of the image.
RUN SECRET_KEY=collectstatic-build-only-not-a-secret CALLBOOK_VAR_DIR=/tmp/callbook-build \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/callbook-build

USER 10001:10001

# Prometheus multiprocess mode: gunicorn's workers and Celery's pool processes each write their metrics here and
# one scrape sums them (docs/operations.md). One directory per container; docker-compose.yml mounts a tmpfs.
# Set after collectstatic, so that the build leaves no metric files in the image.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/callbook-metrics

# 8000: the web (and its /metrics); 9540: a worker's metrics when CELERY_METRICS_PORT=9540.
EXPOSE 8000 9540

ENTRYPOINT ["callbook-entrypoint"]
# The entrypoint adds bind address, workers/threads (GUNICORN_WORKERS, GUNICORN_THREADS) and FORWARDED_ALLOW_IPS.
# crm/gunicorn_conf.py puts gunicorn's own lines in the application's log format (the application logs each
# request itself) and clears the metrics of an earlier run when the master starts.
CMD ["gunicorn", "crm.wsgi:application", "--config", "python:crm.gunicorn_conf"]
