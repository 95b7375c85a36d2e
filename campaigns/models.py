"""Campaigns and contacts.

Call sessions point at these from the first calls migration, so the rows every later feature relies on (a
campaign's team, a contact's number) exist now; outbound runs, imports and pacing build on them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Contact(models.Model):
    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="contacts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    name = models.CharField(max_length=200)
    company = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, help_text="E.164, e.g. +14155550123.")
    do_not_call = models.BooleanField(default=False)
    custom_fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Contacts are deduplicated by number within a team.
            models.UniqueConstraint(fields=["team", "phone"], name="contact_unique_phone_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    team = models.ForeignKey("crm.Team", on_delete=models.CASCADE, related_name="campaigns")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="managed_campaigns"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    caller_id = models.CharField(max_length=32, blank=True, help_text="The number shown to the people called.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="campaign_unique_name_per_team"),
            models.CheckConstraint(
                condition=models.Q(status__in=["draft", "active", "paused", "archived"]), name="campaign_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name
