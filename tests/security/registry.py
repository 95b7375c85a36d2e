"""Who may do what on every route: the access matrix's registry, keyed by URL name.

Each entry says how to fill the route's arguments from the test world, what to send for each method, and what
each role must get. A route of the URL configuration without an entry fails the matrix, naming the route: adding
one is how a new page or endpoint states its access rule.

Django admin routes (``admin:*``) follow one rule, ``admin_site_outcome``: staff only, everyone else is sent to
the admin's sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.security.campaign_world import CAMPAIGN_MARKERS, IMPORT_CSV
from tests.security.world import (
    ADMIN,
    ANONYMOUS,
    INTEGRATION,
    MANAGER,
    MARK_EXTERNAL,
    MARK_NOTE,
    MARK_TOKEN,
    OTHER_INTEGRATION,
    OTHER_MANAGER,
    OWNER,
    SESSION_MARKERS,
    TEAMMATE,
    World,
)

LOGIN_URL = "/accounts/login/"
ADMIN_LOGIN_URL = "/admin/login/"


@dataclass(frozen=True)
class Outcome:
    """What one role gets from one method of one route."""

    statuses: frozenset[int]
    # True: the route's markers must be in the body (the data is theirs to read); False: none may be.
    shows: bool | None = None
    # Whether the request may change the world (an outsider's never may).
    may_change: bool = True
    location_prefix: str | None = None

    def describe(self) -> str:
        parts = ["/".join(str(s) for s in sorted(self.statuses))]
        if self.shows is True:
            parts.append("with the data")
        if self.shows is False:
            parts.append("without the data")
        if not self.may_change:
            parts.append("changing nothing")
        if self.location_prefix:
            parts.append(f"to {self.location_prefix}")
        return ", ".join(parts)


def grant(*statuses: int, shows: bool | None = None) -> Outcome:
    return Outcome(frozenset(statuses or (200,)), shows=shows)


def hidden(*statuses: int) -> Outcome:
    """Access to the route, none to the planted data (a list filtered by the access rule)."""
    return Outcome(frozenset(statuses or (200,)), shows=False, may_change=False)


NOT_FOUND = Outcome(frozenset({404}), shows=False, may_change=False)
FORBIDDEN = Outcome(frozenset({403}), shows=False, may_change=False)
UNAUTHORIZED = Outcome(frozenset({401}), shows=False, may_change=False)
TO_LOGIN = Outcome(frozenset({302}), shows=False, may_change=False, location_prefix=f"{LOGIN_URL}?next=")
TO_ADMIN_LOGIN = Outcome(frozenset({302}), shows=False, may_change=False, location_prefix=f"{ADMIN_LOGIN_URL}?next=")


@dataclass(frozen=True)
class Request:
    """The body of one request: a page form, a JSON document or raw bytes."""

    form: Mapping[str, str] | None = None
    json: Any = None
    raw: bytes | None = None
    content_type: str = "application/octet-stream"


NO_BODY = Request()

Rule = Callable[[str, str], Outcome]  # (method, role) -> outcome
Kwargs = Callable[[World], dict[str, Any]]
Body = Callable[[World, str, str], Request]  # (world, method, role) -> request


def _no_kwargs(world: World) -> dict[str, Any]:
    return {}


def _no_body(world: World, method: str, role: str) -> Request:
    return NO_BODY


def _no_markers(world: World) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Entry:
    rule: Rule
    kwargs: Kwargs = _no_kwargs
    body: Body = _no_body
    markers: Callable[[World], tuple[str, ...]] = _no_markers
    # Anonymous visitors: pages send them to sign in, the API answers 401; public routes answer them as anyone;
    # ``anonymous`` says otherwise for one route.
    public: bool = False
    anonymous: Outcome | None = None
    notes: str = field(default="", compare=False)


# --- Rules -----------------------------------------------------------------------------------------------------

# Those who see alice's session: she, her team's manager, admins, and the integration that reported it.
SESSION_INSIDERS = frozenset({OWNER, MANAGER, ADMIN, INTEGRATION})
MANAGERS = frozenset({MANAGER, OTHER_MANAGER, ADMIN})


def per_method(rules: Mapping[str, Rule]) -> Rule:
    def rule(method: str, role: str) -> Outcome:
        return rules[method](method, role)

    return rule


def session_object(
    granted: Outcome, *, insiders: frozenset[str] = SESSION_INSIDERS, overrides: Mapping[str, Outcome] | None = None
) -> Rule:
    """A route about alice's session: insiders get ``granted``, everyone else 404 (``overrides`` per role)."""

    def rule(method: str, role: str) -> Outcome:
        if overrides and role in overrides:
            return overrides[role]
        return granted if role in insiders else NOT_FOUND

    return rule


