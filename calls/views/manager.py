"""Manager pages: the triage queue of adopted recordings with its assign action, and the live list.

Only managers and admins reach them; anyone else signed in gets the ordinary 404 page, as for a page that
does not exist (an agent has no use for knowing these are here). The reads live in ``calls.manager_selectors``,
the one write in ``calls.services.call_session_update``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from calls.manager_selectors import adoption_problems, assignable_users, live_sessions, triage_sessions
from calls.models import CallSession
from calls.selectors import SessionNotFound, get_call_session_for_user
from calls.services import NotAllowed, SessionInputError, call_session_update
from crm.models import User

TRIAGE_PAGE_SIZE = 50
LIVE_REFRESH_SECONDS = 10


def _manager(request: HttpRequest) -> User:
    """The signed-in manager or admin; anyone else gets the 404 page."""
    user = request.user
    if not isinstance(user, User) or not (user.is_manager or user.is_admin):
        raise Http404("Page not found.")
    return user


def clock(ms: int | None) -> str:
    """A call's length as a player shows it: 0:42, 12:05, 1:02:03; "—" when unknown."""
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def elapsed(span: timedelta) -> str:
    """How long, to the second while it is short: "45 s", "3 min 12 s", "2 h 05 min"; "10 min", "4 h" when round."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02} min" if minutes else f"{hours} h"


@dataclass(frozen=True)
class TriageRow:
    session: CallSession
    duration: str
    problems: list[str]


@login_required
@require_GET
def call_triage(request: HttpRequest) -> HttpResponse:
    user = _manager(request)
    page = Paginator(triage_sessions(user=user), TRIAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        TriageRow(session=session, duration=clock(session.duration_ms), problems=adoption_problems(session=session))
        for session in page.object_list
    ]
    # Nothing to assign means no query for the people to assign to.
    assignees = assignable_users(user=user) if rows else []
    return render(request, "calls/triage.html", {"page": page, "rows": rows, "assignees": assignees})


@dataclass(frozen=True)
class LiveRowView:
    session: CallSession
    running: str
    quiet: str
    stale: bool


@login_required
@require_GET
def call_live(request: HttpRequest) -> HttpResponse:
    user = _manager(request)
    now = timezone.now()
    live = live_sessions(user=user, now=now)
    rows = [
        LiveRowView(session=row.session, running=elapsed(row.running), quiet=elapsed(row.quiet), stale=row.stale)
        for row in live.rows
    ]
    context = {
        "rows": rows,
        "more": live.more,
        "quiet_after": elapsed(live.quiet_after),
        "expire_after": elapsed(live.expire_after),
        "stale_count": sum(row.stale for row in rows),
        "now": now,
        "refresh_seconds": LIVE_REFRESH_SECONDS,
    }
    response = render(request, "calls/live.html", context)
    # The page refreshes itself; a cached copy would show calls that ended long ago.
    response["Cache-Control"] = "no-store"
    return response


def _back(request: HttpRequest) -> HttpResponseRedirect:
    """Back to the page the form was on (a local URL only), else the triage list."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("call-triage")
    return HttpResponseRedirect(target)


@login_required
@require_POST
def call_assign(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _manager(request)
    username = request.POST.get("owner", "").strip()
    if not username:
        messages.error(request, "Choose someone to assign the call to.")
        return _back(request)
    try:
        session = get_call_session_for_user(user=user, session_id=session_id)
    except SessionNotFound:
        # Assigned and taken out of view meanwhile, or a stale form: say so on the page the form was on.
        messages.error(request, f"Call session {session_id[:40]} was not found; it may have been removed.")
        return _back(request)
    try:
        call_session_update(actor=user, session=session, changes={"owner": username})
    except (SessionInputError, NotAllowed) as exc:
        messages.error(request, str(exc))
        return _back(request)
    owner = session.owner
    name = (owner.get_full_name() or owner.username) if owner is not None else username
    messages.success(request, f"Call {str(session.pk)[:8]} assigned to {name}.")
    return _back(request)
