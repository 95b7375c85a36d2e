"""Who may see and who may control campaigns, runs, contacts and do-not-call lists.

Every page and endpoint of the app goes through these helpers, so one rule decides:

- admins see and control everything;
- a manager sees and controls the campaigns, runs, contacts, imports and do-not-call list of the teams they
  manage (``Team.manager``), and of campaigns they are the named manager of;
- an agent sees their own team's campaigns and runs read-only, and their team's contacts read-only;
- integrations and everyone else see nothing: 404, never 403, never a hint that the id exists.
"""

from __future__ import annotations

import re

from django.db.models import Q, QuerySet

from campaigns.models import Campaign, Contact, ContactImport, DoNotCall, Run
from crm.models import Team, User


class CampaignNotFound(Exception):
    """Missing, or not the user's to see: callers answer 404 alike."""


class RunNotFound(Exception):
    """Missing, or not the user's to see: callers answer 404 alike."""


class ContactNotFound(Exception):
    """Missing, or not the user's to see: callers answer 404 alike."""


class ImportNotFound(Exception):
    """Missing, or not the user's to see: callers answer 404 alike."""


class NotAllowed(Exception):
    """The user may see the object but not change it (an agent pressing pause): 403 with a reason."""


# The one spelling of an id: ASCII digits, no sign, padding or leading zero. int() would also take " 7", "+7",
# "0_7" and any Unicode digits (fullwidth "7"), the same row under endless names; a bigint has at most 19 digits.
_ID_RE = re.compile(r"\A(?:0|[1-9][0-9]{0,18})\Z")


def parse_object_id(raw: int | str) -> int | None:
    """The id an URL names, or None when it is not an id's canonical spelling (callers answer 404)."""
    if isinstance(raw, int):
        return raw if 0 <= raw < 2**63 else None
    if not _ID_RE.match(raw):
        return None
    value = int(raw)
    return value if value < 2**63 else None


def managed_team_ids(*, user: User) -> QuerySet[Team, int]:
    return Team.objects.filter(manager=user).values_list("id", flat=True)


def _campaigns_q(*, user: User) -> Q | None:
    """The filter of campaigns ``user`` may see; ``None`` means all of them."""
    if user.is_admin:
        return None
    if user.is_manager:
        return Q(team_id__in=managed_team_ids(user=user)) | Q(manager=user)
    if user.is_integration or user.team_id is None:
        return Q(pk__in=[])
    return Q(team_id=user.team_id)


def visible_campaigns(*, user: User) -> QuerySet[Campaign]:
    condition = _campaigns_q(user=user)
    queryset = Campaign.objects.select_related("team", "manager")
    return queryset if condition is None else queryset.filter(condition)


def can_control_campaign(*, user: User, campaign: Campaign) -> bool:
    """Launch, pause, resume, cancel, edit: the campaign's team manager, its named manager, or an admin."""
    if user.is_admin:
        return True
    if not user.is_manager:
        return False
    return campaign.manager_id == user.pk or Team.objects.filter(pk=campaign.team_id, manager=user).exists()


def get_campaign_for_user(*, user: User, campaign_id: int | str) -> Campaign:
    pk = parse_object_id(campaign_id)
    if pk is None:
        raise CampaignNotFound(str(campaign_id)[:100])
    try:
        return visible_campaigns(user=user).get(pk=pk)
    except (Campaign.DoesNotExist, ValueError, TypeError, OverflowError):
        raise CampaignNotFound(str(campaign_id)[:100]) from None


def get_campaign_for_control(*, user: User, campaign_id: int | str) -> Campaign:
    """404 for outsiders, NotAllowed (403) for those who may only look."""
    campaign = get_campaign_for_user(user=user, campaign_id=campaign_id)
    if not can_control_campaign(user=user, campaign=campaign):
        raise NotAllowed("Only the campaign's team manager or an admin may do this.")
    return campaign


def visible_runs(*, user: User) -> QuerySet[Run]:
    condition = _campaigns_q(user=user)
    queryset = Run.objects.select_related("campaign", "campaign__team", "launched_by")
    if condition is None:
        return queryset
    return queryset.filter(campaign__in=Campaign.objects.filter(condition).values("pk"))


def get_run_for_user(*, user: User, run_id: int | str) -> Run:
    pk = parse_object_id(run_id)
    if pk is None:
        raise RunNotFound(str(run_id)[:100])
    try:
        return visible_runs(user=user).get(pk=pk)
    except (Run.DoesNotExist, ValueError, TypeError, OverflowError):
        raise RunNotFound(str(run_id)[:100]) from None


def get_run_for_control(*, user: User, run_id: int | str) -> Run:
    run = get_run_for_user(user=user, run_id=run_id)
    if not can_control_campaign(user=user, campaign=run.campaign):
        raise NotAllowed("Only the campaign's team manager or an admin may control its runs.")
    return run


def _team_q(*, user: User, field: str = "team_id") -> Q | None:
    """Team-owned rows (contacts, imports, do-not-call entries) ``user`` may see; ``None`` means all."""
    if user.is_admin:
        return None
    if user.is_manager:
        return Q(**{f"{field}__in": managed_team_ids(user=user)})
    if user.is_integration or user.team_id is None:
        return Q(pk__in=[])
    return Q(**{field: user.team_id})


def can_manage_team(*, user: User, team_id: int | None) -> bool:
    """Import contacts, edit them, keep the do-not-call list: the team's manager or an admin."""
    if user.is_admin:
        return True
    return user.is_manager and team_id is not None and Team.objects.filter(pk=team_id, manager=user).exists()


def visible_contacts(*, user: User) -> QuerySet[Contact]:
    condition = _team_q(user=user)
    return Contact.objects.all() if condition is None else Contact.objects.filter(condition)


def get_contact_for_user(*, user: User, contact_id: int | str) -> Contact:
    pk = parse_object_id(contact_id)
    if pk is None:
        raise ContactNotFound(str(contact_id)[:100])
    try:
        return visible_contacts(user=user).get(pk=pk)
    except (Contact.DoesNotExist, ValueError, TypeError, OverflowError):
        raise ContactNotFound(str(contact_id)[:100]) from None


def visible_imports(*, user: User) -> QuerySet[ContactImport]:
    condition = _team_q(user=user)
    queryset = ContactImport.objects.select_related("team", "uploaded_by")
    return queryset if condition is None else queryset.filter(condition)


def get_import_for_user(*, user: User, import_id: int | str) -> ContactImport:
    pk = parse_object_id(import_id)
    if pk is None:
        raise ImportNotFound(str(import_id)[:100])
    try:
        return visible_imports(user=user).get(pk=pk)
    except (ContactImport.DoesNotExist, ValueError, TypeError, OverflowError):
        raise ImportNotFound(str(import_id)[:100]) from None


def visible_do_not_call(*, user: User) -> QuerySet[DoNotCall]:
    condition = _team_q(user=user)
    return DoNotCall.objects.all() if condition is None else DoNotCall.objects.filter(condition)


def teams_managed_by(*, user: User) -> QuerySet[Team]:
    """The teams whose contacts and campaigns ``user`` may change (all of them for admins)."""
    if user.is_admin:
        return Team.objects.all()
    if user.is_manager:
        return Team.objects.filter(manager=user)
    return Team.objects.none()
