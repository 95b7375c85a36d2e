"""CSRF: every route a browser can change something through refuses a request without a token.

The routes come from the URL configuration: every page route that accepts a write method (forms, the login and
logout, the Django admin's), and every API route with a write method as a browser calls it, signed in with a
session cookie (DRF's session authentication checks the token; bearer tokens need none, a browser never sends
them on its own). Each is sent without a token (403, nothing changed) and, as a control, with one (not a CSRF
403), so the refusal is the token's doing and not something else's.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from tests.security.admin_site import admin_kwargs
from tests.security.http import body_of, fill, send
from tests.security.registry import NO_BODY, REGISTRY, Request
from tests.security.routes import Route, discover_routes
from tests.security.world import ADMIN, ANONYMOUS, World

pytestmark = pytest.mark.django_db

WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Answered by middleware before the CSRF check, and read-only (a POST gets 405): probes and scrapers, which come
# from load balancers and Prometheus, not browsers.
PROBES = {"healthz", "readyz", "metrics"}


def write_routes() -> list[Any]:
    cases = []
    for route in discover_routes():
        if route.name in PROBES:
            continue
        for method in route.methods:
            if method in WRITES:
                cases.append(pytest.param(route, method, id=f"{route.key}-{method}"))
    return cases


def _kwargs(world: World, route: Route) -> dict[str, Any]:
    if route.is_admin_site:
        return admin_kwargs(world, route)[0]
    entry = REGISTRY.get(route.name or "")
    assert entry is not None, f"{route.key} has no registry entry (see test_access_matrix)"
    return entry.kwargs(world)


def _request(world: World, route: Route, method: str, role: str, token: str | None) -> Request:
    entry = REGISTRY.get(route.name or "")
    request = entry.body(world, method, role) if entry is not None else NO_BODY
    if token is None or route.is_api:
        return request
    # A page form carries its token in the body.
    return Request(form={**(request.form or {}), "csrfmiddlewaretoken": token})


@pytest.mark.parametrize(("route", "method"), write_routes())
def test_it_refuses_a_write_without_a_csrf_token(world: World, route: Route, method: str):
    # The login page is the one form an anonymous visitor sends; the admin reaches every other.
    role = ANONYMOUS if route.name in {"login", "admin:login"} else ADMIN
    url = fill(route, _kwargs(world, route))
    results = {}
    for token in (None, _get_new_csrf_string()):
        with transaction.atomic():
            client = world.page_client(role, enforce_csrf_checks=True)
            extra = {}
            if token is not None:
                client.cookies["csrftoken"] = token
                extra["HTTP_X_CSRFTOKEN"] = token
            before = world.snapshot()
            response = send(client, method, url, _request(world, route, method, role, token), **extra)
            results[token is not None] = (response.status_code, body_of(response), before == world.snapshot())
            transaction.set_rollback(True)
    status, body, unchanged = results[False]
    assert status == 403, f"{method} {url} without a CSRF token: {status}\n{body[:500]}"
    assert "CSRF" in body, f"{method} {url}: a 403, but not the CSRF check's\n{body[:500]}"
    assert unchanged, f"{method} {url} without a CSRF token changed something"
    status, body, _ = results[True]
    assert status < 500, f"{method} {url} with a token: {status}\n{body[:1000]}"
    assert not (status == 403 and "CSRF" in body), f"{method} {url}: refused even with a token\n{body[:500]}"


def test_it_finds_the_forms_it_must_check():
    found = {(route.name, method) for route, method in (p.values for p in write_routes())}
    assert {("call-note-add", "POST"), ("login", "POST"), ("logout", "POST"), ("api-tokens", "POST")} <= found
    assert ("api-session-detail", "PATCH") in found
    assert ("admin:crm_user_change", "POST") in found


def test_it_sends_a_token_the_csrf_middleware_accepts(world: World):
    """The control above is meaningful: this token signs a real form in."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    response = client.post("/account/tokens/", {"name": "from a form", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert "from a form" in response.content.decode()
