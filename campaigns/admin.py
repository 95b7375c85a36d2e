from __future__ import annotations

from django.contrib import admin

from campaigns.models import Campaign, Contact


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin[Contact]):
    list_display = ("name", "phone", "company", "team", "owner", "do_not_call")
    list_filter = ("team", "do_not_call")
    list_select_related = ("team", "owner")
    search_fields = ("name", "phone", "company", "email")
    raw_id_fields = ("owner",)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = ("name", "team", "manager", "status", "created_at")
    list_filter = ("status", "team")
    list_select_related = ("team", "manager")
    search_fields = ("name",)
    raw_id_fields = ("manager",)
