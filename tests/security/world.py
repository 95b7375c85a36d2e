"""The objects every security test acts on, built once per test with the factories, and the clients of each role.

Alice's call session carries markers (an external id, a note, metadata) that an outsider must never read: a
response that denies access is checked for their absence, a response that grants it for their presence.
"""

from __future__ import annotations

import functools
import hashlib
import io
import wave
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.test import Client
from rest_framework.test import APIClient

from calls.models import CallSession, Note, Recording, Source
from calls.storage import recordings_storage, session_key
from crm.models import ApiToken, Team, User
from tests.factories import (
    AdminFactory,
    CallSessionFactory,
    ManagerFactory,
    RecordingFactory,
    TeamFactory,
    UserFactory,
    make_integration,
    make_token,
)
from tests.security.campaign_world import CampaignWorld, build_campaign_world

ANONYMOUS = "anonymous"
OWNER = "owner"  # alice, agent of Sales, owns the session
TEAMMATE = "teammate"  # bob, agent of Sales
OUTSIDER = "outsider"  # charlie, agent of Other team
MANAGER = "manager"  # carol, manager of Sales
OTHER_MANAGER = "other_manager"  # dave, manager of Other team
ADMIN = "admin"
INTEGRATION = "integration"  # pipecat-prod: the session's own source
OTHER_INTEGRATION = "other_integration"  # other-dialer: another integration
ROLES = (ANONYMOUS, OWNER, TEAMMATE, OUTSIDER, MANAGER, OTHER_MANAGER, ADMIN, INTEGRATION, OTHER_INTEGRATION)

# Markers planted in alice's session; none may appear in an answer to someone who may not see it.
MARK_EXTERNAL = "ext-zq7-secret"
MARK_NOTE = "note body zq7 secret"
MARK_METADATA = "meta-zq7-secret"
MARK_TOKEN = "token-zq7-secret"
SESSION_MARKERS = (MARK_EXTERNAL, MARK_NOTE, MARK_METADATA)


def tiny_wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


@dataclass
class World:
    sales: Team
    other_team: Team
    alice: User
    bob: User
    charlie: User
    carol: User
    dave: User
    admin: User
    source: Source
    source_key: str
    other_source: Source
    other_source_key: str
    session: CallSession
    note: Note
    recording_bytes: bytes
    alice_token: ApiToken
    _keys: dict[int, str] = field(default_factory=dict)

    def user(self, role: str) -> User | None:
        return {
            ANONYMOUS: None,
            OWNER: self.alice,
            TEAMMATE: self.bob,
            OUTSIDER: self.charlie,
            MANAGER: self.carol,
            OTHER_MANAGER: self.dave,
            ADMIN: self.admin,
            INTEGRATION: self.source.user,
            OTHER_INTEGRATION: self.other_source.user,
        }[role]

    def bearer_key(self, user: User) -> str:
        if user.pk == self.source.user_id:
            return self.source_key
        if user.pk == self.other_source.user_id:
            return self.other_source_key
        if user.pk not in self._keys:
            self._keys[user.pk] = make_token(user, name="security")[1]
        return self._keys[user.pk]

    def page_client(self, role: str, *, enforce_csrf_checks: bool = False) -> Client:
        """A browser: signed in with a session (pages know no bearer tokens)."""
        client = Client(enforce_csrf_checks=enforce_csrf_checks)
        user = self.user(role)
        if user is not None:
            client.force_login(user)
        return client

    def api_client(self, role: str) -> APIClient:
        client = APIClient()
        user = self.user(role)
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.bearer_key(user)}")
        return client

    def client(self, role: str, *, api: bool) -> Client:
        return self.api_client(role) if api else self.page_client(role)

    @functools.cached_property
    def campaigns(self) -> CampaignWorld:
        """The campaigns app's objects, built only for the routes that need them."""
        return build_campaign_world(sales=self.sales, carol=self.carol, alice=self.alice)

    def snapshot(self) -> dict[str, Any]:
        """What an outsider's request must leave as it was."""
        return {
            # None once deleted: the Django admin may delete it outright.
            "session": CallSession.objects.filter(pk=self.session.pk).values().first(),
            "notes": list(Note.objects.filter(session=self.session).values_list("id", "body", "author_id")),
            "events": self.session.events.count(),
            "recording": list(Recording.objects.filter(session=self.session).values_list("file", "sha256", "status")),
            "transcript": CallSession.objects.filter(pk=self.session.pk, transcript__isnull=False).exists(),
            "alice_token_revoked": ApiToken.objects.get(pk=self.alice_token.pk).revoked_at,
            "campaigns": self.campaigns.snapshot() if "campaigns" in self.__dict__ else None,
        }


def build_world() -> World:
    sales = TeamFactory.create(name="Sales")
    other_team = TeamFactory.create(name="Other team")
    carol = ManagerFactory.create(username="carol", team=sales)
    alice = UserFactory.create(username="alice", team=sales)
    bob = UserFactory.create(username="bob", team=sales)
    dave = ManagerFactory.create(username="dave", team=other_team)
    charlie = UserFactory.create(username="charlie", team=other_team)
    admin = AdminFactory.create(username="admin")
    source, source_key = make_integration("pipecat-prod", owner=alice)
    other_source, other_source_key = make_integration("other-dialer", owner=charlie)
    session = CallSessionFactory.create(
        owner=alice,
        source="pipecat-prod",
        external_id=MARK_EXTERNAL,
        status=CallSession.Status.IN_PROGRESS,
        metadata={"crm": MARK_METADATA},
        recording_status=CallSession.RecordingStatus.AVAILABLE,
    )
    audio = tiny_wav()
    key = recordings_storage().save(session_key(session.pk, "recording.wav"), ContentFile(audio))
    RecordingFactory.create(
        session=session,
        file=key,
        size_bytes=len(audio),
        sha256=hashlib.sha256(audio).hexdigest(),
        duration_ms=200,
    )
    note = Note.objects.create(session=session, author=alice, body=MARK_NOTE)
    alice_token, _ = make_token(alice, name=MARK_TOKEN)
    return World(
        sales=sales,
        other_team=other_team,
        alice=alice,
        bob=bob,
        charlie=charlie,
        carol=carol,
        dave=dave,
        admin=admin,
        source=source,
        source_key=source_key,
        other_source=other_source,
        other_source_key=other_source_key,
        session=session,
        note=note,
        recording_bytes=audio,
        alice_token=alice_token,
    )