def everyone(outcome: Outcome) -> Rule:
    return lambda method, role: outcome


def filtered_list(*statuses: int, insiders: frozenset[str] = SESSION_INSIDERS) -> Rule:
    """A list anyone signed in may open, showing alice's session to insiders only."""
    return lambda method, role: grant(*statuses, shows=True) if role in insiders else hidden(*statuses)


def managers_only(granted: Outcome) -> Rule:
    return lambda method, role: granted if role in MANAGERS else NOT_FOUND


def signed_in_then(anonymous: Outcome, signed_in: Outcome) -> Rule:
    return lambda method, role: anonymous if role == ANONYMOUS else signed_in


# --- Arguments and bodies -----------------------------------------------------------------------------------


def session_kwargs(world: World) -> dict[str, Any]:
    return {"session_id": str(world.session.pk)}


def note_kwargs(world: World) -> dict[str, Any]:
    return {"session_id": str(world.session.pk), "note_id": world.note.pk}


def form(**values: str) -> Body:
    return lambda world, method, role: Request(form=values)


def json_body(value: Any) -> Body:
    return lambda world, method, role: Request(json=value)


def session_markers(world: World) -> tuple[str, ...]:
    return SESSION_MARKERS


def _create_body(world: World, method: str, role: str) -> Request:
    # A fresh external id per role: each creates a session of its own.
    return Request(json={"external_id": f"new-{role}", "to_number": "+14155550123"})


def _webhook_body(world: World, method: str, role: str) -> Request:
    return Request(json={"external_id": f"hook-{role}", "type": "ringing"})


def _same_recording(world: World, method: str, role: str) -> Request:
    # The bytes already stored: an insider's upload is the idempotent 200, and nothing is written.
    return Request(raw=world.recording_bytes, content_type="audio/wav") if method == "PUT" else NO_BODY


def _transcript(world: World, method: str, role: str) -> Request:
    return Request(raw=b"Agent: Hello.\nCaller: Hi.\n", content_type="text/plain")


def _session_write(world: World, method: str, role: str) -> Request:
    return Request(json={"end_reason": "checked"}) if method == "PATCH" else NO_BODY


# --- The registry --------------------------------------------------------------------------------------------

