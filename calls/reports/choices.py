"""Choices for the calls list's filter form: the campaigns and people a user may filter by."""

from __future__ import annotations

from django.db.models import Q

from campaigns.models import Campaign
from crm.models import Team, User


def _teams_seen(user: User) -> Q | None:
    """Teams whose campaigns and members ``user`` may pick in a filter; None means every team."""
    if user.is_admin:
        return None
    condition = Q(manager=user) if user.is_manager else Q(pk__in=[])
    if user.team_id is not None:
        condition |= Q(pk=user.team_id)
    return condition


def campaign_choices(*, user: User) -> list[tuple[int, str]]:
    """The campaigns of the teams ``user`` sees, as (id, name): one query."""
    teams = _teams_seen(user)
    campaigns = Campaign.objects.all()
    if teams is not None:
        campaigns = campaigns.filter(team__in=Team.objects.filter(teams))
    return [(pk, name) for pk, name in campaigns.order_by("name", "id").values_list("id", "name")]


def owner_choices(*, user: User) -> list[tuple[str, str]]:
    """For managers and admins: the people whose calls they may filter by, as (username, display name).

    A manager gets the members of the teams they manage, and themselves; an admin every active person. Agents get
    nothing: they see only their own calls. One query (none for agents).
    """
    if not (user.is_manager or user.is_admin):
        return []
    people = User.objects.filter(is_active=True).exclude(role=User.Role.INTEGRATION)
    if not user.is_admin:
        people = people.filter(Q(team__manager=user) | Q(pk=user.pk))
    rows = people.order_by("username").values_list("username", "first_name", "last_name")
    return [(username, _person(username, first, last)) for username, first, last in rows]


def _person(username: str, first_name: str, last_name: str) -> str:
    full = f"{first_name} {last_name}".strip()
    return f"{full} ({username})" if full else username
