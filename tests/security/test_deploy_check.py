"""Production configuration: ``check --deploy`` is clean with the documented production settings (also with Redis
and S3 configured), the hardening those settings imply is in force, and the check does catch a weakened
configuration. Settings are read at import, so each case runs a fresh interpreter (tests/crm/test_settings.py
holds the basic ones: the refused default key, SECRET_KEY_FILE, blank variables)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# README: Configuration, production column; and .env.example's required values.
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 10 + "-a-long-random-production-secret-with-plenty-of-entropy-0987654321",
    "ALLOWED_HOSTS": "callbook.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://callbook.example.com",
    "BEHIND_TLS_PROXY": "true",
}
FULL_PRODUCTION_ENV = {
    **PRODUCTION_ENV,
    "DATABASE_URL": "postgres://callbook:secret@db.internal:5432/callbook",
    "REDIS_URL": "redis://redis.internal:6379/2",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "CELERY_RESULT_BACKEND": "redis://redis.internal:6379/1",
    "RECORDINGS_S3_BUCKET": "callbook-recordings",
    "RECORDINGS_S3_ENDPOINT_URL": "https://s3.example.com",
}
# Variables of this machine's test environment that must not leak into a "production" interpreter.
SCRUBBED = {"SECRET_KEY", "DEBUG", "SECURE_SSL_REDIRECT", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("CELERY_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def production_settings(env: dict[str, str]) -> dict[str, Any]:
    script = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_PROXY_SSL_HEADER": s.SECURE_PROXY_SSL_HEADER,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "SESSION_COOKIE_HTTPONLY": s.SESSION_COOKIE_HTTPONLY,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_CONTENT_TYPE_NOSNIFF": s.SECURE_CONTENT_TYPE_NOSNIFF,
    "SECURE_REFERRER_POLICY": s.SECURE_REFERRER_POLICY,
    "X_FRAME_OPTIONS": s.X_FRAME_OPTIONS,
    "CORS_ALLOWED_ORIGINS": s.CORS_ALLOWED_ORIGINS,
    "CORS_ALLOW_ALL_ORIGINS": getattr(s, "CORS_ALLOW_ALL_ORIGINS", False),
    "AUTHENTICATION_BACKENDS": s.AUTHENTICATION_BACKENDS,
    "AUTH_PASSWORD_VALIDATORS": len(s.AUTH_PASSWORD_VALIDATORS),
    "PASSWORD_HASHERS": s.PASSWORD_HASHERS[0],
    "CSP": s.CONTENT_SECURITY_POLICY["DIRECTIVES"],
    "MIDDLEWARE": s.MIDDLEWARE,
    "RENDERERS": s.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
}))
"""
    result = run(["-c", script], {"DJANGO_SETTINGS_MODULE": "crm.settings", **env})
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("env", [PRODUCTION_ENV, FULL_PRODUCTION_ENV], ids=["minimal", "redis-postgres-s3"])
def test_it_passes_check_deploy_with_the_documented_production_settings(env: dict[str, str]):
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_runs_production_hardened():
    values = production_settings(PRODUCTION_ENV)
    assert values["DEBUG"] is False
    assert "*" not in values["ALLOWED_HOSTS"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["CORS_ALLOWED_ORIGINS"] == []
    assert values["CORS_ALLOW_ALL_ORIGINS"] is False
    assert values["AUTHENTICATION_BACKENDS"] == ["crm.throttling.ThrottledModelBackend"]
    assert values["AUTH_PASSWORD_VALIDATORS"] >= 4
    assert "MD5" not in values["PASSWORD_HASHERS"]
    assert "django.middleware.csrf.CsrfViewMiddleware" in values["MIDDLEWARE"]
    assert "django.middleware.security.SecurityMiddleware" in values["MIDDLEWARE"]
    for directive in ("script-src", "style-src", "default-src"):
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(values["CSP"][directive]), directive
    assert values["CSP"]["frame-ancestors"] == ["'none'"]
    assert values["CSP"]["object-src"] == ["'none'"]


@pytest.mark.parametrize(
    ("weakened", "warning"),
    [
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"SECRET_KEY": "short"}, "security.W009"),
    ],
)
def test_it_is_caught_by_check_deploy_when_weakened(weakened: dict[str, str], warning: str):
    """The check above can fail: each weakened setting is reported."""
    result = check_deploy({**PRODUCTION_ENV, **weakened})
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_it_refuses_to_start_on_the_placeholder_key_of_env_example():
    """`cp .env.example .env` and forgetting the key would run production on a secret anyone can read."""
    placeholder = next(
        line.split("=", 1)[1]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    )
    result = run(["manage.py", "check"], {**PRODUCTION_ENV, "SECRET_KEY": placeholder})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert ".env.example" in result.stderr
    # Development may keep it: DEBUG on is not production.
    assert run(["manage.py", "check"], {**PRODUCTION_ENV, "SECRET_KEY": placeholder, "DEBUG": "1"}).returncode == 0
