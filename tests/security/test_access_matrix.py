"""The access matrix: every route of the URL configuration, every method it allows, as every role.

Routes come from ``get_resolver()``, so a new page or endpoint is in the matrix the moment it exists; the
registry (tests/security/registry.py) says what each role must get, and a route it does not know fails here.
Outsiders get 404 (401 for an anonymous API call, the sign-in page for an anonymous page view), never data
and never a change; those who may see alice's session get it.
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.test import Client

from tests.security.admin_site import admin_kwargs
from tests.security.http import body_of, fill, send
from tests.security.registry import (
    NO_BODY,
    REGISTRY,
    TO_LOGIN,
    UNAUTHORIZED,
    Entry,
    Outcome,
    Request,
    admin_site_outcome,
    grant,
)
from tests.security.routes import Route, discover_routes
from tests.security.world import ADMIN, ANONYMOUS, ROLES, SESSION_MARKERS, World

pytestmark = pytest.mark.django_db

ROUTES = discover_routes()
APP_ROUTES = [route for route in ROUTES if not route.is_admin_site]
ADMIN_ROUTES = [route for route in ROUTES if route.is_admin_site]


def entry_for(route: Route) -> Entry:
    entry = REGISTRY.get(route.name or "")
    if entry is None:
        pytest.fail(
            f"Route {route.key!r} ({route.pattern}, methods {', '.join(route.methods)}) has no entry in "
            "tests/security/registry.py. Add one saying what each role gets from it (and how to fill its "
            f"arguments {list(route.kwargs)}), so that no route escapes the access matrix.",
            pytrace=False,
        )
    return entry


def outcome_for(route: Route, entry: Entry, method: str, role: str) -> Outcome:
    if role == ANONYMOUS and entry.anonymous is not None:
        return entry.anonymous
    if role == ANONYMOUS and not entry.public:
        return UNAUTHORIZED if route.is_api else TO_LOGIN
    return entry.rule(method, role)


def check(
    *,
    world: World,
    client: Client,
    route: Route,
    method: str,
    role: str,
    url: str,
    request: Request,
    outcome: Outcome,
    entry_markers: tuple[str, ...],
    watch_changes: bool = True,
) -> None:
    with transaction.atomic():
        before = world.snapshot() if watch_changes else None
        response = send(client, method, url, request)
        body = body_of(response)
        after = world.snapshot() if watch_changes else None
        # Every request starts from the same world: the next method must not see this one's writes.
        transaction.set_rollback(True)
    where = f"{method} {url} as {role}: expected {outcome.describe()}, got {response.status_code}"
    assert response.status_code < 500, f"{where}\n{body[:2000]}"
    assert response.status_code in outcome.statuses, f"{where}\n{body[:1000]}"
    if outcome.location_prefix is not None:
        assert response["Location"].startswith(outcome.location_prefix), f"{where} to {response['Location']}"
    if outcome.shows is True and entry_markers:
        assert any(marker in body for marker in entry_markers), f"{where}: the data is missing\n{body[:1000]}"
    if outcome.shows is False:
        leaked = [marker for marker in entry_markers if marker in body or marker in response.get("Location", "")]
        assert not leaked, f"{where}: the answer leaks {leaked}\n{body[:1000]}"
    if not outcome.may_change:
        assert after == before, f"{where}: the request changed something"
    if route.is_api and response.status_code in {401, 403, 404}:
        error = json.loads(body)
        assert set(error) >= {"detail", "code"}, f"{where}: not an API error {error}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", APP_ROUTES, ids=str)
def test_it_gives_each_role_what_the_registry_says_on_every_route(world: World, route: Route, role: str):
    entry = entry_for(route)
    kwargs = entry.kwargs(world)
    missing = set(route.kwargs) - set(kwargs)
    assert not missing, f"the registry entry of {route.key!r} does not fill {sorted(missing)}"
    url = fill(route, kwargs)
    markers = entry.markers(world)
    # Outside the per-request rollback: a token or login session made inside it would vanish with it.
    client = world.client(role, api=route.is_api)
    for method in route.methods:
        outcome = outcome_for(route, entry, method, role)
        request = entry.body(world, method, role)
        check(
            world=world,
            client=client,
            route=route,
            method=method,
            role=role,
            url=url,
            request=request,
            outcome=outcome,
            entry_markers=markers,
        )


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
def test_it_keeps_the_django_admin_to_staff(world: World, route: Route):
    kwargs, object_exists = admin_kwargs(world, route)
    url = fill(route, kwargs, encode=False)
    for role in ROLES:
        # The admin only reads (its writes are Django's own, tested by Django); it signs out with a POST.
        methods = route.methods if role != ADMIN else ("POST",) if route.name == "admin:logout" else ("GET",)
        client = world.client(role, api=False)
        for method in methods:
            outcome = admin_site_outcome(route.name, route.pattern, role)
            if role == ADMIN and not object_exists and "object_id" in kwargs:
                outcome = grant(200, 302)  # a model with no row here: the admin redirects to its index
            check(
                world=world,
                client=client,
                route=route,
                method=method,
                role=role,
                url=url,
                request=NO_BODY,
                outcome=outcome,
                entry_markers=SESSION_MARKERS,
                # A GET to the admin changes nothing (Django's own contract); its POSTs are watched.
                watch_changes=method != "GET",
            )


def test_it_discovers_the_routes_it_must_cover():
    names = {route.name for route in ROUTES}
    # A sample that must be found by walking the URL configuration, including nested includes and namespaces.
    assert {"call-detail", "api-session-detail", "api-session-recording", "login", "admin:crm_user_change"} <= names
    methods = {route.name: route.methods for route in ROUTES}
    assert methods["api-session-detail"] == ("GET", "PATCH", "DELETE")
    assert methods["call-assign"] == ("POST",)
    assert methods["call-detail"] == ("GET",)
