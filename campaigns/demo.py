"""The demo campaign ``seed_demo`` adds: "Demo outbound", ready to launch from the browser on ``make run``.

Twenty contacts of the demo team with real-format numbers in eleven countries and a dozen time zones (the
fictional ranges where a country has one: 555-01xx in North America, Ofcom's drama numbers in the UK, ARCEP's
fiction range in France, ACMA's in Australia), one of them on the team's do-not-call list; a calling window open
all day, every day, in every time zone, so a launch dials at once whatever the hour; the simulator dialer with
mixed outcomes and short calls, a quick pace and short retries, so a manager (carol) launches it and watches the
run end within a few minutes while its answered calls fill the recording browser with playable recordings (the
simulator calls back Callbook's API at ``CALLBOOK_PUBLIC_URL``, where ``make run`` serves).

Safe to run again: contacts are found by number, the campaign by name; a campaign someone has edited since keeps
its settings, and its runs are never touched, so launching again after a run has finished starts a new run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from campaigns.contacts import ContactDuplicate, contact_create, dnc_add
from campaigns.models import Campaign, Contact
from crm.models import Team, User

DEMO_CAMPAIGN = "Demo outbound"
DEMO_CALLER_ID = "+14155550100"

# (name, company, number, custom fields). Time zones are inferred from the numbers where the numbering plan
# places them in one zone; the campaign's default applies to the others.
DEMO_CONTACTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("Maya Patel", "Brightline Solar", "+12025550143", {"tier": "gold"}),
    ("Jordan Lee", "Brightline Solar", "+14155550123", {"tier": "silver"}),
    ("Sam Okafor", "Northwind Traders", "+13125550187", {"tier": "gold"}),
    ("Rosa Delgado", "Northwind Traders", "+13035550142", {"tier": "bronze"}),
    ("Kai Nakoa", "Aloha Energy", "+18085550123", {"tier": "silver"}),
    ("Priya Raman", "Maple Freight", "+16135550123", {"tier": "gold"}),
    ("Oliver Hughes", "Thames Analytics", "+442079460123", {"tier": "gold"}),
    ("Amelia Clarke", "Thames Analytics", "+442079460456", {"tier": "silver"}),
    ("Camille Martin", "Atelier Lumière", "+33199001234", {"tier": "gold"}),
    ("Lucas Bernard", "Atelier Lumière", "+33199005678", {"tier": "bronze"}),
    ("Lena Fischer", "Spreewerk", "+4930901820", {"tier": "silver"}),
    ("Hiroshi Tanaka", "Sakura Logistics", "+81312345678", {"tier": "gold"}),
    ("Chloe Nguyen", "Harbour Health", "+61255501234", {"tier": "silver"}),
    ("Jack Wilson", "Harbour Health", "+61491570156", {"tier": "bronze"}),
    ("Beatriz Souza", "Ipê Agro", "+5511987654321", {"tier": "gold"}),
    ("Arjun Mehta", "Monsoon Textiles", "+919876543210", {"tier": "silver"}),
    ("Lucía García", "Sierra Ventures", "+34912345678", {"tier": "bronze"}),
    ("Giulia Romano", "Via Appia Foods", "+390612345678", {"tier": "silver"}),
    ("Thabo Nkosi", "Karoo Mining", "+27211234567", {"tier": "gold"}),
    ("Wei Ling Tan", "Lion City Labs", "+6591234567", {"tier": "silver"}),
)
# The number that asked not to be called: the run skips it, and its counter shows it.
DEMO_DO_NOT_CALL = "+33199005678"

DEMO_SETTINGS = {
    "description": "The demo's outbound run: launch it and watch the simulator call twenty contacts worldwide.",
    "status": Campaign.Status.ACTIVE,
    "caller_id": DEMO_CALLER_ID,
    "dialer": Campaign.Dialer.SIMULATOR,
    # Weights of the outcomes, and seconds of ringing; the answered calls last as long as their recording.
    "dialer_settings": {"odds": {"completed": 60, "no_answer": 20, "busy": 10, "failed": 10}, "ring_seconds": [1, 3]},
    # Every day, all day (window_end is exclusive): open whenever the demo is tried, in every time zone.
    "window_days": [],
    "window_start": dt.time(0, 0),
    "window_end": dt.time.max,
    "default_timezone": "UTC",
    "max_concurrent_calls": 4,
    "max_calls_per_minute": 30,
    "max_call_seconds": 120,
    "retry_no_answer_delay": 20,
    "retry_no_answer_max_attempts": 2,
    "retry_busy_delay": 15,
    "retry_busy_max_attempts": 2,
    "retry_failed_delay": 20,
    "retry_failed_max_attempts": 1,
    # Ten per cent of the simulator's calls fail: the breaker stays closed unless something is really wrong.
    "breaker_window": 20,
    "breaker_min_dials": 10,
    "breaker_failure_rate": 0.6,
}


@dataclass
class DemoCampaign:
    campaign: Campaign
    created: bool
    contacts: int
    contacts_created: int


def _demo_contacts(*, team: Team, manager: User, agents: list[User]) -> tuple[list[Contact], int]:
    contacts, created = [], 0
    for index, (name, company, phone, custom) in enumerate(DEMO_CONTACTS):
        owner = agents[index % len(agents)].username if agents else None
        try:
            contact = contact_create(
                actor=manager, team=team, name=name, company=company, phone=phone, custom_fields=custom, owner=owner
            )
        except ContactDuplicate:
            contact = Contact.objects.get(team=team, phone=phone)
        else:
            created += 1
        contacts.append(contact)
    return contacts, created


@transaction.atomic
def seed_campaign(*, team: Team, manager: User, agents: list[User]) -> DemoCampaign:
    """Create (or find) the demo campaign of ``team``, managed by ``manager``, its calls owned by ``agents``."""
    contacts, contacts_created = _demo_contacts(team=team, manager=manager, agents=agents)
    dnc_add(actor=manager, team=team, phone=DEMO_DO_NOT_CALL, reason="Asked not to be called again (demo)")
    campaign, created = Campaign.objects.get_or_create(
        team=team, name=DEMO_CAMPAIGN, defaults={"manager": manager, **DEMO_SETTINGS}
    )
    if created:
        campaign.agents.set(agents)
        # Its own list: contacts others add to the demo team later are not called by the demo run.
        campaign.contacts.set(contacts)
    return DemoCampaign(campaign=campaign, created=created, contacts=len(contacts), contacts_created=contacts_created)
