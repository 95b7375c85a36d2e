"""Path traversal and odd ids on every route that takes an argument (discovered from the URL configuration).

Each argument in turn gets traversal sequences (plain, percent-encoded, double-encoded, backslashed), NUL bytes,
absolute paths, a 10 KB id, huge and negative numbers and unicode look-alikes (fullwidth digits, U+2215 DIVISION
SLASH, fullwidth dots), with every method the route allows. The answer is a 404 (a page route that only
points the browser elsewhere may redirect, to this site), never a 500; and nothing outside ``sessions/`` is read:
a sentinel planted beside the recordings and one outside their root never show up, the recordings storage is
not asked about anything, and no file under the test's folder is opened outside ``sessions/``.
"""

from __future__ import annotations

import builtins
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.core.files.storage import FileSystemStorage

from calls.storage import recordings_storage
from tests.security.http import body_of, fill, send
from tests.security.registry import NO_BODY, REGISTRY
from tests.security.routes import Route, discover_routes
from tests.security.world import ADMIN, OWNER, World

pytestmark = pytest.mark.django_db

SENTINEL = f"SENTINEL-{uuid.uuid4().hex}"
UUID = "0f4b9c2e-6d1a-4e7b-9a53-1c2d3e4f5a6b"
# The look-alikes are the point here.
FULLWIDTH = str.maketrans("0123456789abcdef", "０１２３４５６７８９ａｂｃｄｅｆ")  # noqa: RUF001

ODD_IDS: dict[str, str] = {
    "dot-dot": "..",
    "dot-dot-slash": "../",
    "deep-traversal": "../../../../etc/passwd",
    "to-sentinel-in-root": "../secret.txt",
    "to-sentinel-outside-root": "../../secret.txt",
    "encoded-traversal": "%2e%2e%2f%2e%2e%2fsecret.txt",
    "half-encoded": "..%2f..%2fsecret.txt",
    "double-encoded": "%252e%252e%252f",
    "overlong-utf8-dots": "%c0%ae%c0%ae%c0%af",
    "backslashes": "..\\..\\secret.txt",
    "dots-and-slashes": "....//....//secret.txt",
    "nul": "%00",
    "nul-inside": f"{UUID}%00.wav",
    "raw-nul": f"{UUID}\x00",
    "absolute": "/etc/passwd",
    "absolute-encoded": "%2Fetc%2Fpasswd",
    "file-url": "file:///etc/passwd",
    "sessions-prefix": "sessions/../../secret.txt",
    "10kb": "a" * 10_240,
    "10kb-digits": "9" * 10_240,
    "huge-number": "9" * 40,
    "negative": "-1",
    "zero": "0",
    "fullwidth-uuid": UUID.translate(FULLWIDTH),
    "fullwidth-digits": "１２",  # noqa: RUF001
    "division-slash-uuid": UUID.replace("-", "\u2215"),
    "division-slash-traversal": "..\u2215..\u2215secret.txt",
    "fullwidth-dots": "\uff0e\uff0e\uff0f",
    "uuid-newline": f"{UUID}%0A",
    "uuid-space": f" {UUID}",
    "uuid-braces": "{" + UUID + "}",
    "uuid-urn": f"urn:uuid:{UUID}",
    "uuid-no-dashes": UUID.replace("-", ""),
}

ROUTES_WITH_IDS = [route for route in discover_routes() if route.kwargs]


def cases() -> Iterator[Any]:
    for route in ROUTES_WITH_IDS:
        for kwarg in route.kwargs:
            yield pytest.param(route, kwarg, id=f"{route.key}-{kwarg}")


@pytest.fixture
def sentinels(recordings_root: Path) -> list[Path]:
    """A secret beside ``sessions/`` inside the recordings root, and one outside the root."""
    inside = recordings_root / "secret.txt"
    outside = recordings_root.parent / "secret.txt"
    for path in (inside, outside):
        path.write_text(SENTINEL)
    return [inside, outside]


class Spy:
    def __init__(self) -> None:
        self.storage_calls: list[tuple[str, str]] = []
        self.opened: list[Path] = []


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, recordings_root: Path) -> Spy:
    """Records every question asked of the recordings storage and every file opened."""
    found = Spy()
    storage = recordings_storage()
    assert isinstance(storage, FileSystemStorage)
    assert Path(storage.location) == recordings_root
    for method in ("open", "save", "exists", "listdir", "size", "delete", "path", "get_modified_time", "url"):
        original = getattr(storage, method)

        def recorder(name: str, *args: Any, _m: str = method, _o: Any = original, **kwargs: Any) -> Any:
            found.storage_calls.append((_m, str(name)))
            return _o(name, *args, **kwargs)

        monkeypatch.setattr(storage, method, recorder)
    real_open = builtins.open

    def recording_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path):
            found.opened.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    return found


def _valid_kwargs(world: World, route: Route) -> dict[str, Any]:
    entry = REGISTRY.get(route.name or "")
    if entry is not None:
        return entry.kwargs(world)
    # Routes the registry does not know (the Django admin, or one the access matrix fails on): any value.
    return dict.fromkeys(route.kwargs, "1")


