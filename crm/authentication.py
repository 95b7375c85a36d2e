"""``Authorization: Bearer <key>`` for REST consumers."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from crm.models import ApiToken, User
from crm.services import api_token_hash, api_token_touch
from crm.throttling import api_auth_failure_record, api_auth_throttle_check


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        # An address that sent too many invalid tokens is refused before any lookup, a valid token included.
        lockout = api_auth_throttle_check(request=request)
        if lockout is not None:
            raise exceptions.Throttled(
                wait=lockout.retry_after, detail="Too many invalid API tokens from your address.", code="throttled"
            )
        if len(parts) != 2:
            raise self._failed(request, _("Invalid Authorization header: expected 'Bearer <token>'."))
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise self._failed(request, _("Invalid token: it must be ASCII.")) from None
        token = (
            ApiToken.objects.select_related("user", "user__integration")
            .filter(key_hash=api_token_hash(raw_key))
            .first()
        )
        if token is None or not token.is_active:
            raise self._failed(request, _("Invalid, expired or revoked token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The token's user is disabled."))
        api_token_touch(token=token)
        return token.user, token

    def _failed(self, request: Request, detail: StrOrPromise) -> exceptions.AuthenticationFailed:
        api_auth_failure_record(request=request)
        return exceptions.AuthenticationFailed(detail)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
