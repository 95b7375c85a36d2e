"""API-wide pieces: the root, and one error shape for every failure: ``{"detail": ..., "code": ...}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.pagination import CursorPagination
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


# Query parameters every paginated list takes besides its own filters.
PAGINATION_PARAMS = frozenset({"cursor", "page_size", "format"})


class Pagination(CursorPagination):
    """Keyset pages of the API's lists: no COUNT(*), no OFFSET; each list sets its ``ordering``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CallbookApiView(APIView):
    """What every Callbook API view shares: the signed-in user as ``actor``, strict input parsing, and pages of a
    list through the view's ``pagination_class`` (the same class the schema documents the answer with)."""

    pagination_class: type[CursorPagination] | None = None

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

    def paginated(self, queryset: QuerySet[Any], serializer: type[serializers.BaseSerializer[Any]]) -> Response:
        if self.pagination_class is None:
            raise ImproperlyConfigured(f"{type(self).__name__} pages a list but declares no pagination_class.")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        data = serializer(page or [], many=True, context={"request": self.request}).data
        response: Response = paginator.get_paginated_response(data)
        return response


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
