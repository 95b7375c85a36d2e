"""Reads for users, teams and API tokens."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from crm.models import ApiToken, User


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def get_api_token_for_user(*, user: User, token_id: int) -> ApiToken:
    """A user manages only their own tokens; anyone else's answers 404."""
    try:
        return ApiToken.objects.get(pk=token_id, user=user)
    except ApiToken.DoesNotExist:
        raise Http404("API token not found.") from None


def team_members(*, user: User) -> QuerySet[User]:
    if user.team_id is None:
        return User.objects.none()
    return User.objects.filter(team_id=user.team_id, is_active=True).order_by("username")
