"""Schemathesis against /api/schema/, in process through the WSGI application, over every operation.

Authenticated as an admin (who may reach every object) with a real bearer token; the path parameters are often
mapped onto seeded objects (a session with a recording file, a note, a transcript, an unassigned session), so
requests reach real rows and not only 404s. Bounded (a fixed number of examples per operation, derandomized)
so the run takes a minute or two. Every response must not be a 5xx and must conform to the schema: its status
code, content type, headers and body.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.files.base import ContentFile
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from calls.models import CallEvent, CallSession, Note, Transcript
from calls.storage import recordings_storage, session_key
from campaigns.models import ContactImport, Run
from crm.models import User
from crm.wsgi import application
from tests.factories import (
    AdminFactory,
    CallSessionFactory,
    CampaignFactory,
    ContactFactory,
    DoNotCallFactory,
    ManagerFactory,
    RecordingFactory,
    UserFactory,
    make_token,
)
from tests.security.campaign_world import IMPORT_CSV
from tests.security.world import tiny_wav

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 25
# Fixed ids, so the hooks below (applied while examples are generated) can point at the rows seeded per test.
SESSION_WITH_RECORDING = uuid.UUID("5e55b0a1-0000-4000-8000-000000000001")
UNASSIGNED_SESSION = uuid.UUID("5e55b0a1-0000-4000-8000-000000000002")
SEEDED_SESSIONS = (str(SESSION_WITH_RECORDING), str(UNASSIGNED_SESSION))
SEEDED_NOTE = 910_001
SEEDED_EXTERNAL = ("pipecat-prod", "seeded-call-1")
# The campaigns app's rows, under the names of their path parameters.
SEEDED_IDS = {
    "campaign_id": 910_101,
    "run_id": 910_102,
    "contact_id": 910_103,
    "entry_id": 910_104,
    "import_id": 910_105,
}

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schemathesis.serializer("audio/*", "application/x-subrip")
def raw_body(context: Any, value: Any) -> bytes:
    """Raw upload bodies (a recording, an .srt transcript): the bytes generated (text as UTF-8)."""
    return value if isinstance(value, bytes) else str(value).encode()


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Examples aim at the seeded objects as often as at the generated (usually unknown) ids."""
    if not path_parameters:
        return st.just(path_parameters)
    options = [path_parameters]
    if "session_id" in path_parameters:
        options += [{**path_parameters, "session_id": session_id} for session_id in SEEDED_SESSIONS]
        if "note_id" in path_parameters:
            options.append({**path_parameters, "session_id": SEEDED_SESSIONS[0], "note_id": SEEDED_NOTE})
    if "external_id" in path_parameters:
        options.append({**path_parameters, "source": SEEDED_EXTERNAL[0], "external_id": SEEDED_EXTERNAL[1]})
    for name, seeded in SEEDED_IDS.items():
        if name in path_parameters:
            options.append({**path_parameters, name: seeded})
    return st.sampled_from(options)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    """The WSGI handler closes database connections at the end of each request, which would end the test's
    transaction; Django's own test client disconnects the same handlers while it runs a request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(db: None) -> dict[str, str]:
    """An admin's bearer token, and rows for the examples to reach."""
    admin = AdminFactory.create(username="fuzz-admin")
    alice = UserFactory.create(username="alice")
    session = CallSessionFactory.create(
        id=SESSION_WITH_RECORDING,
        owner=alice,
        source=SEEDED_EXTERNAL[0],
        external_id=SEEDED_EXTERNAL[1],
        status=CallSession.Status.COMPLETED,
        recording_status=CallSession.RecordingStatus.AVAILABLE,
        metadata={"crm": {"lead": 42}},
    )
    audio = tiny_wav()
    key = recordings_storage().save(session_key(session.pk, "recording.wav"), ContentFile(audio))
    RecordingFactory.create(
        session=session, file=key, size_bytes=len(audio), sha256=hashlib.sha256(audio).hexdigest(), duration_ms=200
    )
    Transcript.objects.create(session=session, text="Agent: Hello.", language="en")
    Note.objects.create(id=SEEDED_NOTE, session=session, author=admin, body="Seeded note.")
    CallEvent.objects.create(session=session, type="ringing", occurred_at=session.created_at, data={"n": 1})
    CallSessionFactory.create(id=UNASSIGNED_SESSION, owner=None, team=None, origin=CallSession.Origin.ADOPTED)
    _seed_campaigns(alice)
    _, key = make_token(admin)
    return {"Authorization": f"Bearer {key}"}


def _seed_campaigns(agent: User) -> None:
    team = agent.team
    assert team is not None
    manager = ManagerFactory.create(username="fuzz-manager", team=team)
    campaign = CampaignFactory.create(id=SEEDED_IDS["campaign_id"], manager=manager, team=team, name="Seeded")
    contact = ContactFactory.create(id=SEEDED_IDS["contact_id"], team=team, name="Seeded contact")
    campaign.contacts.add(contact)
    DoNotCallFactory.create(id=SEEDED_IDS["entry_id"], team=team)
    Run.objects.create(id=SEEDED_IDS["run_id"], campaign=campaign, launched_by=manager, state=Run.State.PAUSED)
    contact_import = ContactImport(id=SEEDED_IDS["import_id"], team=team, uploaded_by=manager)
    contact_import.file.save("seeded.csv", ContentFile(IMPORT_CSV), save=False)
    contact_import.save()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The seeded rows are the point: one set per operation, shared by its examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_it_answers_every_operation_without_a_5xx_and_as_its_schema_says(case: Any, admin_headers: dict[str, str]):
    case.call_and_validate(
        headers=admin_headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
