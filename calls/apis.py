"""REST endpoints for call sessions under /api/crm/. Each view parses input, checks access through the
selectors, calls one service and renders; domain errors become JSON ``{"detail", "code"}`` answers."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calls import serializers as s
from calls.ingest import StorageUnavailable
from calls.models import CallSession, Note, Recording
from calls.presenters import present_session_detail, present_session_list
from calls.selectors import (
    SessionDetailRows,
    SessionFilters,
    SessionNotFound,
    call_session_detail_by_external_id,
    call_session_detail_for_user,
    call_session_rows,
    get_call_session_for_user,
    integration_of,
)
from calls.services import (
    EventInput,
    ExternalIdConflict,
    NotAllowed,
    SessionInput,
    SessionInputError,
    call_event_record,
    call_event_report,
    call_session_archive,
    call_session_create,
    call_session_get_or_adopt,
    call_session_update,
    note_create,
    note_update,
)
from calls.signatures import SIGNATURE_HEADER, SignatureInvalid, signature_verify
from calls.storage import recordings_storage
from calls.streaming import RecordingFileMissing, storage_file_response
from calls.uploads import TRANSCRIPT_TYPES, UploadRejected, recording_upload, transcript_upload
from crm.api import PAGINATION_PARAMS, CallbookApiView, Pagination
from crm.models import User


class SessionNotFoundError(exceptions.NotFound):
    default_detail = "Call session not found."
    default_code = "session_not_found"


class RecordingNotFoundError(exceptions.NotFound):
    default_detail = "This call session has no playable recording."
    default_code = "recording_not_found"


class StorageUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = "The recordings storage is not answering right now; nothing is lost. Try again in a minute."
    default_code = "storage_unavailable"
    wait = 60  # DRF's handler sends it as Retry-After


class BadInput(exceptions.APIException):
    status_code = 400
    default_code = "invalid"


class Conflict(exceptions.APIException):
    status_code = 409
    default_code = "conflict"


class SignedIntegrationWrites(permissions.BasePermission):
    """Writes from an integration that has a signing secret must carry a valid, fresh, unreplayed signature."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS or not isinstance(request.user, User):
            return True
        if getattr(view, "signature_exempt", False):
            # Audio uploads are streamed, not held in memory to be hashed: the token authenticates them.
            return True
        integration = integration_of(request.user)
        if integration is None or not integration.signing_secret:
            return True
        try:
            signature_verify(
                secret=integration.signing_secret, header=request.headers.get(SIGNATURE_HEADER), body=request.body
            )
        except SignatureInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc), code="invalid_signature") from exc
        return True


ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input: `{detail, code, errors?}`."),
    401: OpenApiResponse(description="Missing or invalid token, or (for signing integrations) bad signature."),
    404: OpenApiResponse(description='`{"detail": "Call session not found.", "code": "session_not_found"}`'),
}


class CallsApiView(CallbookApiView):
    permission_classes = [permissions.IsAuthenticated, SignedIntegrationWrites]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, SessionNotFound):
            exc = SessionNotFoundError()
        elif isinstance(exc, RecordingFileMissing):
            exc = RecordingNotFoundError("The recording file is missing from storage.")
        elif isinstance(exc, SessionInputError):
            exc = BadInput(str(exc), code=exc.code)
        elif isinstance(exc, ExternalIdConflict):
            exc = Conflict(str(exc), code="external_id_conflict")
        elif isinstance(exc, NotAllowed):
            exc = exceptions.PermissionDenied(str(exc))
        elif isinstance(exc, StorageUnavailable):
            exc = StorageUnavailableError()
        elif isinstance(exc, UploadRejected):
            rejected = exceptions.APIException(str(exc), code=exc.code)
            rejected.status_code = exc.status
            exc = rejected
        return super().handle_exception(exc)

    def detail_response(
        self, session: CallSession | SessionDetailRows, *, code: int = 200, adopted: bool = False
    ) -> Response:
        """CallSessionDetailOutputSerializer's JSON: from rows (the GETs' fast path) or from a model instance."""
        if isinstance(session, SessionDetailRows):
            return Response(present_session_detail(session, request=self.request, adopted=adopted), status=code)
        context = {"request": self.request, "adopted": adopted}
        return Response(s.CallSessionDetailOutputSerializer(session, context=context).data, status=code)


