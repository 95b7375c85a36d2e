"""Settings are read at import, so these tests start fresh interpreters with a chosen environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The production settings the README documents (docker compose sets these).
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-with-enough-entropy-1234567890",
    "ALLOWED_HOSTS": "callbook.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://callbook.example.com",
    "BEHIND_TLS_PROXY": "true",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "SECURE_SSL_REDIRECT"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_refuses_to_start_with_debug_off_on_the_default_secret_key():
    result = run_manage("check", env={"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_starts_in_debug_on_the_default_key():
    result = run_manage("check", env={"DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_reads_the_secret_key_from_a_file(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION_ENV["SECRET_KEY"] + "\n")
    env = {**PRODUCTION_ENV, "SECRET_KEY": "", "SECRET_KEY_FILE": str(secret)}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_names_an_unreadable_secret_file():
    result = run_manage("check", env={**PRODUCTION_ENV, "SECRET_KEY_FILE": "/nonexistent/secret"})
    assert result.returncode != 0
    assert "SECRET_KEY_FILE='/nonexistent/secret' cannot be read" in result.stderr


@pytest.mark.django_db
def test_it_passes_check_deploy_with_no_warning_for_the_documented_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_it_treats_a_blank_variable_as_unset_so_safe_defaults_hold():
    env = {**PRODUCTION_ENV, "SESSION_COOKIE_SECURE": "", "CSRF_COOKIE_SECURE": "", "SECURE_HSTS_SECONDS": ""}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
