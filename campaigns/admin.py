from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from campaigns.models import (
    Campaign,
    Contact,
    ContactImport,
    ContactImportRow,
    Dial,
    DoNotCall,
    Run,
    RunContact,
    RunLog,
)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin[Contact]):
    list_display = ("name", "phone", "company", "team", "owner", "timezone", "do_not_call")
    list_filter = ("team", "do_not_call")
    list_select_related = ("team", "owner")
    search_fields = ("name", "phone", "company", "email")
    raw_id_fields = ("owner",)


@admin.register(DoNotCall)
class DoNotCallAdmin(admin.ModelAdmin[DoNotCall]):
    list_display = ("phone", "team", "reason", "added_by", "created_at")
    list_filter = ("team",)
    list_select_related = ("team", "added_by")
    search_fields = ("phone", "reason")
    raw_id_fields = ("added_by",)


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin[ContactImport]):
    list_display = ("id", "original_name", "team", "status", "total_rows", "imported", "updated", "skipped")
    list_filter = ("status", "team")
    list_select_related = ("team",)
    raw_id_fields = ("uploaded_by",)


@admin.register(ContactImportRow)
class ContactImportRowAdmin(admin.ModelAdmin[ContactImportRow]):
    list_display = ("contact_import", "row_number", "outcome", "reason")
    list_filter = ("outcome",)
    raw_id_fields = ("contact_import", "contact")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = ("name", "team", "manager", "status", "dialer", "created_at")
    list_filter = ("status", "team", "dialer")
    list_select_related = ("team", "manager")
    search_fields = ("name",)
    raw_id_fields = ("manager",)
    filter_horizontal = ("agents",)
    # A campaign's contact list can be tens of thousands long: no multi-select widget for it.
    exclude = ("contacts",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = ("id", "campaign", "state", "total", "dials", "completed", "failed", "started_at", "finished_at")
    list_filter = ("state",)
    list_select_related = ("campaign",)
    raw_id_fields = ("campaign", "launched_by")


@admin.register(RunContact)
class RunContactAdmin(admin.ModelAdmin[RunContact]):
    list_display = ("run", "contact", "state", "attempts", "next_attempt_at", "last_outcome")
    list_filter = ("state",)
    raw_id_fields = ("run", "contact")


@admin.register(Dial)
class DialAdmin(admin.ModelAdmin[Dial]):
    list_display = ("run", "target", "attempt", "dialed_at", "sent_at", "outcome", "finished_at")
    list_filter = ("outcome",)
    raw_id_fields = ("run", "target", "session")
    # Dials are the scheduler's record of what happened: editing one by hand would desynchronise the run.
    readonly_fields = ("dialed_at", "sent_at", "dispatch_attempts", "dispatch_claimed_at", "finished_at")


@admin.register(RunLog)
class RunLogAdmin(admin.ModelAdmin[RunLog]):
    list_display = ("run", "at", "level", "kind", "message")
    list_filter = ("level", "kind")
    raw_id_fields = ("run", "actor")

    def has_change_permission(self, request: HttpRequest, obj: RunLog | None = None) -> bool:
        return False  # append-only
