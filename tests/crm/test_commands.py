from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from crm.models import ApiToken, Team, User

pytestmark = pytest.mark.django_db


def test_it_prints_a_new_key_alone_on_the_last_line_and_it_authenticates(alice: User):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "alice", "--name", "dialer", stdout=out, stderr=err)
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("cb_")
    assert " " not in key
    assert ApiToken.objects.get(user=alice).name == "dialer"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/crm/").json()["user"] == "alice"


def test_it_refuses_a_token_for_an_unknown_or_disabled_user(alice: User):
    with pytest.raises(CommandError, match="No user named 'zed'"):
        call_command("create_api_token", "zed")
    alice.is_active = False
    alice.save()
    with pytest.raises(CommandError, match="disabled"):
        call_command("create_api_token", "alice")
    assert not ApiToken.objects.exists()


def test_it_seeds_the_demo_team_idempotently(settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    team = Team.objects.get(name="Demo sales")
    assert team.manager is not None
    assert team.manager.username == "carol"
    assert sorted(team.members.values_list("username", flat=True)) == ["alice", "bob", "carol"]
    assert User.objects.count() == 4
    assert {u.username: u.role for u in User.objects.all()} == {
        "carol": "manager",
        "alice": "agent",
        "bob": "agent",
        "admin": "admin",
    }
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    for username in ("alice", "bob", "carol", "admin"):
        assert User.objects.get(username=username).check_password("demo-password")
        assert f"{username}" in out.getvalue()
    assert "demo-password" in out.getvalue()


def test_it_restores_the_demo_password_so_the_printed_logins_stay_true(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    alice = User.objects.get(username="alice")
    alice.set_password("changed-by-someone")
    alice.save()
    call_command("seed_demo", stdout=StringIO())
    alice.refresh_from_db()
    assert alice.check_password("demo-password")


def test_it_gives_random_passwords_outside_debug_and_keeps_them_on_rerun(settings):
    settings.DEBUG = False
    out = StringIO()
    call_command("seed_demo", stdout=out)
    alice = User.objects.get(username="alice")
    assert not alice.check_password("demo-password")
    line = next(line for line in out.getvalue().splitlines() if line.strip().startswith("alice"))
    printed = line.split("password:")[1].strip()
    assert alice.check_password(printed)
    again = StringIO()
    call_command("seed_demo", stdout=again)
    alice.refresh_from_db()
    assert alice.check_password(printed)
    assert "(password unchanged)" in again.getvalue()
