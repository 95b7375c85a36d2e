"""Users, teams and API tokens.

``User`` is ``AUTH_USER_MODEL`` from the first migration: swapping it later is not supported by Django.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Team(models.Model):
    """A sales team: one manager, many members (agents)."""

    name = models.CharField(max_length=120, unique=True)
    manager = models.ForeignKey(
        "crm.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="managed_teams",
        help_text="The campaign manager who runs this team.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    class Role(models.TextChoices):
        AGENT = "agent", "Agent (sales staff)"
        MANAGER = "manager", "Manager"
        ADMIN = "admin", "Admin"
        # The service account behind an integration (calls.Source): authenticates with an API token only.
        INTEGRATION = "integration", "Integration"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="members")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["agent", "manager", "admin", "integration"]), name="user_role_valid"
            ),
        ]

    @property
    def is_manager(self) -> bool:
        return self.role == self.Role.MANAGER

    @property
    def is_integration(self) -> bool:
        return self.role == self.Role.INTEGRATION

    @property
    def is_admin(self) -> bool:
        """Admins see everything; a Django superuser is always one."""
        return self.role == self.Role.ADMIN or self.is_superuser


class ApiToken(models.Model):
    """A bearer token for a REST consumer. Only the SHA-256 of the key is stored; the key is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    # The first characters of the key, shown in lists so a person can tell tokens apart.
    prefix = models.CharField(max_length=12)
    # Keys carry 256 bits of randomness, so a fast hash is enough; a unique index makes lookup one query.
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
