"""A real S3-compatible server for tests: moto's standalone server on 127.0.0.1, and a fresh bucket per test.

The recordings storage is then ``storages.backends.s3.S3Storage`` with the OPTIONS ``crm/settings.py`` builds
from RECORDINGS_S3_*, prefix included, so a test exercises the very code path production runs on S3.

Use from a test module (conftest.py does not import this, so the fixtures are opted into)::

    from tests.s3 import moto_server_fixture, s3_recordings_fixture  # noqa: F401

The functions are registered under the names ``moto_server`` and ``s3_recordings`` (``name=``), so that a test
asking for ``s3_recordings`` does not shadow an imported name (ruff's F811).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from crm.storage_config import s3_recordings_storage

REGION = "us-east-1"
# moto accepts any credentials; these only have to be present so that botocore signs its requests.
ACCESS_KEY = "callbook-test"
SECRET_KEY = "callbook-test-secret"
PREFIX = "callbook"
SIGNED_URL_TTL = 300
STARTUP_TIMEOUT_S = 30.0

# Proxy settings in the environment must never reroute requests meant for 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_open(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    """urllib's urlopen without any proxy, for the signed URLs the app hands out (http and https only)."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # the scheme is checked above
    return _DIRECT.open(request, timeout=timeout)


def s3_storage_options(*, bucket: str, endpoint_url: str, location: str = PREFIX) -> dict[str, Any]:
    """The OPTIONS of ``STORAGES["recordings"]``, built by the same function crm/settings.py uses."""
    options: dict[str, Any] = s3_recordings_storage(
        bucket=bucket,
        endpoint_url=endpoint_url,
        region=REGION,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        prefix=location,
        signed_url_ttl=SIGNED_URL_TTL,
    )["OPTIONS"]
    return options


def use_s3_recordings(settings: Any, *, bucket: str, endpoint_url: str) -> dict[str, Any]:
    """Point ``STORAGES["recordings"]`` (through pytest-django's ``settings``) at a bucket; answers the OPTIONS."""
    options = s3_storage_options(bucket=bucket, endpoint_url=endpoint_url)
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    return options


# --- The server --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str
    port: int
    log: Path


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(endpoint_url: str) -> bool:
    try:
        with http_open(f"{endpoint_url}/moto-api/", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_moto_server(log: Path, *, timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[MotoServer]:
    """Start ``moto_server`` on a free port of 127.0.0.1, wait until it answers, and stop it on exit."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        pytest.skip(f"needs moto's server ({executable} is missing: pip install 'moto[server]')")
    port = free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(executable), "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _answers(endpoint_url):
            if process.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {process.returncode}" if process.poll() is not None else "no answer"
                pytest.fail(f"moto_server did not start on port {port} ({state}):\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield MotoServer(endpoint_url=endpoint_url, port=port, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the whole test session (each test gets its own bucket on it)."""
    with running_moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log") as server:
        yield server


# --- A bucket per test -------------------------------------------------------------------------------------


def s3_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        # Room for put_many's threads: a full pool only logs a warning, but every such call reconnects.
        config=Config(max_pool_connections=32),
    )


@dataclass
class S3Recordings:
    """The test's bucket, seen from outside the app: keys are relative to the storage's prefix."""

    client: Any
    bucket: str
    endpoint_url: str
    prefix: str = PREFIX
    options: dict[str, Any] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The full object key of ``name`` (a key the app would use, e.g. ``sessions/<id>/recording.wav``)."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body)

    def put_many(self, objects: dict[str, bytes], *, threads: int = 16) -> None:
        """Upload many small objects concurrently (boto3 clients are thread-safe)."""
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda item: self.put(*item), objects.items()))

    def get(self, name: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        return body

    def head(self, name: str) -> dict[str, Any]:
        head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        return head

    def keys(self, under: str = "") -> list[str]:
        """Every object key under ``under`` (relative to the prefix), sorted."""
        start = self.key(under) if under else (f"{self.prefix}/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        found = [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start)
            for obj in page.get("Contents", ())
        ]
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(key[cut:] for key in found)


@pytest.fixture(name="s3_recordings")
def s3_recordings_fixture(settings: Any, moto_server: MotoServer) -> S3Recordings:
    """A fresh bucket on the moto server, and ``STORAGES["recordings"]`` pointed at it (prefix ``callbook``).

    Overrides the local folder the autouse ``_isolated_storage`` fixture sets up (autouse fixtures run first);
    changing STORAGES makes Django drop the storages it had already built.
    """
    bucket = f"callbook-test-{uuid.uuid4().hex[:16]}"
    client = s3_client(moto_server.endpoint_url)
    client.create_bucket(Bucket=bucket)
    options = use_s3_recordings(settings, bucket=bucket, endpoint_url=moto_server.endpoint_url)
    return S3Recordings(client=client, bucket=bucket, endpoint_url=moto_server.endpoint_url, options=options)
