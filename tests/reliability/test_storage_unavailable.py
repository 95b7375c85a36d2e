"""The recordings storage stops answering: pages and the API degrade with a message, ingest retries later.

Two storages, each broken under a running deployment and brought back:
- the local folder (``RECORDINGS_ROOT``): the folder is swapped for a file, so every access below it fails with
  an OSError (ENOTDIR), as a dead network or FUSE mount fails with EIO or ENOTCONN. (Not by permissions: the
  tests may run as root, whom permissions do not stop.) While it fails, the call page still renders and says
  the recording is temporarily unavailable, its audio and the API's stream answer 503 with a reason, an upload
  is refused with a 503 (stored nowhere), and an ingest fails as transient and is retried, not failed for good;
  when the folder returns, the retried ingest completes;
- S3 (moto's server, on a port of its own): the server is killed, and comes back (empty, as moto keeps nothing:
  the bucket and the object are put again, the store "returning with its data"); the ingest retried meanwhile
  completes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from pathlib import Path

import pytest

from calls.models import CallEvent, Recording
from tests.factories import CallSessionFactory, UserFactory, make_token
from tests.reliability.conftest import (
    Proc,
    Processes,
    Stack,
    fetch,
    free_port,
    publish_ingest,
    recording_status,
    session_cookie,
    tone_wav,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PROMPT = 10.0


class BrokenFolder:
    """Swap a folder for a file, and back: every path below it then fails with NotADirectoryError."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.aside = root.with_name(root.name + ".offline")

    def __enter__(self) -> BrokenFolder:
        self.root.rename(self.aside)
        self.root.write_text("the recordings volume is not answering\n")
        return self

    def restore(self) -> None:
        self.root.unlink()
        self.aside.rename(self.root)

    def __exit__(self, *exc: object) -> None:
        if self.aside.exists():
            self.restore()


def _wait_available(session_id: uuid.UUID, *, timeout: float = 120) -> Recording:
    return wait_until(
        lambda: Recording.objects.filter(session_id=session_id, status=Recording.Status.AVAILABLE).first(),
        timeout=timeout,
        what=f"the recording of {session_id} to be ingested (now {recording_status(session_id)!r})",
        interval=0.3,
    )


def _retried(worker_log: str, task_id: str) -> bool:
    return f"ingest_session[{task_id}] retry: Retry in" in worker_log


def test_it_degrades_while_the_recordings_folder_fails_and_ingests_when_it_returns(stack: Stack, recordings_root: Path):
    agent = UserFactory.create(username="storage-agent")
    _, key = make_token(agent)
    cookie = session_cookie(agent)
    stack.start_web()
    worker = stack.start_worker()
    played = CallSessionFactory.create(owner=agent)
    assert (
        fetch(
            stack.port,
            "PUT",
            f"/api/crm/sessions/{played.pk}/recording",
            token=key,
            body=tone_wav(),
            content_type="audio/wav",
        ).status
        == 201
    )
    _wait_available(played.pk)
    # A recording that arrives while no worker runs: its ingest will run while the storage fails.
    stack.processes.kill(worker)
    waiting = CallSessionFactory.create(owner=agent)
    waiting_audio = tone_wav(frequency=900)
    assert (
        fetch(
            stack.port,
            "PUT",
            f"/api/crm/sessions/{waiting.pk}/recording",
            token=key,
            body=waiting_audio,
            content_type="audio/wav",
        ).status
        == 201
    )
    refused = CallSessionFactory.create(owner=agent)

    with BrokenFolder(recordings_root) as broken:
        worker = stack.start_worker()
        wait_until(
            lambda: "retry: Retry in" in worker.tail(200_000),
            timeout=60,
            what="the ingest to fail as transient and be retried",
        )
        # Transient, not failed: the claim was given back (a retry may already be at it again).
        assert Recording.objects.get(session=waiting).status in {"pending", "processing"}
        assert not CallEvent.objects.filter(session=waiting, type="recording_failed").exists()

        answers = {
            "page": fetch(stack.port, "GET", f"/calls/{played.pk}/", cookie=cookie),
            "audio": fetch(stack.port, "GET", f"/calls/{played.pk}/audio", cookie=cookie),
            "list": fetch(stack.port, "GET", "/calls/", cookie=cookie),
            "api-detail": fetch(stack.port, "GET", f"/api/crm/sessions/{played.pk}", token=key),
            "api-stream": fetch(stack.port, "GET", f"/api/crm/sessions/{played.pk}/recording", token=key),
            "api-upload": fetch(
                stack.port,
                "PUT",
                f"/api/crm/sessions/{refused.pk}/recording",
                token=key,
                body=tone_wav(frequency=1200),
                content_type="audio/wav",
            ),
            "readyz": fetch(stack.port, "GET", "/readyz"),
        }
        statuses = {name: answer.status for name, answer in answers.items()}
        assert statuses == {
            "page": 200,
            "audio": 503,
            "list": 200,
            "api-detail": 200,
            "api-stream": 503,
            "api-upload": 503,
            "readyz": 503,
        }, {name: answer.text[:300] for name, answer in answers.items()}
        assert max(answer.elapsed for answer in answers.values()) < PROMPT
        assert "The recording is temporarily unavailable" in answers["page"].text
        assert "Recordings are unavailable right now" in answers["audio"].text
        assert answers["api-stream"].json()["code"] == "storage_unavailable"
        assert answers["api-stream"].headers["retry-after"] == "60"
        assert answers["api-upload"].json()["code"] == "storage_unavailable"
        assert answers["readyz"].json()["failed"] == ["recordings_storage"]
        for name in ("page", "audio", "api-stream", "api-upload"):
            assert "Traceback" not in answers[name].text
        broken.restore()

    recording = _wait_available(waiting.pk)
    assert recording.sha256 == hashlib.sha256(waiting_audio).hexdigest()
    assert recording.attempts >= 2  # at least one attempt while the storage failed, and the one that succeeded
    assert not CallEvent.objects.filter(session=waiting, type="recording_failed").exists()
    assert not Recording.objects.filter(session=refused).exists()
    assert not (recordings_root / "sessions" / str(refused.pk)).exists()
    # And the page plays again.
    page = fetch(stack.port, "GET", f"/calls/{played.pk}/", cookie=cookie)
    assert page.status == 200
    assert "temporarily unavailable" not in page.text
    assert fetch(stack.port, "GET", f"/api/crm/sessions/{played.pk}/recording", token=key).status == 200


