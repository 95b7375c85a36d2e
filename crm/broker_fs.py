"""The embedded broker: kombu's filesystem transport, with messages that appear in the folder whole.

kombu creates a message file and then writes into it, and a consumer takes any file it lists without waiting for
the writer's lock. A worker that looked at the folder in between took an empty file and stopped with
"Unrecoverable error: JSONDecodeError"; so did one that found the empty file of a producer killed mid-write. Here
a message is written under a name no consumer takes and renamed into place (atomic on one file system), and a
message that still cannot be decoded is logged and skipped instead of stopping the worker.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import suppress
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]  # as kombu-stubs types its own
        # kombu's own name, so that consumers match it as theirs, with the stamp zero-padded: consumers take names in
        # string order, and unpadded "100000000_" sorts before "99999999_", newest first whenever uptime in ms gains
        # a digit. The staged name matches no queue.
        name = f"{round(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        staged = os.path.join(self.data_folder_out, f".staged-{uuid.uuid4().hex}")
        try:
            with open(staged, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(staged, final)
        except OSError as exc:
            with suppress(OSError):
                os.remove(staged)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> dict[str, Any]:  # type: ignore[override]  # as kombu-stubs types its own
        try:
            return super()._get(queue)
        except json.JSONDecodeError as exc:
            # Written by a producer killed mid-write before this transport: there is nothing in it to deliver.
            logger.error("skipped an unreadable message of queue %s (empty or cut short): %s", queue, exc)
            raise Empty() from exc


class Transport(filesystem.Transport):
    Channel = Channel
