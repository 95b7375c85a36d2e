"""Contact imports (campaigns/import_csv.py, campaigns/imports.py, campaigns/import_tasks.py): reading files in
every encoding and delimiter, refusing bad ones, the mapping and the preview, what happens to each row, and the
background import (batches, resumption, cancellation, the report), up to 50,000 rows."""

from __future__ import annotations

import codecs
import csv
import io
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import imports
from campaigns.access import NotAllowed
from campaigns.import_csv import (
    ImportFileRejected,
    MappingInvalid,
    csv_data_rows,
    csv_read,
    mapping_clean,
    mapping_suggest,
)
from campaigns.imports import (
    ImportStateError,
    contact_import_cancel,
    contact_import_configure,
    contact_import_create,
    contact_import_preview,
    contact_import_process,
    contact_import_start,
    import_report_lines,
    import_upload_read,
)
from campaigns.models import Contact, ContactImport, ContactImportRow
from tests.factories import ContactFactory, DoNotCallFactory

HEADER = ["Name", "Phone", "Company", "E-mail"]
# Where a Celery worker process stores and reads uploads: the settings' own MEDIA_ROOT, before any test moves it.
WORKER_MEDIA_ROOT = Path(django_settings.MEDIA_ROOT)


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Uploaded files go to a folder of each test's own."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def upload(actor, team, raw: bytes, **options: Any) -> ContactImport:
    contact_import, _ = contact_import_create(actor=actor, team=team, raw=raw, filename="contacts.csv", **options)
    return contact_import


def run_import(actor, contact_import: ContactImport, **start: Any) -> ContactImport:
    contact_import_start(actor=actor, contact_import=contact_import, **start)
    assert contact_import_process(import_id=contact_import.pk) == "completed"
    contact_import.refresh_from_db()
    return contact_import


def report(contact_import: ContactImport) -> dict[int, tuple[str, str]]:
    return {
        row.row_number: (row.outcome, row.reason)
        for row in ContactImportRow.objects.filter(contact_import=contact_import)
    }


# --- Reading files ---------------------------------------------------------------------------------------------

NAMES = ["Zoë Müller", "François Dupré", "Ñandú García"]
ROWS = [HEADER] + [[name, f"+1 202 555 01{i:02d}", "Café Ltd", ""] for i, name in enumerate(NAMES)]


