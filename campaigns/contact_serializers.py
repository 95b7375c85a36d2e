"""API shapes of contacts, contact imports and the do-not-call list. Input and output serializers are separate:
what a client may send is not what it reads back. Values are checked by the services (campaigns.contacts,
campaigns.imports), which say why a number or a mapping is refused; these only check types and sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from campaigns.contact_selectors import import_progress
from campaigns.import_csv import DELIMITERS, LIST_FIELDS, SINGLE_FIELDS
from campaigns.models import Contact, ContactImport, ContactImportRow, DoNotCall


def _absolute(context: Mapping[str, Any], path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


# --- Contacts ------------------------------------------------------------------------------------------------


class ContactOutputSerializer(serializers.ModelSerializer[Contact]):
    url = serializers.SerializerMethodField()
    team_name = serializers.CharField(source="team.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Contact
        fields = [
            "id",
            "url",
            "team",
            "team_name",
            "name",
            "company",
            "email",
            "phone",
            "other_phones",
            "timezone",
            "do_not_call",
            "custom_fields",
            "owner",
            "created_at",
            "updated_at",
        ]

    def get_url(self, obj: Contact) -> str:
        return _absolute(self.context, reverse("api-contact-detail", kwargs={"contact_id": str(obj.pk)}))


_REGION_HELP = "ISO country (GB, US...) for numbers written without +country code."


class ContactCreateInputSerializer(serializers.Serializer[Any]):
    team = serializers.IntegerField(
        required=False, allow_null=True, help_text="Team id; optional for a manager of one team."
    )
    name = serializers.CharField(max_length=200, allow_blank=True)
    phone = serializers.CharField(max_length=64, allow_blank=True, help_text="Any format; stored as E.164.")
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text=_REGION_HELP)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, default="")
    timezone = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="", help_text="IANA name; inferred when empty."
    )
    other_phones = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=20, default=list
    )
    custom_fields = serializers.DictField(required=False, default=dict)
    owner = serializers.CharField(
        max_length=150, required=False, allow_blank=True, allow_null=True, help_text="Username of a team member."
    )


class ContactUpdateInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text=_REGION_HELP)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    other_phones = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=20)
    custom_fields = serializers.DictField(required=False, help_text="Replaces the contact's custom fields whole.")
    owner = serializers.CharField(max_length=150, required=False, allow_blank=True, allow_null=True)
    do_not_call = serializers.BooleanField(
        required=False, help_text="true adds the number to the team's do-not-call list, false removes it."
    )
    do_not_call_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class ContactFilterInputSerializer(serializers.Serializer[Any]):
    q = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="Words of the name, company, e-mail or number."
    )
    team = serializers.IntegerField(required=False, min_value=1)
    do_not_call = serializers.BooleanField(required=False, allow_null=True, default=None)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Exact, any case.")


class ContactDuplicateOutputSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    code = serializers.CharField()
    contact_id = serializers.IntegerField(help_text="The existing contact with this number.")
    contact_url = serializers.URLField()


# --- Do-not-call ---------------------------------------------------------------------------------------------


class DoNotCallOutputSerializer(serializers.ModelSerializer[DoNotCall]):
    url = serializers.SerializerMethodField()
    added_by = serializers.CharField(source="added_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = DoNotCall
        fields = ["id", "url", "team", "phone", "reason", "added_by", "created_at"]

    def get_url(self, obj: DoNotCall) -> str:
        return _absolute(self.context, reverse("api-dnc-detail", kwargs={"entry_id": str(obj.pk)}))


class DoNotCallCreateInputSerializer(serializers.Serializer[Any]):
    team = serializers.IntegerField(required=False, allow_null=True, help_text="Optional for a manager of one team.")
    phone = serializers.CharField(max_length=64, allow_blank=True)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text=_REGION_HELP)


class DoNotCallFilterInputSerializer(serializers.Serializer[Any]):
    q = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Digits or reason words.")
    team = serializers.IntegerField(required=False, min_value=1)
    phone = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="One number, any format (E.164 lookup)."
    )
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True)


# --- Imports -------------------------------------------------------------------------------------------------


class ImportOutputSerializer(serializers.ModelSerializer[ContactImport]):
    url = serializers.SerializerMethodField()
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True, allow_null=True, default=None)
    percent = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "url",
            "team",
            "status",
            "original_name",
            "encoding",
            "delimiter",
            "headers",
            "mapping",
            "default_region",
            "update_existing",
            "total_rows",
            "processed_rows",
            "percent",
            "imported",
            "updated",
            "skipped",
            "error",
            "uploaded_by",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_url(self, obj: ContactImport) -> str:
        return _absolute(self.context, reverse("api-import-detail", kwargs={"import_id": str(obj.pk)}))

    def get_percent(self, obj: ContactImport) -> float:
        return float(import_progress(contact_import=obj)["percent"])

    def get_links(self, obj: ContactImport) -> dict[str, str]:
        kwargs = {"import_id": str(obj.pk)}
        return {
            name: _absolute(self.context, reverse(route, kwargs=kwargs))
            for name, route in (
                ("preview", "api-import-preview"),
                ("start", "api-import-start"),
                ("cancel", "api-import-cancel"),
                ("progress", "api-import-progress"),
                ("rows", "api-import-rows"),
                ("report_csv", "api-import-report"),
            )
        }


class ImportPreviewRowOutputSerializer(serializers.Serializer[Any]):
    row_number = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=ContactImportRow.Outcome.choices, help_text="What would happen.")
    reason = serializers.CharField()
    contact_id = serializers.IntegerField(allow_null=True, help_text="The existing contact it would update.")
    values = serializers.DictField(help_text="The contact's values read from the row (the number in E.164).")
    # DRF's metaclass moves declared fields off the class: `data` does not shadow Serializer.data at run time.
    data = serializers.DictField(help_text="The row as read, by column.")  # type: ignore[assignment]


class ImportPreviewOutputSerializer(serializers.Serializer[Any]):
    rows = ImportPreviewRowOutputSerializer(many=True)
    mapping_errors = serializers.DictField(child=serializers.CharField(), help_text="Contact field -> problem.")


class ImportWithPreviewOutputSerializer(ImportOutputSerializer):
    preview = serializers.SerializerMethodField()

    class Meta(ImportOutputSerializer.Meta):
        fields = [*ImportOutputSerializer.Meta.fields, "preview"]

    def get_preview(self, obj: ContactImport) -> dict[str, Any]:
        preview = self.context["preview"]
        return {
            "rows": [
                {
                    "row_number": plan.row_number,
                    "outcome": plan.outcome,
                    "reason": plan.reason,
                    "contact_id": plan.contact.pk if plan.contact is not None and plan.contact.pk else None,
                    "values": {
                        "name": plan.read.name,
                        "phone": plan.read.phone,
                        "company": plan.read.company,
                        "email": plan.read.email,
                        "timezone": plan.read.timezone or plan.read.inferred_timezone,
                        "other_phones": plan.read.other_phones,
                        "custom_fields": plan.read.custom_fields,
                    },
                    "data": plan.read.data,
                }
                for plan in preview.rows
            ],
            "mapping_errors": preview.mapping_errors,
        }


_MAPPING_HELP = (
    f"Contact field -> CSV column name. One column each for {', '.join(SINGLE_FIELDS)}; a list of columns for "
    f"{' and '.join(LIST_FIELDS)}. phone and a name (name, or first_name/last_name) are required."
)


class ImportUploadInputSerializer(serializers.Serializer[Any]):
    """The form fields beside a multipart upload's ``file`` (or query parameters with a raw text/csv body)."""

    team = serializers.IntegerField(required=False, allow_null=True, help_text="Optional for a manager of one team.")
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text=_REGION_HELP)
    delimiter = serializers.ChoiceField(
        choices=["", *DELIMITERS, "tab"], required=False, allow_blank=True, help_text="Empty: sniffed from the file."
    )
    update_existing = serializers.BooleanField(required=False, default=True)
    filename = serializers.CharField(max_length=255, required=False, allow_blank=True, help_text="Raw bodies only.")


class ImportOptionsInputSerializer(serializers.Serializer[Any]):
    mapping = serializers.JSONField(required=False, help_text=_MAPPING_HELP)
    default_region = serializers.CharField(max_length=8, required=False, allow_blank=True, help_text=_REGION_HELP)
    update_existing = serializers.BooleanField(required=False)


class ImportProgressOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ContactImport.Status.choices)
    status_label = serializers.CharField()
    finished = serializers.BooleanField()
    total_rows = serializers.IntegerField()
    processed_rows = serializers.IntegerField()
    imported = serializers.IntegerField()
    updated = serializers.IntegerField()
    skipped = serializers.IntegerField()
    percent = serializers.FloatField()
    error = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ImportRowOutputSerializer(serializers.ModelSerializer[ContactImportRow]):
    class Meta:
        model = ContactImportRow
        fields = ["row_number", "outcome", "reason", "contact", "data"]


class ImportRowFilterInputSerializer(serializers.Serializer[Any]):
    outcome = serializers.ChoiceField(choices=ContactImportRow.Outcome.choices, required=False)
