"""The call detail page family: ``/calls/<id>/``, its audio, its notes and the adoption of an orphaned recording.

Every route reaches the session through ``get_call_session_for_user`` (missing, malformed and not-yours all
raise ``SessionNotFound``, and all get the same helpful 404 page), writes through ``calls.services`` and
``calls.adoption``, and reads the rest through ``calls.detail_selectors``.

Adoption from this page:
- an id with no row whose folder in the recordings storage holds audio is an orphan. A manager or admin who
  may adopt it sees an "Adopt recording" button (POST ``/calls/<id>/adopt/``); an agent is told who can;
- viewing the page adopts it only when its meta.json names the viewer as the owner: as with the API's lazy
  adoption, nothing is left to decide. An orphan that names nobody is not adopted by a manager merely
  looking at it (that would make them its owner); they press the button.
"""

from __future__ import annotations

import logging
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from calls import storage
from calls.adoption import orphan_adopt
from calls.detail_selectors import (
    MissingSession,
    NoteView,
    detail_view,
    missing_session_lookup,
    note_of_session,
    playable_recording,
    progress_for_user,
    session_row_exists,
    status_tone,
)
from calls.models import CallSession
from calls.selectors import SessionNotFound, get_call_session_for_user, parse_session_id
from calls.services import NotAllowed, SessionInputError, note_create, note_update
from calls.streaming import RecordingFileMissing, storage_file_response
from crm.models import User

logger = logging.getLogger(__name__)

NOTE_MAX_CHARS = 10_000
# Seconds between the page's polls while a recording or transcript is being produced.
POLL_SECONDS = 10
SHOWN_ID_CHARS = 100


class NoteForm(forms.Form):
    body = forms.CharField(
        max_length=NOTE_MAX_CHARS,
        strip=True,
        error_messages={"required": "A note needs some text."},
    )


