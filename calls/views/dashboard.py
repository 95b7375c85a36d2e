"""The dashboard (``/``): the user's calls over the last 7, 30 or 90 days, and who they are."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from calls.forms import DashboardForm
from calls.reports.dashboard import PERIODS, dashboard_page
from crm.models import User


def _user(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = DashboardForm(request.GET)
    # A period that is not offered shows its error and the default period.
    days = form.period()
    page = dashboard_page(user=user, days=days)
    return render(
        request, "calls/dashboard.html", {"form": form, "page": page, "stats": page.stats, "periods": PERIODS}
    )