CALLS: dict[str, Entry] = {
    # Pages
    "home": Entry(everyone(grant(200))),
    # A list row links to the call by its id.
    "call-list": Entry(filtered_list(200), markers=lambda w: (str(w.session.pk),)),
    "call-export": Entry(filtered_list(200), markers=lambda w: (str(w.session.pk),)),
    "call-triage": Entry(managers_only(grant(200))),
    "call-live": Entry(
        lambda method, role: (
            grant(200, shows=True)
            if role in {MANAGER, ADMIN}
            else (hidden(200) if role == OTHER_MANAGER else NOT_FOUND)
        ),
        markers=lambda w: (str(w.session.pk),),
    ),
    "call-detail": Entry(session_object(grant(200, shows=True)), kwargs=session_kwargs, markers=session_markers),
    "call-audio": Entry(session_object(grant(200)), kwargs=session_kwargs, markers=session_markers),
    # GET only points the browser at the detail page; the write is the POST.
    "call-note-add": Entry(
        per_method({"GET": everyone(grant(302)), "POST": session_object(grant(302))}),
        kwargs=session_kwargs,
        body=form(body="Called back."),
        markers=session_markers,
    ),
    # Only the author edits a note from the page; anyone else learns no more than "not found".
    "call-note-edit": Entry(
        per_method({"GET": everyone(grant(302)), "POST": session_object(grant(302), insiders=frozenset({OWNER}))}),
        kwargs=note_kwargs,
        body=form(body="Edited."),
        markers=session_markers,
    ),
    # An insider is told the call is already in Callbook; for anyone else a row they cannot see is "not found".
    "call-adopt": Entry(
        per_method({"GET": everyone(grant(302)), "POST": session_object(grant(302))}),
        kwargs=session_kwargs,
        markers=session_markers,
    ),
    # Managers only; another team's manager is sent back with "not found" in a message, nothing assigned.
    "call-assign": Entry(
        lambda method, role: (
            grant(302) if role in {MANAGER, ADMIN} else hidden(302) if role == OTHER_MANAGER else NOT_FOUND
        ),
        kwargs=session_kwargs,
        body=form(owner="bob"),
        markers=session_markers,
    ),
    # API
    "api-root": Entry(everyone(grant(200))),
    "api-session-list": Entry(
        per_method({"GET": filtered_list(200), "POST": everyone(grant(201))}),
        body=_create_body,
        markers=lambda w: (MARK_EXTERNAL,),
    ),
    "api-session-detail": Entry(
        per_method(
            {
                "GET": session_object(grant(200, shows=True)),
                "PATCH": session_object(grant(200)),
                # Archiving is for admins; the others who see the session are told so.
                "DELETE": session_object(
                    grant(204), overrides={OWNER: FORBIDDEN, MANAGER: FORBIDDEN, INTEGRATION: FORBIDDEN}
                ),
            }
        ),
        kwargs=session_kwargs,
        body=_session_write,
        markers=session_markers,
    ),
    "api-session-by-external": Entry(
        session_object(grant(200, shows=True)),
        kwargs=lambda w: {"source": w.session.source, "external_id": w.session.external_id},
        markers=lambda w: (MARK_NOTE,),
    ),
    "api-session-events": Entry(
        session_object(grant(201)), kwargs=session_kwargs, body=json_body({"type": "dtmf"}), markers=session_markers
    ),
    "api-session-notes": Entry(
        session_object(grant(201)),
        kwargs=session_kwargs,
        body=json_body({"body": "Called back."}),
        markers=session_markers,
    ),
    # The author and admins edit a note; the others who see the session are told they may not.
    "api-session-note-detail": Entry(
        session_object(grant(200), overrides={MANAGER: FORBIDDEN, INTEGRATION: FORBIDDEN}),
        kwargs=note_kwargs,
        body=json_body({"body": "Edited."}),
        markers=session_markers,
    ),
    "api-session-recording": Entry(
        session_object(grant(200)), kwargs=session_kwargs, body=_same_recording, markers=session_markers
    ),
    "api-session-transcript": Entry(
        session_object(grant(200)), kwargs=session_kwargs, body=_transcript, markers=session_markers
    ),
    # Names a call by source + external id; a new pair creates the caller's own session.
    "api-events": Entry(everyone(grant(201)), body=_webhook_body),
}

CRM: dict[str, Entry] = {
    "login": Entry(signed_in_then(grant(200), grant(302)), body=form(), public=True),
    "logout": Entry(everyone(grant(302)), public=True),
    # Everyone manages their own tokens: alice's token name is hers alone.
    "api-tokens": Entry(
        lambda method, role: grant(200, shows=method == "GET" or None) if role == OWNER else hidden(200),
        body=form(),
        markers=lambda w: (MARK_TOKEN,),
    ),
    "api-token-revoke": Entry(
        lambda method, role: grant(302) if role == OWNER else NOT_FOUND,
        kwargs=lambda w: {"token_id": w.alice_token.pk},
        markers=lambda w: (MARK_TOKEN,),
    ),
    "healthz": Entry(everyone(grant(200)), public=True),
    # 503 when the broker or storage is unreachable: either way it names checks, never data.
    "readyz": Entry(everyone(hidden(200, 503)), public=True, markers=session_markers),
    # The schema and its docs are published to integrators before they have a token.
    "api-schema": Entry(everyone(hidden(200)), public=True, markers=session_markers),
    "api-docs": Entry(everyone(hidden(200)), public=True, markers=session_markers),
}

# --- Campaigns (campaigns/access.py) --------------------------------------------------------------------------
#
# The campaign, its run, contact, do-not-call entry and import belong to Sales: carol (its manager) and admins
# control them; Sales' agents (alice, bob) read them and get 403 when they try to control; everyone else,
# integrations included, gets 404.

