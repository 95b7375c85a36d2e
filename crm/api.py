"""API-wide pieces: the root, and one error shape for every failure: ``{"detail": ..., "code": ...}``."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from crm.models import User


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with errors reshaped so every client can read ``detail`` and ``code``."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "code": "invalid", "errors": exc.detail}
    else:
        detail = exc.detail
        code = getattr(detail, "code", None) or exc.default_code
        response.data = {"detail": str(detail), "code": code}
    return response


class CallbookApiView(APIView):
    """What every Callbook API view shares: the signed-in user as ``actor``, and strict input parsing."""

    @property
    def actor(self) -> User:
        user = self.request.user
        if not isinstance(user, User):
            raise exceptions.NotAuthenticated()
        return user

    def parse(
        self,
        serializer_class: type[serializers.Serializer[Any]],
        data: Any,
        *,
        also_allowed: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        # A field the client sends that we would not store is an error, not something to drop in silence.
        unknown = set(data.keys()) - set(serializer.fields) - also_allowed if hasattr(data, "keys") else set()
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown or read-only field."] for name in sorted(unknown)})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class ApiRootView(APIView):
    """Entry point of the Callbook REST API: says who you are and where to go next."""

    @extend_schema(
        responses=inline_serializer(
            "ApiRoot",
            {
                "user": serializers.CharField(),
                "role": serializers.CharField(),
                "schema": serializers.URLField(),
                "docs": serializers.URLField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "user": user.get_username(),
                "role": getattr(user, "role", ""),
                "schema": reverse("api-schema", request=request),
                "docs": reverse("api-docs", request=request),
            }
        )
