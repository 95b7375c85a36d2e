"""REST endpoints for campaigns and their outbound runs under /api/crm/.

Who may do what is decided by campaigns.access: the campaign's team manager (or its named manager) and admins
write and control; agents of the team read (403 with the reason when they try to control); everyone else,
integrations included, gets 404 as if the campaign or run did not exist.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from calls.apis import CallsApiView
from campaigns import serializers as s
from campaigns.access import (
    CampaignNotFound,
    NotAllowed,
    RunNotFound,
    get_campaign_for_control,
    get_campaign_for_user,
    get_run_for_control,
    get_run_for_user,
    teams_managed_by,
    visible_campaigns,
)
from campaigns.campaign_services import CampaignInputError, campaign_create, campaign_update
from campaigns.models import Campaign, Run
from campaigns.run_selectors import campaign_runs, run_dials, run_log
from campaigns.runs import RunError, campaign_contacts_set, run_cancel, run_launch, run_pause, run_resume
from crm.api import PAGINATION_PARAMS, Pagination
from crm.models import Team, User


class CampaignNotFoundError(exceptions.NotFound):
    default_detail = "Campaign not found."
    default_code = "campaign_not_found"


class RunNotFoundError(exceptions.NotFound):
    default_detail = "Run not found."
    default_code = "run_not_found"


ERRORS = {
    400: OpenApiResponse(description="Invalid input (an unknown parameter or field): `{detail, code, errors}`."),
    401: OpenApiResponse(description="Missing or invalid token."),
    404: OpenApiResponse(description="No such campaign/run, or not yours to see: `{detail, code}`."),
}
CONTROL_ERRORS = {
    **ERRORS,
    403: OpenApiResponse(description="You may see it but not control it (agents of the team): `{detail, code}`."),
    409: OpenApiResponse(description="Not possible in the run's or campaign's current state: `{detail, code}`."),
}
LOCATION = [OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[201])]


class CampaignPagination(Pagination):
    ordering = ("-created_at", "-id")


class RunPagination(Pagination):
    ordering = ("-id",)


class DialPagination(Pagination):
    ordering = ("-dialed_at", "-id")


class LogPagination(Pagination):
    ordering = ("id",)
    page_size = 100
    max_page_size = 500


class CampaignsApiView(CallsApiView):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, CampaignNotFound):
            exc = CampaignNotFoundError()
        elif isinstance(exc, RunNotFound):
            exc = RunNotFoundError()
        elif isinstance(exc, NotAllowed):
            exc = exceptions.PermissionDenied(str(exc), code="not_allowed")
        elif isinstance(exc, RunError):
            error = exceptions.APIException(exc.detail, code=exc.code)
            error.status_code = exc.status
            exc = error
        elif isinstance(exc, CampaignInputError):
            exc = exceptions.ValidationError({exc.field or "non_field_errors": [exc.detail]})
        return super().handle_exception(exc)

    def run_response(self, run: Run, *, status: int = 200) -> Response:
        return Response(s.RunOutputSerializer(run, context={"request": self.request}).data, status=status)


def _campaign_response(view: CampaignsApiView, campaign: Campaign, *, status: int = 200) -> Response:
    fresh = _campaigns_queryset(visible_campaigns(user=view.actor)).get(pk=campaign.pk)
    return Response(s.CampaignOutputSerializer(fresh, context={"request": view.request}).data, status=status)


def _campaigns_queryset(queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
    return queryset.prefetch_related("agents").annotate(contacts_count=Count("contacts", distinct=True))


def _team_for_create(*, actor: User, team_id: int | None) -> Team:
    managed = teams_managed_by(user=actor)
    if not (actor.is_admin or actor.is_manager):
        raise NotAllowed("Only managers and admins create campaigns.")
    if team_id is None:
        teams = list(managed[:2])
        if len(teams) != 1:
            raise exceptions.ValidationError({"team": ["Give the id of the team the campaign belongs to."]})
        return teams[0]
    team = managed.filter(pk=team_id).first()
    if team is None:
        raise exceptions.ValidationError({"team": ["Not a team you manage."]})
    return team


def _agents(*, team: Team, usernames: list[str]) -> list[User]:
    found = {user.username: user for user in User.objects.filter(username__in=usernames)}
    missing = [name for name in usernames if name not in found]
    if missing:
        raise exceptions.ValidationError({"agents": [f"No user named {', '.join(sorted(missing))}."]})
    return [found[name] for name in dict.fromkeys(usernames)]


class CampaignListCreateApi(CampaignsApiView):
    # Also what the schema generator reads to document the answer as a page, not a bare array.
    pagination_class = CampaignPagination

    @extend_schema(
        operation_id="campaigns_list",
        responses={200: s.CampaignOutputSerializer(many=True), **ERRORS},
        parameters=[OpenApiParameter("page_size", int, required=False)],
        description="The campaigns you may see: your teams' (managers), your own team's (agents), all (admins).",
    )
    def get(self, request: Request) -> Response:
        unknown = set(request.query_params) - PAGINATION_PARAMS
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown parameter."] for name in sorted(unknown)})
        queryset = _campaigns_queryset(visible_campaigns(user=self.actor))
        return self.paginated(queryset, s.CampaignOutputSerializer)

    @extend_schema(
        operation_id="campaigns_create",
        request=s.CampaignCreateInputSerializer,
        responses={201: s.CampaignOutputSerializer, 400: OpenApiResponse(description="Invalid input."), **ERRORS},
        parameters=LOCATION,
        description="Create a campaign in a team you manage (admins: any team). The dialer's settings are validated "
        "by its backend; a signing secret is write-only.",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(s.CampaignCreateInputSerializer, request.data)
        team = _team_for_create(actor=self.actor, team_id=data.pop("team", None))
        data = s.CampaignCreateInputSerializer().validate_against(data, None)
        agents = _agents(team=team, usernames=data.pop("agents", []))
        contact_ids = data.pop("contact_ids", None)
        campaign = campaign_create(actor=self.actor, team=team, values=data, agents=agents)
        if contact_ids:
            campaign_contacts_set(actor=self.actor, campaign=campaign, contact_ids=contact_ids)
        response = _campaign_response(self, campaign, status=201)
        response["Location"] = response.data["url"]
        return response


class CampaignDetailApi(CampaignsApiView):
    @extend_schema(operation_id="campaigns_retrieve", responses={200: s.CampaignOutputSerializer, **ERRORS})
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = get_campaign_for_user(user=self.actor, campaign_id=campaign_id)
        return _campaign_response(self, campaign)

    @extend_schema(
        operation_id="campaigns_partial_update",
        request=s.CampaignUpdateInputSerializer,
        responses={
            200: s.CampaignOutputSerializer,
            400: OpenApiResponse(description="Invalid input."),
            **CONTROL_ERRORS,
        },
        description="Change any subset of the settings. A run in progress keeps its targets; pacing, window, retry "
        "and breaker changes apply from its next scheduler tick.",
    )
    def patch(self, request: Request, campaign_id: str) -> Response:
        campaign = get_campaign_for_control(user=self.actor, campaign_id=campaign_id)
        data = self.parse(s.CampaignUpdateInputSerializer, request.data)
        if "team" in data:
            raise exceptions.ValidationError({"team": ["A campaign cannot move to another team."]})
        data = s.CampaignUpdateInputSerializer().validate_against(data, campaign)
        usernames = data.pop("agents", None)
        agents = _agents(team=campaign.team, usernames=usernames) if usernames is not None else None
        contact_ids = data.pop("contact_ids", None)
        campaign_update(actor=self.actor, campaign=campaign, values=data, agents=agents)
        if contact_ids is not None:
            campaign_contacts_set(actor=self.actor, campaign=campaign, contact_ids=contact_ids)
        return _campaign_response(self, campaign)


class CampaignRunsApi(CampaignsApiView):
    # Also what the schema generator reads to document the answer as a page, not a bare array.
    pagination_class = RunPagination

    @extend_schema(
        operation_id="campaigns_runs_list",
        responses={200: s.RunOutputSerializer(many=True), **ERRORS},
        description="The campaign's runs, newest first.",
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = get_campaign_for_user(user=self.actor, campaign_id=campaign_id)
        return self.paginated(campaign_runs(campaign_id=campaign.pk), s.RunOutputSerializer)

    @extend_schema(
        operation_id="campaigns_runs_launch",
        request=None,
        responses={
            201: s.RunOutputSerializer,
            400: OpenApiResponse(description="`no_contacts`, `invalid_dialer_settings`, `unknown_source`, ..."),
            **CONTROL_ERRORS,
        },
        parameters=LOCATION,
        description="Launch a run: the campaign's contacts are snapshotted as its targets and the scheduler starts. "
        "409 `run_active` while another run of the campaign is active, `calls_in_flight` while calls of a "
        "canceled run are still in progress, `campaign_archived`/`campaign_paused` for such campaigns.",
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = get_campaign_for_control(user=self.actor, campaign_id=campaign_id)
        run = run_launch(actor=self.actor, campaign=campaign)
        response = self.run_response(get_run_for_user(user=self.actor, run_id=run.pk), status=201)
        response["Location"] = response.data["url"]
        return response


class RunDetailApi(CampaignsApiView):
    @extend_schema(
        operation_id="runs_retrieve",
        responses={200: s.RunOutputSerializer, **ERRORS},
        description="The run's state, counters, percent done and estimated end: what the run page polls.",
    )
    def get(self, request: Request, run_id: str) -> Response:
        return self.run_response(get_run_for_user(user=self.actor, run_id=run_id))


class RunPauseApi(CampaignsApiView):
    @extend_schema(
        operation_id="runs_pause",
        request=s.RunPauseInputSerializer,
        responses={200: s.RunOutputSerializer, **CONTROL_ERRORS},
        description="Stop dialing new contacts; calls in progress go on. 409 `not_running` unless running.",
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = get_run_for_control(user=self.actor, run_id=run_id)
        data = self.parse(s.RunPauseInputSerializer, request.data)
        run_pause(actor=self.actor, run=run, reason=data.get("reason", ""))
        return self.run_response(get_run_for_user(user=self.actor, run_id=run.pk))


class RunResumeApi(CampaignsApiView):
    @extend_schema(
        operation_id="runs_resume",
        request=None,
        responses={200: s.RunOutputSerializer, **CONTROL_ERRORS},
        description="Continue a paused run. 409 `not_paused` unless paused.",
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = get_run_for_control(user=self.actor, run_id=run_id)
        run_resume(actor=self.actor, run=run)
        return self.run_response(get_run_for_user(user=self.actor, run_id=run.pk))


class RunCancelApi(CampaignsApiView):
    @extend_schema(
        operation_id="runs_cancel",
        request=None,
        responses={200: s.RunOutputSerializer, **CONTROL_ERRORS},
        description="Cancel now: waiting contacts are skipped, calls in progress end on their own (their outcomes "
        "are still recorded); `finished_at` is set when the last one has ended. 409 `run_finished` if already over.",
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = get_run_for_control(user=self.actor, run_id=run_id)
        run_cancel(actor=self.actor, run=run)
        return self.run_response(get_run_for_user(user=self.actor, run_id=run.pk))


class RunDialsApi(CampaignsApiView):
    # Also what the schema generator reads to document the answer as a page, not a bare array.
    pagination_class = DialPagination

    @extend_schema(
        operation_id="runs_dials_list",
        responses={200: s.DialOutputSerializer(many=True), **ERRORS},
        parameters=[OpenApiParameter("page_size", int, required=False)],
        description="The run's dial attempts, newest first, each with its contact and call session.",
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = get_run_for_user(user=self.actor, run_id=run_id)
        return self.paginated(run_dials(run=run), s.DialOutputSerializer)


class RunLogApi(CampaignsApiView):
    # Also what the schema generator reads to document the answer as a page, not a bare array.
    pagination_class = LogPagination

    @extend_schema(
        operation_id="runs_log_list",
        responses={200: s.RunLogOutputSerializer(many=True), **ERRORS},
        parameters=[OpenApiParameter("page_size", int, required=False)],
        description="What the scheduler (and people) decided for the run and why, oldest first.",
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = get_run_for_user(user=self.actor, run_id=run_id)
        return self.paginated(run_log(run=run), s.RunLogOutputSerializer)
