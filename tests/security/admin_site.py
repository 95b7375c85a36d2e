"""Arguments for the Django admin's routes, found from the admin site's registry."""

from __future__ import annotations

from django.db.models import Model

from calls.models import CallSession
from crm.models import User
from tests.security.routes import Route
from tests.security.world import World


def admin_model(route: Route) -> type[Model] | None:
    """The model of a Django admin route, from its name (admin:<app>_<model>_<action>) or its path."""
    from django.contrib import admin

    if route.name == "admin:auth_user_password_change":
        return User
    for model in admin.site._registry:
        meta = model._meta
        if route.name and route.name.removeprefix("admin:").startswith(f"{meta.app_label}_{meta.model_name}_"):
            return model
        if route.name is None and route.pattern.startswith(f"admin/{meta.app_label}/{meta.model_name}/"):
            return model
    return None


def admin_kwargs(world: World, route: Route) -> tuple[dict[str, str], bool]:
    """Arguments of a Django admin route, and whether they name an object that exists."""
    from django.contrib.contenttypes.models import ContentType

    model = admin_model(route)
    instance = model._default_manager.order_by("pk").first() if model is not None else None
    kwargs: dict[str, str] = {}
    for name in route.kwargs:
        if name in {"object_id", "id"}:
            kwargs[name] = str(instance.pk) if instance is not None else "1"
        elif name == "app_label":
            kwargs[name] = "calls"
        elif name == "url":  # the admin's catch-all
            kwargs[name] = "no/such/page/"
        elif name == "content_type_id":
            kwargs[name] = str(ContentType.objects.get_for_model(CallSession).pk)
    if route.name == "admin:view_on_site":
        kwargs["object_id"] = str(world.session.pk)
        return kwargs, True
    return kwargs, instance is not None
