"""factory_boy factories. Related rows stay consistent: a team's manager is a member of it."""

from __future__ import annotations

from typing import Any

from factory.declarations import LazyAttribute, Sequence, SubFactory
from factory.django import DjangoModelFactory
from factory.helpers import post_generation

from calls.models import CallSession, Recording, Source
from calls.services import source_create
from campaigns.models import Campaign, Contact, DoNotCall, Run
from crm.models import ApiToken, Team, User
from crm.services import api_token_create

TEST_PASSWORD = "correct-horse-battery-staple"


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = Sequence(lambda n: f"Team {n}")
    manager = None


def _set_password(user: User, create: bool, extracted: str | None, **kwargs: Any) -> None:
    user.set_password(extracted or TEST_PASSWORD)
    if create:
        user.save(update_fields=["password"])


def _manage_own_team(user: User, create: bool, extracted: Any, **kwargs: Any) -> None:
    if create and user.team is not None and user.team.manager_id is None:
        user.team.manager = user
        user.team.save(update_fields=["manager"])


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = Sequence(lambda n: f"user{n}")
    email = LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = LazyAttribute(lambda u: u.username.capitalize())
    role = User.Role.AGENT
    team = SubFactory(TeamFactory)
    password = post_generation(_set_password)


class ManagerFactory(UserFactory):
    role = User.Role.MANAGER
    manages_team = post_generation(_manage_own_team)


class AdminFactory(UserFactory):
    role = User.Role.ADMIN
    team = None  # type: ignore[assignment]  # admins belong to no team
    is_staff = True
    is_superuser = True


def make_token(user: User, name: str = "test") -> tuple[ApiToken, str]:
    return api_token_create(user=user, name=name)


# --- calls ---------------------------------------------------------------------------------------------------


class CallSessionFactory(DjangoModelFactory[CallSession]):
    """A session owned by an agent; its team is the owner's team unless given."""

    class Meta:
        model = CallSession

    owner = SubFactory(UserFactory)
    team = LazyAttribute(lambda s: s.owner.team if s.owner is not None else None)
    source = "pipecat-prod"
    external_id = Sequence(lambda n: f"ext-{n}")
    direction = CallSession.Direction.INBOUND
    status = CallSession.Status.QUEUED
    from_number = "+14155550100"
    to_number = "+14155550199"


class RecordingFactory(DjangoModelFactory[Recording]):
    class Meta:
        model = Recording

    session = SubFactory(CallSessionFactory)
    file = LazyAttribute(lambda r: f"sessions/{r.session.pk}/recording.wav")
    status = Recording.Status.AVAILABLE
    format = "wav"
    content_type = "audio/wav"


def make_integration(
    name: str = "pipecat-prod", *, owner: User | None = None, signing_secret: str = ""
) -> tuple[Source, str]:
    """An integration with its service user; returns it with an API token key."""
    return source_create(name=name, default_owner=owner, signing_secret=signing_secret)


# --- campaigns -----------------------------------------------------------------------------------------------


class ContactFactory(DjangoModelFactory[Contact]):
    """A contact of a team, with a distinct valid US number (555-01xx is reserved for fiction)."""

    class Meta:
        model = Contact

    team = SubFactory(TeamFactory)
    name = Sequence(lambda n: f"Contact {n}")
    phone = Sequence(lambda n: f"+1202555{n % 10000:04d}")
    timezone = "America/New_York"


class DoNotCallFactory(DjangoModelFactory[DoNotCall]):
    class Meta:
        model = DoNotCall

    team = SubFactory(TeamFactory)
    phone = Sequence(lambda n: f"+1202556{n % 10000:04d}")
    reason = "Asked not to be called"


class CampaignFactory(DjangoModelFactory[Campaign]):
    """A campaign of a manager's team, managed by that manager, dialing through the simulator."""

    class Meta:
        model = Campaign

    manager = SubFactory(ManagerFactory)
    team = LazyAttribute(lambda c: c.manager.team if c.manager is not None else TeamFactory())
    name = Sequence(lambda n: f"Campaign {n}")
    caller_id = "+12025550100"
    dialer = Campaign.Dialer.SIMULATOR
    window_days: list[int] = []


class RunFactory(DjangoModelFactory[Run]):
    """A bare run row with no targets (tests of the scheduler launch real runs with campaigns.runs.run_launch)."""

    class Meta:
        model = Run

    campaign = SubFactory(CampaignFactory)
    launched_by = LazyAttribute(lambda r: r.campaign.manager)
    state = Run.State.RUNNING
