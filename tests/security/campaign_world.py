"""The campaigns app's objects for the security tests: Sales' campaign (run by carol), a run, a contact, a
do-not-call entry and a contact import, each carrying a marker that only those who may see it may read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile

from campaigns.models import Campaign, Contact, ContactImport, DoNotCall, Run
from tests.factories import CampaignFactory, ContactFactory, DoNotCallFactory

MARK_CAMPAIGN = "campaign-zq7-secret"
MARK_CONTACT = "contact-zq7-secret"
MARK_DNC = "dnc-zq7-secret"
MARK_IMPORT = "import-zq7-secret"
CAMPAIGN_MARKERS = (MARK_CAMPAIGN, MARK_CONTACT, MARK_DNC, MARK_IMPORT)
IMPORT_CSV = b"name,phone\nAda Lovelace,+12025550142\n"


@dataclass
class CampaignWorld:
    campaign: Campaign
    run: Run
    contact: Contact
    dnc: DoNotCall
    contact_import: ContactImport

    def snapshot(self) -> dict[str, Any]:
        return {
            "campaigns": list(Campaign.objects.order_by("pk").values()),
            "runs": list(Run.objects.order_by("pk").values()),
            "contacts": list(Contact.objects.order_by("pk").values()),
            "dnc": list(DoNotCall.objects.order_by("pk").values()),
            "imports": list(ContactImport.objects.order_by("pk").values()),
        }


def build_campaign_world(*, sales: Any, carol: Any, alice: Any) -> CampaignWorld:
    campaign = CampaignFactory.create(manager=carol, team=sales, name=MARK_CAMPAIGN, description=MARK_CAMPAIGN)
    campaign.agents.add(alice)
    contact = ContactFactory.create(team=sales, name=MARK_CONTACT, company=MARK_CONTACT)
    campaign.contacts.add(contact)
    dnc = DoNotCallFactory.create(team=sales, reason=MARK_DNC)
    run = Run.objects.create(campaign=campaign, launched_by=carol, state=Run.State.RUNNING, total=1, queued=1)
    contact_import = ContactImport(team=sales, uploaded_by=carol, original_name=f"{MARK_IMPORT}.csv")
    contact_import.file.save(f"{MARK_IMPORT}.csv", ContentFile(IMPORT_CSV), save=False)
    contact_import.save()
    return CampaignWorld(campaign=campaign, run=run, contact=contact, dnc=dnc, contact_import=contact_import)
