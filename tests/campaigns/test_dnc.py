"""The team do-not-call list: services (campaigns/contacts.py: dnc_add, dnc_remove) and API (/api/crm/do-not-call/),
with the flag it keeps on the team's contacts."""

from __future__ import annotations

import pytest

from campaigns.access import NotAllowed
from campaigns.contacts import ContactInputError, dnc_add, dnc_remove
from campaigns.models import Contact, DoNotCall
from tests.factories import AdminFactory, ContactFactory, DoNotCallFactory

DNC = "/api/crm/do-not-call/"


# --- Services --------------------------------------------------------------------------------------------------


def test_it_adds_a_normalised_number_with_reason_author_and_date(carol, sales_team):
    entry, created = dnc_add(
        actor=carol, team=sales_team, phone="(202) 555-0143", default_region="US", reason="Asked on the phone"
    )

    assert created is True
    entry.refresh_from_db()
    assert (entry.phone, entry.reason, entry.added_by, entry.team) == (
        "+12025550143",
        "Asked on the phone",
        carol,
        sales_team,
    )
    assert entry.created_at is not None


def test_it_flags_the_teams_contacts_with_the_number_and_only_those(carol, sales_team, other_team):
    ours = ContactFactory.create(team=sales_team, phone="+12025550143")
    other_number = ContactFactory.create(team=sales_team, phone="+12025550144")
    other_team_same_number = ContactFactory.create(team=other_team, phone="+12025550143")

    dnc_add(actor=carol, team=sales_team, phone="+1 202 555 0143")

    assert Contact.objects.get(pk=ours.pk).do_not_call is True
    assert Contact.objects.get(pk=other_number.pk).do_not_call is False
    assert Contact.objects.get(pk=other_team_same_number.pk).do_not_call is False


def test_it_keeps_one_entry_per_number_and_team(carol, sales_team):
    first, _ = dnc_add(actor=carol, team=sales_team, phone="+12025550143", reason="First")
    again, created = dnc_add(actor=carol, team=sales_team, phone="(202) 555-0143", default_region="US", reason="x")

    assert created is False
    assert again == first
    assert DoNotCall.objects.get().reason == "First"


