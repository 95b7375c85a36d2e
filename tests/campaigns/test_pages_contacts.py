"""The contacts pages (campaigns/views/contacts.py, campaigns/views/contact_imports.py): the list, a contact, adding
and editing, the do-not-call list and the import wizard, each as the team's manager, a teammate agent and
outsiders; list pages with pinned query counts; no inline script anywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.imports import contact_import_create, contact_import_process, contact_import_start
from campaigns.models import Contact, ContactImport, DoNotCall, Run, RunContact
from tests.factories import AdminFactory, CallSessionFactory, CampaignFactory, ContactFactory, DoNotCallFactory

INLINE_SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
CSV = b"Name,Mobile,Company\r\nAda Lovelace,(202) 555-0143,Analytical\r\nBob,555-0199,\r\n"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def contact(sales_team):
    return ContactFactory.create(team=sales_team, name="Ada Lovelace", phone="+12025550143", company="Analytical")


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    body: str = response.content.decode()
    assert not INLINE_SCRIPT_RE.search(body), "inline script: the CSP forbids it"
    return body


# --- The list ------------------------------------------------------------------------------------------------


def test_it_lists_the_teams_contacts_to_its_manager_with_the_import_and_add_buttons(client_for, carol, contact):
    body = page(client_for(carol), "/contacts/")
    assert "Ada Lovelace" in body
    assert "+12025550143" in body
    assert 'id="import-contacts"' in body
    assert 'id="add-contact"' in body
    assert 'aria-current="page">Contacts</a>' in body


def test_it_lists_the_teams_contacts_read_only_to_an_agent(client_for, alice, contact):
    body = page(client_for(alice), "/contacts/")
    assert "Ada Lovelace" in body
    assert 'id="import-contacts"' not in body
    assert 'id="add-contact"' not in body


def test_it_lists_nothing_of_another_team_to_outsiders(client_for, charlie, dave, contact):
    for user in (charlie, dave):
        body = page(client_for(user), "/contacts/")
        assert "Ada Lovelace" not in body
        assert "No contacts yet" in body


def test_it_searches_and_filters_the_list(client_for, carol, contact, sales_team):
    ContactFactory.create(team=sales_team, name="Bob Babbage", phone="+442079460958", do_not_call=True)
    client = client_for(carol)
    body = page(client, "/contacts/?q=202+555")
    assert "Ada Lovelace" in body
    assert "Bob Babbage" not in body
    body = page(client, "/contacts/?do_not_call=yes")
    assert "Bob Babbage" in body
    assert "Do not call" in body
    assert "Ada Lovelace" not in body
    assert "No contacts match" in page(client, "/contacts/?q=nobody")
    assert "a filter needs fixing" in page(client, "/contacts/?do_not_call=maybe")


def test_it_shows_admins_the_team_of_each_contact_and_a_team_filter(client_for, contact, other_team):
    ContactFactory.create(team=other_team, name="Other Person")
    client = client_for(AdminFactory.create())
    body = page(client, "/contacts/")
    assert "Other Person" in body
    assert '<th scope="col">Team</th>' in body
    body = page(client, f"/contacts/?team={other_team.pk}")
    assert "Other Person" in body
    assert "Ada Lovelace" not in body


def test_it_pages_the_list_in_a_constant_number_of_queries(
    client_for, carol, alice, sales_team, django_assert_max_num_queries
):
    for index in range(60):
        ContactFactory.create(team=sales_team, name=f"Person {index:02d}", owner=alice if index % 2 else None)
    client = client_for(carol)
    # session, user, the teams for the filter, the count, the page (contacts joined with team and owner)
    with django_assert_max_num_queries(5):
        first = page(client, "/contacts/")
    assert "Person 00" in first
    assert "Person 49" in first
    assert "Person 50" not in first
    with django_assert_max_num_queries(5):
        second = page(client, "/contacts/?page=2")
    assert "Person 59" in second


# --- A contact ------------------------------------------------------------------------------------------------


def test_it_shows_a_contact_with_its_calls_and_runs(client_for, carol, alice, bob, contact):
    campaign = CampaignFactory.create(manager=carol, name="Spring renewals")
    run = Run.objects.create(campaign=campaign, state=Run.State.COMPLETED, total=1)
    RunContact.objects.create(run=run, contact=contact, position=1, state="done", attempts=2, last_outcome="no_answer")
    alices_call = CallSessionFactory.create(owner=alice, contact=contact, campaign=campaign, to_number=contact.phone)
    bobs_call = CallSessionFactory.create(owner=bob, contact=contact)

    body = page(client_for(carol), f"/contacts/{contact.pk}/")
    assert "Ada Lovelace" in body
    assert f"/calls/{alices_call.pk}/" in body
    assert f"/calls/{bobs_call.pk}/" in body
    assert "Spring renewals" in body
    assert f"/runs/{run.pk}/" in body
    assert 'id="edit-contact"' in body

    agent_view = page(client_for(alice), f"/contacts/{contact.pk}/")
    assert f"/calls/{alices_call.pk}/" in agent_view
    assert f"/calls/{bobs_call.pk}/" not in agent_view  # an agent sees their own calls only
    assert 'id="edit-contact"' not in agent_view


def test_it_answers_outsiders_with_the_not_found_page(client_for, charlie, dave, contact):
    for user in (charlie, dave):
        for url in (f"/contacts/{contact.pk}/", f"/contacts/{contact.pk}/edit/"):
            body = page(client_for(user), url, status=404)
            assert "Contact not found" in body
            assert "Ada Lovelace" not in body
    assert "Contact not found" in page(client_for(dave), "/contacts/not-a-number/", status=404)


def test_it_shows_the_do_not_call_flag_on_a_contact(client_for, alice, sales_team):
    flagged = ContactFactory.create(team=sales_team, do_not_call=True)
    assert 'id="dnc-notice"' in page(client_for(alice), f"/contacts/{flagged.pk}/")


def test_it_adds_a_contact_for_the_manager(client_for, carol, sales_team):
    client = client_for(carol)
    page(client, "/contacts/new/")
    response = client.post(
        "/contacts/new/",
        {"name": "Ada", "phone": "020 7946 0958", "default_region": "GB", "other_phones": "+1 202 555 0199\n\n"},
    )
    contact = Contact.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/contacts/{contact.pk}/"
    assert (contact.phone, contact.timezone, contact.other_phones) == (
        "+442079460958",
        "Europe/London",
        ["+12025550199"],
    )


def test_it_shows_service_errors_on_the_field(client_for, carol, contact):
    client = client_for(carol)
    response = client.post("/contacts/new/", {"name": "X", "phone": "555-0143", "default_region": "US"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="phone-errors"' in body
    assert "needs its area code" in body
    response = client.post("/contacts/new/", {"name": "X", "phone": "(202) 555-0143", "default_region": "US"})
    body = response.content.decode()
    assert "Ada Lovelace already has this number" in body
    assert f'href="/contacts/{contact.pk}/"' in body
    assert Contact.objects.count() == 1


def test_it_tells_an_agent_they_cannot_add_or_edit(client_for, alice, contact):
    client = client_for(alice)
    assert "Only a team&#x27;s manager" in page(client, "/contacts/new/", status=403)
    assert client.post("/contacts/new/", {"name": "X", "phone": "+12025550100"}).status_code == 403
    assert client.post(f"/contacts/{contact.pk}/edit/", {"name": "Eve", "phone": contact.phone}).status_code == 403
    contact.refresh_from_db()
    assert contact.name == "Ada Lovelace"
    assert Contact.objects.count() == 1


def test_it_edits_a_contact_and_marks_it_do_not_call(client_for, carol, contact, sales_team):
    client = client_for(carol)
    body = page(client, f"/contacts/{contact.pk}/edit/")
    assert 'value="Ada Lovelace"' in body
    response = client.post(
        f"/contacts/{contact.pk}/edit/",
        {"name": "Ada King", "phone": "+12025550143", "company": "", "timezone": "", "do_not_call": "on",
         "do_not_call_reason": "Asked"},
    )  # fmt: skip
    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.name, contact.company, contact.timezone, contact.do_not_call) == (
        "Ada King",
        "",
        "America/New_York",
        True,
    )
    assert DoNotCall.objects.get(team=sales_team).reason == "Asked"


# --- The do-not-call list -----------------------------------------------------------------------------------------


def test_it_lets_the_manager_add_and_remove_numbers(client_for, carol, sales_team, contact):
    client = client_for(carol)
    assert 'id="add-heading"' in page(client, "/contacts/do-not-call/")
    response = client.post(
        "/contacts/do-not-call/", {"phone": "(202) 555-0143", "default_region": "US", "reason": "Asked"}
    )
    assert response.status_code == 302
    entry = DoNotCall.objects.get()
    assert (entry.phone, entry.reason, entry.added_by) == ("+12025550143", "Asked", carol)
    contact.refresh_from_db()
    assert contact.do_not_call is True
    body = page(client, "/contacts/do-not-call/")
    assert "+12025550143" in body
    assert "Asked" in body

    response = client.post(f"/contacts/do-not-call/{entry.pk}/remove/")
    assert response.status_code == 302
    assert not DoNotCall.objects.exists()
    contact.refresh_from_db()
    assert contact.do_not_call is False


def test_it_shows_an_invalid_number_on_the_add_form(client_for, carol):
    response = client_for(carol).post("/contacts/do-not-call/", {"phone": "12345"})
    assert response.status_code == 200
    assert 'id="phone-errors"' in response.content.decode()
    assert not DoNotCall.objects.exists()


def test_it_shows_the_list_read_only_to_an_agent(client_for, alice, sales_team):
    entry = DoNotCallFactory.create(team=sales_team, phone="+12025550143")
    client = client_for(alice)
    body = page(client, "/contacts/do-not-call/")
    assert "+12025550143" in body
    assert 'id="add-heading"' not in body
    assert "Remove" not in body
    assert client.post("/contacts/do-not-call/", {"phone": "+12025550100"}).status_code == 403
    assert client.post(f"/contacts/do-not-call/{entry.pk}/remove/").status_code == 403
    assert DoNotCall.objects.count() == 1


def test_it_hides_the_list_from_outsiders(client_for, charlie, dave, sales_team):
    entry = DoNotCallFactory.create(team=sales_team, phone="+12025550143")
    for user in (charlie, dave):
        client = client_for(user)
        assert "+12025550143" not in page(client, "/contacts/do-not-call/")
        assert client.post(f"/contacts/do-not-call/{entry.pk}/remove/").status_code == 404
    assert DoNotCall.objects.count() == 1


def test_it_searches_the_list_in_a_constant_number_of_queries(
    client_for, carol, sales_team, django_assert_max_num_queries
):
    for index in range(60):
        DoNotCallFactory.create(team=sales_team, phone=f"+1202555{index:04d}", added_by=carol)
    client = client_for(carol)
    # session, user, managed teams (the add form: two, and the team column), the count, the page
    with django_assert_max_num_queries(6):
        body = page(client, "/contacts/do-not-call/")
    assert body.count('data-entry="') == 50
    with django_assert_max_num_queries(6):
        body = page(client, "/contacts/do-not-call/?q=0042")
    assert body.count('data-entry="') == 1


# --- The import wizard ---------------------------------------------------------------------------------------------


def test_it_uploads_a_file_and_lands_on_its_mapping_and_preview(client_for, carol, contact):
    client = client_for(carol)
    page(client, "/contacts/imports/")
    response = client.post(
        "/contacts/imports/",
        {"file": SimpleUploadedFile("leads.csv", CSV, "text/csv"), "default_region": "US", "update_existing": "on"},
    )
    contact_import = ContactImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/contacts/imports/{contact_import.pk}/"

    body = page(client, response["Location"])
    assert "What is in each column?" in body
    assert '<option value="phone" selected>Phone</option>' in body
    assert "(202) 555-0143" in body  # a sample value of the Mobile column
    assert 'id="preview-table"' in body
    assert "Will skip" in body
    assert "needs its area code" in body
    assert 'id="start-import"' in body


def test_it_refuses_a_bad_file_on_the_upload_form(client_for, carol, media_root):
    response = client_for(carol).post(
        "/contacts/imports/", {"file": SimpleUploadedFile("book.xlsx", b"PK\x03\x04" + b"\x00" * 64)}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="file-errors"' in body
    assert "Excel workbook" in body
    assert not ContactImport.objects.exists()


def test_it_refuses_several_files_on_the_upload_form(client_for, carol, media_root):
    first = SimpleUploadedFile("a.csv", b"Name,Phone\nAda,+12025550142\n", content_type="text/csv")
    second = SimpleUploadedFile("b.csv", b"Name,Phone\nGrace,+12025550143\n", content_type="text/csv")
    response = client_for(carol).post("/contacts/imports/", {"file": [first, second]})
    assert response.status_code == 200
    assert "Choose one CSV file per import; this upload has 2 files." in response.content.decode()
    assert not ContactImport.objects.exists()


def test_it_refuses_an_oversize_file_on_the_upload_form(client_for, carol, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 20
    response = client_for(carol).post("/contacts/imports/", {"file": SimpleUploadedFile("leads.csv", CSV)})
    assert "larger than the limit of 20 bytes" in response.content.decode()
    assert not ContactImport.objects.exists()


@pytest.fixture
def uploaded(carol, sales_team):
    contact_import, _ = contact_import_create(
        actor=carol, team=sales_team, raw=CSV, filename="leads.csv", default_region="US"
    )
    return contact_import


def test_it_updates_the_mapping_and_starts_the_import(
    client_for, carol, uploaded, settings, django_capture_on_commit_callbacks
):
    client = client_for(carol)
    columns = {"column_0": "name", "column_1": "phone", "column_2": "custom_fields", "default_region": "GB"}
    response = client.post(f"/contacts/imports/{uploaded.pk}/mapping/", {**columns, "action": "preview"})
    assert response.status_code == 302
    uploaded.refresh_from_db()
    assert uploaded.mapping == {"name": "Name", "phone": "Mobile", "custom_fields": ["Company"]}
    assert (uploaded.default_region, uploaded.update_existing, uploaded.status) == ("GB", False, "preview")

    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/contacts/imports/{uploaded.pk}/mapping/",
            {**columns, "default_region": "US", "update_existing": "on", "action": "start"},
        )
    assert response.status_code == 302
    uploaded.refresh_from_db()
    assert (uploaded.status, uploaded.imported, uploaded.skipped) == ("completed", 1, 1)
    assert Contact.objects.get().custom_fields == {"Company": "Analytical"}


def test_it_shows_mapping_problems_in_place(client_for, carol, uploaded):
    response = client_for(carol).post(
        f"/contacts/imports/{uploaded.pk}/mapping/",
        {"column_0": "name", "column_1": "name", "column_2": "", "action": "start"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Name can come from one column only" in body
    response = client_for(carol).post(
        f"/contacts/imports/{uploaded.pk}/mapping/", {"column_0": "name", "action": "start"}
    )
    assert "Choose the column that holds the phone number." in response.content.decode()
    uploaded.refresh_from_db()
    assert uploaded.status == "preview"


def test_it_shows_the_progress_bar_and_serves_its_json_while_the_import_runs(client_for, carol, alice, uploaded):
    contact_import_start(actor=carol, contact_import=uploaded)
    body = page(client_for(carol), f"/contacts/imports/{uploaded.pk}/")
    assert '<progress id="import-bar" max="100" value="0.0"' in body
    assert f'data-progress-url="/contacts/imports/{uploaded.pk}/progress.json"' in body
    assert "/static/js/import.js" in body
    assert "Cancel the import" in body
    assert "Cancel the import" not in page(client_for(alice), f"/contacts/imports/{uploaded.pk}/")

    response = client_for(alice).get(f"/contacts/imports/{uploaded.pk}/progress.json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert (data["status"], data["total_rows"], data["processed_rows"], data["finished"]) == ("queued", 2, 0, False)


def test_it_shows_the_report_with_filters_and_its_csv(client_for, carol, alice, uploaded):
    contact_import_start(actor=carol, contact_import=uploaded)
    contact_import_process(import_id=uploaded.pk)
    for user in (carol, alice):
        body = page(client_for(user), f"/contacts/imports/{uploaded.pk}/")
        assert "Every row, and what became of it" in body
        assert 'data-row="2" data-outcome="imported"' in body
        assert 'data-row="3" data-outcome="skipped"' in body
        assert "/static/js/import.js" not in body
    body = page(client_for(carol), f"/contacts/imports/{uploaded.pk}/?outcome=skipped")
    assert 'data-row="2"' not in body
    assert 'data-row="3"' in body
    assert f'href="/contacts/imports/{uploaded.pk}/report.csv?outcome=skipped"' in body
    response = client_for(alice).get(f"/contacts/imports/{uploaded.pk}/report.csv?outcome=skipped")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "row,outcome,reason,contact_id,Name,Mobile,Company,extra values"
    assert lines[1].startswith("3,skipped,")
    assert len(lines) == 2


def test_it_cancels_and_restarts_imports_for_the_manager_only(client_for, carol, alice, uploaded):
    contact_import_start(actor=carol, contact_import=uploaded)
    assert client_for(alice).post(f"/contacts/imports/{uploaded.pk}/cancel/").status_code == 403
    assert client_for(alice).post(f"/contacts/imports/{uploaded.pk}/start/").status_code == 403
    assert client_for(carol).post(f"/contacts/imports/{uploaded.pk}/cancel/").status_code == 302
    uploaded.refresh_from_db()
    assert uploaded.status == "canceled"


def test_it_hides_imports_from_outsiders(client_for, charlie, dave, uploaded):
    for user in (charlie, dave):
        client = client_for(user)
        assert "leads.csv" not in page(client, "/contacts/imports/")
        for path in ("", "report.csv"):
            assert "Import not found" in page(client, f"/contacts/imports/{uploaded.pk}/{path}", status=404)
        assert client.get(f"/contacts/imports/{uploaded.pk}/progress.json").status_code == 404
        for action in ("mapping", "start", "cancel"):
            assert client.post(f"/contacts/imports/{uploaded.pk}/{action}/", {"action": "start"}).status_code == 404
    uploaded.refresh_from_db()
    assert uploaded.status == "preview"


def test_it_shows_the_imports_read_only_to_an_agent(client_for, alice, uploaded):
    client = client_for(alice)
    body = page(client, "/contacts/imports/")
    assert "leads.csv" in body
    assert 'id="upload-heading"' not in body
    body = page(client, f"/contacts/imports/{uploaded.pk}/")
    assert 'id="waiting-notice"' in body
    assert 'id="mapping-form"' not in body
    assert client.post("/contacts/imports/", {"file": SimpleUploadedFile("x.csv", CSV)}).status_code == 403
    assert client.post(f"/contacts/imports/{uploaded.pk}/mapping/", {"column_0": "name"}).status_code == 403


def test_it_lists_imports_in_a_constant_number_of_queries(client_for, carol, sales_team, django_assert_max_num_queries):
    for index in range(5):
        contact_import_create(actor=carol, team=sales_team, raw=CSV, filename=f"file-{index}.csv")
    client = client_for(carol)
    # session, user, managed teams (two), the latest import's region, the imports with team and uploader
    with django_assert_max_num_queries(5):
        body = page(client, "/contacts/imports/")
    assert body.count('data-import="') == 5