@pytest.mark.parametrize(("route", "kwarg"), list(cases()))
def test_it_answers_odd_ids_with_404_and_reads_nothing_outside_sessions(
    world: World, route: Route, kwarg: str, sentinels: list[Path], spy: Spy, recordings_root: Path
):
    entry = REGISTRY.get(route.name or "")
    valid = _valid_kwargs(world, route)
    sessions = (recordings_root / "sessions").resolve()
    playground = recordings_root.parent.resolve()
    # The admin reaches the deepest code (adoption, every team); an agent takes the paths of the refused. The
    # Django admin's own pages send the agent to sign in before reading any argument.
    roles = (ADMIN,) if route.is_admin_site else (ADMIN, OWNER)
    clients = {role: world.client(role, api=route.is_api) for role in roles}
    # The Django admin reads only (its writes are Django's business); everyone else tries every method.
    methods = ("GET",) if route.is_admin_site and "GET" in route.methods else route.methods
    for label, odd in ODD_IDS.items():
        # Percent-encoded as a client sends it, and as typed (the server decodes %-escapes in it before routing).
        for encode in (True, False) if quote(odd, safe="") != odd else (True,):
            url = fill(route, {**valid, kwarg: odd}, encode=encode)
            for role, client in clients.items():
                for method in methods:
                    request = entry.body(world, method, role) if entry is not None else NO_BODY
                    spy.storage_calls.clear()
                    response = send(client, method, url, request)
                    body = body_of(response)
                    where = f"{method} {url[:150]!r} ({label}, {'encoded' if encode else 'raw'}) as {role}"
                    assert response.status_code < 500, f"{where}: {response.status_code}\n{body[:1500]}"
                    assert SENTINEL not in body, f"{where}: a file outside sessions/ was served"
                    _assert_refused(route, where, response, body, odd)
                    assert not spy.storage_calls, f"{where}: the storage was asked {spy.storage_calls}"
    outside = [path for path in spy.opened if path.is_relative_to(playground) and not path.is_relative_to(sessions)]
    assert not outside, f"files opened outside sessions/: {outside}"
    assert Path("/etc/passwd") not in spy.opened


def _assert_refused(route: Route, where: str, response: Any, body: str, odd: str) -> None:
    status = response.status_code
    if route.is_admin_site:
        # The admin's answer to an object it cannot find: back to its index with a message (or 404). Django
        # admin reads an integer id with int(), which takes any Unicode digits: fullwidth "12" is object 12, shown to
        # the admin who may see it anyway.
        allowed = {302, 404} | ({200} if odd.isdecimal() and not odd.isascii() else set())
        assert status in allowed, f"{where}: {status}"
        return
    if status in {301, 302}:
        # A page route that only points the browser elsewhere (GET on a form's URL, a manager's form sent
        # back): to this site, and the target itself answers 404.
        location = response["Location"]
        assert location.startswith("/"), f"{where}: redirects to {location}"
        assert not location.startswith("//"), f"{where}: redirects to {location}"
        assert not route.is_api, f"{where}: an API route redirected"
        return
    assert status == 404, f"{where}: {status}\n{body[:500]}"
    if route.is_api:
        error = response.json()
        assert set(error) >= {"detail", "code"}, f"{where}: {error}"


def test_it_plants_sentinels_the_app_could_reach_if_it_joined_raw_ids(sentinels: list[Path], recordings_root: Path):
    # The traversal ids above aim at these files: joined unchecked under sessions/, they would resolve there.
    root = recordings_root / "sessions" / "x"
    assert (root / ".." / ODD_IDS["to-sentinel-in-root"]).resolve() == sentinels[0].resolve()
    assert (root / ".." / ODD_IDS["to-sentinel-outside-root"]).resolve() == sentinels[1].resolve()
    assert all(path.read_text() == SENTINEL for path in sentinels)


ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


def look_alikes(valid: str) -> dict[str, str]:
    """Other spellings of a real id that int() or a lax parser would read as the same object."""
    return {
        "fullwidth": valid.translate(FULLWIDTH),
        "arabic-indic-digits": valid.translate(ARABIC_INDIC),
        "division-slash": valid.replace("-", "\u2215"),
        "leading-space": f" {valid}",
        "trailing-space": f"{valid} ",
        "plus-sign": f"+{valid}",
        "underscore": f"{valid[:1]}_{valid[1:]}" if len(valid) > 1 else f"{valid}_",
    }


def look_alike_cases() -> Iterator[Any]:
    for route in ROUTES_WITH_IDS:
        if route.is_admin_site:
            continue  # Django admin's int() reading of ids is Django's (see _assert_refused)
        for kwarg in route.kwargs:
            yield pytest.param(route, kwarg, id=f"{route.key}-{kwarg}")


@pytest.mark.parametrize(("route", "kwarg"), list(look_alike_cases()))
def test_it_answers_look_alikes_of_a_real_id_as_a_missing_one(world: World, route: Route, kwarg: str):
    """Another spelling of a real id gets what an id that exists nowhere gets, and acts on nothing."""
    valid = _valid_kwargs(world, route)
    real = str(valid[kwarg])
    missing = "00000000-0000-4000-8000-000000000000" if "-" in real else "987654321"
    client = world.client(ADMIN, api=route.is_api)
    entry = REGISTRY.get(route.name or "")
    for method in route.methods:
        request = entry.body(world, method, ADMIN) if entry is not None else NO_BODY
        expected = send(client, method, fill(route, {**valid, kwarg: missing}), request).status_code
        for label, alias in look_alikes(real).items():
            if alias == real:
                continue  # nothing to spell otherwise (no digit, no dash)
            url = fill(route, {**valid, kwarg: alias})
            before = world.snapshot()
            response = send(client, method, url, request)
            where = f"{method} {url!r} ({label} of {real})"
            _assert_refused(route, where, response, body_of(response), alias)
            # The router may refuse the spelling itself (404) where a missing id reaches a view that redirects.
            assert response.status_code in {404, expected}, f"{where}: {response.status_code}, not {expected}"
            assert world.snapshot() == before, f"{where}: acted on the object the real id names"