@pytest.mark.parametrize(
    ("encoding", "written_as"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16-le"),  # Python writes a BOM and little-endian
        ("utf-16-be-bom", "utf-16-be"),
        ("cp1252", "cp1252"),
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_it_reads_every_encoding_and_delimiter(encoding, written_as, delimiter):
    if encoding == "utf-16-be-bom":
        raw = codecs.BOM_UTF16_BE + csv_bytes(ROWS, delimiter=delimiter, encoding="utf-16-be")
    else:
        raw = csv_bytes(ROWS, delimiter=delimiter, encoding=encoding)

    parsed = csv_read(raw)

    assert parsed.delimiter == delimiter
    assert parsed.encoding == written_as
    assert parsed.headers == HEADER
    assert parsed.total_rows == 3
    assert [row[0] for _, row in csv_data_rows(parsed.text, parsed.delimiter)] == NAMES


def test_it_imports_names_from_a_cp1252_semicolon_file_intact(carol, sales_team):
    raw = csv_bytes(ROWS, delimiter=";", encoding="cp1252")
    contact_import = run_import(carol, upload(carol, sales_team, raw))

    assert contact_import.imported == 3
    assert sorted(Contact.objects.values_list("name", flat=True)) == sorted(NAMES)
    assert set(Contact.objects.values_list("company", flat=True)) == {"Café Ltd"}


def test_it_keeps_a_delimiter_inside_quotes_and_values_spanning_lines():
    raw = b'Name,Phone,Address\n"Smith, Ada",+12025550143,"1 Main St\nSpringfield"\nBob,+12025550144,\n'
    parsed = csv_read(raw)
    rows = list(csv_data_rows(parsed.text, parsed.delimiter))
    assert rows == [(2, ["Smith, Ada", "+12025550143", "1 Main St\nSpringfield"]), (3, ["Bob", "+12025550144", ""])]


def test_it_sniffs_a_pipe_and_reads_a_single_column_file_as_comma_separated():
    assert csv_read(b"Name|Phone\nAda|+12025550143\n").delimiter == "|"
    single = csv_read(b"Phone\n+12025550143\n+12025550144\n")
    assert (single.delimiter, single.headers, single.total_rows) == (",", ["Phone"], 2)


def test_it_names_empty_and_repeated_header_cells():
    parsed = csv_read(b"Name,,Phone,phone,Phone\nAda,x,+12025550143,+12025550144,+12025550145\n")
    assert parsed.headers == ["Name", "Column 2", "Phone", "phone (2)", "Phone (3)"]


def test_it_numbers_rows_as_a_spreadsheet_does_blank_rows_included():
    parsed = csv_read(b"\nName,Phone\nAda,+12025550143\n\nBob,+12025550144\n")
    assert [number for number, _ in csv_data_rows(parsed.text, ",")] == [3, 4, 5]
    assert parsed.total_rows == 3


@pytest.mark.parametrize(
    ("raw", "code", "status", "words"),
    [
        (b"", "empty", 400, "empty"),
        (b"  \r\n\r\n ", "empty", 400, "empty"),
        (b"\xef\xbb\xbf", "empty", 400, "empty"),
        (b"Name,Phone\r\n", "no_rows", 400, "no contacts below it"),
        (b"Ada,+12025550143\nBob,+12025550144\n", "no_header", 400, "not column names"),
        (b"Ada Lovelace,ada@example.com\n", "no_header", 400, "header row"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100, "not_csv", 415, "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "not_csv", 415, "old Excel workbook"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not_csv", 415, "PNG image"),
        (b"Name,Phone\n\x00\x01\x02\x03\x04\x05\x06\x07binary\x00\x00", "not_csv", 415, "binary data"),
        (bytes(range(256)) * 4, "not_csv", 415, "binary data"),
        (b'Name,Phone\nAda,+12025550143\n"Bob,+12025550144\nEve,+12025550145\n', "invalid_csv", 400, "row 3"),
        (b'Name,Phone\n"Ada"x,+12025550143\n', "invalid_csv", 400, "row 2"),
    ],
)
def test_it_refuses_bad_files_with_a_clear_error(raw, code, status, words):
    with pytest.raises(ImportFileRejected) as caught:
        csv_read(raw)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert words in str(caught.value)


def test_it_refuses_an_oversize_upload_declared_or_streamed(settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 1000
    with pytest.raises(ImportFileRejected) as declared:
        import_upload_read(body=io.BytesIO(b""), declared_length=1001)
    assert (declared.value.code, declared.value.status) == ("too_large", 413)
    assert "1000 bytes" in str(declared.value)
    with pytest.raises(ImportFileRejected, match="larger than the limit"):
        import_upload_read(body=io.BytesIO(b"x" * 1001), declared_length=None)
    assert import_upload_read(body=io.BytesIO(b"x" * 1000), declared_length=1000) == b"x" * 1000


def test_it_stores_nothing_for_a_refused_file(carol, sales_team, media_root):
    with pytest.raises(ImportFileRejected):
        upload(carol, sales_team, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert not ContactImport.objects.exists()
    assert not list(media_root.rglob("*.csv"))


# --- Mapping ---------------------------------------------------------------------------------------------------


def test_it_suggests_a_mapping_from_common_header_names():
    headers = ["Full Name", "Mobile", "Work phone", "E-mail", "Company", "Time zone", "Tier", "Notes"]
    assert mapping_suggest(headers) == {
        "phone": "Mobile",
        "name": "Full Name",
        "company": "Company",
        "email": "E-mail",
        "timezone": "Time zone",
        "other_phones": ["Work phone"],
        "custom_fields": ["Tier", "Notes"],
    }


def test_it_suggests_first_and_last_names_and_understands_accents():
    assert mapping_suggest(["Prénom", "Surname", "Téléphone", "Organisation"]) == {
        "phone": "Téléphone",
        "first_name": "Prénom",
        "last_name": "Surname",
        "company": "Organisation",
    }


def test_it_prefers_the_phone_column_and_keeps_a_mobile_as_another_number():
    mapping = mapping_suggest(["Name", "Mobile", "Phone"])
    assert (mapping["phone"], mapping["other_phones"]) == ("Phone", ["Mobile"])


@pytest.mark.parametrize(
    ("mapping", "errors"),
    [
        ({"name": "Name"}, {"phone": "Choose the column that holds the phone number."}),
        ({"phone": "Phone"}, {"name": "Choose the column that holds the name (or the first and last name columns)."}),
        ({"phone": "Nope", "name": "Name"}, {"phone": "No column named 'Nope' in this file."}),
        ({"phone": "Phone", "name": "Phone"}, {"name": "Column 'Phone' is already mapped to Phone."}),
        ({"phone": "Phone", "name": "Name", "fax": "Company"}, {"fax": "Not a contact field"}),
        ({"phone": "Phone", "name": "Name", "custom_fields": ["Company", 3]}, {"custom_fields": "No column named '3'"}),
        ("Phone", {"mapping": "Must be an object"}),
    ],
)
def test_it_refuses_a_mapping_it_cannot_use(mapping, errors):
    with pytest.raises(MappingInvalid) as caught:
        mapping_clean(mapping, HEADER)
    for field, words in errors.items():
        assert words in caught.value.errors[field]


def test_it_cleans_empty_entries_out_of_a_mapping():
    mapping = {"phone": "Phone", "name": "Name", "company": "", "email": None, "custom_fields": ["Company", ""]}
    assert mapping_clean(mapping, HEADER) == {"phone": "Phone", "name": "Name", "custom_fields": ["Company"]}


# --- What happens to each row ------------------------------------------------------------------------------------

MIXED = [
    ["Name", "Phone", "Company", "E-mail", "Tier", "Time zone", "Work phone"],
    ["Ada Lovelace", "(202) 555-0143", "Analytical", "ada@example.com", "gold", "", ""],  # 2 imported
    ["Existing Person", "+1 202 555 0150", "New Co", "", "", "", ""],  # 3 updated
    ["Unchanged Person", "+1 202 555 0151", "", "", "", "", ""],  # 4 skipped: unchanged
    ["Ada Again", "+12025550143", "", "", "", "", ""],  # 5 skipped: duplicate of row 2
    ["No Number", "", "", "", "", "", ""],  # 6 skipped: missing phone
    ["Bad Number", "555-0199", "", "", "", "", ""],  # 7 skipped: local number
    ["", "+1 202 555 0160", "", "", "", "", ""],  # 8 skipped: missing name
    ["", "", "", "", "", "", ""],  # 9 skipped: empty row
    ["Listed Person", "+1 202 555 0170", "", "", "", "", ""],  # 10 imported, flagged do-not-call
    ["Bad Extras", "+1 202 555 0171", "", "bad@", "", "Mars/Base", "12"],  # 11 imported with warnings
    ["Too", "+1 202 555 0172", "", "", "", "", "", "surplus"],  # 12 skipped: too many values
    ["Brit", "020 7946 0958", "", "", "", "", ""],  # 13 skipped: not a US number
]


@pytest.fixture
def mixed_import(carol, sales_team):
    ContactFactory.create(team=sales_team, name="Existing Person", phone="+12025550150", company="Old Co")
    ContactFactory.create(team=sales_team, name="Unchanged Person", phone="+12025550151")
    DoNotCallFactory.create(team=sales_team, phone="+12025550170")
    return upload(carol, sales_team, csv_bytes(MIXED), default_region="US")


EXPECTED = {
    2: ("imported", ""),
    3: ("updated", "Changed company."),
    4: ("skipped", "Unchanged: the contact Unchanged Person"),
    5: ("skipped", "Duplicate of row 2: the same number (+12025550143) earlier in the file."),
    6: ("skipped", "Missing required field: phone (column 'Phone' is empty)."),
    7: ("skipped", "Invalid phone number: '555-0199' is a local number in United States (+1): it needs its area code."),
    8: ("skipped", "Missing required field: name."),
    9: ("skipped", "Empty row."),
    10: ("imported", "On the do-not-call list: imported and flagged do-not-call."),
    11: (
        "imported",
        "E-mail 'bad@' left out: not a valid address; time zone 'Mars/Base' left out: unknown; Work phone left out: "
        "'12' is too short",
    ),
    12: ("skipped", "The row has 8 values but the header has 7 columns"),
    13: ("skipped", "Invalid phone number: '020 7946 0958'"),
}


def _check_outcomes(actual: dict[int, tuple[str, str]], expected: dict[int, tuple[str, str]]) -> None:
    for row_number, (outcome, reason) in expected.items():
        assert actual[row_number][0] == outcome, (row_number, actual[row_number])
        assert actual[row_number][1].startswith(reason), (row_number, actual[row_number])


def test_it_suggests_the_mapping_and_previews_what_each_row_would_become(mixed_import):
    assert mixed_import.mapping == {
        "phone": "Phone",
        "name": "Name",
        "company": "Company",
        "email": "E-mail",
        "timezone": "Time zone",
        "other_phones": ["Work phone"],
        "custom_fields": ["Tier"],
    }
    preview = contact_import_preview(contact_import=mixed_import)

    assert preview.mapping_errors == {}
    assert [plan.row_number for plan in preview.rows] == list(range(2, 14))
    _check_outcomes({plan.row_number: (plan.outcome, plan.reason) for plan in preview.rows}, EXPECTED)
    assert not ContactImportRow.objects.exists()
    assert Contact.objects.count() == 2  # a preview writes nothing
    assert Contact.objects.get(phone="+12025550150").company == "Old Co"


def test_it_imports_updates_and_skips_each_row_with_its_reason(carol, mixed_import, sales_team):
    contact_import = run_import(carol, mixed_import)

    assert (contact_import.status, contact_import.processed_rows, contact_import.total_rows) == ("completed", 12, 12)
    assert (contact_import.imported, contact_import.updated, contact_import.skipped) == (3, 1, 8)
    actual = report(contact_import)
    assert sorted(actual) == list(range(2, 14))  # every data row, blank ones included, nothing dropped
    _check_outcomes(actual, EXPECTED)
    ada = Contact.objects.get(team=sales_team, phone="+12025550143")
    assert (ada.name, ada.company, ada.email, ada.timezone) == (
        "Ada Lovelace",
        "Analytical",
        "ada@example.com",
        "America/New_York",
    )
    assert ada.custom_fields == {"Tier": "gold"}
    assert Contact.objects.get(phone="+12025550150").company == "New Co"
    assert Contact.objects.get(phone="+12025550170").do_not_call is True
    extras = Contact.objects.get(phone="+12025550171")
    assert (extras.email, extras.timezone, extras.other_phones) == ("", "America/New_York", [])
    row = ContactImportRow.objects.get(contact_import=contact_import, row_number=2)
    assert row.contact == ada
    assert row.data["Name"] == "Ada Lovelace"
    assert ContactImportRow.objects.get(contact_import=contact_import, row_number=5).contact is None


def test_it_reads_numbers_without_country_code_in_the_default_region(carol, sales_team):
    raw = csv_bytes([["Name", "Phone"], ["Brit", "020 7946 0958"], ["Yank", "+1 202 555 0143"]])
    contact_import = run_import(carol, upload(carol, sales_team, raw, default_region="GB"))
    assert contact_import.imported == 2
    assert Contact.objects.get(name="Brit").phone == "+442079460958"


def test_it_skips_numbers_without_country_code_when_no_region_is_given(carol, sales_team):
    raw = csv_bytes([["Name", "Phone"], ["Brit", "020 7946 0958"]])
    contact_import = run_import(carol, upload(carol, sales_team, raw))
    assert report(contact_import)[2][0] == "skipped"
    assert "no country code" in report(contact_import)[2][1]


def test_it_joins_first_and_last_names(carol, sales_team):
    raw = csv_bytes(
        [["First name", "Last name", "Phone"], ["Ada", "Lovelace", "+12025550143"], ["", "Babbage", "+12025550144"]]
    )
    run_import(carol, upload(carol, sales_team, raw))
    assert sorted(Contact.objects.values_list("name", flat=True)) == ["Ada Lovelace", "Babbage"]


def test_it_skips_existing_contacts_when_updates_are_turned_off(carol, sales_team):
    existing = ContactFactory.create(team=sales_team, phone="+12025550143", name="Old Name")
    raw = csv_bytes([["Name", "Phone"], ["New Name", "+12025550143"]])

    contact_import = run_import(carol, upload(carol, sales_team, raw, update_existing=False))

    outcome, reason = report(contact_import)[2]
    assert outcome == "skipped"
    assert reason.startswith(f"Already a contact (Old Name, #{existing.pk}); updating existing contacts is turned off")
    existing.refresh_from_db()
    assert existing.name == "Old Name"


def test_it_adds_numbers_and_custom_fields_to_an_existing_contact_without_blanking_anything(carol, sales_team):
    existing = ContactFactory.create(
        team=sales_team, phone="+12025550143", email="ada@old.example", other_phones=["+12025550199"],
        custom_fields={"Tier": "gold", "Source": "fair"},
    )  # fmt: skip
    raw = csv_bytes(
        [["Name", "Phone", "E-mail", "Work phone", "Tier"], ["Ada", "+12025550143", "", "+12025550198", "platinum"]]
    )

    contact_import = run_import(carol, upload(carol, sales_team, raw))

    assert report(contact_import)[2] == ("updated", "Changed name, other numbers, custom fields.")
    existing.refresh_from_db()
    assert existing.email == "ada@old.example"
    assert existing.other_phones == ["+12025550199", "+12025550198"]
    assert existing.custom_fields == {"Tier": "platinum", "Source": "fair"}


def test_it_only_touches_contacts_of_the_imports_team(carol, sales_team, other_team):
    theirs = ContactFactory.create(team=other_team, phone="+12025550143", name="Theirs")
    raw = csv_bytes([["Name", "Phone"], ["Ours", "+12025550143"]])

    contact_import = run_import(carol, upload(carol, sales_team, raw))

    assert report(contact_import)[2][0] == "imported"
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert Contact.objects.filter(phone="+12025550143").count() == 2


# --- Confirmation, state and permissions -----------------------------------------------------------------------


def test_it_changes_the_mapping_and_options_before_confirmation_only(carol, sales_team):
    raw = csv_bytes([["Who", "Digits", "Outfit"], ["Ada", "020 7946 0958", "Analytical"]])
    contact_import = upload(carol, sales_team, raw)
    assert contact_import_preview(contact_import=contact_import).mapping_errors == {
        "phone": "Choose the column that holds the phone number.",
        "name": "Choose the column that holds the name (or the first and last name columns).",
    }
    assert contact_import.mapping == {"custom_fields": ["Who", "Digits", "Outfit"]}

    contact_import_configure(
        actor=carol,
        contact_import=contact_import,
        mapping={"name": "Who", "phone": "Digits", "company": "Outfit"},
        default_region="gb",
        update_existing=False,
    )
    contact_import.refresh_from_db()
    assert (contact_import.default_region, contact_import.update_existing) == ("GB", False)
    assert [plan.outcome for plan in contact_import_preview(contact_import=contact_import).rows] == ["imported"]

    contact_import_start(actor=carol, contact_import=contact_import)
    with pytest.raises(ImportStateError, match="confirmed already"):
        contact_import_configure(actor=carol, contact_import=contact_import, default_region="US")


def test_it_refuses_to_start_with_a_mapping_it_cannot_use(carol, sales_team):
    contact_import = upload(carol, sales_team, csv_bytes([["Who", "Tel"], ["Ada", "+12025550143"]]))
    with pytest.raises(MappingInvalid):
        contact_import_start(actor=carol, contact_import=contact_import)
    contact_import.refresh_from_db()
    assert contact_import.status == "preview"


def test_it_lets_only_the_teams_manager_or_an_admin_import(alice, dave, carol, sales_team):
    raw = csv_bytes(ROWS)
    with pytest.raises(NotAllowed):
        upload(alice, sales_team, raw)
    with pytest.raises(NotAllowed):
        upload(dave, sales_team, raw)
    contact_import = upload(carol, sales_team, raw)
    with pytest.raises(NotAllowed):
        contact_import_start(actor=dave, contact_import=contact_import)
    with pytest.raises(NotAllowed):
        contact_import_cancel(actor=alice, contact_import=contact_import)


def test_it_queues_the_task_once_the_confirmation_commits(
    carol, sales_team, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    contact_import = upload(carol, sales_team, csv_bytes(ROWS))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        contact_import_start(actor=carol, contact_import=contact_import)

    assert callbacks  # the task ran from an on-commit callback, not inside the request's transaction
    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.imported) == ("completed", 3)
    assert contact_import.started_at is not None
    assert contact_import.finished_at is not None


def test_it_does_nothing_for_an_import_that_is_not_confirmed_or_already_done(carol, sales_team):
    contact_import = upload(carol, sales_team, csv_bytes(ROWS))
    assert contact_import_process(import_id=contact_import.pk) == "not runnable"
    run_import(carol, contact_import)

    assert contact_import_process(import_id=contact_import.pk) == "not runnable"
    assert ContactImportRow.objects.filter(contact_import=contact_import).count() == 3
    with pytest.raises(ImportStateError, match="cannot start again"):
        contact_import_start(actor=carol, contact_import=contact_import)
    with pytest.raises(ImportStateError, match="nothing to cancel"):
        contact_import_cancel(actor=carol, contact_import=contact_import)


def test_it_fails_with_a_reason_when_the_stored_file_is_gone(carol, sales_team):
    contact_import = upload(carol, sales_team, csv_bytes(ROWS))
    contact_import_start(actor=carol, contact_import=contact_import)
    contact_import.file.storage.delete(str(contact_import.file.name))

    assert contact_import_process(import_id=contact_import.pk) == "failed: file missing"

    contact_import.refresh_from_db()
    assert contact_import.status == "failed"
    assert "missing from storage" in contact_import.error


# --- Batches, resumption, cancellation ------------------------------------------------------------------------


def numbered_rows(count: int, *, start: int = 0) -> list[list[str]]:
    return [["Name", "Phone"]] + [[f"Person {i}", f"+1202555{i % 10000:04d}"] for i in range(start, start + count)]


def test_it_finds_duplicates_of_rows_in_earlier_batches(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 2)
    rows = [
        ["Name", "Phone"],
        ["A", "+12025550101"],
        ["B", "+12025550102"],
        ["C", "+12025550103"],
        ["A2", "(202) 555-0101"],
    ]

    contact_import = run_import(carol, upload(carol, sales_team, csv_bytes(rows), default_region="US"))

    assert report(contact_import)[5] == (
        "skipped",
        "Duplicate of row 2: the same number (+12025550101) earlier in the file.",
    )
    assert (contact_import.imported, contact_import.skipped) == (3, 1)


def test_it_resumes_after_a_worker_died_mid_batch_without_repeating_a_row(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(35)))
    contact_import_start(actor=carol, contact_import=contact_import)
    real_bulk_create = ContactImportRow.objects.bulk_create
    calls = {"n": 0}

    def dying_bulk_create(objs, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch: its contacts are written, then the worker "dies"
            raise SystemExit("worker killed")
        return real_bulk_create(objs, *args, **kwargs)

    monkeypatch.setattr(ContactImportRow.objects, "bulk_create", dying_bulk_create)
    with pytest.raises(SystemExit):
        contact_import_process(import_id=contact_import.pk)

    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.processed_rows, contact_import.imported) == ("running", 20, 20)
    assert Contact.objects.count() == 20  # the third batch rolled back whole
    monkeypatch.setattr(ContactImportRow.objects, "bulk_create", real_bulk_create)

    assert contact_import_process(import_id=contact_import.pk) == "completed"  # the redelivered task

    contact_import.refresh_from_db()
    assert (contact_import.processed_rows, contact_import.imported, contact_import.skipped) == (35, 35, 0)
    assert sorted(report(contact_import)) == list(range(2, 37))
    assert Contact.objects.count() == 35


def test_it_hands_over_to_a_fresh_task_when_its_time_budget_is_spent(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    queued: list[int] = []

    def enqueue(*, import_id: int) -> bool:
        queued.append(import_id)
        return True

    monkeypatch.setattr(imports, "contact_import_enqueue", enqueue)
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(25)))
    contact_import_start(actor=carol, contact_import=contact_import)

    assert contact_import_process(import_id=contact_import.pk, time_budget=0) == "continues after row 10 of 25"
    assert queued[-1] == contact_import.pk
    assert contact_import_process(import_id=contact_import.pk, time_budget=0) == "continues after row 20 of 25"
    assert contact_import_process(import_id=contact_import.pk, time_budget=0) == "completed"
    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.imported) == ("completed", 25)


def test_it_stops_when_another_worker_moved_the_cursor(carol, sales_team):
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(25)))
    # Another worker committed the first batch after this one read the cursor (0) and before it took the lock.
    ContactImport.objects.filter(pk=contact_import.pk).update(status="running", processed_rows=10)
    read = imports._read_row(
        2, ["Person 0", "+12025550000"], headers=["Name", "Phone"], mapping=contact_import.mapping, region=""
    )

    assert imports._commit_batch(contact_import, [read], cursor=0) == "stopped: another worker is at row 10"

    assert not ContactImportRow.objects.exists()
    assert not Contact.objects.exists()


