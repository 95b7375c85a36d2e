"""The contacts and contact-imports API (campaigns/api/contacts.py): every endpoint as the team's manager, its
agents, an outsider agent, the other team's manager, an admin and an integration; errors as JSON with a code;
list endpoints with pinned query counts."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from campaigns.models import Contact, ContactImport, ContactImportRow
from tests.factories import AdminFactory, ContactFactory

CONTACTS = "/api/crm/contacts/"
IMPORTS = "/api/crm/imports/"
CSV = b"Name,Mobile,Company,Tier\r\nAda Lovelace,(202) 555-0143,Analytical,gold\r\nBob,555-0199,,\r\n"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def contact(sales_team):
    return ContactFactory.create(team=sales_team, name="Ada Lovelace", phone="+12025550143", company="Analytical")


def detail(contact_id: object) -> str:
    return f"{CONTACTS}{contact_id}"


# --- Contacts: reading ---------------------------------------------------------------------------------------


def test_it_lists_a_teams_contacts_to_its_manager_and_agents(api_client_for, carol, alice, bob, contact):
    for user in (carol, alice, bob):
        response = api_client_for(user).get(CONTACTS)
        assert response.status_code == 200
        body = response.json()
        assert [row["id"] for row in body["results"]] == [contact.pk]
        row = body["results"][0]
        assert row["phone"] == "+12025550143"
        assert row["team_name"] == "Sales"
        assert row["url"].endswith(f"/api/crm/contacts/{contact.pk}")


def test_it_lists_nothing_of_another_team(api_client_for, charlie, dave, contact):
    for user in (charlie, dave):
        response = api_client_for(user).get(CONTACTS)
        assert response.status_code == 200
        assert response.json()["results"] == []


def test_it_answers_404_to_integrations_on_every_contacts_endpoint(integration_client, contact):
    for path in (CONTACTS, detail(contact.pk), IMPORTS, "/api/crm/do-not-call/"):
        response = integration_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert integration_client.post(CONTACTS, {"name": "X", "phone": "+12025550100"}, format="json").status_code == 404
    assert Contact.objects.count() == 1


def test_it_answers_401_without_credentials(contact):
    assert APIClient().get(CONTACTS).status_code == 401
    assert APIClient().get(detail(contact.pk)).status_code == 401


def test_it_searches_and_filters_the_list(api_client_for, carol, sales_team):
    ada = ContactFactory.create(team=sales_team, name="Ada Lovelace", phone="+12025550143", company="Analytical")
    ContactFactory.create(team=sales_team, name="Bob Babbage", phone="+442079460958", do_not_call=True)
    client = api_client_for(carol)

    def ids(query: str) -> list[int]:
        response = client.get(f"{CONTACTS}?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("q=lovelace") == [ada.pk]
    assert ids("q=202-555-0143") == [ada.pk]
    assert ids("do_not_call=false") == [ada.pk]
    assert ids("company=analytical") == [ada.pk]
    assert ids(f"team={sales_team.pk}&q=bob") != []


def test_it_refuses_unknown_filters_and_bad_values(api_client_for, carol):
    response = api_client_for(carol).get(f"{CONTACTS}?colour=red")
    assert response.status_code == 400
    assert response.json()["errors"] == {"colour": ["Unknown or read-only field."]}
    assert api_client_for(carol).get(f"{CONTACTS}?team=abc").status_code == 400


def test_it_pages_contacts_with_a_cursor_in_a_constant_number_of_queries(
    api_client_for, carol, alice, sales_team, django_assert_max_num_queries
):
    for index in range(30):
        ContactFactory.create(team=sales_team, name=f"Person {index:02d}", owner=alice if index % 2 else None)
    client = api_client_for(carol)

    # token + touch, the page (contacts joined with team and owner)
    with django_assert_max_num_queries(3):
        first = client.get(f"{CONTACTS}?page_size=20").json()
    assert len(first["results"]) == 20
    assert first["results"][0]["name"] == "Person 00"
    assert first["results"][1]["owner"] == "alice"
    with django_assert_max_num_queries(3):
        second = client.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == [f"Person {index:02d}" for index in range(20, 30)]
    assert second["next"] is None


def test_it_shows_a_contact_to_its_team_and_404_to_outsiders(api_client_for, carol, alice, charlie, dave, contact):
    for user in (carol, alice, AdminFactory.create()):
        response = api_client_for(user).get(detail(contact.pk))
        assert response.status_code == 200
        assert response.json()["name"] == "Ada Lovelace"
    for user in (charlie, dave):
        response = api_client_for(user).get(detail(contact.pk))
        assert response.status_code == 404
        assert response.json() == {"detail": "Contact not found.", "code": "contact_not_found"}


@pytest.mark.parametrize("contact_id", ["999999", "abc", "1.5", "9" * 40])
def test_it_answers_the_same_404_for_missing_and_malformed_ids(api_client_for, carol, contact_id):
    response = api_client_for(carol).get(detail(contact_id))
    assert response.status_code == 404
    assert response.json()["code"] == "contact_not_found"


def test_it_answers_with_and_without_a_trailing_slash(api_client_for, carol, contact):
    client = api_client_for(carol)
    assert client.get(detail(contact.pk)).status_code == 200
    assert client.get(f"{detail(contact.pk)}/").status_code == 200
    assert client.get("/api/crm/contacts").status_code == 200


# --- Contacts: writing ---------------------------------------------------------------------------------------


def test_it_creates_a_contact_for_the_manager(api_client_for, carol, sales_team):
    response = api_client_for(carol).post(
        CONTACTS,
        {"name": "Ada", "phone": "020 7946 0958", "default_region": "GB", "custom_fields": {"tier": "gold"}},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["phone"], body["timezone"], body["team"]) == ("+442079460958", "Europe/London", sales_team.pk)
    assert body["custom_fields"] == {"tier": "gold"}
    assert response["Location"] == body["url"]
    assert Contact.objects.get().name == "Ada"


def test_it_refuses_an_invalid_number_with_the_reason(api_client_for, carol):
    response = api_client_for(carol).post(CONTACTS, {"name": "Ada", "phone": "555-0143"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_phone_missing_country_code"
    assert "no country code" in body["detail"]
    assert body["errors"] == {"phone": [body["detail"]]}
    assert not Contact.objects.exists()


def test_it_answers_409_naming_the_contact_that_has_the_number(api_client_for, carol, contact):
    response = api_client_for(carol).post(
        CONTACTS, {"name": "Ada L.", "phone": "(202) 555-0143", "default_region": "US"}, format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["contact_id"]) == ("duplicate_contact", contact.pk)
    assert body["contact_url"].endswith(f"/api/crm/contacts/{contact.pk}")
    assert Contact.objects.count() == 1


def test_it_refuses_writes_from_agents_403_and_from_outsiders_404(
    api_client_for, alice, charlie, dave, contact, sales_team
):
    response = api_client_for(alice).post(CONTACTS, {"name": "X", "phone": "+12025550100"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert api_client_for(alice).patch(detail(contact.pk), {"name": "Eve"}, format="json").status_code == 403
    for user in (charlie, dave):
        assert api_client_for(user).patch(detail(contact.pk), {"name": "Eve"}, format="json").status_code == 404
    response = api_client_for(dave).post(
        CONTACTS, {"team": sales_team.pk, "name": "X", "phone": "+12025550100"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"team": [f"No team you manage has the id '{sales_team.pk}'."]}
    contact.refresh_from_db()
    assert contact.name == "Ada Lovelace"
    assert Contact.objects.count() == 1


def test_it_asks_an_admin_for_the_team(api_client_for, sales_team, other_team):
    client = api_client_for(AdminFactory.create())
    response = client.post(CONTACTS, {"name": "X", "phone": "+12025550100"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "team_required")
    response = client.post(CONTACTS, {"team": other_team.pk, "name": "X", "phone": "+12025550100"}, format="json")
    assert response.status_code == 201


def test_it_refuses_unknown_fields_rather_than_dropping_them(api_client_for, carol, contact):
    response = api_client_for(carol).patch(detail(contact.pk), {"nickname": "Ada"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"nickname": ["Unknown or read-only field."]}


def test_it_patches_a_contact_and_its_do_not_call_flag(api_client_for, carol, contact, sales_team):
    response = api_client_for(carol).patch(
        detail(contact.pk),
        {"company": "Difference Engines", "do_not_call": True, "do_not_call_reason": "Asked"},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["company"], response.json()["do_not_call"]) == ("Difference Engines", True)
    assert sales_team.do_not_call.get().phone == "+12025550143"


def test_it_answers_409_when_a_new_number_is_another_contacts(api_client_for, carol, contact, sales_team):
    other = ContactFactory.create(team=sales_team, phone="+12025550144")
    response = api_client_for(carol).patch(detail(other.pk), {"phone": "+1 202 555 0143"}, format="json")
    assert (response.status_code, response.json()["contact_id"]) == (409, contact.pk)


# --- Imports ---------------------------------------------------------------------------------------------------


def upload(client: APIClient, raw: bytes = CSV, **fields: Any) -> Any:
    return client.post(
        IMPORTS, {"file": SimpleUploadedFile("leads.csv", raw, "text/csv"), **fields}, format="multipart"
    )


def test_it_uploads_a_csv_and_answers_the_suggested_mapping_and_a_preview(api_client_for, carol, contact):
    response = upload(api_client_for(carol), default_region="US")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "preview"
    assert (body["original_name"], body["encoding"], body["delimiter"], body["total_rows"]) == (
        "leads.csv",
        "utf-8",
        ",",
        2,
    )
    assert body["headers"] == ["Name", "Mobile", "Company", "Tier"]
    assert body["mapping"] == {"phone": "Mobile", "name": "Name", "company": "Company", "custom_fields": ["Tier"]}
    rows = body["preview"]["rows"]
    assert [(row["row_number"], row["outcome"]) for row in rows] == [(2, "updated"), (3, "skipped")]
    assert rows[0]["reason"] == "Changed custom fields."
    assert rows[0]["contact_id"] == contact.pk
    assert rows[0]["values"]["phone"] == "+12025550143"
    assert "needs its area code" in rows[1]["reason"]
    assert body["preview"]["mapping_errors"] == {}
    assert response["Location"] == body["url"]
    assert str(ContactImport.objects.get().file.name).startswith(f"imports/{contact.team_id}/")


def test_it_uploads_a_raw_text_csv_body_with_options_in_the_query(api_client_for, carol):
    raw = "Nom;Téléphone\r\nFrançois;01 42 68 53 00\r\n".encode("cp1252")
    response = api_client_for(carol).post(
        f"{IMPORTS}?default_region=FR&filename=clients.csv", raw, content_type="text/csv"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["encoding"], body["delimiter"], body["original_name"]) == ("cp1252", ";", "clients.csv")
    assert body["mapping"] == {"phone": "Téléphone", "last_name": "Nom"}
    assert body["preview"]["rows"][0]["values"]["phone"] == "+33142685300"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "empty"),
        (b"PK\x03\x04" + b"\x00" * 50, 415, "not_csv"),
        (b"Ada,+12025550143\n", 400, "no_header"),
        (b"Name,Phone\n", 400, "no_rows"),
    ],
)
def test_it_refuses_bad_files_with_a_clear_error_and_stores_nothing(
    api_client_for, carol, raw, status, code, media_root
):
    response = upload(api_client_for(carol), raw)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["detail"]
    assert not ContactImport.objects.exists()
    assert not list(media_root.rglob("*.csv"))


def test_it_refuses_an_oversize_file_with_413(api_client_for, carol, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 50
    response = upload(api_client_for(carol), CSV)
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    response = api_client_for(carol).post(IMPORTS, CSV, content_type="text/csv")
    assert response.status_code == 413
    assert not ContactImport.objects.exists()


def test_it_refuses_other_content_types_and_a_multipart_without_file(api_client_for, carol):
    response = api_client_for(carol).post(IMPORTS, {"name": "x"}, format="json")
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    response = api_client_for(carol).post(IMPORTS, {"team": "1"}, format="multipart")
    assert (response.status_code, response.json()["code"]) == (400, "missing_file")


def test_it_refuses_uploads_from_agents_and_other_managers(api_client_for, alice, dave, sales_team):
    assert upload(api_client_for(alice)).status_code == 403
    assert upload(api_client_for(dave), team=sales_team.pk).status_code == 400
    assert not ContactImport.objects.exists()


@pytest.fixture
def uploaded(api_client_for, carol):
    response = upload(api_client_for(carol), default_region="US")
    assert response.status_code == 201
    return ContactImport.objects.get(pk=response.json()["id"])


def test_it_changes_the_mapping_and_answers_the_new_preview(api_client_for, carol, uploaded):
    response = api_client_for(carol).post(
        f"{IMPORTS}{uploaded.pk}/preview",
        {"mapping": {"phone": "Mobile", "name": "Company"}, "default_region": "GB"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["mapping"], body["default_region"]) == ({"phone": "Mobile", "name": "Company"}, "GB")
    assert body["preview"]["rows"][0]["outcome"] == "skipped"


def test_it_refuses_a_mapping_it_cannot_use_naming_each_problem(api_client_for, carol, uploaded):
    response = api_client_for(carol).post(f"{IMPORTS}{uploaded.pk}/start", {"mapping": {"name": "Nope"}}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_mapping"
    assert body["errors"] == {
        "name": ["No column named 'Nope' in this file."],
        "phone": ["Choose the column that holds the phone number."],
    }
    uploaded.refresh_from_db()
    assert uploaded.status == "preview"


def test_it_starts_an_import_in_the_background_and_reports_progress_and_rows(
    api_client_for, carol, alice, uploaded, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client = api_client_for(carol)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{IMPORTS}{uploaded.pk}/start", {}, format="json")

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    progress = api_client_for(alice).get(f"{IMPORTS}{uploaded.pk}/progress").json()
    assert progress["status"] == "completed"
    assert (progress["total_rows"], progress["processed_rows"], progress["percent"]) == (2, 2, 100.0)
    assert (progress["imported"], progress["updated"], progress["skipped"]) == (1, 0, 1)
    rows = client.get(f"{IMPORTS}{uploaded.pk}/rows").json()["results"]
    assert [(row["row_number"], row["outcome"]) for row in rows] == [(2, "imported"), (3, "skipped")]
    skipped = client.get(f"{IMPORTS}{uploaded.pk}/rows?outcome=skipped").json()["results"]
    assert [row["row_number"] for row in skipped] == [3]
    assert "area code" in skipped[0]["reason"]
    assert client.post(f"{IMPORTS}{uploaded.pk}/start", {}, format="json").status_code == 409


def test_it_downloads_the_report_as_csv(api_client_for, carol, uploaded):
    ContactImportRow.objects.create(
        contact_import=uploaded, row_number=2, outcome="skipped", reason="Why", data={"Name": "Ada"}
    )

    response = api_client_for(carol).get(f"{IMPORTS}{uploaded.pk}/report.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="contact-import-{uploaded.pk}-report.csv"' in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines == [
        ["row", "outcome", "reason", "contact_id", "Name", "Mobile", "Company", "Tier", "extra values"],
        ["2", "skipped", "Why", "", "Ada", "", "", "", ""],
    ]


def test_it_cancels_an_import_awaiting_confirmation(api_client_for, carol, uploaded):
    response = api_client_for(carol).post(f"{IMPORTS}{uploaded.pk}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "canceled")
    assert api_client_for(carol).post(f"{IMPORTS}{uploaded.pk}/cancel").status_code == 409


def test_it_shows_imports_read_only_to_agents_and_hides_them_from_outsiders(
    api_client_for, alice, charlie, dave, uploaded, integration_client
):
    agent = api_client_for(alice)
    assert agent.get(f"{IMPORTS}{uploaded.pk}").status_code == 200
    assert agent.get(f"{IMPORTS}{uploaded.pk}/rows").status_code == 200
    for path in ("start", "cancel", "preview"):
        assert agent.post(f"{IMPORTS}{uploaded.pk}/{path}", {}, format="json").status_code == 403, path
    for user in (charlie, dave):
        client = api_client_for(user)
        for path in ("", "/progress", "/rows", "/report.csv", "/preview"):
            response = client.get(f"{IMPORTS}{uploaded.pk}{path}")
            assert response.status_code == 404, path
            assert response.json()["code"] == "import_not_found"
        assert client.post(f"{IMPORTS}{uploaded.pk}/start", {}, format="json").status_code == 404
        assert client.get(IMPORTS).json()["results"] == []
    assert integration_client.get(f"{IMPORTS}{uploaded.pk}").status_code == 404
    uploaded.refresh_from_db()
    assert uploaded.status == "preview"


def test_it_lists_imports_in_a_constant_number_of_queries(
    api_client_for, carol, sales_team, django_assert_max_num_queries
):
    client = api_client_for(carol)
    for _ in range(3):
        upload(client)
    # token + touch, the page (imports joined with team and uploader)
    with django_assert_max_num_queries(3):
        response = client.get(IMPORTS)
    assert len(response.json()["results"]) == 3


def test_it_pages_the_report_rows_in_a_constant_number_of_queries(
    api_client_for, carol, uploaded, django_assert_max_num_queries
):
    ContactImportRow.objects.bulk_create(
        [ContactImportRow(contact_import=uploaded, row_number=n, outcome="skipped", reason="r") for n in range(2, 152)]
    )
    client = api_client_for(carol)
    # token + touch, the import, the page
    with django_assert_max_num_queries(4):
        first = client.get(f"{IMPORTS}{uploaded.pk}/rows?page_size=100").json()
    assert [row["row_number"] for row in first["results"]][:2] == [2, 3]
    with django_assert_max_num_queries(4):
        second = client.get(first["next"]).json()
    assert [row["row_number"] for row in second["results"]] == list(range(102, 152))


def test_it_documents_every_contacts_endpoint(client_for, alice):
    schema = client_for(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in [
        "/api/crm/contacts/",
        "/api/crm/contacts/{contact_id}/",
        "/api/crm/imports/",
        "/api/crm/imports/{import_id}/",
        "/api/crm/imports/{import_id}/preview/",
        "/api/crm/imports/{import_id}/start/",
        "/api/crm/imports/{import_id}/cancel/",
        "/api/crm/imports/{import_id}/progress/",
        "/api/crm/imports/{import_id}/rows/",
        "/api/crm/do-not-call/",
        "/api/crm/do-not-call/{entry_id}/",
    ]:
        assert path in paths, path
    assert {"201", "400", "403", "409"} <= set(paths["/api/crm/contacts/"]["post"]["responses"])
    upload_doc = paths["/api/crm/imports/"]["post"]
    assert {"multipart/form-data", "text/csv"} <= set(upload_doc["requestBody"]["content"])
    assert {"201", "413", "415"} <= set(upload_doc["responses"])
