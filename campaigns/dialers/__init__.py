"""Dialer backends behind one interface (``campaigns.dialers.base.Dialer``): ``simulator`` (the embedded default,
a stand-in voice agent) and ``http`` (a real voice agent reached with a signed JSON request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaigns.dialers.base import Dialer, DialerError, DialerSettingsInvalid, DialRequest

__all__ = ["DialRequest", "Dialer", "DialerError", "DialerSettingsInvalid", "dialer_build", "dialer_classes"]


def dialer_classes() -> dict[str, type[Dialer]]:
    from campaigns.dialers.http import HttpDialer  # noqa: PLC0415  # requests is imported only where it is used
    from campaigns.dialers.simulator import SimulatorDialer  # noqa: PLC0415

    return {HttpDialer.name: HttpDialer, SimulatorDialer.name: SimulatorDialer}


def dialer_build(*, name: str, settings: Mapping[str, Any]) -> Dialer:
    """The backend ``name`` with ``settings``; raises DialerSettingsInvalid for an unknown name or bad settings."""
    backend = dialer_classes().get(name)
    if backend is None:
        raise DialerSettingsInvalid({"dialer": f"Unknown dialer {name!r} (known: {', '.join(dialer_classes())})."})
    if not isinstance(settings, Mapping):
        raise DialerSettingsInvalid({"dialer_settings": "Must be a JSON object."})
    return backend(settings)
