from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from crm.demo import DEMO_PASSWORD, seed_people


class Command(BaseCommand):
    help = (
        "Create or refresh the demo data (team “Demo sales”: manager carol, agents alice and bob, superuser "
        "admin). Safe to run again. With DEBUG on every demo login uses the password 'demo-password'; "
        "otherwise new accounts get random passwords, printed once."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--password", help="Use this password for every demo account.")

    def handle(self, *args: Any, password: str | None, **options: Any) -> None:
        if password is None and settings.DEBUG:
            password = DEMO_PASSWORD
        people = seed_people(password=password)
        self.stdout.write(self.style.SUCCESS(f"Demo team “{people.team.name}” is ready. Sign in as:"))
        for user in [people.manager, *people.agents, people.admin]:
            secret = people.logins.get(user.username)
            shown = secret if secret is not None else "(password unchanged)"
            self.stdout.write(f"  {user.username:<8} {user.get_role_display():<22} password: {shown}")
