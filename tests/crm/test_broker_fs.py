"""The embedded broker (crm/broker_fs.py): a message is in the folder whole or not at all, and an unreadable one
is skipped, not fatal to the worker."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "broker"
    path.mkdir()
    return path


@pytest.fixture
def channel(folder: Path) -> Iterator[Any]:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    with Connection("filesystem://", transport="crm.broker_fs:Transport", transport_options=options) as conn:
        yield conn.default_channel


def test_the_embedded_broker_uses_this_transport(settings: Any) -> None:
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert not getattr(settings, "CELERY_BROKER_TRANSPORT", None)  # Redis: its own transport, from the URL
        return
    assert settings.CELERY_BROKER_TRANSPORT == "crm.broker_fs:Transport"


def test_a_message_appears_whole(channel: Any, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen_before_rename: list[list[str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        # What a consumer listing the folder now would take: no message file of the queue yet.
        seen_before_rename.append([name for name in os.listdir(folder) if name.endswith(".jobs.msg")])
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    channel._put("jobs", {"body": "hello"})
    assert seen_before_rename == [[]]
    assert channel._get("jobs") == {"body": "hello"}
    assert os.listdir(folder) == []  # taken, and nothing staged left behind


def test_messages_are_taken_in_the_order_they_were_sent(channel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Uptime crossing a power of ten in milliseconds between two sends: the stamp gains a digit.
    stamps = iter([99_999.999, 100_000.0])
    monkeypatch.setattr("crm.broker_fs.monotonic", lambda: next(stamps))
    channel._put("jobs", {"body": "first"})
    channel._put("jobs", {"body": "second"})
    assert [channel._get("jobs")["body"], channel._get("jobs")["body"]] == ["first", "second"]


def test_an_empty_message_is_skipped_and_the_next_one_delivered(
    channel: Any, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What kombu's own transport left when its producer was killed between creating the file and writing it, in the
    # padded form this transport writes, stamped before the next message. The unique name keeps it clear of other
    # runs' files in the shared temp folder that kombu moves a message into while reading it.
    (folder / f"{0:015d}_{uuid.uuid4()}.jobs.msg").write_bytes(b"")
    channel._put("jobs", {"body": "after"})
    with caplog.at_level(logging.ERROR, logger="crm.broker_fs"), pytest.raises(Empty):
        channel._get("jobs")
    assert "unreadable message of queue jobs" in caplog.text
    assert channel._get("jobs") == {"body": "after"}
