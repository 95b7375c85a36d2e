"""Contact services and selectors (campaigns/contacts.py, campaigns/contact_selectors.py): normalisation,
deduplication within a team, the do-not-call flag, who may write, and the list's search."""

from __future__ import annotations

import pytest

from campaigns.access import NotAllowed
from campaigns.contact_selectors import ContactFilters, contact_list
from campaigns.contacts import (
    ContactDuplicate,
    ContactInputError,
    contact_create,
    contact_team_resolve,
    contact_update,
)
from campaigns.models import Contact, DoNotCall
from tests.factories import AdminFactory, ContactFactory, DoNotCallFactory, ManagerFactory, TeamFactory


def test_it_creates_a_contact_with_its_number_in_e164_and_its_inferred_timezone(carol, sales_team):
    contact = contact_create(
        actor=carol, team=sales_team, name="  Ada   Lovelace ", phone="(202) 555-0143", default_region="US"
    )

    contact.refresh_from_db()
    assert contact.name == "Ada Lovelace"
    assert contact.phone == "+12025550143"
    assert contact.timezone == "America/New_York"
    assert contact.team == sales_team
    assert contact.do_not_call is False


def test_it_keeps_a_given_timezone_in_its_canonical_spelling(carol, sales_team):
    contact = contact_create(
        actor=carol, team=sales_team, name="Ada", phone="+1 202 555 0143", timezone="europe/london"
    )
    assert contact.timezone == "Europe/London"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"phone": "555-0143", "default_region": "US"}, "phone", "needs its area code"),
        ({"phone": "2025550143"}, "phone", "no country code"),
        ({"phone": "+1 202 555 0143", "timezone": "Mars/Base"}, "timezone", "not a known time zone"),
        ({"phone": "+1 202 555 0143", "email": "ada@"}, "email", "not a valid e-mail"),
        ({"phone": "+1 202 555 0143", "name": "   "}, "name", "name is required"),
        ({"phone": "+1 202 555 0143", "name": "x" * 201}, "name", "at most 200"),
        ({"phone": "020 7946 0958", "default_region": "England"}, "default_region", "not a country code"),
        ({"phone": "+1 202 555 0143", "other_phones": ["+1 202"]}, "other_phones", "too short"),
        ({"phone": "+1 202 555 0143", "custom_fields": {"tier": {"nested": 1}}}, "custom_fields", "must be text"),
        ({"phone": "+1 202 555 0143", "owner": "charlie"}, "owner", "No active member"),
    ],
)
def test_it_refuses_bad_input_naming_the_field_and_the_reason(carol, sales_team, charlie, changes, field, words):
    values = {"name": "Ada", **changes}

    with pytest.raises(ContactInputError) as caught:
        contact_create(actor=carol, team=sales_team, **values)

    assert caught.value.field == field
    assert words in str(caught.value)
    assert not Contact.objects.exists()


def test_it_deduplicates_by_normalised_number_within_a_team(carol, sales_team):
    first = contact_create(actor=carol, team=sales_team, name="Ada", phone="(202) 555-0143", default_region="US")

    with pytest.raises(ContactDuplicate) as caught:
        contact_create(actor=carol, team=sales_team, name="Ada L.", phone="+1 202-555-0143")

    assert caught.value.contact == first
    assert Contact.objects.count() == 1


def test_it_allows_the_same_number_in_another_team(carol, sales_team, dave, other_team):
    contact_create(actor=carol, team=sales_team, name="Ada", phone="+12025550143")
    contact_create(actor=dave, team=other_team, name="Ada", phone="+12025550143")

    assert Contact.objects.filter(phone="+12025550143").count() == 2


def test_it_normalises_other_numbers_without_repeats_or_the_primary(carol, sales_team):
    contact = contact_create(
        actor=carol,
        team=sales_team,
        name="Ada",
        phone="+12025550143",
        default_region="US",
        other_phones=["(202) 555-0199", "+1 202 555 0199", "202 555 0143", "+44 20 7946 0958"],
    )
    assert contact.other_phones == ["+12025550199", "+442079460958"]


