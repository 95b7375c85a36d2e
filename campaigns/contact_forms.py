"""Forms of the contacts pages: the list's filters, a contact, the do-not-call list, and the import wizard's upload
and column mapping. Forms check shapes; the services (campaigns.contacts, campaigns.imports) decide the rules and
their errors are put back on the field they name, so a person sees every problem in place."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from campaigns.import_csv import (
    DELIMITER_NAMES,
    FIELD_LABELS,
    LIST_FIELDS,
    SINGLE_FIELDS,
    MappingInvalid,
    mapping_clean,
)
from campaigns.models import Contact, ContactImport, ContactImportRow
from campaigns.phones import region_choices
from crm.models import Team

NO_REGION = ("", "None: numbers start with + and their country code")


class DescribedErrorsMixin:
    """Points each invalid field's input at its error message (``aria-describedby``) and marks it invalid."""

    fields: dict[str, forms.Field]
    errors: Any

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]  # mixed into forms.Form below
        self.describe_errors()

    def describe_errors(self) -> None:
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                attrs["aria-describedby"] = f"{name}-errors"


def _region_field(*, label: str = "Country of numbers without +country code") -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        required=False,
        choices=[NO_REGION, *region_choices()],
        help_text='"020 7946 0958" is read as a United Kingdom number when this is the United Kingdom.',
    )


def _team_field(teams: QuerySet[Team]) -> forms.ModelChoiceField[Team]:
    return forms.ModelChoiceField(
        label="Team", queryset=teams, empty_label="Choose a team…", error_messages={"required": "Choose a team."}
    )


# --- The contacts list -----------------------------------------------------------------------------------------


class ContactFilterForm(DescribedErrorsMixin, forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name, company, e-mail or phone number"}),
    )
    do_not_call = forms.ChoiceField(
        label="Do-not-call",
        required=False,
        choices=[("", "Everyone"), ("no", "Callable"), ("yes", "Do not call")],
    )

    def __init__(self, data: Any = None, *, teams: list[Team]) -> None:
        super().__init__(data)
        self.teams = teams
        if len(teams) > 1:  # one team: nothing to choose
            self.fields["team"] = forms.TypedChoiceField(
                label="Team",
                required=False,
                coerce=int,
                empty_value=None,
                choices=[("", "All teams"), *((team.pk, team.name) for team in teams)],
            )

    def do_not_call_value(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.cleaned_data.get("do_not_call") or "")

    def is_filtered(self) -> bool:
        return any(self.cleaned_data.get(name) for name in ("q", "team", "do_not_call"))


# --- A contact ---------------------------------------------------------------------------------------------------


class ContactForm(DescribedErrorsMixin, forms.Form):
    """Create (with ``teams`` when there is a team to choose) or edit a contact."""

    # The contact that already has the number just typed, for the page to link to.
    duplicate: Contact | None = None

    team = forms.ModelChoiceField(label="Team", queryset=Team.objects.none())
    name = forms.CharField(label="Name", max_length=200)
    phone = forms.CharField(
        label="Phone number",
        max_length=64,
        help_text="Any format: +44 20 7946 0958, (202) 555-0143… Stored in international form.",
    )
    default_region = _region_field()
    company = forms.CharField(label="Company", max_length=200, required=False)
    email = forms.CharField(label="E-mail", max_length=254, required=False, widget=forms.EmailInput)
    timezone = forms.CharField(
        label="Time zone",
        max_length=64,
        required=False,
        help_text="An IANA name such as Europe/Paris. Left empty, it is inferred from the number when it can be.",
    )
    other_phones = forms.CharField(
        label="Other numbers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line. Runs call the main number only.",
    )
    do_not_call = forms.BooleanField(
        label="Do not call this number",
        required=False,
        help_text="Puts the number on the team's do-not-call list (every run skips it); unticking takes it off.",
    )
    do_not_call_reason = forms.CharField(label="Why not call", max_length=255, required=False)

    def __init__(
        self, data: Any = None, *, creating: bool, teams: QuerySet[Team] | None = None, initial: Any = None
    ) -> None:
        super().__init__(data, initial=initial)
        if teams is None:
            del self.fields["team"]  # one team to choose from, or editing: a contact stays in its team
        else:
            self.fields["team"] = _team_field(teams)
        if creating:
            # A new contact takes the flag of its number from the list; marking it is an edit (or the list's page).
            del self.fields["do_not_call"]
            del self.fields["do_not_call_reason"]

    def clean_other_phones(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("other_phones", "").splitlines() if line.strip()]

    def service_error(self, field: str | None, message: str) -> None:
        """An error a service raised, on the field it names (or the form's when the field is not on it)."""
        self.add_error(field if field in self.fields else None, message)
        self.describe_errors()


