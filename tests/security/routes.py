"""Every route of the URL configuration, discovered from ``get_resolver()``, so that a route added tomorrow is in
the security tests' parametrisation the moment it exists (and fails them until the registry says who may use it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

# OPTIONS describes an endpoint and HEAD mirrors GET without a body: neither can hand out an object's data that GET
# does not, so the matrix asks with the methods that read or change something.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A function view with no require_http_methods decorator answers any method; the ones it is written for are GET
# (show) and POST (forms). Django admin views are such views, guarded by admin_view for every method.
UNDECLARED_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class Route:
    name: str | None  # "api-session-detail", "admin:crm_user_change"; None for an unnamed route
    pattern: str  # the full pattern, for messages
    kwargs: tuple[str, ...]  # names of the captured arguments, in order
    converters: dict[str, str]  # kwarg -> converter name ("str", "int", "path") or "regex"
    methods: tuple[str, ...]
    callback: Callable[..., Any]

    @property
    def key(self) -> str:
        """The registry key: the URL name, or the pattern for an unnamed route."""
        return self.name or f"<unnamed {self.pattern}>"

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/crm/")

    @property
    def is_admin_site(self) -> bool:
        return self.pattern.startswith("admin/")

    def __str__(self) -> str:
        return self.key


def _declared_methods(callback: Callable[..., Any]) -> tuple[str, ...] | None:
    """The methods a function view declares through require_http_methods (require_POST, require_safe, ...)."""
    seen: set[int] = set()
    stack: list[Any] = [callback]
    while stack:
        func = stack.pop()
        if id(func) in seen or not callable(func):
            continue
        seen.add(id(func))
        closure = getattr(func, "__closure__", None) or ()
        names = getattr(getattr(func, "__code__", None), "co_freevars", ())
        for name, cell in zip(names, closure, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if name == "request_method_list":
                return tuple(m for m in METHODS if m in value)
            if callable(value):
                stack.append(value)
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is not None:
            stack.append(wrapped)
    return None


def allowed_methods(callback: Callable[..., Any]) -> tuple[str, ...]:
    view_class = getattr(callback, "view_class", None)
    if inspect.isclass(view_class):
        allowed = {m.upper() for m in getattr(view_class, "http_method_names", ()) if hasattr(view_class, m)}
        return tuple(m for m in METHODS if m in allowed)
    declared = _declared_methods(callback)
    return declared if declared is not None else UNDECLARED_METHODS


def _converters(pattern: Any) -> dict[str, str]:
    converters = getattr(pattern, "converters", None)
    if converters:
        return {name: type(conv).__name__.removesuffix("Converter").lower() for name, conv in converters.items()}
    return dict.fromkeys(pattern.regex.groupindex, "regex")


def _walk(
    patterns: list[URLPattern | URLResolver], prefix: str, namespace: str | None, converters: dict[str, str]
) -> Iterator[Route]:
    for entry in patterns:
        here = {**converters, **_converters(entry.pattern)}
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, text, inner, here)
            continue
        name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
        yield Route(
            name=name,
            pattern=text,
            kwargs=tuple(here),
            converters=here,
            methods=allowed_methods(entry.callback),
            callback=entry.callback,
        )


def discover_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", None, {}))