def test_it_stops_after_the_current_batch_when_canceled(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(30)))
    contact_import_start(actor=carol, contact_import=contact_import)
    real_commit = imports._commit_batch
    calls = {"n": 0}

    def commit_then_cancel(contact_import_arg, reads, *, cursor):
        calls["n"] += 1
        result = real_commit(contact_import_arg, reads, cursor=cursor)
        if calls["n"] == 1:
            contact_import_cancel(actor=carol, contact_import=ContactImport.objects.get(pk=contact_import.pk))
        return result

    monkeypatch.setattr(imports, "_commit_batch", commit_then_cancel)

    assert contact_import_process(import_id=contact_import.pk) == "stopped: canceled"

    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.processed_rows, contact_import.imported) == ("canceled", 10, 10)
    assert Contact.objects.count() == 10


def test_it_continues_a_failed_import_from_its_cursor_when_started_again(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(15)))
    contact_import_start(actor=carol, contact_import=contact_import)
    ContactImport.objects.filter(pk=contact_import.pk).update(status="running")
    first = imports._read_row(
        2, ["Person 0", "+12025550000"], headers=["Name", "Phone"], mapping=contact_import.mapping, region=""
    )
    imports._commit_batch(contact_import, [first], cursor=0)
    imports.contact_import_fail(import_id=contact_import.pk, error="boom")
    contact_import.refresh_from_db()

    contact_import_start(actor=carol, contact_import=contact_import)
    contact_import.refresh_from_db()
    assert (contact_import.status, contact_import.error) == ("queued", "")
    assert contact_import_process(import_id=contact_import.pk) == "completed"

    contact_import.refresh_from_db()
    assert (contact_import.processed_rows, contact_import.imported) == (15, 15)
    assert sorted(report(contact_import)) == list(range(2, 17))


