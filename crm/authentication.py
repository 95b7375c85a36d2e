"""``Authorization: Bearer <key>`` for REST consumers."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from crm.models import ApiToken, User
from crm.services import api_token_hash, api_token_touch


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: expected 'Bearer <token>'."))
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token: it must be ASCII.")) from None
        token = (
            ApiToken.objects.select_related("user", "user__integration")
            .filter(key_hash=api_token_hash(raw_key))
            .first()
        )
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The token's user is disabled."))
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
