from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from crm.models import User
from crm.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user. The key is printed once, alone on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label telling what uses the token.")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}. Create it first (or run seed_demo).") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is disabled; a token for it would not authenticate.")
        token, raw_key = api_token_create(user=user, name=name)
        self.stderr.write(f"Created token “{token.name}” for {user.username}. Store the key now; it is not kept.")
        self.stdout.write(raw_key)
