"""Brute-force throttling: sign-in page, Django admin, authenticate() itself and bearer tokens.

Each test counts in a cache namespace of its own (a fresh KEY_PREFIX on whatever cache is configured: memory in
the embedded run, Redis in CI's second pass), so counts never leak between tests or runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from crm.models import User
from crm.throttling import login_throttle_check
from tests.factories import TEST_PASSWORD, AdminFactory, UserFactory, make_token

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
THROTTLED = "Too many failed sign-in attempts"


@pytest.fixture(autouse=True)
def own_cache_namespace(settings: Any) -> str:
    prefix = f"throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    settings.LOGIN_THROTTLE_FAILURES_PER_USERNAME = 5
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 30
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 900
    return prefix


@pytest.fixture
def alice(db: None) -> User:
    return UserFactory.create(username="alice")


def browser(address: str = "203.0.113.10") -> Client:
    return Client(REMOTE_ADDR=address)


def sign_in(client: Client, username: str, password: str, url: str = "/accounts/login/") -> Any:
    return client.post(url, {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_refuses_the_attempt_after_the_limit_even_with_the_right_password(alice: User):
    client = browser()
    for _ in range(5):
        response = sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    response = sign_in(client, "alice", TEST_PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert THROTTLED in body
    assert "try again in 15 minutes" in body
    assert 850 <= int(response["Retry-After"]) <= 900
    assert not signed_in(client)


def test_it_lets_the_right_password_in_below_the_limit(alice: User):
    client = browser()
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    response = sign_in(client, "alice", TEST_PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_it_counts_failures_per_username_whatever_the_address(alice: User):
    for n in range(5):
        sign_in(browser(f"198.51.100.{n}"), "ALICE ", "wrong")  # the same account, however it is spelled
    response = sign_in(browser("198.51.100.200"), "alice", TEST_PASSWORD)
    assert response.status_code == 429
    assert THROTTLED in response.content.decode()


def test_it_counts_failures_per_address_whatever_the_username(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 3
    attacker = browser("192.0.2.66")
    for name in ("bob", "carol", "nobody"):
        sign_in(attacker, name, "wrong")
    assert sign_in(attacker, "alice", TEST_PASSWORD).status_code == 429
    # Alice herself, elsewhere, is not locked out by someone else's spraying.
    assert sign_in(browser("192.0.2.67"), "alice", TEST_PASSWORD).status_code == 302


def test_it_lets_sign_in_again_once_the_window_has_passed(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 1
    client = browser()
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 429
    time.sleep(1.5)
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 302


def test_it_does_not_extend_the_window_with_attempts_made_during_the_lockout(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_WINDOW_SECONDS = 2
    client = browser()
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline - 1:
        assert sign_in(client, "alice", "wrong").status_code == 429
        time.sleep(0.2)
    time.sleep(max(0.0, deadline - time.monotonic()))
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 302


def test_it_resets_the_username_count_after_a_successful_sign_in(alice: User):
    client = browser()
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 302


def test_it_keeps_the_address_count_after_a_successful_sign_in(alice: User, settings: Any):
    # Otherwise an attacker with one valid account could clear the address's count between guesses at others.
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 4
    UserFactory.create(username="mallory")
    attacker = browser("192.0.2.99")
    for name in ("bob", "carol", "dave"):
        sign_in(attacker, name, "wrong")
    assert sign_in(attacker, "mallory", TEST_PASSWORD).status_code == 302
    attacker.logout()
    sign_in(attacker, "erin", "wrong")
    assert sign_in(attacker, "alice", TEST_PASSWORD).status_code == 429


def test_it_throttles_the_django_admin_login_with_the_same_counts(db: None):
    AdminFactory.create(username="root")
    client = browser()
    for _ in range(3):
        sign_in(client, "root", "wrong", url="/admin/login/")
    for _ in range(2):  # the site's own login page counts for the same account
        sign_in(client, "root", "wrong")
    response = sign_in(client, "root", TEST_PASSWORD, url="/admin/login/")
    assert THROTTLED in response.content.decode()
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302


def test_it_refuses_a_locked_out_account_in_authenticate_itself(alice: User):
    """Any other way in that calls authenticate() (a future API login, a management command) is covered."""
    request = RequestFactory().post("/anywhere/", REMOTE_ADDR="203.0.113.20")
    for _ in range(5):
        assert authenticate(request, username="alice", password="wrong") is None
    assert login_throttle_check(request=request, username="alice") is not None
    assert authenticate(request, username="alice", password=TEST_PASSWORD) is None
    other = RequestFactory().post("/anywhere/", REMOTE_ADDR="203.0.113.21")
    assert authenticate(other, username="alice", password=TEST_PASSWORD) is None  # per username, too


def test_it_uses_the_address_the_tls_proxy_appended(alice: User, settings: Any):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 3
    proxy = "10.0.0.2"
    for n in range(3):
        # The attacker varies the first entry; the proxy appends the address it saw last.
        Client(REMOTE_ADDR=proxy).post(
            "/accounts/login/",
            {"username": f"user{n}", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"1.1.1.{n}, 198.51.100.7",
        )
    refused = Client(REMOTE_ADDR=proxy).post(
        "/accounts/login/",
        {"username": "alice", "password": TEST_PASSWORD},
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    assert refused.status_code == 429
    # Everyone else behind the same proxy signs in.
    allowed = Client(REMOTE_ADDR=proxy).post(
        "/accounts/login/",
        {"username": "alice", "password": TEST_PASSWORD},
        HTTP_X_FORWARDED_FOR="198.51.100.8",
    )
    assert allowed.status_code == 302


def test_it_throttles_invalid_bearer_tokens_per_address(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 3
    _, key = make_token(alice)
    guesser = APIClient(REMOTE_ADDR="203.0.113.77")
    for n in range(3):
        guesser.credentials(HTTP_AUTHORIZATION=f"Bearer cb_guess{n}")
        response = guesser.get("/api/crm/")
        assert response.status_code == 401
    guesser.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = guesser.get("/api/crm/")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert "Too many invalid API tokens" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.78")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert elsewhere.get("/api/crm/").status_code == 200


def test_it_does_not_count_valid_tokens_or_requests_without_one(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 2
    _, key = make_token(alice)
    client = APIClient(REMOTE_ADDR="203.0.113.79")
    for _ in range(3):
        assert client.get("/api/crm/").status_code == 401  # no token: anonymous, nothing guessed
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for _ in range(3):
        assert client.get("/api/crm/").status_code == 200


def test_it_keeps_sign_in_failures_and_token_failures_apart(alice: User, settings: Any):
    settings.LOGIN_THROTTLE_FAILURES_PER_IP = 2
    address = "203.0.113.80"
    guesser = APIClient(REMOTE_ADDR=address)
    guesser.credentials(HTTP_AUTHORIZATION="Bearer cb_nothing")
    for _ in range(2):
        guesser.get("/api/crm/")
    assert guesser.get("/api/crm/").status_code == 429
    assert sign_in(browser(address), "alice", TEST_PASSWORD).status_code == 302


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: run with REDIS_URL=redis://... (CI does)")
def test_it_shares_counts_between_processes_through_redis(alice: User, own_cache_namespace: str, settings: Any):
    """Five failures recorded by another process lock the account out in this one."""
    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'crm.settings'); django.setup()\n"
        "from django.conf import settings\n"
        f"settings.CACHES['default']['KEY_PREFIX'] = {own_cache_namespace!r}\n"
        "from crm.throttling import login_failure_record\n"
        "for _ in range(5): login_failure_record(request=None, username='alice')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120, env={**os.environ})
    assert "redis" in settings.CACHES["default"]["BACKEND"].lower()
    response = sign_in(browser("203.0.113.90"), "alice", TEST_PASSWORD)
    assert response.status_code == 429