def test_it_removes_a_number_and_clears_its_contacts_flag(carol, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+12025550143")
    entry, _ = dnc_add(actor=carol, team=sales_team, phone="+12025550143")

    dnc_remove(actor=carol, entry=entry)

    assert not DoNotCall.objects.exists()
    contact.refresh_from_db()
    assert contact.do_not_call is False


def test_it_refuses_invalid_numbers_with_the_reason(carol, sales_team):
    with pytest.raises(ContactInputError, match="needs its area code") as caught:
        dnc_add(actor=carol, team=sales_team, phone="555-0143", default_region="US")
    assert caught.value.field == "phone"
    with pytest.raises(ContactInputError, match="at most 255"):
        dnc_add(actor=carol, team=sales_team, phone="+12025550143", reason="x" * 256)
    assert not DoNotCall.objects.exists()


def test_it_lets_only_the_teams_manager_or_an_admin_change_the_list(alice, dave, sales_team):
    with pytest.raises(NotAllowed):
        dnc_add(actor=alice, team=sales_team, phone="+12025550143")
    with pytest.raises(NotAllowed):
        dnc_add(actor=dave, team=sales_team, phone="+12025550143")
    entry, _ = dnc_add(actor=AdminFactory.create(), team=sales_team, phone="+12025550143")
    with pytest.raises(NotAllowed):
        dnc_remove(actor=alice, entry=entry)
    assert DoNotCall.objects.count() == 1


# --- API -------------------------------------------------------------------------------------------------------


@pytest.fixture
def entry(sales_team, carol):
    return DoNotCallFactory.create(team=sales_team, phone="+12025550143", reason="Asked", added_by=carol)


def test_it_lists_the_teams_entries_to_its_manager_and_agents(api_client_for, carol, alice, entry):
    for user in (carol, alice):
        response = api_client_for(user).get(DNC)
        assert response.status_code == 200
        rows = response.json()["results"]
        assert [(row["id"], row["phone"], row["reason"], row["added_by"]) for row in rows] == [
            (entry.pk, "+12025550143", "Asked", "carol")
        ]


def test_it_hides_the_list_from_outsiders_and_integrations(api_client_for, charlie, dave, entry, integration_client):
    for user in (charlie, dave):
        client = api_client_for(user)
        assert client.get(DNC).json()["results"] == []
        response = client.get(f"{DNC}{entry.pk}")
        assert (response.status_code, response.json()["code"]) == (404, "dnc_entry_not_found")
        assert client.delete(f"{DNC}{entry.pk}").status_code == 404
    assert integration_client.get(DNC).status_code == 404
    assert integration_client.delete(f"{DNC}{entry.pk}").status_code == 404
    assert DoNotCall.objects.filter(pk=entry.pk).exists()


def test_it_finds_one_number_in_any_format(api_client_for, carol, entry, sales_team):
    DoNotCallFactory.create(team=sales_team, phone="+442079460958", reason="Complaint")
    client = api_client_for(carol)

    response = client.get(DNC, {"phone": "(202) 555-0143", "default_region": "US"})
    assert [row["id"] for row in response.json()["results"]] == [entry.pk]
    assert len(client.get(DNC, {"q": "7946"}).json()["results"]) == 1
    assert len(client.get(DNC, {"q": "asked"}).json()["results"]) == 1
    response = client.get(DNC, {"phone": "12"})
    assert response.status_code == 400
    assert "phone" in response.json()["errors"]


def test_it_adds_a_number_through_the_api(api_client_for, carol, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+442079460958")

    response = api_client_for(carol).post(
        DNC, {"phone": "020 7946 0958", "default_region": "GB", "reason": "Complained"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["phone"], body["reason"], body["added_by"], body["team"]) == (
        "+442079460958",
        "Complained",
        "carol",
        sales_team.pk,
    )
    contact.refresh_from_db()
    assert contact.do_not_call is True
    again = api_client_for(carol).post(DNC, {"phone": "+44 20 7946 0958"}, format="json")
    assert (again.status_code, again.json()["id"]) == (200, body["id"])


def test_it_refuses_an_invalid_number_with_the_reason(api_client_for, carol):
    response = api_client_for(carol).post(DNC, {"phone": "+999 12"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_phone_unknown_country_code"
    assert body["errors"] == {"phone": [body["detail"]]}


def test_it_refuses_writes_from_agents_with_403(api_client_for, alice, entry):
    client = api_client_for(alice)
    assert client.post(DNC, {"phone": "+12025550100"}, format="json").status_code == 403
    assert client.delete(f"{DNC}{entry.pk}").status_code == 403
    assert DoNotCall.objects.count() == 1


def test_it_removes_a_number_through_the_api(api_client_for, carol, entry, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+12025550143", do_not_call=True)

    response = api_client_for(carol).delete(f"{DNC}{entry.pk}/")

    assert response.status_code == 204
    assert not DoNotCall.objects.exists()
    contact.refresh_from_db()
    assert contact.do_not_call is False


def test_it_pages_the_list_in_a_constant_number_of_queries(
    api_client_for, carol, sales_team, django_assert_max_num_queries
):
    for index in range(25):
        DoNotCallFactory.create(team=sales_team, phone=f"+1202555{index:04d}", added_by=carol)
    client = api_client_for(carol)
    # token + touch, the page (entries joined with their team and author)
    with django_assert_max_num_queries(3):
        first = client.get(f"{DNC}?page_size=10").json()
    assert len(first["results"]) == 10
    with django_assert_max_num_queries(3):
        second = client.get(first["next"]).json()
    assert len(second["results"]) == 10