def _user(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def _detail_url(session_id: object, anchor: str = "") -> str:
    return reverse("call-detail", kwargs={"session_id": str(session_id)}) + (f"#{anchor}" if anchor else "")


# --- Pages that say what is missing ---------------------------------------------------------------------------


def _not_found_page(
    request: HttpRequest,
    *,
    session_id: str,
    problem: str = "session",
    missing: MissingSession | None = None,
    status: int = 404,
) -> HttpResponse:
    """The calls' own 404 (and 503) page. ``problem``: session, recording, recording_file, note or storage."""
    context = {
        "problem": problem,
        "session_id": session_id,
        "shown_id": session_id[:SHOWN_ID_CHARS],
        "id_truncated": len(session_id) > SHOWN_ID_CHARS,
        "missing": missing,
        "orphan": missing.orphan if missing is not None else None,
        "detail_url": _detail_url(session_id) if problem != "session" else "",
    }
    response = render(request, "calls/session_not_found.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _session_not_found(request: HttpRequest, *, user: User, session_id: str, adopt_on_view: bool) -> HttpResponse:
    """The 404 page of an id with no session the user may see; an orphan meta.json gives them is adopted."""
    missing = missing_session_lookup(user=user, session_id=session_id)
    orphan = missing.orphan
    if adopt_on_view and orphan is not None and orphan.assigned_to_viewer:
        session = _adopt(request, user=user, session_id=session_id)
        if session is not None:
            messages.success(request, "This recording was waiting in storage; it is now one of your calls.")
            return _render_detail(request, user=user, session=session)
    return _not_found_page(request, session_id=session_id, missing=missing)


def _adopt(request: HttpRequest, *, user: User, session_id: str) -> CallSession | None:
    """Adopt the orphan ``session_id`` for ``user``; the session as they may see it, or None."""
    parsed = parse_session_id(session_id)
    if parsed is None:
        return None
    try:
        orphan_adopt(session_id=parsed, requester=user)
    except Exception:  # the storage's own errors: the page explains, it does not fail
        logger.warning("could not adopt %s for %s: storage unavailable", parsed, user.username, exc_info=True)
        return None
    # Whether this request adopted it or another one did first, the access rule decides what is shown.
    try:
        return get_call_session_for_user(user=user, session_id=session_id, details=True)
    except SessionNotFound:
        return None


# --- The detail page ----------------------------------------------------------------------------------------


def _render_detail(
    request: HttpRequest,
    *,
    user: User,
    session: CallSession,
    note_form: NoteForm | None = None,
    edit_note_id: int | None = None,
    edit_form: NoteForm | None = None,
    status: int = 200,
) -> HttpResponse:
    view = detail_view(session=session, user=user)
    if edit_note_id is not None and edit_form is not None:
        for note in view.notes:
            if note.note.pk == edit_note_id:
                _carry_edit(note, edit_form)
    context = {
        "view": view,
        "session": session,
        "status_tone": status_tone(session.status),
        "note_form": note_form or NoteForm(),
        "poll_seconds": POLL_SECONDS,
        "user_can_rerun": user.is_manager or user.is_admin,
    }
    response = render(request, "calls/detail.html", context, status=status)
    # Permission-checked and changing while ingest runs: never from a shared cache.
    response["Cache-Control"] = "private, no-cache"
    return response


def _carry_edit(note: NoteView, form: NoteForm) -> None:
    note.edit_value = str(form.data.get("body", ""))
    note.edit_errors = [str(error) for error in form.errors.get("body", [])]


@login_required
@require_safe
def call_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    user = _user(request)
    if request.GET.get("progress") is not None:
        return _progress(user=user, session_id=session_id)
    try:
        session = get_call_session_for_user(user=user, session_id=session_id, details=True)
    except SessionNotFound:
        return _session_not_found(request, user=user, session_id=session_id, adopt_on_view=True)
    return _render_detail(request, user=user, session=session)


def _progress(*, user: User, session_id: str) -> JsonResponse:
    """The tiny JSON player.js polls while something is being produced; it reloads when the token changes."""
    token = progress_for_user(user=user, session_id=session_id)
    if token is None:
        response = JsonResponse({"detail": "Call session not found.", "code": "session_not_found"}, status=404)
    else:
        response = JsonResponse({"token": token})
    response["Cache-Control"] = "no-store"
    return response


# --- Audio --------------------------------------------------------------------------------------------------


@login_required
@require_safe
def call_audio(request: HttpRequest, session_id: str) -> HttpResponseBase:
    """The recording, streamed with Range support (or a redirect to a signed S3 URL), as the API serves it."""
    user = _user(request)
    try:
        session = get_call_session_for_user(user=user, session_id=session_id)
    except SessionNotFound:
        # No storage lookup and no adoption from here: that is the page's business.
        return _not_found_page(request, session_id=session_id)
    recording = playable_recording(session=session)
    if recording is None:
        return _not_found_page(request, session_id=session_id, problem="recording")
    try:
        return storage_file_response(
            request=request,
            storage=storage.recordings_storage(),
            name=recording.file,
            content_type=recording.content_type or "application/octet-stream",
            filename=f"{session.pk}.{recording.format or 'bin'}",
            etag=recording.sha256 or None,
        )
    except RecordingFileMissing:
        logger.warning("recording %s of session %s is missing from storage", recording.file, session.pk)
        return _not_found_page(request, session_id=session_id, problem="recording_file")
    except Exception:  # the storage's own errors (OSError, botocore, ...): a clean 503, not a 500
        logger.exception("recordings storage unavailable serving %s", recording.file)
        return _not_found_page(request, session_id=session_id, problem="storage", status=503)


# --- Notes --------------------------------------------------------------------------------------------------


@login_required
def call_note_add(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseRedirect(_detail_url(session_id, "notes"))
    user = _user(request)
    try:
        session = get_call_session_for_user(user=user, session_id=session_id)
    except SessionNotFound:
        return _not_found_page(request, session_id=session_id)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            note_create(author=user, session=session, body=form.cleaned_data["body"])
        except SessionInputError as exc:
            form.add_error("body", str(exc))
        else:
            messages.success(request, "Note added.")
            return HttpResponseRedirect(_detail_url(session.pk, "notes"))
    detailed = get_call_session_for_user(user=user, session_id=session_id, details=True)
    return _render_detail(request, user=user, session=detailed, note_form=form)


@login_required
def call_note_edit(request: HttpRequest, session_id: str, note_id: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseRedirect(_detail_url(session_id, "notes"))
    user = _user(request)
    try:
        session = get_call_session_for_user(user=user, session_id=session_id)
    except SessionNotFound:
        return _not_found_page(request, session_id=session_id)
    note = note_of_session(session=session, note_id=note_id)
    if note is None or note.author_id != user.pk:
        # The page offers the form to the author only; anyone else's POST learns no more than "not found".
        return _not_found_page(request, session_id=session_id, problem="note")
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            note_update(actor=user, note=note, body=form.cleaned_data["body"])
        except (NotAllowed, SessionInputError) as exc:
            form.add_error("body", str(exc))
        else:
            messages.success(request, "Note updated.")
            return HttpResponseRedirect(_detail_url(session.pk, f"note-{note.pk}"))
    detailed = get_call_session_for_user(user=user, session_id=session_id, details=True)
    return _render_detail(request, user=user, session=detailed, edit_note_id=note.pk, edit_form=form)


# --- Adopting an orphaned recording --------------------------------------------------------------------------


@login_required
def call_adopt(request: HttpRequest, session_id: str) -> HttpResponse:
    """The "Adopt recording" button: ``orphan_adopt`` decides who may; anyone refused gets the 404 page."""
    if request.method != "POST":
        return HttpResponseRedirect(_detail_url(session_id))
    user = _user(request)
    parsed = parse_session_id(session_id)
    if parsed is None:
        return _not_found_page(request, session_id=session_id, missing=MissingSession(well_formed=False))
    if _can_see(user=user, session_id=session_id):
        messages.info(request, "This call is already in Callbook.")
        return HttpResponseRedirect(_detail_url(parsed))
    if session_row_exists(parsed):
        # Someone else's (or archived): the same answer as for an id that does not exist, storage untouched.
        return _not_found_page(request, session_id=session_id, missing=MissingSession(well_formed=True))
    return _adopt_orphan(request, user=user, session_id=session_id, parsed=parsed)


def _can_see(*, user: User, session_id: str) -> bool:
    try:
        get_call_session_for_user(user=user, session_id=session_id)
    except SessionNotFound:
        return False
    return True


def _adopt_orphan(request: HttpRequest, *, user: User, session_id: str, parsed: uuid.UUID) -> HttpResponse:
    try:
        adopted = orphan_adopt(session_id=parsed, requester=user)
    except Exception:  # the storage's own errors
        logger.warning("could not adopt %s for %s: storage unavailable", parsed, user.username, exc_info=True)
        missing = MissingSession(well_formed=True, storage_unavailable=True)
        return _not_found_page(request, session_id=session_id, missing=missing, status=503)
    if adopted is None:
        # Nothing to adopt, not theirs to adopt, or another request adopted it a moment earlier.
        if _can_see(user=user, session_id=session_id):
            messages.info(request, "This recording had just been adopted.")
            return HttpResponseRedirect(_detail_url(parsed))
        messages.error(request, "The recording could not be adopted by you.")
        return _session_not_found(request, user=user, session_id=session_id, adopt_on_view=False)
    owner = adopted.owner
    whose = f"; its owner is {owner.get_full_name() or owner.username}" if owner is not None else ""
    messages.success(request, f"Recording adopted{whose}. It is being processed now.")
    return HttpResponseRedirect(_detail_url(parsed))
