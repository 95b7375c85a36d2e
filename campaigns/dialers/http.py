"""The ``http`` dialer: a signed JSON dial request POSTed to the voice agent's URL.

Settings (``Campaign.dialer_settings``):

- ``url`` (required): the voice agent's dial endpoint, http or https;
- ``signing_secret`` (required, at least 16 characters): signs each request with the scheme of calls/signatures.py,
  header ``X-Callbook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``;
- ``source`` (required): the integration (calls.Source) the voice agent authenticates as to report events and
  upload the recording; each dial's session is created with this source so that it can;
- ``timeout_seconds`` (default 10), ``max_attempts`` (default 3): per-request timeout and attempts on transient
  failures (connection errors, timeouts, 408, 429, 5xx), with a short exponential backoff;
- ``script_id``, ``prompt_id`` (strings) and ``options`` (an object): passed to the agent as ``settings``.

The request also carries an ``Idempotency-Key`` header: the session id. An agent must place one call per session
id, since Callbook may send a dial again when it cannot know whether the first request arrived.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from calls.signatures import SIGNATURE_HEADER, signature_header
from campaigns.dialers.base import (
    Dialer,
    DialerError,
    DialerSettingsInvalid,
    DialRequest,
    check_unknown,
    number_setting,
)

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0
USER_AGENT = "Callbook-Dialer/1"


class HttpDialer(Dialer):
    name: ClassVar[str] = "http"
    ALLOWED: ClassVar[frozenset[str]] = frozenset(
        {"url", "signing_secret", "source", "timeout_seconds", "max_attempts", "script_id", "prompt_id", "options"}
    )

    @classmethod
    def validate_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        check_unknown(raw, cls.ALLOWED, errors)
        url = raw.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            errors["url"] = "Required: the voice agent's dial URL, starting with http:// or https://."
        secret = raw.get("signing_secret")
        if not isinstance(secret, str) or len(secret) < 16:
            errors["signing_secret"] = "Required: a signing secret of at least 16 characters."  # noqa: S105  # a message
        source = raw.get("source")
        if not isinstance(source, str) or not SLUG_RE.match(source):
            errors["source"] = "Required: the name of the integration the voice agent reports its calls as."
        timeout = number_setting(raw, "timeout_seconds", errors, default=10, minimum=1, maximum=60)
        attempts = number_setting(raw, "max_attempts", errors, default=3, minimum=1, maximum=5, integer=True)
        for name in ("script_id", "prompt_id"):
            value = raw.get(name, "")
            if not isinstance(value, str) or len(value) > 200:
                errors[name] = "Must be a string of at most 200 characters."
        options = raw.get("options", {})
        if not isinstance(options, dict):
            errors["options"] = "Must be a JSON object (passed to the voice agent as it is)."
        if errors:
            raise DialerSettingsInvalid(errors)
        return {
            "url": url,
            "signing_secret": secret,
            "source": source,
            "timeout_seconds": float(timeout),
            "max_attempts": int(attempts),
            "script_id": raw.get("script_id", ""),
            "prompt_id": raw.get("prompt_id", ""),
            "options": options,
        }

    def source_name(self) -> str:
        return str(self.settings["source"])

    def public_settings(self) -> dict[str, Any]:
        return {
            "script_id": self.settings["script_id"],
            "prompt_id": self.settings["prompt_id"],
            "options": self.settings["options"],
        }

    def dial(self, request: DialRequest) -> None:
        attempts = int(self.settings["max_attempts"])
        timeout = float(self.settings["timeout_seconds"])
        last_error = ""
        for attempt in range(1, attempts + 1):
            payload = {**request.as_json(), "delivery": {"attempt": attempt, "sent_at": time.time()}}
            body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Idempotency-Key": str(request.session_id),
                SIGNATURE_HEADER: signature_header(secret=str(self.settings["signing_secret"]), body=body),
            }
            try:
                response = requests.post(
                    str(self.settings["url"]),
                    data=body,
                    headers=headers,
                    timeout=(min(timeout, 5.0), timeout),
                    allow_redirects=False,
                )
            except requests.Timeout:
                last_error = f"no answer within {timeout:g} s"
            except requests.RequestException as exc:
                last_error = f"connection failed ({type(exc).__name__})"
            else:
                if 200 <= response.status_code < 300:
                    return
                snippet = response.text[:120].strip()
                last_error = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
                if response.status_code not in TRANSIENT_STATUSES:
                    raise DialerError(f"The voice agent refused the dial: {last_error}")
            if attempt < attempts:
                time.sleep(min(BACKOFF_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS))
        raise DialerError(
            f"The voice agent could not be reached after {attempts} attempt(s): {last_error}", transient=True
        )
