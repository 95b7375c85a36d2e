"""The campaign pages: the list (``/campaigns/``), a campaign (``/campaigns/<id>/``), its create and edit forms and
its Launch button.

Access goes through ``campaigns.access`` alone: a campaign someone may not see answers the same helpful 404 page
as one that does not exist; an agent of the team sees it read-only, and a POST they could not have made from the
page answers 403 with the reason. Writes go through ``campaigns.campaign_services`` and ``campaigns.runs``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from campaigns.access import (
    CampaignNotFound,
    NotAllowed,
    can_control_campaign,
    get_campaign_for_control,
    get_campaign_for_user,
    teams_managed_by,
)
from campaigns.campaign_services import CampaignInputError, campaign_create, campaign_update
from campaigns.forms import SIMULATOR_ODDS, WEEKDAYS, CampaignForm, as_dict, odds_as_percentages
from campaigns.models import Campaign
from campaigns.page_selectors import (
    RUNS_SHOWN,
    campaign_active_run,
    campaign_audience_counts,
    campaign_list,
    percent,
    run_state_label,
)
from campaigns.run_selectors import campaign_runs
from campaigns.runs import RunError, run_launch
from crm.models import User

SHOWN_ID_CHARS = 100


def user_of(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def not_found_page(request: HttpRequest, *, what: str, object_id: str) -> HttpResponse:
    """The campaigns' own 404 page (``what``: campaign or run): says what is missing and where to go next."""
    context = {
        "what": what,
        "shown_id": object_id[:SHOWN_ID_CHARS],
        "id_truncated": len(object_id) > SHOWN_ID_CHARS,
    }
    response = render(request, "campaigns/not_found.html", context, status=404)
    response["Cache-Control"] = "no-store"
    return response


def not_allowed_page(request: HttpRequest, *, reason: str, back_url: str, back_label: str) -> HttpResponse:
    """403 for someone who may look but not act (an agent pressing a manager's button)."""
    context = {"reason": reason, "back_url": back_url, "back_label": back_label}
    return render(request, "campaigns/not_allowed.html", context, status=403)


def campaign_url(campaign: Campaign | int | str) -> str:
    return reverse("campaign-detail", kwargs={"campaign_id": str(getattr(campaign, "pk", campaign))})


# --- The list --------------------------------------------------------------------------------------------------


@login_required
@require_safe
def campaign_list_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    campaigns = list(campaign_list(user=user))
    rows = [
        {
            "campaign": campaign,
            "run_label": run_state_label(campaign.last_run_state),  # type: ignore[attr-defined]
            "run_percent": percent(campaign.last_run_done or 0, campaign.last_run_total or 0),  # type: ignore[attr-defined]
        }
        for campaign in campaigns
    ]
    can_create = teams_managed_by(user=user).exists()
    return render(request, "campaigns/list.html", {"rows": rows, "can_create": can_create})


# --- A campaign --------------------------------------------------------------------------------------------------


@login_required
@require_safe
def campaign_detail(request: HttpRequest, campaign_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        campaign = get_campaign_for_user(user=user, campaign_id=campaign_id)
    except CampaignNotFound:
        return not_found_page(request, what="campaign", object_id=campaign_id)
    settings = campaign.dialer_settings or {}
    odds = as_dict(settings.get("odds"))
    context = {
        "campaign": campaign,
        "can_control": can_control_campaign(user=user, campaign=campaign),
        "audience": campaign_audience_counts(campaign=campaign),
        "runs": list(campaign_runs(campaign_id=campaign.pk)[:RUNS_SHOWN]),
        "active_run": campaign_active_run(campaign=campaign),
        "agents": list(campaign.agents.order_by("first_name", "username")),
        "days": [label for day, label in WEEKDAYS if not campaign.window_days or day in campaign.window_days],
        "every_day": not campaign.window_days or sorted(campaign.window_days) == [d for d, _ in WEEKDAYS],
        "settings": settings,
        "odds": [
            (label, share) for (_, _, label), share in zip(SIMULATOR_ODDS, odds_as_percentages(odds), strict=True)
        ],
        "breaker_percent": round(campaign.breaker_failure_rate * 100),
    }
    response = render(request, "campaigns/detail.html", context)
    response["Cache-Control"] = "private, no-cache"
    return response


@login_required
@require_POST
def campaign_launch(request: HttpRequest, campaign_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        campaign = get_campaign_for_control(user=user, campaign_id=campaign_id)
    except CampaignNotFound:
        return not_found_page(request, what="campaign", object_id=campaign_id)
    except NotAllowed as exc:
        return not_allowed_page(
            request, reason=str(exc), back_url=campaign_url(campaign_id), back_label="Back to the campaign"
        )
    try:
        run = run_launch(actor=user, campaign=campaign)
    except RunError as exc:
        messages.error(request, f"The run was not launched: {exc.detail}")
        return HttpResponseRedirect(campaign_url(campaign))
    messages.success(request, f"Run {run.pk} launched: {run.total} contact{'s' if run.total != 1 else ''} to call.")
    return HttpResponseRedirect(reverse("run-detail", kwargs={"run_id": str(run.pk)}))


# --- Create and edit -------------------------------------------------------------------------------------------


def _save_errors(form: CampaignForm, exc: CampaignInputError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.detail)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def campaign_create_view(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    teams = list(teams_managed_by(user=user).order_by("name"))
    if not teams:
        reason = (
            "Only a team's manager or an admin can create campaigns."
            if not user.is_manager
            else "You do not manage a team yet: an admin can make you the manager of one."
        )
        return not_allowed_page(
            request, reason=reason, back_url=reverse("campaign-list"), back_label="Back to campaigns"
        )
    form = CampaignForm(request.POST if request.method == "POST" else None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = campaign_create(
                actor=user,
                team=form.selected_team(),
                values=form.campaign_values(),
                agents=list(form.cleaned_data["agents"]),
            )
        except CampaignInputError as exc:
            _save_errors(form, exc)
        except NotAllowed as exc:
            form.add_error("team", str(exc))
        else:
            messages.success(request, f"Campaign “{campaign.name}” created.")
            return HttpResponseRedirect(campaign_url(campaign))
    return render(request, "campaigns/form.html", {"form": form, "campaign": None})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def campaign_edit(request: HttpRequest, campaign_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        campaign = get_campaign_for_control(user=user, campaign_id=campaign_id)
    except CampaignNotFound:
        return not_found_page(request, what="campaign", object_id=campaign_id)
    except NotAllowed as exc:
        return not_allowed_page(
            request, reason=str(exc), back_url=campaign_url(campaign_id), back_label="Back to the campaign"
        )
    form = CampaignForm(
        request.POST if request.method == "POST" else None,
        campaign=campaign,
        explicit_contacts=campaign.contacts.count(),
    )
    if request.method == "POST" and form.is_valid():
        try:
            campaign_update(
                actor=user,
                campaign=campaign,
                values=form.campaign_values(),
                agents=list(form.cleaned_data["agents"]),
                clear_contact_list=form.clears_contact_list(),
            )
        except CampaignInputError as exc:
            _save_errors(form, exc)
        else:
            messages.success(request, "Campaign saved.")
            return HttpResponseRedirect(campaign_url(campaign))
    return render(request, "campaigns/form.html", {"form": form, "campaign": campaign})
