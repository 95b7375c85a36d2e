"""Brute-force throttling of sign-ins and API tokens.

Failed sign-ins are counted in the cache per username and per client address, within a window that starts at
the first failure (``LOGIN_THROTTLE_*`` settings). Past either limit every further attempt is refused, even
with the right password, until the window has passed: answering "right password" during a lockout would tell
an attacker which guess was right. A successful sign-in clears its username's count; the address's count is
left alone, or an attacker holding one valid account could clear it between guesses at others.

One check covers every way in: ``ThrottledModelBackend`` refuses before a password is looked at, so the login
page, Django admin's login and anything else calling ``authenticate()`` are throttled alike; the login forms
check first to say why (and the login page answers 429). Failures are counted from the ``user_login_failed``
signal that ``authenticate()`` sends. Invalid API tokens are counted per address by the bearer authentication
(``api_auth_throttle_check`` / ``api_auth_failure_record``).

With Redis as the cache (``REDIS_URL``) the counts are shared by every web process and machine; the embedded
mode's per-process memory counts per process.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import BaseCache, cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest

from crm.models import User

KEY_PREFIX = "callbook:auth-failures"

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Counts kept by this process, used only while the shared cache (Redis) is unreachable: throttling then counts per
# process, as the embedded mode always does, instead of failing every sign-in and every API call with a 500.
_counts_here = LocMemCache("callbook-auth-failures", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


def _counted(operation: Callable[[BaseCache], T]) -> T:
    try:
        return operation(cache)
    except Exception as exc:  # the cache backend's own connection errors (redis-py's), with no common base class
        logger.warning("sign-in throttling counts on this process only: the shared cache is unreachable (%s)", exc)
        return operation(_counts_here)


@dataclass(frozen=True)
class Lockout:
    """Further attempts are refused for ``retry_after`` more seconds."""

    retry_after: int

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))

    @property
    def message(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return (
            "Too many failed sign-in attempts for this account or from your network. "
            f"Sign-in is paused; try again in {self.minutes} {unit}."
        )


class LoginThrottled(PermissionDenied):
    """Raised by the authentication backend: ``authenticate()`` stops at it and tries no other backend."""

    def __init__(self, lockout: Lockout) -> None:
        super().__init__(lockout.message)
        self.lockout = lockout


def client_ip(request: HttpRequest | Any | None) -> str:
    """The client's address: behind the TLS proxy (``BEHIND_TLS_PROXY``) the last X-Forwarded-For entry, which
    that proxy appended (the ones before it are whatever the client sent); otherwise REMOTE_ADDR."""
    if request is None:
        return ""
    meta = request.META
    if settings.SECURE_PROXY_SSL_HEADER is not None:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            return str(forwarded[-1])[:64]
    return str(meta.get("REMOTE_ADDR") or "")[:64]


def _key(kind: str, value: str) -> str:
    # Hashed: usernames and addresses may hold characters a cache key may not (memcached), and no raw username
    # sits in the cache.
    return f"{KEY_PREFIX}:{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()}"


def _username_key(username: str) -> str:
    return _key("user", username.strip().lower())


def _counters(*, request: Any, username: str | None) -> list[tuple[str, int]]:
    """The keys that count this attempt, each with its limit (0 turns a limit off)."""
    counters = []
    if username:
        counters.append((_username_key(username), settings.LOGIN_THROTTLE_FAILURES_PER_USERNAME))
    address = client_ip(request)
    if address:
        counters.append((_key("ip", address), settings.LOGIN_THROTTLE_FAILURES_PER_IP))
    return [(key, limit) for key, limit in counters if limit > 0]


def _lockout(counters: list[tuple[str, int]]) -> Lockout | None:
    if not counters:
        return None
    keys = [key for key, _ in counters] + [f"{key}:until" for key, _ in counters]
    counts = _counted(lambda store: store.get_many(keys))
    for key, limit in counters:
        if int(counts.get(key, 0)) >= limit:
            until = counts.get(f"{key}:until")
            remaining = float(until) - time.time() if until is not None else settings.LOGIN_THROTTLE_WINDOW_SECONDS
            return Lockout(retry_after=max(1, math.ceil(remaining)))
    return None


def _record(counters: list[tuple[str, int]]) -> None:
    _counted(lambda store: _record_in(store, counters))


def _record_in(store: BaseCache, counters: list[tuple[str, int]]) -> None:
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    for key, _ in counters:
        # add() opens the window at the first failure; incr() keeps the key's expiry (Redis INCR keeps the TTL), so
        # the window is fixed and a lockout ends when it does. add() again covers a key that expired in between.
        if store.add(key, 1, timeout=window):
            store.set(f"{key}:until", time.time() + window, timeout=window)
            continue
        try:
            store.incr(key)
        except ValueError:
            store.add(key, 1, timeout=window)
            store.set(f"{key}:until", time.time() + window, timeout=window)


def login_throttle_check(*, request: Any, username: str | None) -> Lockout | None:
    """The lockout in force for this username or this client's address, if any."""
    return _lockout(_counters(request=request, username=username))


def login_failure_record(*, request: Any, username: str | None) -> None:
    _record(_counters(request=request, username=username))


def login_failures_reset(*, username: str) -> None:
    key = _username_key(username)
    _counted(lambda store: store.delete_many([key, f"{key}:until"]))


def _api_counters(request: Any) -> list[tuple[str, int]]:
    address = client_ip(request)
    limit = settings.LOGIN_THROTTLE_FAILURES_PER_IP
    return [(_key("api-ip", address), limit)] if address and limit > 0 else []


def api_auth_throttle_check(*, request: Any) -> Lockout | None:
    """The lockout of this client's address after too many invalid API tokens, if any."""
    return _lockout(_api_counters(request))


def api_auth_failure_record(*, request: Any) -> None:
    _record(_api_counters(request))


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing to look at a password while the username or the address is locked out."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        lockout = login_throttle_check(request=request, username=str(username) if username else None)
        if lockout is not None:
            raise LoginThrottled(lockout)
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="callbook-login-throttle-failed")
def _count_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    login_failure_record(request=request, username=str(username) if username else None)


@receiver(user_logged_in, dispatch_uid="callbook-login-throttle-reset")
def _reset_on_success(sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    login_failures_reset(username=user.get_username())