def test_it_makes_a_constant_number_of_queries_per_batch(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 100)

    def queries_for(rows: int, start: int) -> int:
        contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(rows, start=start)))
        contact_import_start(actor=carol, contact_import=contact_import)
        with CaptureQueriesContext(connection) as captured:
            assert contact_import_process(import_id=contact_import.pk) == "completed"
        return len(captured.captured_queries)

    three_batches = queries_for(300, start=0)
    six_batches = queries_for(600, start=1000)

    # Per batch: lock, earlier rows, existing contacts, do-not-call, insert contacts, insert rows, counters,
    # plus the savepoint pair; then claim, read back and finish once per task.
    per_batch = (six_batches - three_batches) / 3
    assert per_batch <= 10, per_batch
    assert three_batches <= 3 * per_batch + 6


# --- The report -------------------------------------------------------------------------------------------------


def test_it_writes_the_report_as_csv_with_the_rows_as_read(carol, mixed_import):
    contact_import = run_import(carol, mixed_import)
    rows = ContactImportRow.objects.filter(contact_import=contact_import).order_by("row_number")

    lines = list(csv.reader(io.StringIO("".join(import_report_lines(contact_import=contact_import, rows=rows)))))

    assert lines[0] == ["row", "outcome", "reason", "contact_id", *MIXED[0], "extra values"]
    assert len(lines) == 1 + 12
    ada = Contact.objects.get(phone="+12025550143")
    assert lines[1][:4] == ["2", "imported", "", str(ada.pk)]
    assert lines[1][4:6] == ["Ada Lovelace", "(202) 555-0143"]
    assert lines[11][0] == "12"
    assert lines[11][-1] == "surplus"