CAMPAIGN_READERS = frozenset({OWNER, TEAMMATE})
CAMPAIGN_CONTROLLERS = frozenset({MANAGER, ADMIN})


def campaign_read(granted: Outcome) -> Rule:
    def rule(method: str, role: str) -> Outcome:
        return granted if role in CAMPAIGN_READERS | CAMPAIGN_CONTROLLERS else NOT_FOUND

    return rule


def campaign_control(granted: Outcome) -> Rule:
    def rule(method: str, role: str) -> Outcome:
        if role in CAMPAIGN_CONTROLLERS:
            return granted
        return FORBIDDEN if role in CAMPAIGN_READERS else NOT_FOUND

    return rule


def campaign_list(*statuses: int, integrations: Outcome | None = None) -> Rule:
    """A list anyone signed in may open, filtered by the rule (``integrations`` when they get something else)."""

    def rule(method: str, role: str) -> Outcome:
        if role in CAMPAIGN_READERS | CAMPAIGN_CONTROLLERS:
            return grant(*statuses, shows=True)
        if integrations is not None and role in {INTEGRATION, OTHER_INTEGRATION}:
            return integrations
        return hidden(*statuses)

    return rule


OWN_TEAM = Outcome(frozenset({200, 201, 302}), shows=False)  # another manager, creating in their own team


def campaign_create(granted: Outcome, *, other_manager: Outcome = OWN_TEAM, integrations: Outcome = FORBIDDEN) -> Rule:
    """Creating (no object yet): Sales' manager and admins in Sales; another team's manager in their own team,
    never seeing Sales' data; agents are told they may not (403)."""

    def rule(method: str, role: str) -> Outcome:
        if role in CAMPAIGN_CONTROLLERS:
            return granted
        if role == OTHER_MANAGER:
            return other_manager
        return integrations if role in {INTEGRATION, OTHER_INTEGRATION} else FORBIDDEN

    return rule


def campaign_kwargs(world: World) -> dict[str, Any]:
    return {"campaign_id": world.campaigns.campaign.pk}


def run_kwargs(world: World) -> dict[str, Any]:
    return {"run_id": world.campaigns.run.pk}


def contact_kwargs(world: World) -> dict[str, Any]:
    return {"contact_id": world.campaigns.contact.pk}


def dnc_kwargs(world: World) -> dict[str, Any]:
    return {"entry_id": world.campaigns.dnc.pk}


def import_kwargs(world: World) -> dict[str, Any]:
    return {"import_id": world.campaigns.contact_import.pk}


def campaign_markers(world: World) -> tuple[str, ...]:
    world.campaigns  # noqa: B018  # built before the request, so that the snapshot covers it
    return CAMPAIGN_MARKERS


def _with_team(**values: Any) -> Body:
    """A body naming Sales as the team (admins manage every team and must say which)."""

    def body(world: World, method: str, role: str) -> Request:
        return Request(json={**values, "team": world.sales.pk})

    return body


def _page_form_with_team(**values: str) -> Body:
    def body(world: World, method: str, role: str) -> Request:
        return Request(form={**values, "team": str(world.sales.pk)})

    return body


def _import_upload(world: World, method: str, role: str) -> Request:
    if method != "POST":
        return NO_BODY
    return Request(raw=IMPORT_CSV, content_type="text/csv")


CONTROL = grant(200, 201, 302, 400, 409)  # granted: done, or refused for the input/state, not for who asks

