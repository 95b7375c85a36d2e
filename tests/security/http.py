"""Building URLs from discovered routes (with any raw text as an argument) and sending one request."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from django.http.response import HttpResponseBase
from django.test import Client

from tests.security.registry import Request
from tests.security.routes import Route

_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def fill(route: Route, kwargs: dict[str, Any], *, encode: bool = True) -> str:
    """The route's URL with ``kwargs`` in place, whatever they hold (``reverse`` refuses what does not match).

    ``encode`` percent-encodes each value as a client would put it on the wire (the server decodes it again
    before routing); with ``encode=False`` the text goes into the path as it is.
    """

    def value(match: re.Match[str]) -> str:
        raw = str(kwargs[match.group(1)])
        return quote(raw, safe="") if encode else raw

    # Arguments become placeholders first: the pattern's own escapes and anchors are undone around them, never in
    # the values.
    values: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        values.append(value(match))
        return f"\x00{len(values) - 1}\x00"

    text = _CONVERTER.sub(placeholder, _REGEX_GROUP.sub(placeholder, route.pattern))
    # Regex routes: anchors go, an optional trailing slash is left out, escaped characters (report\.csv) are
    # themselves.
    text = text.replace("^", "").replace("$", "").replace("/?", "")
    text = re.sub(r"\\(.)", r"\1", text)
    return "/" + re.sub("\x00([0-9]+)\x00", lambda m: values[int(m.group(1))], text)


def body_of(response: HttpResponseBase) -> str:
    streaming = getattr(response, "streaming", False)
    raw = b"".join(response.streaming_content) if streaming else response.content  # type: ignore[attr-defined]
    return raw.decode("utf-8", errors="replace")


def send(client: Client, method: str, url: str, request: Request, **extra: Any) -> HttpResponseBase:
    if request.form is not None:
        if method == "POST":
            return client.post(url, dict(request.form), **extra)
        return client.generic(method, url, urlencode(request.form), "application/x-www-form-urlencoded", **extra)
    if request.json is not None:
        return client.generic(method, url, json.dumps(request.json), "application/json", **extra)
    if request.raw is not None:
        return client.generic(method, url, request.raw, request.content_type, **extra)
    return client.generic(method, url, **extra)