class SessionCursorPagination(Pagination):
    ordering = "-created_at"

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        wanted = request.query_params.get("ordering", "-created_at")
        # created_at never changes and never is NULL: what a stable cursor needs; the id breaks ties.
        return ("created_at", "id") if wanted == "created_at" else ("-created_at", "-id")


SESSION_HEADERS = [
    OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[200, 201], description="URL."),
    OpenApiParameter("X-Session-ID", OpenApiTypes.UUID, OpenApiParameter.HEADER, response=[200, 201]),
]


class SessionListCreateApi(CallsApiView):
    pagination_class = SessionCursorPagination

    @extend_schema(
        operation_id="sessions_list",
        parameters=[s.SessionFilterInputSerializer],
        responses={200: s.CallSessionOutputSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        params = self.parse(s.SessionFilterInputSerializer, request.query_params, also_allowed=PAGINATION_PARAMS)
        params.pop("ordering", None)
        statuses = params.pop("status", None)
        filters = SessionFilters(status=sorted(statuses) if statuses else None, **params)
        paginator = self.pagination_class()
        # Rows, not instances: the cursor paginator orders and slices a values() queryset all the same.
        page = paginator.paginate_queryset(call_session_rows(user=self.actor, filters=filters), request, view=self)
        return paginator.get_paginated_response(present_session_list(page or [], request=request))

    @extend_schema(
        operation_id="sessions_create",
        request=s.CallSessionCreateInputSerializer,
        responses={
            201: s.CallSessionDetailOutputSerializer,
            200: OpenApiResponse(s.CallSessionDetailOutputSerializer, "The session for this external_id existed."),
            409: OpenApiResponse(description="The source/external_id pair belongs to a session you cannot see."),
            **ERROR_RESPONSES,
        },
        parameters=SESSION_HEADERS,
        description="Creates a session with a server-minted id. With `source` + `external_id` it is idempotent: "
        "the same pair again answers 200 with the existing session.",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(s.CallSessionCreateInputSerializer, request.data)
        session, created = call_session_create(actor=self.actor, data=SessionInput(**data))
        response = self.detail_response(session, code=201 if created else 200)
        response["Location"] = request.build_absolute_uri(f"/api/crm/sessions/{session.pk}")
        response["X-Session-ID"] = str(session.pk)
        return response


class SessionDetailApi(CallsApiView):
    @extend_schema(
        operation_id="sessions_retrieve",
        responses={200: s.CallSessionDetailOutputSerializer, **ERROR_RESPONSES},
        description="The session with its events, recording, transcript and notes. A well-formed id with no row "
        "whose recording folder exists in storage is adopted (`adopted: true`).",
    )
    def get(self, request: Request, session_id: str) -> Response:
        try:
            return self.detail_response(call_session_detail_for_user(user=self.actor, session_id=session_id))
        except SessionNotFound:
            # Not visible, or no row (yet): the adoption path decides, and raises SessionNotFound (404) itself
            # when there is nothing this user may see. Its instance goes through the serializer, which the
            # presenter matches (tests/calls/test_presenters.py).
            session, adopted = call_session_get_or_adopt(user=self.actor, session_id=session_id)
            return self.detail_response(session, adopted=adopted)

    @extend_schema(
        operation_id="sessions_partial_update",
        request=s.CallSessionUpdateInputSerializer,
        responses={200: s.CallSessionDetailOutputSerializer, 403: OpenApiResponse(), **ERROR_RESPONSES},
    )
    def patch(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        changes = self.parse(s.CallSessionUpdateInputSerializer, request.data)
        call_session_update(actor=self.actor, session=session, changes=changes)
        return self.detail_response(get_call_session_for_user(user=self.actor, session_id=session_id, details=True))

    @extend_schema(
        operation_id="sessions_destroy",
        responses={204: None, 403: OpenApiResponse(description="Admins only."), **ERROR_RESPONSES},
        description="Archives the session (admins only). Its events and recording files are kept.",
    )
    def delete(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        call_session_archive(actor=self.actor, session=session)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionByExternalIdApi(CallsApiView):
    @extend_schema(
        operation_id="sessions_by_external_id",
        responses={200: s.CallSessionDetailOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, source: str, external_id: str) -> Response:
        detail = call_session_detail_by_external_id(user=self.actor, source=source, external_id=external_id)
        return self.detail_response(detail)


def _event_response(result_session: CallSession, event: Any, created: bool, **extra: Any) -> Response:
    body = {
        "duplicate": not created,
        "session_id": result_session.pk,
        "status": result_session.status,
        "event": s.CallEventOutputSerializer(event).data,
        **extra,
    }
    return Response(body, status=201 if created else 200, headers={"X-Session-ID": str(result_session.pk)})


class SessionEventsApi(CallsApiView):
    @extend_schema(
        operation_id="sessions_events_create",
        request=s.CallEventInputSerializer,
        responses={
            201: s.EventResultOutputSerializer,
            200: OpenApiResponse(s.EventResultOutputSerializer, "Already recorded: `duplicate: true`."),
            **ERROR_RESPONSES,
        },
        parameters=[OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        data = self.parse(s.CallEventInputSerializer, request.data)
        result = call_event_record(session_id=session.pk, event=EventInput(**data))
        return _event_response(result.session, result.event, result.created)


class EventWebhookApi(CallsApiView):
    @extend_schema(
        operation_id="events_report",
        request=s.WebhookEventInputSerializer,
        responses={
            201: s.EventResultOutputSerializer,
            200: OpenApiResponse(s.EventResultOutputSerializer, "Already recorded: `duplicate: true`."),
            409: OpenApiResponse(description="The source/external_id pair belongs to a session you cannot see."),
            **ERROR_RESPONSES,
        },
        parameters=[
            OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("X-Session-ID", OpenApiTypes.UUID, OpenApiParameter.HEADER, response=[200, 201]),
        ],
        description="For voice agents that do not know Callbook's id: names the call by `source` + "
        "`external_id`. The first event of an unknown call creates its session (origin `direct`).",
    )
    def post(self, request: Request) -> Response:
        data = self.parse(s.WebhookEventInputSerializer, request.data)
        event = EventInput(
            type=data.pop("type"),
            event_id=data.pop("event_id"),
            occurred_at=data.pop("occurred_at", None),
            data=data.pop("data"),
        )
        source, external_id = data.pop("source", None), data.pop("external_id")
        result, session_created = call_event_report(
            actor=self.actor, source=source, external_id=external_id, event=event, session_data=SessionInput(**data)
        )
        return _event_response(result.session, result.event, result.created, session_created=session_created)


class SessionNotesApi(CallsApiView):
    @extend_schema(
        operation_id="sessions_notes_create",
        request=s.NoteInputSerializer,
        responses={201: s.NoteOutputSerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        data = self.parse(s.NoteInputSerializer, request.data)
        note = note_create(author=self.actor, session=session, body=data["body"])
        return Response(s.NoteOutputSerializer(note).data, status=201)


class SessionNoteDetailApi(CallsApiView):
    @extend_schema(
        operation_id="sessions_notes_partial_update",
        request=s.NoteInputSerializer,
        responses={200: s.NoteOutputSerializer, 403: OpenApiResponse(description="Not the author."), **ERROR_RESPONSES},
    )
    def patch(self, request: Request, session_id: str, note_id: int) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        note = Note.objects.select_related("author").filter(session=session, pk=note_id).first()
        if note is None:
            raise exceptions.NotFound("Note not found.")
        data = self.parse(s.NoteInputSerializer, request.data)
        return Response(s.NoteOutputSerializer(note_update(actor=self.actor, note=note, body=data["body"])).data)


def _upload_body(request: Request) -> tuple[Any, int | None, str | None]:
    """The uploaded bytes as a stream: the ``file`` part of a multipart form, or the raw request body."""
    django_request = request._request
    if request.content_type.startswith("multipart/form-data"):
        # DRF's parser, not Django's: Django fills FILES for POST only, and uploads are PUT.
        upload = request.FILES.get("file")
        if upload is None:
            raise BadInput("A multipart upload needs its file in a part named 'file'.", code="missing_file")
        # One file per upload, and nothing else: a second file or another field would be dropped in silence.
        others = sorted(set(request.data) - {"file"})
        if len(request.FILES.getlist("file")) > 1 or others:
            raise BadInput(
                "A multipart upload carries exactly one part, named 'file'"
                + (f"; remove {', '.join(repr(name[:50]) for name in others[:5])}." if others else "."),
                code="one_file_only",
            )
        return upload, upload.size, upload.name
    length = django_request.META.get("CONTENT_LENGTH")
    return django_request, int(length) if length and length.isdigit() else None, None


UPLOAD_ERRORS = {
    413: OpenApiResponse(description="Larger than the configured limit (`too_large`)."),
    415: OpenApiResponse(description="Not audio / not a transcript; nothing was stored."),
    503: OpenApiResponse(description="The recordings storage is not answering (`storage_unavailable`)."),
}


class SessionRecordingApi(CallsApiView):
    signature_exempt = True

    @extend_schema(
        operation_id="sessions_recording_upload",
        request={"audio/*": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.BINARY},
        responses={
            201: s.RecordingOutputSerializer,
            200: OpenApiResponse(s.RecordingOutputSerializer, "The same file was already uploaded."),
            409: OpenApiResponse(description="The session already has a different recording."),
            **UPLOAD_ERRORS,
            **ERROR_RESPONSES,
        },
        description="Upload the call's audio as the raw body or as multipart field `file`. The content is sniffed "
        "(wav, mp3, ogg, opus, flac, webm, m4a); ingest is queued.",
    )
    def put(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        body, length, _ = _upload_body(request)
        result = recording_upload(session=session, body=body, declared_length=length)
        data = s.RecordingOutputSerializer(result.recording, context={"request": request}).data
        return Response(data, status=201 if result.created else 200, headers={"X-Session-ID": str(session.pk)})

    @extend_schema(
        operation_id="sessions_recording_retrieve",
        responses={
            (200, "audio/*"): OpenApiTypes.BINARY,
            (206, "audio/*"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="Redirect to a short-lived signed URL (S3 storage)."),
            404: OpenApiResponse(description="No session, or no playable recording (`recording_not_found`)."),
            416: OpenApiResponse(description="Range not satisfiable."),
            503: OpenApiResponse(description="The recordings storage is not answering (`storage_unavailable`)."),
        },
        parameters=[OpenApiParameter("Range", str, OpenApiParameter.HEADER, required=False)],
    )
    def get(self, request: Request, session_id: str) -> HttpResponseBase:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        recording = Recording.objects.filter(session=session, status=Recording.Status.AVAILABLE).first()
        if recording is None:
            raise RecordingNotFoundError()
        try:
            return storage_file_response(
                request=request._request,
                storage=recordings_storage(),
                name=recording.file,
                content_type=recording.content_type or "application/octet-stream",
                filename=f"{session.pk}.{recording.format or 'bin'}",
                etag=f'"{recording.sha256}"' if recording.sha256 else None,
            )
        except (OSError, BotoCoreError, ClientError) as exc:  # a missing file is RecordingFileMissing (404)
            raise StorageUnavailable(str(exc)) from exc


class SessionTranscriptApi(CallsApiView):
    signature_exempt = True

    @extend_schema(
        operation_id="sessions_transcript_upload",
        request={
            "text/plain": OpenApiTypes.BINARY,
            "text/vtt": OpenApiTypes.BINARY,
            "application/x-subrip": OpenApiTypes.BINARY,
            "application/json": OpenApiTypes.BINARY,
            "multipart/form-data": OpenApiTypes.BINARY,
        },
        parameters=[
            # Not `format`: DRF reserves that name to choose a renderer.
            OpenApiParameter(
                "type", str, enum=["txt", "json", "vtt", "srt"], required=False, description="Overrides detection."
            )
        ],
        responses={200: s.TranscriptOutputSerializer, **UPLOAD_ERRORS, **ERROR_RESPONSES},
        description="Upload a transcript (.txt, .json with timed segments, .vtt or .srt with speaker voices) as the "
        "raw body or multipart field `file`. Any encoding is read (UTF-8, UTF-16 with BOM, cp1252); it replaces "
        "the session's transcript.",
    )
    def put(self, request: Request, session_id: str) -> Response:
        session = get_call_session_for_user(user=self.actor, session_id=session_id)
        body, _, filename = _upload_body(request)
        extension = request.query_params.get("type")
        if not extension and filename and "." in filename:
            extension = filename.rsplit(".", 1)[-1].lower()
        if not extension:
            extension = TRANSCRIPT_TYPES.get(request.content_type.split(";")[0].strip().lower())
        transcript = transcript_upload(session=session, body=body, extension=extension)
        return Response(s.TranscriptOutputSerializer(transcript).data, headers={"X-Session-ID": str(session.pk)})