CAMPAIGNS: dict[str, Entry] = {
    # Pages
    "campaign-list": Entry(campaign_list(200), markers=campaign_markers),
    "campaign-create": Entry(
        campaign_create(grant(200, 302)),
        body=_page_form_with_team(name="New campaign"),
        markers=campaign_markers,
    ),
    "campaign-detail": Entry(campaign_read(grant(200, shows=True)), kwargs=campaign_kwargs, markers=campaign_markers),
    "campaign-edit": Entry(
        campaign_control(grant(200, 302)), kwargs=campaign_kwargs, body=form(name="Renamed"), markers=campaign_markers
    ),
    "campaign-launch": Entry(campaign_control(CONTROL), kwargs=campaign_kwargs, markers=campaign_markers),
    "run-detail": Entry(campaign_read(grant(200, shows=True)), kwargs=run_kwargs, markers=campaign_markers),
    # Polled by the page's script: an expired sign-in gets 401 JSON, not the sign-in page's HTML.
    "run-progress": Entry(
        campaign_read(grant(200)), kwargs=run_kwargs, markers=campaign_markers, anonymous=UNAUTHORIZED
    ),
    "run-pause": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "run-resume": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "run-cancel": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "run-export": Entry(campaign_read(grant(200)), kwargs=run_kwargs, markers=campaign_markers),
    "contact-list": Entry(campaign_list(200), markers=campaign_markers),
    "contact-create": Entry(
        campaign_create(grant(200, 302)),
        body=_page_form_with_team(name="New contact", phone="+12025550143"),
        markers=campaign_markers,
    ),
    "contact-dnc": Entry(
        per_method(
            {
                "GET": campaign_list(200),
                "POST": campaign_create(grant(200, 302)),
            }
        ),
        body=_page_form_with_team(phone="+12025550144", reason="asked"),
        markers=campaign_markers,
    ),
    "contact-dnc-remove": Entry(campaign_control(CONTROL), kwargs=dnc_kwargs, markers=campaign_markers),
    "contact-import-list": Entry(
        per_method({"GET": campaign_list(200), "POST": campaign_create(CONTROL)}),
        markers=campaign_markers,
    ),
    "contact-import-detail": Entry(
        campaign_read(grant(200, shows=True)), kwargs=import_kwargs, markers=campaign_markers
    ),
    "contact-import-mapping": Entry(campaign_control(CONTROL), kwargs=import_kwargs, markers=campaign_markers),
    "contact-import-start": Entry(campaign_control(CONTROL), kwargs=import_kwargs, markers=campaign_markers),
    "contact-import-cancel": Entry(campaign_control(CONTROL), kwargs=import_kwargs, markers=campaign_markers),
    "contact-import-progress": Entry(campaign_read(grant(200)), kwargs=import_kwargs, markers=campaign_markers),
    "contact-import-report": Entry(campaign_read(grant(200)), kwargs=import_kwargs, markers=campaign_markers),
    "contact-detail": Entry(campaign_read(grant(200, shows=True)), kwargs=contact_kwargs, markers=campaign_markers),
    "contact-edit": Entry(
        campaign_control(grant(200, 302)), kwargs=contact_kwargs, body=form(name="Renamed"), markers=campaign_markers
    ),
    # API: campaigns and runs
    "api-campaign-list": Entry(
        per_method(
            {
                "GET": campaign_list(200),
                # Naming Sales: another team's manager is told it is not theirs (400).
                "POST": campaign_create(grant(201), other_manager=Outcome(frozenset({400}), False, False)),
            }
        ),
        body=_with_team(name="New campaign"),
        markers=campaign_markers,
    ),
    "api-campaign-detail": Entry(
        per_method({"GET": campaign_read(grant(200, shows=True)), "PATCH": campaign_control(grant(200))}),
        kwargs=campaign_kwargs,
        body=json_body({"description": "changed"}),
        markers=campaign_markers,
    ),
    "api-campaign-runs": Entry(
        per_method({"GET": campaign_read(grant(200)), "POST": campaign_control(CONTROL)}),
        kwargs=campaign_kwargs,
        markers=campaign_markers,
    ),
    "api-run-detail": Entry(campaign_read(grant(200, shows=True)), kwargs=run_kwargs, markers=campaign_markers),
    "api-run-pause": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "api-run-resume": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "api-run-cancel": Entry(campaign_control(CONTROL), kwargs=run_kwargs, markers=campaign_markers),
    "api-run-dials": Entry(campaign_read(grant(200)), kwargs=run_kwargs, markers=campaign_markers),
    "api-run-log": Entry(campaign_read(grant(200)), kwargs=run_kwargs, markers=campaign_markers),
    # API: contacts, imports and the do-not-call list (integrations get 404 everywhere here)
    "api-contact-list": Entry(
        per_method(
            {
                "GET": campaign_list(200, integrations=NOT_FOUND),
                "POST": campaign_create(
                    grant(201, 409), other_manager=Outcome(frozenset({400}), False, False), integrations=NOT_FOUND
                ),
            }
        ),
        body=_with_team(name="New contact", phone="+12025550145"),
        markers=campaign_markers,
    ),
    "api-contact-detail": Entry(
        per_method({"GET": campaign_read(grant(200, shows=True)), "PATCH": campaign_control(grant(200))}),
        kwargs=contact_kwargs,
        body=json_body({"company": "Changed"}),
        markers=campaign_markers,
    ),
    "api-import-list": Entry(
        per_method(
            {
                "GET": campaign_list(200, integrations=NOT_FOUND),
                # A raw CSV names no team: another team's manager imports into their own.
                "POST": campaign_create(CONTROL, integrations=NOT_FOUND),
            }
        ),
        body=_import_upload,
        markers=campaign_markers,
    ),
    "api-import-detail": Entry(campaign_read(grant(200, shows=True)), kwargs=import_kwargs, markers=campaign_markers),
    "api-import-preview": Entry(
        per_method({"GET": campaign_read(grant(200)), "POST": campaign_control(CONTROL)}),
        kwargs=import_kwargs,
        markers=campaign_markers,
    ),
    "api-import-start": Entry(campaign_control(CONTROL), kwargs=import_kwargs, markers=campaign_markers),
    "api-import-cancel": Entry(campaign_control(CONTROL), kwargs=import_kwargs, markers=campaign_markers),
    "api-import-progress": Entry(campaign_read(grant(200)), kwargs=import_kwargs, markers=campaign_markers),
    "api-import-rows": Entry(campaign_read(grant(200)), kwargs=import_kwargs, markers=campaign_markers),
    "api-import-report": Entry(campaign_read(grant(200)), kwargs=import_kwargs, markers=campaign_markers),
    "api-dnc-list": Entry(
        per_method(
            {
                "GET": campaign_list(200, integrations=NOT_FOUND),
                "POST": campaign_create(
                    grant(201, 409), other_manager=Outcome(frozenset({400}), False, False), integrations=NOT_FOUND
                ),
            }
        ),
        body=_with_team(phone="+12025550146", reason="asked"),
        markers=campaign_markers,
    ),
    "api-dnc-detail": Entry(
        per_method({"GET": campaign_read(grant(200, shows=True)), "DELETE": campaign_control(grant(204))}),
        kwargs=dnc_kwargs,
        markers=campaign_markers,
    ),
}

