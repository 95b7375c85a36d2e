"""The recordings storage and its folder contract: ``sessions/<session_id>/`` holds one audio file, optionally a
transcript (.txt, .json, .vtt, .srt) and optionally ``meta.json``.

Keys are only ever built from a parsed ``uuid.UUID`` and a fixed file name, never from raw URL text.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import Storage, storages

SESSIONS_PREFIX = "sessions"
AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".flac", ".webm", ".m4a")
TRANSCRIPT_EXTENSIONS = (".json", ".vtt", ".srt", ".txt")
META_FILE = "meta.json"
META_MAX_BYTES = 64 * 1024


def recordings_storage() -> Storage:
    return storages["recordings"]


def session_folder(session_id: uuid.UUID) -> str:
    return f"{SESSIONS_PREFIX}/{session_id}"


def session_key(session_id: uuid.UUID, filename: str) -> str:
    name = posixpath.basename(filename)
    if not name or name in {".", ".."} or name != filename:
        raise ValueError(f"not a plain file name: {filename!r}")
    return f"{session_folder(session_id)}/{name}"


@dataclass
class SessionFolder:
    session_id: uuid.UUID
    audio: str | None = None
    transcript: str | None = None
    meta: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _pick(files: list[str], extensions: tuple[str, ...], preferred_stem: str) -> str | None:
    candidates = [f for f in files if f.lower().endswith(extensions) and f != META_FILE]
    if not candidates:
        return None
    # Prefer the conventional name (recording.wav, transcript.txt), then the extension order, then the name.
    return sorted(
        candidates,
        key=lambda f: (
            not f.lower().startswith(preferred_stem),
            extensions.index(next(e for e in extensions if f.lower().endswith(e))),
            f,
        ),
    )[0]


def inspect_session_folder(
    *, session_id: uuid.UUID, storage: Storage | None = None, read_meta: bool = True
) -> SessionFolder | None:
    """What ``sessions/<id>/`` holds, or None when there is no such folder. ``read_meta=False`` leaves ``meta``
    unread (None) for callers that only need the files: reading it is two more storage calls (a request each on
    S3)."""
    storage = storage or recordings_storage()
    folder = session_folder(session_id)
    try:
        _, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not files:
        return None
    result = SessionFolder(session_id=session_id, files=sorted(files))
    audio = _pick(files, AUDIO_EXTENSIONS, "recording")
    transcript = _pick(files, TRANSCRIPT_EXTENSIONS, "transcript")
    result.audio = f"{folder}/{audio}" if audio else None
    result.transcript = f"{folder}/{transcript}" if transcript else None
    if read_meta and META_FILE in files:
        result.meta = _read_meta(storage=storage, key=f"{folder}/{META_FILE}", problems=result.problems)
    return result


def _read_meta(*, storage: Storage, key: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        if storage.size(key) > META_MAX_BYTES:
            problems.append(f"meta.json is larger than {META_MAX_BYTES // 1024} KiB; ignored.")
            return None
        with storage.open(key, "rb") as handle:
            raw = handle.read(META_MAX_BYTES + 1)
        value = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        problems.append("meta.json is not UTF-8; ignored.")
        return None
    except json.JSONDecodeError as exc:
        problems.append(f"meta.json is not valid JSON ({exc.msg} at line {exc.lineno}); ignored.")
        return None
    except RecursionError:
        problems.append("meta.json is nested too deeply to read; ignored.")
        return None
    if not isinstance(value, dict):
        problems.append("meta.json must hold a JSON object; ignored.")
        return None
    return value
