"""Contacts in a browser: a manager uploads a CSV, fixes a column, previews, confirms, and watches the progress bar
move without a reload until the page turns into the report; the contacts list, a contact and the do-not-call
list render without a console error or a Content-Security-Policy violation, on a desktop and on a phone.

The background import is driven from the test (its task's body, batch by batch), so what is checked is the page
following an import, whatever a worker's speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from campaigns import imports
from campaigns.imports import contact_import_process
from campaigns.models import Contact, ContactImport
from tests.browser.conftest import PHONE, screenshot, visible_text
from tests.factories import ContactFactory, DoNotCallFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROWS = 45


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


def test_it_walks_a_manager_through_an_import_and_follows_it_live(
    signed_in_page, carol, sales_team, console, monkeypatch, tmp_path
):
    monkeypatch.setattr(imports, "BATCH_ROWS", 20)
    queued: list[int] = []

    def enqueue(*, import_id: int) -> bool:
        queued.append(import_id)
        return True

    monkeypatch.setattr(imports, "contact_import_enqueue", enqueue)
    lines = ["Full name;Mobile;Organisation;Tier"]
    lines += [f"Person {i};(202) 555-{i:04d};Company {i % 3};gold" for i in range(ROWS - 1)]
    lines.append("Broken;555-01;;")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    page = signed_in_page(carol)

    page.goto("/contacts/")
    page.click("#import-contacts")
    page.set_input_files("#id_file", str(csv_file))
    page.select_option("#id_default_region", "US")
    page.click("text=Upload and check")
    page.wait_for_selector("#mapping-form")
    contact_import = ContactImport.objects.get()
    assert page.url.endswith(f"/contacts/imports/{contact_import.pk}/")
    assert page.input_value("#id_column_1") == "phone"
    assert page.input_value("#id_column_2") == "company"
    screenshot(page, "contacts-import-mapping")

    page.select_option("#id_column_2", "custom_fields")
    page.click("text=Update the preview")
    page.wait_for_selector("#preview-table")
    assert page.input_value("#id_column_2") == "custom_fields"
    assert "Will import" in visible_text(page)
    page.click("#start-import")
    page.wait_for_selector("#import-progress")
    assert queued == [contact_import.pk]
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    assert contact_import_process(import_id=contact_import.pk, time_budget=0).startswith("continues after row 20")
    # The page's script moves the bar and the figures; the document is the same one (no reload).
    expect(page.locator("#import-processed")).to_have_text("20")
    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate("document.getElementById('import-bar').value") == pytest.approx(100 * 20 / ROWS, abs=0.1)
    screenshot(page, "contacts-import-progress")

    while contact_import_process(import_id=contact_import.pk, time_budget=0) != "completed":
        pass
    page.wait_for_selector("#import-report", timeout=15_000)  # the page reloaded itself into the report
    text = visible_text(page)
    assert "Done" in text
    assert "needs" in text or "too short" in text or "local number" in text
    assert Contact.objects.filter(team=sales_team).count() == ROWS - 1
    screenshot(page, "contacts-import-report")
    page.click(".outcome-filter >> text=Skipped")
    page.wait_for_selector('#report-table tr[data-outcome="skipped"]')
    assert page.locator('#report-table tr[data-outcome="imported"]').count() == 0
    console.assert_clean()


def test_it_renders_the_contact_pages_cleanly_on_a_desktop_and_a_phone(
    signed_in_page, context, carol, sales_team, console
):
    ada = ContactFactory.create(
        team=sales_team, name="Ada Lovelace", phone="+12025550143", company="Analytical Engines",
        email="ada@example.com", custom_fields={"Tier": "gold"}, other_phones=["+442079460958"],
    )  # fmt: skip
    for index in range(12):
        ContactFactory.create(team=sales_team, name=f"Contact {index:02d}", company="Northwind")
    DoNotCallFactory.create(team=sales_team, phone="+12025550143", reason="Asked on the phone", added_by=carol)
    Contact.objects.filter(pk=ada.pk).update(do_not_call=True)
    page = signed_in_page(carol)

    for path, name, marker in (
        ("/contacts/", "contacts-list", "#contacts-table"),
        (f"/contacts/{ada.pk}/", "contact-detail", "#dnc-notice"),
        ("/contacts/do-not-call/", "contacts-do-not-call", "#dnc-table"),
        ("/contacts/imports/", "contacts-imports", "#upload-heading"),
    ):
        page.goto(path)
        page.wait_for_selector(marker)
        screenshot(page, name)
        page.set_viewport_size(PHONE)
        page.goto(path)
        page.wait_for_selector(marker)
        screenshot(page, f"{name}-phone")
        # Nothing wider than the screen: a phone user never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1, path
        page.set_viewport_size({"width": 1280, "height": 900})
    console.assert_clean()
