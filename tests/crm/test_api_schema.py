from __future__ import annotations

import pytest
from django.test import Client

from crm.models import User

pytestmark = pytest.mark.django_db


def test_it_serves_an_openapi_3_schema_with_bearer_auth(client_for, alice: User):
    response = client_for(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token created in the UI (Account → API tokens) or with `create_api_token`.",
    }
    assert "/api/crm/" in schema["paths"]


def test_it_serves_swagger_ui_from_local_static_files(client_for, alice: User):
    response = client_for(alice).get("/api/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger-ui" in body
    assert "cdn." not in body
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in body


def test_it_publishes_the_schema_to_integrators_before_they_have_a_token():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "paths" in response.json()