def test_it_defuses_spreadsheet_formulas_in_the_report_but_keeps_phone_numbers(carol, sales_team):
    raw = csv_bytes([["Name", "Phone"], ['=HYPERLINK("http://evil")', "+1 202 555 0143"]])
    contact_import = run_import(carol, upload(carol, sales_team, raw))
    rows = ContactImportRow.objects.filter(contact_import=contact_import)

    lines = list(csv.reader(io.StringIO("".join(import_report_lines(contact_import=contact_import, rows=rows)))))

    assert lines[1][4:6] == ['\'=HYPERLINK("http://evil")', "+1 202 555 0143"]


# --- 50,000 rows ------------------------------------------------------------------------------------------------


def test_it_imports_50000_rows_in_the_background_task(carol, sales_team, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    rows = [["Name", "Mobile", "Company", "E-mail", "Tier"]]
    rows += [
        [
            f"Person {i}",
            f"+1 202 55{i // 10000 % 10} {i % 10000:04d}",
            f"Company {i % 300}",
            f"p{i}@example.com",
            "gold",
        ]
        for i in range(50_000)
    ]
    rows[1001][1] = "not a number"
    rows[2002][1] = rows[2][1]  # a duplicate, in another batch than its first occurrence
    ContactFactory.create(team=sales_team, phone="+12025500007", name="Already here")
    started = time.monotonic()
    contact_import = upload(carol, sales_team, csv_bytes(rows))

    with django_capture_on_commit_callbacks(execute=True):
        contact_import_start(actor=carol, contact_import=contact_import)

    elapsed = time.monotonic() - started
    contact_import.refresh_from_db()
    assert contact_import.status == "completed", contact_import.error
    assert (contact_import.total_rows, contact_import.processed_rows) == (50_000, 50_000)
    assert (contact_import.imported, contact_import.updated, contact_import.skipped) == (49_997, 1, 2)
    assert ContactImportRow.objects.filter(contact_import=contact_import).count() == 50_000
    assert Contact.objects.filter(team=sales_team).count() == 49_998
    assert ContactImportRow.objects.get(contact_import=contact_import, row_number=2003).reason.startswith(
        "Duplicate of row 3"
    )
    print(f"50,000-row import: {elapsed:.1f} s")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_imports_through_a_real_celery_worker(celery_worker, carol, sales_team, settings):
    """The task is registered in the worker (campaigns.import_tasks, imported by CampaignsConfig.ready) and runs
    the import from the stored file once the confirmation has committed."""
    settings.MEDIA_ROOT = WORKER_MEDIA_ROOT
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(2500)))
    try:
        contact_import_start(actor=carol, contact_import=contact_import)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            contact_import.refresh_from_db()
            if contact_import.status in ("completed", "failed"):
                break
            time.sleep(0.3)
        assert (contact_import.status, contact_import.error) == ("completed", "")
        assert (contact_import.processed_rows, contact_import.imported) == (2500, 2500)
        assert ContactImportRow.objects.filter(contact_import=contact_import).count() == 2500
        assert Contact.objects.filter(team=sales_team).count() == 2500
    finally:
        contact_import.file.storage.delete(str(contact_import.file.name))


