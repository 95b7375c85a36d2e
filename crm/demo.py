"""Demo data for trying Callbook: people first; later apps add campaigns, calls and recordings on top."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.db import transaction

from crm.models import Team, User
from crm.services import team_upsert, user_upsert

DEMO_PASSWORD = "demo-password"  # noqa: S105  # the documented demo login, used only with DEBUG on
DEMO_TEAM = "Demo sales"


@dataclass
class DemoPeople:
    team: Team
    manager: User
    agents: list[User]
    admin: User
    # username -> password, for accounts whose password this run set; None means left unchanged.
    logins: dict[str, str | None] = field(default_factory=dict)


@transaction.atomic
def seed_people(*, password: str | None) -> DemoPeople:
    """Create or update the demo team. ``password=None`` gives new accounts a random password each."""
    logins: dict[str, str | None] = {}

    def upsert(username: str, role: str, team: Team | None, **extra: object) -> User:
        wanted = password or secrets.token_urlsafe(12)
        user, created = user_upsert(username=username, role=role, team=team, password=wanted, **extra)  # type: ignore[arg-type]
        if not created and password and not user.check_password(password):
            # A fixed demo password is promised by the printed logins, so put it back if someone changed it.
            user.set_password(password)
            user.save(update_fields=["password"])
        logins[username] = wanted if (created or password) else None
        return user

    team = team_upsert(name=DEMO_TEAM, manager=None)
    carol = upsert("carol", User.Role.MANAGER, team, first_name="Carol", last_name="Manager", email="carol@example.com")
    team = team_upsert(name=DEMO_TEAM, manager=carol)
    alice = upsert("alice", User.Role.AGENT, team, first_name="Alice", last_name="Agent", email="alice@example.com")
    bob = upsert("bob", User.Role.AGENT, team, first_name="Bob", last_name="Agent", email="bob@example.com")
    admin = upsert("admin", User.Role.ADMIN, None, is_superuser=True, email="admin@example.com")
    if not (admin.is_superuser and admin.is_staff):
        admin.is_superuser = admin.is_staff = True
        admin.save(update_fields=["is_superuser", "is_staff"])
    return DemoPeople(team=team, manager=carol, agents=[alice, bob], admin=admin, logins=logins)
