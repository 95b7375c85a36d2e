from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from crm.models import User

pytestmark = pytest.mark.django_db


def test_it_registers_every_model_of_every_callbook_app():
    from django.apps import apps

    ours = [m for m in apps.get_models() if m._meta.app_label in {"crm", "calls", "campaigns"}]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert missing == []


def test_it_renders_the_changelist_and_add_page_of_every_registered_model(client_for, admin_user: User, alice):
    client = client_for(admin_user)
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert client.get(changelist).status_code == 200, changelist
        if model_admin.has_add_permission(client.get(changelist).wsgi_request):
            add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
            assert client.get(add).status_code == 200, add


def test_it_keeps_agents_out_of_the_admin(client_for, alice: User):
    response = client_for(alice).get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
