from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from crm.demo import DEMO_PASSWORD, DemoPeople, seed_people
from crm.models import Team


class Command(BaseCommand):
    help = (
        "Create or refresh the demo data (team “Demo sales”: manager carol, agents alice and bob, superuser "
        "admin, two weeks of their calls with recordings and transcripts, and the campaign “Demo outbound”). Safe "
        "to run again. With DEBUG on every demo login uses the password 'demo-password'; otherwise new accounts "
        "get random passwords, printed once."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--password", help="Use this password for every demo account.")
        parser.add_argument("--no-calls", action="store_true", help="Seed the people only, without demo calls.")

    def handle(self, *args: Any, password: str | None, no_calls: bool = False, **options: Any) -> None:
        if password is None and settings.DEBUG:
            password = DEMO_PASSWORD
        people = seed_people(password=password)
        if not no_calls:
            self._seed_calls(people.team)
            self._seed_campaign(people)
        self.stdout.write(self.style.SUCCESS(f"Demo team “{people.team.name}” is ready. Sign in as:"))
        for user in [people.manager, *people.agents, people.admin]:
            secret = people.logins.get(user.username)
            shown = secret if secret is not None else "(password unchanged)"
            self.stdout.write(f"  {user.username:<8} {user.get_role_display():<22} password: {shown}")

    def _seed_campaign(self, people: DemoPeople) -> None:
        from campaigns.demo import seed_campaign  # noqa: PLC0415  # crm must not import campaigns at load time

        demo = seed_campaign(team=people.team, manager=people.manager, agents=people.agents)
        state = "created" if demo.created else "already there"
        self.stdout.write(
            f"Demo campaign “{demo.campaign.name}” ({state}): {demo.contacts} contacts, simulator dialer. "
            f"Sign in as {people.manager.username} and launch it from /campaigns/{demo.campaign.pk}/."
        )

    def _seed_calls(self, team: Team) -> None:
        # Imported here: crm must not import calls at load time (calls imports crm).
        from calls.demo import seed_calls  # noqa: PLC0415

        started = time.monotonic()
        calls = seed_calls(team=team)
        took = time.monotonic() - started
        made = f"{calls.created} created in {took:.1f} s, speech by {calls.speech}" if calls.created else "none new"
        self.stdout.write(
            f"Demo calls: {calls.calls} for alice and bob over the last two weeks ({calls.recordings} with "
            f"recordings and transcripts, {calls.live} live), {calls.orphans_in_triage} adopted recordings waiting "
            f"in triage; {made}."
        )
