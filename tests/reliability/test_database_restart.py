"""PostgreSQL restarted under a running Callbook: requests fail cleanly while it is down and succeed after, with
no restart of the app.

The deployment runs on a PostgreSQL server of the test's own (``private_postgres``): the machine's shared
server is never stopped. Two restarts:
- between requests: every kept connection (``CONN_MAX_AGE``) is dead afterwards, and ``CONN_HEALTH_CHECKS``
  must replace it before it is used, so that not even the first request after the restart fails;
- under load (``pg_ctl stop -m immediate``, a crash): while the server is down every answer is a prompt 500/503
  (JSON for the API, the error page for pages, never a stack trace) and none hangs; once it is back requests
  succeed again, served by the same gunicorn processes, and every session the API acknowledged is stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from django.conf import settings

from tests.conftest import ROOT
from tests.reliability.conftest import PrivatePostgres, Response, Stack, fetch, wait_until

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(
        not str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql"),
        reason=(
            "the embedded database is an SQLite file, with no server to restart; runs in CI's second pass "
            "(DATABASE_URL=postgres://...), against a private PostgreSQL server"
        ),
    ),
]

PROMPT = 10.0  # seconds: an answer slower than this while the database is down is a hang
CLIENTS = 4

# Run in the deployment's own environment (manage.py shell): the user, an API token and a signed-in session.
_SETUP = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from crm.models import User
from crm.services import api_token_create
user = User.objects.create_user("db-agent", password="unused-password-0123456789")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"key": api_token_create(user=user, name="db")[1], "cookie": session.session_key}))
"""


def _manage(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _connections(server: PrivatePostgres, database: str) -> int:
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()
    return int(row[0]) if row else 0


def _session_ids(server: PrivatePostgres, database: str) -> set[str]:
    import psycopg

    with psycopg.connect(server.url(database)) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM calls_callsession")}


@dataclass
class Outcome:
    at: float
    status: int | None  # None: no HTTP answer at all (refused, reset)
    elapsed: float
    json_error: bool = False


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, answer: Response | None, started: float) -> None:
        outcome = Outcome(at=started, status=None, elapsed=time.monotonic() - started)
        if answer is not None:
            outcome.status = answer.status
            if answer.status >= 500:
                try:
                    body = answer.json()
                    outcome.json_error = {"detail", "code"} <= set(body)
                except ValueError:
                    pass
        with self.lock:
            self.outcomes.append(outcome)

    def since(self, moment: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.at >= moment]


def _client(port: int, key: str, number: int, load: Load, stop: threading.Event) -> None:
    call = 0
    while not stop.is_set():
        call += 1
        started = time.monotonic()
        answer: Response | None = None
        try:
            answer = fetch(
                port,
                "POST",
                "/api/crm/sessions/",
                token=key,
                json_body={"source": "db", "external_id": f"db-{number}-{call}"},
            )
            if answer.status == 201:
                with load.lock:
                    load.acknowledged.add(answer.json()["id"])
        except OSError:
            pass
        load.note(answer, started)
        stop.wait(0.02)


def test_it_fails_cleanly_while_postgresql_is_down_and_heals_without_a_restart(
    stack: Stack, private_postgres: PrivatePostgres
):
    database = "callbook"
    private_postgres.create_database(database)
    stack.env["DATABASE_URL"] = private_postgres.url(database)
    _manage(stack, "migrate", "--noinput", "-v0")
    credentials = json.loads(_manage(stack, "shell", "-c", _SETUP).strip().splitlines()[-1])
    key, cookie = credentials["key"], credentials["cookie"]
    web = stack.start_web(workers=2)
    processes_before = sorted(web.children())

    # 1. A restart between requests: every kept connection is dead, and must be replaced before use.
    def both_connected() -> bool:
        assert fetch(stack.port, "GET", "/api/crm/sessions/", token=key).status == 200
        return _connections(private_postgres, database) >= 2

    wait_until(both_connected, timeout=60, what="both gunicorn workers to hold a connection", interval=0)
    private_postgres.stop(mode="fast")
    private_postgres.start()
    after_restart = [fetch(stack.port, "GET", "/api/crm/sessions/", token=key).status for _ in range(20)]
    assert after_restart == [200] * 20

    # 2. A crash under load.
    load = Load()
    stop = threading.Event()
    clients = [
        threading.Thread(target=_client, args=(stack.port, key, n, load, stop), daemon=True) for n in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: len(load.acknowledged) >= 10, timeout=60, what="10 sessions before the crash")
        private_postgres.stop(mode="immediate")
        down_since = time.monotonic()
        page = fetch(stack.port, "GET", "/calls/", cookie=cookie)
        health = fetch(stack.port, "GET", "/readyz")
        wait_until(
            lambda: sum(o.status is not None and o.status >= 500 for o in load.since(down_since)) >= 20,
            timeout=60,
            what="20 failed answers while the database is down",
        )
        restarting_at = time.monotonic()
        private_postgres.start()
        up_since = time.monotonic()
        wait_until(
            lambda: sum(o.status == 201 for o in load.since(up_since)) >= 20,
            timeout=60,
            what="20 sessions created after the database came back",
        )
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)

    # Answered while the server was certainly down (it may be ready a moment before pg_ctl says so).
    during = [o for o in load.since(down_since) if o.at + o.elapsed < restarting_at]
    assert during
    assert {o.status for o in during} <= {500, 503}, sorted({o.status for o in during}, key=str)
    assert all(o.json_error for o in during), "an API error that is not {detail, code} JSON"
    assert max(o.elapsed for o in load.outcomes) < PROMPT
    assert page.status in (500, 503)
    assert page.headers["content-type"].startswith("text/html")
    assert "Traceback" not in page.text
    assert "Something went wrong" in page.text or "unavailable" in page.text
    assert health.status == 503
    assert "database" in health.json()["failed"]
    # Healed: from the first success on, every answer is a success, from the very same processes.
    healed_at = min(o.at for o in load.since(up_since) if o.status == 201)
    assert [o.status for o in load.since(healed_at)] == [201] * len(load.since(healed_at))
    assert web.alive()
    assert sorted(web.children()) == processes_before
    assert load.acknowledged <= _session_ids(private_postgres, database)
