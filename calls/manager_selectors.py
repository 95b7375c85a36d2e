"""Reads behind the manager pages: the triage queue of adopted recordings nobody owns yet, the people a manager
may hand them to, and the sessions that are live right now.

Every query starts from ``visible_sessions``, the one access rule, so a manager's triage and live lists hold
exactly what their call list would: their teams' sessions, their own, and the unassigned ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from calls.models import CallSession
from calls.selectors import visible_sessions
from calls.states import ACTIVE
from crm.models import Team, User

# A live session with no event for this long is flagged on the live page: a call normally reports ringing,
# answer and hang-up within minutes, so a long silence usually means the agent process died mid-call. The
# expiry job (SESSION_STALE_AFTER_MINUTES) abandons it much later; the flag tells a manager before that.
LIVE_QUIET_AFTER = timedelta(minutes=10)
# The live page shows at most this many sessions (the oldest first); it says how many more there are.
LIVE_LIMIT = 200


# --- Triage ------------------------------------------------------------------------------------------------


def triage_sessions(*, user: User) -> QuerySet[CallSession]:
    """Sessions that came from a recording or an integration's first event and still have no owner, newest
    first: the queue a manager works through by assigning each one."""
    unassigned_found = Q(owner__isnull=True) & (Q(origin=CallSession.Origin.ADOPTED) | Q(auto_created=True))
    return visible_sessions(user=user).filter(unassigned_found).select_related("team").order_by("-created_at", "-id")


def adoption_problems(*, session: CallSession) -> list[str]:
    """What adoption reported about the folder (a bad meta.json, an unknown owner), as display strings.

    ``metadata`` is free JSON that API clients may also write, so nothing about its shape is trusted.
    """
    metadata: Any = session.metadata
    adoption = metadata.get("adoption") if isinstance(metadata, dict) else None
    problems = adoption.get("problems") if isinstance(adoption, dict) else None
    if not isinstance(problems, list):
        return []
    return [str(problem)[:500] for problem in problems if problem]


@dataclass(frozen=True)
class AssigneeGroup:
    """The people of one team a session can be assigned to (``team`` is "" for people without a team)."""

    team: str
    users: list[User]


def assignable_users(*, user: User) -> list[AssigneeGroup]:
    """Whom ``user`` may assign a session to, grouped by team, in one query.

    Mirrors the rule of ``call_session_update``: admins assign to any active agent; managers to the active
    members of the teams they manage (themselves included). The service still decides on every POST.
    """
    people = User.objects.filter(is_active=True).select_related("team")
    if user.is_admin:
        people = people.filter(role=User.Role.AGENT)
    elif user.is_manager:
        managed = Team.objects.filter(manager=user).values("id")
        people = people.filter(Q(team_id__in=managed) | Q(pk=user.pk)).exclude(role=User.Role.INTEGRATION)
    else:
        return []
    ordered = people.order_by("team__name", "first_name", "last_name", "username")
    return [
        AssigneeGroup(team=team, users=list(members))
        for team, members in groupby(ordered, key=lambda u: u.team.name if u.team is not None else "")
    ]


# --- Live --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveRow:
    session: CallSession
    running: timedelta  # since the call started (or was created, before its first event)
    quiet: timedelta  # since the last event (or since it was created, when it has none)
    stale: bool


@dataclass(frozen=True)
class LiveSessions:
    rows: list[LiveRow]
    more: bool  # there are more than LIVE_LIMIT live sessions; the oldest are shown
    quiet_after: timedelta
    expire_after: timedelta


def live_sessions(*, user: User, now: datetime) -> LiveSessions:
    """The sessions ``user`` may see that are queued, ringing or in progress, the longest-running first."""
    queryset = (
        visible_sessions(user=user)
        .filter(status__in=sorted(ACTIVE))
        .select_related("owner", "team")
        .order_by("created_at", "id")
    )
    sessions = list(queryset[: LIVE_LIMIT + 1])
    rows = []
    for session in sessions[:LIVE_LIMIT]:
        started = session.started_at or session.created_at
        last_heard = session.last_event_at or session.created_at
        quiet = max(now - last_heard, timedelta(0))
        rows.append(
            LiveRow(
                session=session, running=max(now - started, timedelta(0)), quiet=quiet, stale=quiet >= LIVE_QUIET_AFTER
            )
        )
    return LiveSessions(
        rows=rows,
        more=len(sessions) > LIVE_LIMIT,
        quiet_after=LIVE_QUIET_AFTER,
        expire_after=timedelta(minutes=settings.SESSION_STALE_AFTER_MINUTES),
    )
