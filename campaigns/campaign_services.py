"""Writing campaigns: create one in a team, change its settings.

Access is the caller's first check (``campaigns.access``); these functions check it again, since a campaign
written into a team its author does not manage is exactly the mistake nobody would notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction

from campaigns.access import NotAllowed, can_control_campaign, teams_managed_by
from campaigns.models import CAMPAIGN_PACING_FIELDS, Campaign
from crm.models import Team, User

# The fields a person may set; everything else (team, manager, the contact list) has its own rule.
EDITABLE_FIELDS = frozenset(
    {
        "name",
        "description",
        "status",
        "caller_id",
        "dialer",
        "dialer_settings",
        "contact_filter",
        "window_days",
        *CAMPAIGN_PACING_FIELDS,
    }
)


class CampaignInputError(Exception):
    """A value the campaign cannot take; ``field`` names the form field it belongs to (None: the whole form)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - EDITABLE_FIELDS
    if unknown:
        raise CampaignInputError(f"Unknown campaign fields: {', '.join(sorted(unknown))}.")
    return values


def _check_agents(*, team: Team, agents: Sequence[User]) -> None:
    strangers = [agent.username for agent in agents if agent.team_id != team.pk or not agent.is_active]
    if strangers:
        raise CampaignInputError(f"Not active members of {team.name}: {', '.join(strangers)}.", field="agents")


def _name_taken(*, team: Team, name: str, exclude: int | None = None) -> bool:
    taken = Campaign.objects.filter(team=team, name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    return taken.exists()


def campaign_create(*, actor: User, team: Team, values: dict[str, Any], agents: Sequence[User] = ()) -> Campaign:
    """A new campaign of ``team`` managed by ``actor`` (by the team's manager when an admin creates it)."""
    if not teams_managed_by(user=actor).filter(pk=team.pk).exists():
        raise NotAllowed("Only the team's manager or an admin may create its campaigns.")
    _checked(values)
    _check_agents(team=team, agents=agents)
    name = str(values.get("name", ""))
    if _name_taken(team=team, name=name):
        raise CampaignInputError(f"{team.name} already has a campaign called “{name}”.", field="name")
    manager = actor if actor.is_manager else team.manager
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(team=team, manager=manager, **values)
            campaign.agents.set(agents)
    except IntegrityError:
        # Two people saving the same name at once: the database's unique constraint decided.
        raise CampaignInputError(f"{team.name} already has a campaign called “{name}”.", field="name") from None
    return campaign


def campaign_update(
    *,
    actor: User,
    campaign: Campaign,
    values: dict[str, Any],
    agents: Sequence[User] | None = None,
    clear_contact_list: bool = False,
) -> Campaign:
    """Change ``campaign``'s settings. A run in progress keeps the targets it was launched with; pacing,
    window and retry changes apply from the scheduler's next tick."""
    if not can_control_campaign(user=actor, campaign=campaign):
        raise NotAllowed("Only the campaign's team manager or an admin may change it.")
    _checked(values)
    if agents is not None:
        _check_agents(team=campaign.team, agents=agents)
    name = str(values.get("name", campaign.name))
    if _name_taken(team=campaign.team, name=name, exclude=campaign.pk):
        raise CampaignInputError(f"{campaign.team.name} already has a campaign called “{name}”.", field="name")
    try:
        with transaction.atomic():
            for field, value in values.items():
                setattr(campaign, field, value)
            campaign.save(update_fields=[*values, "updated_at"])
            if agents is not None:
                campaign.agents.set(agents)
            if clear_contact_list:
                campaign.contacts.clear()
    except IntegrityError:
        raise CampaignInputError(
            f"{campaign.team.name} already has a campaign called “{name}”.", field="name"
        ) from None
    return campaign
