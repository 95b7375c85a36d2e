from __future__ import annotations

import secrets
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from calls.services import SessionInputError, source_create
from calls.signatures import SIGNATURE_HEADER
from crm.models import Team, User


class Command(BaseCommand):
    help = (
        "Register an integration (a voice agent, telephony provider or dialer) with its own API token. "
        "The token key is printed once, alone on the last line."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="Slug written into each session's `source`, e.g. pipecat-prod.")
        parser.add_argument("--owner", help="Username owning the sessions it reports without naming an owner.")
        parser.add_argument("--team", help="Team name for those sessions (default: the owner's team).")
        parser.add_argument(
            "--signing-secret",
            action="store_true",
            help=f"Generate a secret; bodies must then carry {SIGNATURE_HEADER}.",
        )

    def handle(self, *args: Any, name: str, owner: str | None, team: str | None, **options: Any) -> None:
        owner_user = None
        if owner:
            owner_user = User.objects.filter(username=owner, is_active=True).first()
            if owner_user is None:
                raise CommandError(f"No active user named {owner!r}.")
        team_obj = None
        if team:
            team_obj = Team.objects.filter(name=team).first()
            if team_obj is None:
                raise CommandError(f"No team named {team!r}.")
        secret = secrets.token_hex(32) if options["signing_secret"] else ""
        try:
            source, key = source_create(
                name=name, default_owner=owner_user, default_team=team_obj, signing_secret=secret
            )
        except SessionInputError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Integration {source.name!r} created (service user {source.user.username}).")
        if secret:
            self.stderr.write(f"Signing secret (HMAC-SHA256, header {SIGNATURE_HEADER}): {secret}")
        self.stderr.write("API token (store it now; it is not kept):")
        self.stdout.write(key)
