"""The calls list (``/calls/``) and its CSV export (``/calls/export.csv``): same filters, same access rule."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from calls.forms import CallFilterForm
from calls.reports.call_list import call_export_rows, call_list_page, export_filename
from crm.csv_export import csv_lines
from crm.models import User


def _user(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


@login_required
@require_safe
def call_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = CallFilterForm(request.GET, user=user)
    # Invalid filters list nothing: the form shows what is wrong, in place.
    page = call_list_page(user=user, query=form.list_query()) if form.is_valid() else None
    return render(request, "calls/list.html", {"form": form, "page": page})


@login_required
@require_safe
def call_export(request: HttpRequest) -> HttpResponseBase:
    user = _user(request)
    form = CallFilterForm(request.GET, user=user)
    if not form.is_valid():
        # The list page shows the same filters with their errors in place.
        return redirect(f"{reverse('call-list')}?{request.GET.urlencode()}")
    rows = call_export_rows(user=user, query=form.list_query())
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename()}"'
    response["Cache-Control"] = "no-store"
    return response