def test_it_flags_a_new_contact_whose_number_is_on_the_do_not_call_list(carol, sales_team):
    DoNotCallFactory.create(team=sales_team, phone="+12025550143")

    contact = contact_create(actor=carol, team=sales_team, name="Ada", phone="(202) 555-0143", default_region="US")

    assert contact.do_not_call is True


def test_it_lets_only_the_teams_manager_or_an_admin_write(alice, carol, dave, sales_team):
    with pytest.raises(NotAllowed):
        contact_create(actor=alice, team=sales_team, name="Ada", phone="+12025550143")
    with pytest.raises(NotAllowed):
        contact_create(actor=dave, team=sales_team, name="Ada", phone="+12025550143")
    contact = contact_create(actor=AdminFactory.create(), team=sales_team, name="Ada", phone="+12025550143")
    with pytest.raises(NotAllowed):
        contact_update(actor=dave, contact=contact, changes={"name": "Eve"})
    with pytest.raises(NotAllowed):
        contact_update(actor=alice, contact=contact, changes={"name": "Eve"})


def test_it_resolves_the_team_of_a_manager_and_asks_an_admin_to_choose(carol, sales_team, other_team, alice):
    assert contact_team_resolve(actor=carol, team_id=None) == sales_team
    assert contact_team_resolve(actor=carol, team_id=str(sales_team.pk)) == sales_team
    with pytest.raises(ContactInputError, match="No team you manage"):
        contact_team_resolve(actor=carol, team_id=other_team.pk)
    with pytest.raises(ContactInputError, match="No team you manage"):
        contact_team_resolve(actor=carol, team_id="sales")
    admin = AdminFactory.create()
    with pytest.raises(ContactInputError, match="Choose the team"):
        contact_team_resolve(actor=admin, team_id=None)
    assert contact_team_resolve(actor=admin, team_id=other_team.pk) == other_team
    with pytest.raises(NotAllowed):
        contact_team_resolve(actor=alice, team_id=sales_team.pk)
    with pytest.raises(NotAllowed, match="You manage no team"):
        contact_team_resolve(actor=ManagerFactory.create(team=None), team_id=None)


