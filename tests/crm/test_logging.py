"""Structured logs: one JSON object per line in production with the request id, user, session, run and task
it concerns; readable text in development; exceptions with their stack; request ids accepted or minted and
echoed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.utils.functional import SimpleLazyObject

from calls import tasks
from calls.models import Recording
from crm import logs
from tests.conftest import ROOT
from tests.factories import CallSessionFactory, RecordingFactory

pytestmark = pytest.mark.django_db

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """What the root logger writes at INFO through the production handler, parsed line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def request_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "crm.requests"]


# --- Requests ----------------------------------------------------------------------------------------------


def test_it_logs_a_request_as_one_json_object_with_its_context(alice, api_client_for, json_lines: Lines):
    session = CallSessionFactory.create(owner=alice)
    response = api_client_for(alice).get(f"/api/crm/sessions/{session.pk}", HTTP_X_REQUEST_ID="trace-abc.123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "trace-abc.123"
    [line] = request_lines(json_lines())
    assert line["level"] == "INFO"
    assert line["message"] == f"GET /api/crm/sessions/{session.pk} 200"
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None
    # The API authenticates in the view, after every middleware: the user is read when the line is written.
    assert (line["request_id"], line["user"], line["user_id"]) == ("trace-abc.123", "alice", alice.pk)
    assert line["session_id"] == str(session.pk)
    assert (line["method"], line["status"]) == ("GET", 200)
    assert line["duration_ms"] >= 0


def test_it_names_the_signed_in_user_of_a_page(alice, client_for, json_lines: Lines):
    response = client_for(alice).get("/calls/")
    assert response.status_code == 200
    [line] = request_lines(json_lines())
    assert (line["user"], line["user_id"]) == ("alice", alice.pk)
    assert "session_id" not in line
    assert line["request_id"] == response["X-Request-ID"]


def test_it_names_no_user_for_an_anonymous_request(client: Client, json_lines: Lines):
    assert client.get("/api/crm/sessions/").status_code == 401
    [line] = request_lines(json_lines())
    assert "user" not in line
    assert "user_id" not in line
    assert line["status"] == 401


@pytest.mark.parametrize(
    "incoming",
    ["", "has spaces in it", "x" * 200, 'quote"}{"level":"ERROR', "-starts-with-a-dash", "tab\tinside"],
)
def test_it_mints_a_request_id_when_the_incoming_one_is_missing_or_not_sane(
    client: Client, json_lines: Lines, incoming: str
):
    headers = {"X-Request-ID": incoming} if incoming else {}
    response = client.get("/accounts/login/", headers=headers)
    minted = response["X-Request-ID"]
    assert minted != incoming
    assert uuid.UUID(hex=minted).hex == minted
    [line] = request_lines(json_lines())
    assert line["request_id"] == minted


def test_it_keeps_a_sane_incoming_request_id(client: Client):
    for incoming in ("0af7651916cd43dd8448eb211c80319c", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"):
        assert client.get("/accounts/login/", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"] == incoming


def test_it_gives_each_request_its_own_id(client: Client):
    first = client.get("/accounts/login/")["X-Request-ID"]
    second = client.get("/accounts/login/")["X-Request-ID"]
    assert first != second


def test_it_logs_an_unhandled_error_with_its_stack_and_the_request_context(
    alice, monkeypatch: pytest.MonkeyPatch, json_lines: Lines
):
    from crm import views

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("token list exploded")

    monkeypatch.setattr(views, "api_token_list", broken)
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/account/tokens/", HTTP_X_REQUEST_ID="req-500")
    assert response.status_code == 500
    assert b"token list exploded" not in response.content  # no stack trace on the page
    [error] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert error["level"] == "ERROR"
    assert (error["request_id"], error["user"]) == ("req-500", "alice")
    assert "Traceback (most recent call last)" in error["exc_info"]
    assert "RuntimeError: token list exploded" in error["exc_info"]
    [line] = request_lines(json_lines())
    assert (line["status"], line["request_id"]) == (500, "req-500")


def test_it_logs_an_exception_with_its_stack_in_a_json_field(json_lines: Lines):
    with logs.log_context(request_id="r-1", session_id="s-1", run_id="42"):
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            logging.getLogger("calls.example").exception("could not divide")
    [line] = json_lines()
    assert (line["message"], line["level"], line["logger"]) == ("could not divide", "ERROR", "calls.example")
    assert (line["request_id"], line["session_id"], line["run_id"]) == ("r-1", "s-1", "42")
    assert line["exc_info"].startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in line["exc_info"]


def test_it_restores_the_context_after_the_block(json_lines: Lines):
    with logs.log_context(request_id="outer"):
        with logs.log_context(request_id="inner", session_id="s"):
            logging.getLogger("x").warning("inside")
        logging.getLogger("x").warning("after")
    logging.getLogger("x").warning("outside")
    inside, after, outside = json_lines()
    assert (inside["request_id"], inside["session_id"]) == ("inner", "s")
    assert after["request_id"] == "outer"
    assert "session_id" not in after
    assert "request_id" not in outside


def test_it_never_loads_a_user_the_request_has_not_loaded():
    request = RequestFactory().get("/")

    def load_user() -> Any:
        raise AssertionError("the log filter loaded the user")

    request.user = SimpleLazyObject(load_user)  # type: ignore[assignment]  # as AuthenticationMiddleware sets it
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
    token = logs.current_request.set(request)
    try:
        assert logs.ContextFilter().filter(record)
    finally:
        logs.current_request.reset(token)
    assert not hasattr(record, "user")


# --- Celery tasks ------------------------------------------------------------------------------------------


def test_it_logs_a_tasks_lines_with_its_id_name_and_session(alice, recordings_root, settings, json_lines: Lines):
    settings.TRANSCRIPTION_BACKEND = "none"
    session = CallSessionFactory.create(owner=alice)
    recording = RecordingFactory.create(session=session, status=Recording.Status.PENDING)
    (recordings_root / recording.file).parent.mkdir(parents=True)
    (recordings_root / recording.file).write_bytes(b"not audio" * 20)
    result = tasks.ingest_session.apply(args=(str(session.pk),))
    assert result.get() == Recording.Status.FAILED
    logging.getLogger("calls.example").warning("after the task")
    lines = json_lines()
    [failed] = [line for line in lines if line["message"].startswith(f"ingest of {session.pk} failed")]
    assert failed["level"] == "WARNING"
    assert (failed["task_name"], failed["task_id"]) == ("calls.tasks.ingest_session", result.id)
    assert failed["session_id"] == str(session.pk)
    assert "task_name" not in lines[-1]  # the task's context ends with the task


# --- Formats and settings ----------------------------------------------------------------------------------


def test_it_writes_readable_text_without_colours_in_development():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("callbook.text-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.log_context(request_id="r-9", session_id="s-9"):
            logger.warning("something happened to %s", "a call")
        logger.warning("no context")
    finally:
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("WARNING callbook.text-test something happened to a call [request_id=r-9 session_id=s-9]")
    assert second.endswith("WARNING callbook.text-test no context")
    assert "\x1b[" not in stream.getvalue()


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "LOG_FORMAT", "LOG_LEVEL"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "crm.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


LOG_ONE_LINE = """
import logging
import django
django.setup()
from django.conf import settings
print(settings.LOG_FORMAT)
logging.getLogger("calls.example").warning("hello %s", "world")
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "0"}, "json"),
        ({"DEBUG": "1"}, "text"),
        ({"DEBUG": "1", "LOG_FORMAT": "json"}, "json"),
        ({"DEBUG": "0", "LOG_FORMAT": "text"}, "text"),
    ],
)
def test_it_writes_json_in_production_and_text_in_development(env: dict[str, str], expected: str):
    result = run_python(LOG_ONE_LINE, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    [line] = [line for line in result.stderr.splitlines() if "hello" in line]
    if expected == "json":
        parsed = json.loads(line)
        assert (parsed["message"], parsed["level"], parsed["logger"]) == ("hello world", "WARNING", "calls.example")
    else:
        assert line.endswith("WARNING calls.example hello world")


def test_it_refuses_an_unknown_log_format():
    result = run_python(LOG_ONE_LINE, {"DEBUG": "1", "LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "LOG_FORMAT must be one of json, text, not 'xml'" in result.stderr
