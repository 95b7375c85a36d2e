"""Writes for users, teams and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from crm.models import ApiToken, Team, User

API_TOKEN_KEY_PREFIX = "cb_"  # noqa: S105  # a marker that makes leaked keys greppable, not a secret


def api_token_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def api_token_create(*, user: User, name: str = "default", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``user`` and return it with its key; the key cannot be recovered later."""
    raw_key = API_TOKEN_KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip() or "default",
        prefix=raw_key[:10],
        key_hash=api_token_hash(raw_key),
        expires_at=expires_at,
    )
    return token, raw_key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_touch(*, token: ApiToken) -> None:
    """Record use, at most once per interval: a write per request would make every API call a write."""
    now = timezone.now()
    interval = settings.API_TOKEN_TOUCH_INTERVAL_SECONDS
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= interval:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


@transaction.atomic
def team_upsert(*, name: str, manager: User | None) -> Team:
    team, _ = Team.objects.get_or_create(name=name)
    if manager is not None and team.manager_id != manager.pk:
        team.manager = manager
        team.save(update_fields=["manager"])
    if manager is not None and manager.team_id != team.pk:
        manager.team = team
        manager.save(update_fields=["team"])
    return team


def user_upsert(
    *,
    username: str,
    role: str,
    team: Team | None,
    password: str | None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_superuser: bool = False,
) -> tuple[User, bool]:
    """Create the user, or bring an existing one's role and team in line; a password is set only on create."""
    user, created = User.objects.get_or_create(
        username=username,
        defaults={
            "role": role,
            "team": team,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "is_superuser": is_superuser,
            "is_staff": is_superuser,
        },
    )
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(update_fields=["password"])
        return user, True
    changed = []
    for field, value in (("role", role), ("team", team)):
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
    return user, False