class Moto:
    """moto's S3 server on a fixed port, so that it can be killed and started again at the same address."""

    BUCKET = "callbook-reliability"

    def __init__(self, processes: Processes) -> None:
        self.executable = Path(sys.executable).with_name("moto_server")
        if not self.executable.exists():
            pytest.skip(f"needs moto's server ({self.executable} is missing: pip install 'moto[server]')")
        self.processes = processes
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.proc: Proc | None = None

    def start(self) -> None:
        from tests.s3 import _answers

        command = [str(self.executable), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = self.processes.start("moto", command, env=dict(os.environ))
        wait_until(lambda: _answers(self.endpoint_url), timeout=30, what="moto_server to answer")

    def kill(self) -> None:
        assert self.proc is not None
        self.processes.kill(self.proc)

    def put(self, key: str, body: bytes) -> None:
        from tests.s3 import PREFIX, s3_client

        client = s3_client(self.endpoint_url)
        buckets = {b["Name"] for b in client.list_buckets()["Buckets"]}
        if self.BUCKET not in buckets:
            client.create_bucket(Bucket=self.BUCKET)
        client.put_object(Bucket=self.BUCKET, Key=f"{PREFIX}/{key}", Body=body)


def test_it_retries_an_ingest_while_s3_is_unreachable_and_completes_it_when_s3_returns(
    stack: Stack, processes: Processes
):
    from tests.s3 import ACCESS_KEY, PREFIX, REGION, SECRET_KEY

    moto = Moto(processes)
    moto.start()
    stack.env |= {
        "RECORDINGS_S3_BUCKET": Moto.BUCKET,
        "RECORDINGS_S3_ENDPOINT_URL": moto.endpoint_url,
        "RECORDINGS_S3_REGION": REGION,
        "RECORDINGS_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "RECORDINGS_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "RECORDINGS_S3_PREFIX": PREFIX,
    }
    session = CallSessionFactory.create(owner=UserFactory.create())
    key = f"sessions/{session.pk}/recording.wav"
    audio = tone_wav(frequency=650)
    moto.put(key, audio)
    Recording.objects.create(session=session, file=key, status=Recording.Status.PENDING)
    worker = stack.start_worker()

    moto.kill()
    task_id = publish_ingest(session.pk, queue=stack.queue)
    wait_until(
        lambda: _retried(worker.tail(200_000), task_id), timeout=60, what="the ingest to be retried as transient"
    )
    assert Recording.objects.get(session=session).status in {"pending", "processing"}
    assert not CallEvent.objects.filter(session=session, type="recording_failed").exists()
    moto.start()
    moto.put(key, audio)

    recording = _wait_available(session.pk)
    assert recording.sha256 == hashlib.sha256(audio).hexdigest()
    assert recording.attempts >= 2
    assert not CallEvent.objects.filter(session=session, type="recording_failed").exists()
