"""The run page (``/runs/<id>/``), its live JSON (``/runs/<id>/progress.json``), its pause, resume and cancel
buttons and its CSV export.

The page renders everything server-side; ``static/js/run.js`` polls the JSON every few seconds for the
counters and the new log lines, and re-reads the page's calls, controls and report when they change, so a
manager watches a run to its end without reloading. Access goes through ``campaigns.access`` (404 for outsiders,
403 with the reason for a teammate pressing a manager's button); transitions through ``campaigns.runs``, whose
``RunError`` says why one is impossible now.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST, require_safe

from campaigns.access import NotAllowed, RunNotFound, can_control_campaign, get_run_for_control, get_run_for_user
from campaigns.models import Run, RunLog
from campaigns.page_selectors import (
    export_filename,
    run_calls_page,
    run_export_rows,
    run_report_view,
)
from campaigns.run_selectors import run_log_entries, run_progress
from campaigns.runs import RunError, run_cancel, run_pause, run_resume
from campaigns.views.campaigns import not_allowed_page, not_found_page, user_of
from crm.csv_export import csv_lines
from crm.models import User

# How often the page asks for progress while the run is active, and how many log lines it shows.
POLL_MS = 2000
LOG_LINES = 100


def run_url(run: Run | int | str) -> str:
    return reverse("run-detail", kwargs={"run_id": str(getattr(run, "pk", run))})


def log_json(entry: RunLog) -> dict[str, object]:
    return {
        "id": entry.pk,
        "at": entry.at.isoformat(),
        # Shown as the page shows the lines it rendered: in the server's time zone.
        "time": timezone.localtime(entry.at).strftime("%H:%M:%S"),
        "level": entry.level,
        "kind": entry.kind,
        "message": entry.message,
        "actor": entry.actor.get_username() if entry.actor is not None else None,
    }


# --- The page ------------------------------------------------------------------------------------------------


@login_required
@require_safe
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    user = user_of(request)
    try:
        run = get_run_for_user(user=user, run_id=run_id)
    except RunNotFound:
        return not_found_page(request, what="run", object_id=run_id)
    log = run_log_entries(run=run, limit=LOG_LINES)
    progress = run_progress(run=run)
    context = {
        "run": run,
        "campaign": run.campaign,
        "progress": progress,
        "eta": parse_datetime(progress["eta"]) if progress.get("eta") else None,
        "can_control": can_control_campaign(user=user, campaign=run.campaign),
        "calls": run_calls_page(run=run, page=request.GET.get("page")),
        "log": list(reversed(log)),
        "last_log_id": log[-1].pk if log else 0,
        "report": None if run.is_active else run_report_view(run=run),
        "poll_ms": POLL_MS,
    }
    response = render(request, "campaigns/run.html", context)
    # Permission-checked and changing every second while the run is active: never from a shared cache.
    response["Cache-Control"] = "private, no-cache"
    return response


@require_safe
def run_progress_json(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run page's live data: the progress, and the log lines written after ``?after=<log id>``."""
    user = request.user
    if not isinstance(user, User):
        return _json({"detail": "Your session has ended: sign in again.", "code": "not_authenticated"}, status=401)
    try:
        run = get_run_for_user(user=user, run_id=run_id)
    except RunNotFound:
        return _json({"detail": "Run not found.", "code": "run_not_found"}, status=404)
    raw_after = request.GET.get("after", "")
    after: int | None = None
    if raw_after:
        try:
            after = int(raw_after)
        except ValueError:
            return _json({"detail": "after must be a log entry id.", "code": "invalid_after"}, status=400)
        if after < 0:
            return _json({"detail": "after must be a log entry id.", "code": "invalid_after"}, status=400)
    entries = run_log_entries(run=run, after_id=after, limit=LOG_LINES)
    progress = run_progress(run=run)
    eta = parse_datetime(progress["eta"]) if progress.get("eta") else None
    return _json(
        {
            "progress": progress,
            "eta_time": timezone.localtime(eta).strftime("%H:%M") if eta is not None else None,
            "log": [log_json(entry) for entry in entries],
            "last_log_id": entries[-1].pk if entries else after or 0,
        }
    )


def _json(body: dict[str, object], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


# --- Pause, resume, cancel -------------------------------------------------------------------------------------


def _control(request: HttpRequest, run_id: str, *, action: Callable[[User, Run], Run], done: str) -> HttpResponse:
    user = user_of(request)
    try:
        run = get_run_for_control(user=user, run_id=run_id)
    except RunNotFound:
        return not_found_page(request, what="run", object_id=run_id)
    except NotAllowed as exc:
        return not_allowed_page(request, reason=str(exc), back_url=run_url(run_id), back_label="Back to the run")
    try:
        action(user, run)
    except RunError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done)
    return HttpResponseRedirect(run_url(run))


@login_required
@require_POST
def run_pause_view(request: HttpRequest, run_id: str) -> HttpResponse:
    reason = request.POST.get("reason", "")[:200]
    return _control(
        request,
        run_id,
        action=lambda user, run: run_pause(actor=user, run=run, reason=reason),
        done="Run paused: no new calls are placed; calls in progress go on.",
    )


@login_required
@require_POST
def run_resume_view(request: HttpRequest, run_id: str) -> HttpResponse:
    return _control(request, run_id, action=lambda user, run: run_resume(actor=user, run=run), done="Run resumed.")


@login_required
@require_POST
def run_cancel_view(request: HttpRequest, run_id: str) -> HttpResponse:
    if request.POST.get("confirm") != "yes":
        # Without the page's script (which asks first), the button lands here: ask before canceling.
        user = user_of(request)
        try:
            run = get_run_for_control(user=user, run_id=run_id)
        except RunNotFound:
            return not_found_page(request, what="run", object_id=run_id)
        except NotAllowed as exc:
            return not_allowed_page(request, reason=str(exc), back_url=run_url(run_id), back_label="Back to the run")
        return render(request, "campaigns/run_cancel_confirm.html", {"run": run, "campaign": run.campaign})
    return _control(
        request,
        run_id,
        action=lambda user, run: run_cancel(actor=user, run=run),
        done="Run canceled: nobody else will be called; calls in progress end on their own.",
    )


# --- CSV ---------------------------------------------------------------------------------------------------------


@login_required
@require_safe
def run_export(request: HttpRequest, run_id: str) -> HttpResponseBase:
    user = user_of(request)
    try:
        run = get_run_for_user(user=user, run_id=run_id)
    except RunNotFound:
        return not_found_page(request, what="run", object_id=run_id)
    response = StreamingHttpResponse(csv_lines(run_export_rows(run=run)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export_filename(run=run)}"'
    response["Cache-Control"] = "no-store"
    return response
