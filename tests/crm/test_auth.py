from __future__ import annotations

import pytest
from django.test import Client

from crm.models import User
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_it_serves_a_styled_sign_in_page():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="username"' in body
    assert 'name="password"' in body
    assert "/static/css/app.css" in body
    assert "csrfmiddlewaretoken" in body


def test_it_signs_alice_in_and_shows_her_team(alice: User):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": TEST_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    body = response.content.decode()
    assert "Welcome, Alice" in body
    assert "Sales" in body
    assert "carol" in body.lower()


def test_it_shows_an_error_in_place_for_a_wrong_password(alice: User):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_it_enforces_csrf_on_sign_in(alice: User):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 403


def test_it_signs_out_with_post_only(client_for, alice: User):
    client = client_for(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_it_sends_anonymous_visitors_to_sign_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_answers_a_missing_page_with_a_helpful_404(client_for, alice: User):
    response = client_for(alice).get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body
    assert "/no/such/page/" in body
    assert 'href="/"' in body