OPERATIONS: dict[str, Entry] = {
    # Prometheus metrics: from an allowed address (the test client's 127.0.0.1 is, by default) to anyone, as
    # scrapers carry no session; never a session's data. Others get 404 (tests/crm/test_metrics.py).
    "metrics": Entry(
        per_method({"GET": everyone(hidden(200)), "POST": everyone(hidden(405))}),
        public=True,
        markers=lambda w: (*SESSION_MARKERS, *campaign_markers(w)),
    ),
}

REGISTRY: dict[str, Entry] = {**CALLS, **CRM, **CAMPAIGNS, **OPERATIONS}


# --- Django admin ------------------------------------------------------------------------------------------


ADMIN_PAGES_THAT_MUST_OPEN = ("admin:index", "_changelist", "_change")


def admin_site_outcome(name: str | None, pattern: str, role: str) -> Outcome:
    """Staff only. Everyone else is sent to the admin's sign-in page, which itself is open to all."""
    if name in {"admin:login", "admin:logout"}:
        return grant(200, 302) if role == ADMIN else hidden(200, 302)
    if name is None and pattern.endswith("/<path:object_id>/"):
        # The old-style object URL redirects anyone to its .../change/ page, which is itself guarded.
        return grant(301, 302) if role == ADMIN else hidden(301, 302)
    if role != ADMIN:
        return TO_ADMIN_LOGIN
    if name is not None and name.endswith(ADMIN_PAGES_THAT_MUST_OPEN):
        return grant(200)
    # The admin's other pages are Django's business: a missing object redirects to the index, a model that
    # forbids adding answers 403, autocomplete without its parameters 403, view_on_site 404 for an object
    # with no public URL.
    return grant(200, 301, 302, 403, 404)