def test_it_updates_the_number_and_infers_the_new_timezone(carol, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+12025550143", timezone="America/New_York")

    updated = contact_update(actor=carol, contact=contact, changes={"phone": "020 7946 0958", "default_region": "GB"})

    assert (updated.phone, updated.timezone) == ("+442079460958", "Europe/London")
    contact.refresh_from_db()
    assert contact.phone == "+442079460958"


def test_it_keeps_a_timezone_given_with_a_new_number(carol, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+12025550143")

    updated = contact_update(
        actor=carol, contact=contact, changes={"phone": "+442079460958", "timezone": "Europe/Dublin"}
    )

    assert updated.timezone == "Europe/Dublin"


def test_it_refuses_to_renumber_a_contact_onto_another_contacts_number(carol, sales_team):
    ada = ContactFactory.create(team=sales_team, phone="+12025550143", name="Ada")
    bob = ContactFactory.create(team=sales_team, phone="+12025550144", name="Bob")

    with pytest.raises(ContactDuplicate) as caught:
        contact_update(actor=carol, contact=bob, changes={"phone": "(202) 555-0143", "default_region": "US"})

    assert caught.value.contact == ada
    bob.refresh_from_db()
    assert bob.phone == "+12025550144"


def test_it_refuses_unknown_fields_in_an_update(carol, sales_team):
    contact = ContactFactory.create(team=sales_team)
    with pytest.raises(ContactInputError, match="Unknown field: team"):
        contact_update(actor=carol, contact=contact, changes={"team": 3})


def test_it_marks_and_unmarks_a_contact_do_not_call_through_the_teams_list(carol, sales_team):
    contact = ContactFactory.create(team=sales_team, phone="+12025550143")
    twin_in_other_team = ContactFactory.create(team=TeamFactory.create(), phone="+12025550143")

    marked = contact_update(
        actor=carol, contact=contact, changes={"do_not_call": True, "do_not_call_reason": "Asked on the phone"}
    )

    assert marked.do_not_call is True
    entry = DoNotCall.objects.get(team=sales_team)
    assert (entry.phone, entry.reason, entry.added_by) == ("+12025550143", "Asked on the phone", carol)
    twin_in_other_team.refresh_from_db()
    assert twin_in_other_team.do_not_call is False

    unmarked = contact_update(actor=carol, contact=contact, changes={"do_not_call": False})

    assert unmarked.do_not_call is False
    assert not DoNotCall.objects.filter(team=sales_team).exists()


def test_it_takes_the_do_not_call_flag_of_a_new_number(carol, sales_team):
    DoNotCallFactory.create(team=sales_team, phone="+12025550199")
    contact = ContactFactory.create(team=sales_team, phone="+12025550143")

    updated = contact_update(actor=carol, contact=contact, changes={"phone": "+12025550199"})
    assert updated.do_not_call is True
    updated = contact_update(actor=carol, contact=contact, changes={"phone": "+12025550143"})
    assert updated.do_not_call is False


def test_it_replaces_custom_fields_and_other_numbers_whole(carol, sales_team):
    contact = ContactFactory.create(team=sales_team, custom_fields={"tier": "gold"}, other_phones=["+12025550199"])

    updated = contact_update(
        actor=carol, contact=contact, changes={"custom_fields": {"source": "fair"}, "other_phones": []}
    )

    assert updated.custom_fields == {"source": "fair"}
    assert updated.other_phones == []


def test_it_sets_an_owner_from_the_team(carol, alice, sales_team):
    contact = ContactFactory.create(team=sales_team)
    assert contact_update(actor=carol, contact=contact, changes={"owner": "alice"}).owner == alice
    assert contact_update(actor=carol, contact=contact, changes={"owner": ""}).owner is None


# --- The list --------------------------------------------------------------------------------------------------


def test_it_lists_only_the_contacts_a_user_may_see(alice, carol, charlie, dave, sales_team, other_team):
    ours = ContactFactory.create(team=sales_team)
    theirs = ContactFactory.create(team=other_team)

    assert list(contact_list(user=alice, filters=ContactFilters())) == [ours]
    assert list(contact_list(user=carol, filters=ContactFilters())) == [ours]
    assert list(contact_list(user=charlie, filters=ContactFilters())) == [theirs]
    assert set(contact_list(user=AdminFactory.create(), filters=ContactFilters())) == {ours, theirs}


def test_it_searches_names_companies_emails_and_the_digits_of_numbers(carol, sales_team):
    ada = ContactFactory.create(team=sales_team, name="Ada Lovelace", company="Analytical", phone="+12025550143")
    bob = ContactFactory.create(team=sales_team, name="Bob Babbage", email="bob@engines.example", phone="+442079460958")

    def search(q):
        return list(contact_list(user=carol, filters=ContactFilters(q=q)))

    assert search("lovelace") == [ada]
    assert search("analytical ada") == [ada]
    assert search("engines.example") == [bob]
    assert search("(202) 555-0143") == [ada]
    assert search("7946 0958") == [bob]
    assert search("ada bob") == []


def test_it_filters_by_team_and_do_not_call(carol, sales_team):
    flagged = ContactFactory.create(team=sales_team, do_not_call=True)
    plain = ContactFactory.create(team=sales_team)

    assert list(contact_list(user=carol, filters=ContactFilters(do_not_call=True))) == [flagged]
    assert list(contact_list(user=carol, filters=ContactFilters(do_not_call=False))) == [plain]
    assert list(contact_list(user=carol, filters=ContactFilters(team=sales_team.pk + 1000))) == []
