from __future__ import annotations

from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client

from crm import health

pytestmark = pytest.mark.django_db

# Nothing listens on port 1: a connection there is refused at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_it_answers_healthz_without_touching_anything(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_is_ready_when_database_broker_and_storage_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "recordings_storage": "ok"},
        "failed": [],
    }
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_naming_a_stopped_redis_broker(settings):
    settings.CELERY_BROKER_URL = DEAD_REDIS
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"].startswith("failed: ")
    assert "127.0.0.1:1" in body["checks"]["broker"]
    assert body["checks"]["database"] == "ok"


def test_it_answers_503_naming_unusable_recordings_storage(settings, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": blocker / "recordings"},
        },
    }
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["recordings_storage"]


def test_it_creates_a_missing_local_recordings_folder(settings, tmp_path: Path):
    root = tmp_path / "fresh" / "recordings"
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": root}},
    }
    assert Client().get("/readyz").status_code == 200
    assert root.is_dir()


def test_it_answers_503_naming_the_database_when_it_fails(monkeypatch: pytest.MonkeyPatch):
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert response.json()["checks"]["database"] == "failed: OperationalError: connection refused"


def test_it_answers_probes_by_ip_over_plain_http_even_in_production_mode(settings):
    settings.ALLOWED_HOSTS = ["callbook.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST="10.1.2.3:8000")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    # Every other path still refuses the unknown host.
    assert client.get("/accounts/login/").status_code == 400
