#!/bin/sh
# Runs the container's command. `gunicorn` gets the production flags below from the environment, so the
# image's default command stays short; flags given after it still win (`... gunicorn crm.wsgi:application
# --timeout 60`), except --bind, which adds an address rather than replacing this one.
set -eu

if [ "${1:-}" = "gunicorn" ]; then
    shift
    # --worker-tmp-dir: worker heartbeats on tmpfs; on overlayfs a slow disk write can get healthy workers killed.
    set -- gunicorn \
        --bind 0.0.0.0:8000 \
        --workers "${GUNICORN_WORKERS:-3}" \
        --threads "${GUNICORN_THREADS:-4}" \
        --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}" \
        --worker-tmp-dir /dev/shm \
        "$@"
fi

exec "$@"
