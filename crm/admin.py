from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from crm.models import ApiToken, Team, User
from crm.services import api_token_revoke


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    list_display = ("username", "email", "role", "team", "is_active", "is_superuser")
    list_filter = ("role", "team", "is_active", "is_superuser")
    list_select_related = ("team",)
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), ("Callbook", {"fields": ("role", "team")}))
    add_fieldsets = (*DjangoUserAdmin.add_fieldsets, ("Callbook", {"fields": ("role", "team")}))


class MemberInline(admin.TabularInline[User, Team]):
    model = User
    fk_name = "team"
    fields = ("username", "role", "is_active")
    readonly_fields = ("username", "role", "is_active")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ("name", "manager", "created_at")
    list_select_related = ("manager",)
    search_fields = ("name",)
    raw_id_fields = ("manager",)
    inlines = [MemberInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Tokens are created where the key can be shown once (the UI or create_api_token); here they are revoked."""

    list_display = ("name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")