def test_it_queues_again_an_import_whose_task_was_lost_and_only_once(
    carol, sales_team, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[int] = []

    def enqueue(*, import_id: int) -> bool:
        queued.append(import_id)
        return True

    monkeypatch.setattr(imports, "contact_import_enqueue", enqueue)
    lost = upload(carol, sales_team, csv_bytes(numbered_rows(5)))
    contact_import_start(actor=carol, contact_import=lost)  # its task never reaches a worker
    fresh = upload(carol, sales_team, csv_bytes(numbered_rows(5, start=100)))
    contact_import_start(actor=carol, contact_import=fresh)
    waiting = upload(carol, sales_team, csv_bytes(numbered_rows(5, start=200)))  # still in preview: not started
    queued.clear()
    long_ago = timezone.now() - timedelta(minutes=10)
    ContactImport.objects.filter(pk__in=[lost.pk, waiting.pk]).update(heartbeat_at=long_ago, created_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert imports.contact_imports_resume_stalled(stalled_after=timedelta(minutes=5)) == [lost.pk]
    assert queued == [lost.pk]
    # Its heartbeat moved: the next beat leaves it alone while the queued task gets to it.
    with django_capture_on_commit_callbacks(execute=True):
        assert imports.contact_imports_resume_stalled(stalled_after=timedelta(minutes=5)) == []
    assert queued == [lost.pk]

    assert contact_import_process(import_id=lost.pk) == "completed"  # the task queued again
    lost.refresh_from_db()
    assert (lost.status, lost.imported) == ("completed", 5)
    ContactImport.objects.filter(pk=lost.pk).update(heartbeat_at=long_ago)
    assert imports.contact_imports_resume_stalled(stalled_after=timedelta(minutes=5)) == []  # finished: not live


def test_it_marks_each_batch_as_a_sign_of_life(carol, sales_team, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    contact_import = upload(carol, sales_team, csv_bytes(numbered_rows(25)))
    contact_import_start(actor=carol, contact_import=contact_import)
    long_ago = timezone.now() - timedelta(hours=1)
    ContactImport.objects.filter(pk=contact_import.pk).update(heartbeat_at=long_ago)
    monkeypatch.setattr(imports, "contact_import_enqueue", lambda *, import_id: True)

    contact_import_process(import_id=contact_import.pk, time_budget=0)  # one batch, then hands over

    contact_import.refresh_from_db()
    assert contact_import.processed_rows == 10
    assert contact_import.heartbeat_at is not None
    assert contact_import.heartbeat_at > timezone.now() - timedelta(minutes=1)
