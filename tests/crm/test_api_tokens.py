from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import ApiToken, User
from crm.services import api_token_create

pytestmark = pytest.mark.django_db


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_it_answers_unauthenticated_api_calls_with_401_json():
    response = APIClient().get("/api/crm/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_authenticates_a_bearer_token(alice: User):
    _, key = api_token_create(user=alice, name="agent")
    response = bearer(key).get("/api/crm/")
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert response.json()["role"] == "agent"


def test_it_stores_only_the_hash_of_a_key(alice: User):
    token, key = api_token_create(user=alice, name="agent")
    row = ApiToken.objects.values().get(pk=token.pk)
    assert key not in [str(v) for v in row.values()]
    assert row["prefix"] == key[:10]
    assert len(row["key_hash"]) == 64


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer cb_not-a-real-key", "Invalid, expired or revoked token."),
        ("Bearer", "Invalid Authorization header: expected 'Bearer <token>'."),
        ("Bearer a b", "Invalid Authorization header: expected 'Bearer <token>'."),
    ],
)
def test_it_refuses_a_malformed_or_unknown_token(header: str, detail: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/crm/")
    assert response.status_code == 401
    assert response.json() == {"detail": detail, "code": "authentication_failed"}


def test_it_refuses_revoked_expired_and_disabled(alice: User, bob: User):
    revoked, revoked_key = api_token_create(user=alice, name="old")
    revoked.revoked_at = timezone.now()
    revoked.save()
    _, expired_key = api_token_create(user=alice, name="exp", expires_at=timezone.now() - timedelta(seconds=1))
    _, disabled_key = api_token_create(user=bob, name="bob")
    bob.is_active = False
    bob.save()
    for key in (revoked_key, expired_key, disabled_key):
        assert bearer(key).get("/api/crm/").status_code == 401


def test_it_records_last_use_at_most_once_a_minute(alice: User, django_assert_num_queries):
    token, key = api_token_create(user=alice, name="agent")
    client = bearer(key)
    client.get("/api/crm/")
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    # Within the interval: one query (the token lookup joined to its user), no write.
    with django_assert_num_queries(1):
        client.get("/api/crm/")
    token.refresh_from_db()
    assert token.last_used_at == first_use


def test_it_lets_a_user_create_a_token_in_the_ui_and_shows_the_key_once(client_for, alice: User):
    client = client_for(alice)
    response = client.post("/account/tokens/", {"name": "pipecat-prod"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=alice)
    key = response.context["new_key"]
    assert key.startswith(token.prefix)
    assert key in response.content.decode()
    assert bearer(key).get("/api/crm/").json()["user"] == "alice"
    # Shown once: the list page never carries the key again.
    assert key not in client.get("/account/tokens/").content.decode()


def test_it_shows_a_field_error_for_an_empty_name(client_for, alice: User):
    response = client_for(alice).post("/account/tokens/", {"name": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_lists_only_the_users_own_tokens(client_for, alice: User, bob: User):
    api_token_create(user=alice, name="alice-token")
    api_token_create(user=bob, name="bob-token")
    body = client_for(alice).get("/account/tokens/").content.decode()
    assert "alice-token" in body
    assert "bob-token" not in body


def test_it_revokes_the_owners_token(client_for, alice: User):
    token, key = api_token_create(user=alice, name="agent")
    response = client_for(alice).post(f"/account/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(key).get("/api/crm/").status_code == 401


@pytest.mark.parametrize("who", ["bob", "carol", "charlie"])
def test_it_answers_404_to_anyone_revoking_someone_elses_token(request, client_for, alice: User, who: str):
    token, _ = api_token_create(user=alice, name="agent")
    other = request.getfixturevalue(who)
    response = client_for(other).post(f"/account/tokens/{token.pk}/revoke/")
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_needs_sign_in_for_the_token_page():
    response = Client().get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_answers_unknown_api_paths_with_json_404(api_client_for, alice: User):
    response = api_client_for(alice).get("/api/crm/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
