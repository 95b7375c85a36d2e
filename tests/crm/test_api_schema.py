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


def test_it_generates_a_valid_schema_without_a_single_warning(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    # --fail-on-warn: an endpoint whose shape drf-spectacular had to guess is a documentation bug.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 0


def test_it_documents_every_session_endpoint_with_its_headers_and_errors(client_for, alice: User):
    schema = client_for(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in [
        "/api/crm/sessions/",
        "/api/crm/sessions/{session_id}/",
        "/api/crm/sessions/{session_id}/events/",
        "/api/crm/sessions/{session_id}/notes/",
        "/api/crm/sessions/{session_id}/recording/",
        "/api/crm/sessions/by-external/{source}/{external_id}/",
        "/api/crm/events/",
    ]:
        assert path in paths, path
    create = paths["/api/crm/sessions/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "409"} <= set(create)
    assert {"Location", "X-Session-ID"} <= set(create["201"]["headers"])
    detail = paths["/api/crm/sessions/{session_id}/"]["get"]["responses"]
    assert "session_not_found" in detail["404"]["description"]
    webhook = paths["/api/crm/events/"]["post"]
    assert "X-Callbook-Signature" in {p["name"] for p in webhook["parameters"]}