# --- The do-not-call list ----------------------------------------------------------------------------------------


class DncSearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Digits of the number, or words of the reason"}),
    )


class DncAddForm(DescribedErrorsMixin, forms.Form):
    team = forms.ModelChoiceField(label="Team", queryset=Team.objects.none())
    phone = forms.CharField(label="Phone number", max_length=64)
    default_region = _region_field()
    reason = forms.CharField(label="Reason", max_length=255, required=False, help_text="Who asked, and when.")

    def __init__(self, data: Any = None, *, teams: QuerySet[Team], choose_team: bool) -> None:
        super().__init__(data)
        if choose_team:
            self.fields["team"] = _team_field(teams)
        else:
            del self.fields["team"]

    def service_error(self, field: str | None, message: str) -> None:
        self.add_error(field if field in self.fields else None, message)
        self.describe_errors()


# --- Imports -------------------------------------------------------------------------------------------------------

DELIMITER_CHOICES = [("", "Detect it"), *((key, name.capitalize()) for key, name in DELIMITER_NAMES.items())]


class ImportUploadForm(DescribedErrorsMixin, forms.Form):
    file = forms.FileField(
        label="CSV file",
        error_messages={"required": "Choose the CSV file to import.", "empty": "The file is empty."},
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv,text/plain"}),
    )
    team = forms.ModelChoiceField(label="Team", queryset=Team.objects.none())
    default_region = _region_field()
    delimiter = forms.ChoiceField(label="Separator", required=False, choices=DELIMITER_CHOICES)
    update_existing = forms.BooleanField(
        label="Update contacts the team already has",
        required=False,
        initial=True,
        help_text="A row whose number is already a contact fills in or changes its details; empty cells change "
        "nothing. Unticked, such rows are skipped.",
    )

    def __init__(
        self, data: Any = None, files: Any = None, *, teams: QuerySet[Team], choose_team: bool, initial_region: str = ""
    ) -> None:
        super().__init__(data, files, initial={"default_region": initial_region, "update_existing": True})
        if choose_team:
            self.fields["team"] = _team_field(teams)
        else:
            del self.fields["team"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # A form field keeps the last of several files: refuse them rather than import one and drop the rest.
        count = sum(len(self.files.getlist(name)) for name in self.files) if self.files else 0
        if count > 1:
            self.add_error("file", f"Choose one CSV file per import; this upload has {count} files.")
        return cleaned

    def service_error(self, field: str | None, message: str) -> None:
        self.add_error(field if field in self.fields else "file", message)
        self.describe_errors()


IMPORT_AS_CHOICES = [("", "Not imported"), *((name, FIELD_LABELS[name]) for name in (*SINGLE_FIELDS, *LIST_FIELDS))]


class ImportMappingForm(DescribedErrorsMixin, forms.Form):
    """One "Import as" choice per column of the file, and the import's options."""

    default_region = _region_field()
    update_existing = forms.BooleanField(label="Update contacts the team already has", required=False)

    def __init__(self, data: Any = None, *, contact_import: ContactImport) -> None:
        self.contact_import = contact_import
        field_of: dict[str, str] = {}
        for field, value in (contact_import.mapping or {}).items():
            for column in value if isinstance(value, list) else [value]:
                field_of[str(column)] = field
        initial: dict[str, Any] = {
            "default_region": contact_import.default_region,
            "update_existing": contact_import.update_existing,
        }
        self.columns: list[tuple[str, str]] = []  # (form field name, column name)
        for index, header in enumerate(contact_import.headers):
            name = f"column_{index}"
            self.columns.append((name, header))
            initial[name] = field_of.get(header, "")
        super().__init__(data, initial=initial)
        for name, header in self.columns:
            self.fields[name] = forms.ChoiceField(
                label=f"Import “{header}” as", required=False, choices=IMPORT_AS_CHOICES
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        mapping: dict[str, Any] = {}
        for name, header in self.columns:
            field = cleaned.get(name) or ""
            if not field:
                continue
            if field in LIST_FIELDS:
                mapping.setdefault(field, []).append(header)
            elif field in mapping:
                self.add_error(name, f"{FIELD_LABELS[field]} can come from one column only (“{mapping[field]}” too).")
            else:
                mapping[field] = header
        if not self.errors:
            try:
                cleaned["mapping"] = mapping_clean(mapping, self.contact_import.headers)
            except MappingInvalid as exc:
                for message in exc.errors.values():
                    self.add_error(None, message)
        return cleaned


class ImportRowFilterForm(forms.Form):
    outcome = forms.ChoiceField(required=False, choices=[("", "All rows"), *ContactImportRow.Outcome.choices])
