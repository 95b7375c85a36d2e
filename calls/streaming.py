"""Serve a file from a Django storage so that an HTML5 ``<audio>`` element can play and seek it.

Browsers seek in media by sending ``Range`` requests; a response without range support makes the player
download everything before it can jump, or refuse to seek at all. ``storage_file_response`` answers those
requests (RFC 9110, section 14) for storages whose files live on this machine, and hands S3 storages off to
a short-lived signed URL, because S3 answers ranges itself and proxying the bytes would only tie up a worker.

The caller does the permission check first; this module only deals with bytes and headers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Final

from django.core.files import File
from django.core.files.storage import Storage
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header, quote_etag

__all__ = ["CACHE_CONTROL", "CHUNK_SIZE", "RecordingFileMissing", "storage_file_response"]

CHUNK_SIZE: Final = 64 * 1024

# Access to recordings is permission-checked per user, so no shared cache (proxy, CDN) may keep a copy, and
# the browser has to ask again (cheaply, with the ETag) before reusing its own.
CACHE_CONTROL: Final = "private, max-age=0, must-revalidate"

# A signed URL is a bearer credential that stops working within minutes: a redirect to it must not be reused.
_REDIRECT_CACHE_CONTROL: Final = "private, no-store"

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


class RecordingFileMissing(Exception):
    """The storage has no file under this name (the row exists but the bytes are gone)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no file {name!r} in the storage")
        self.name = name


@dataclass(frozen=True)
class _ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class _Unsatisfiable:
    """Marker for a valid Range header none of whose ranges overlaps the file: the answer is 416."""


_UNSATISFIABLE: Final = _Unsatisfiable()


def storage_file_response(
    *,
    request: HttpRequest,
    storage: Storage,
    name: str,
    content_type: str,
    filename: str | None = None,
    etag: str | None = None,
) -> HttpResponseBase:
    """Answer ``request`` with the file ``name`` of ``storage``, honouring ``Range`` and ``If-Range``.

    - S3 storages: a 302 to a signed URL that expires after the storage's ``querystring_expire``. The file's
      existence is not checked, since that would cost a round trip to S3 on every play; S3 answers 404 itself.
    - Other storages: 200 with the whole file, 206 with one range, or 416 for a range the file cannot satisfy.
      The bytes are streamed in ``CHUNK_SIZE`` pieces and the file is closed when the response is closed.

    ``etag`` (quoted or not) is sent as a strong ETag and is what ``If-Range`` is compared with; without it, a
    request carrying ``If-Range`` gets the whole file, since nothing can prove that its partial copy is current.

    Raises ``RecordingFileMissing`` when the storage has no such file, so that the view can explain the 404.
    """
    if _is_s3(storage):
        return _signed_url_redirect(storage, name=name, content_type=content_type, filename=filename)

    quoted_etag = quote_etag(etag) if etag is not None else None
    size = _size(storage, name)
    byte_range = _requested_range(request, size=size, etag=quoted_etag)
    if isinstance(byte_range, _Unsatisfiable):
        return _range_not_satisfiable(size)

    status = 206 if byte_range is not None else 200
    served = byte_range if byte_range is not None else _ByteRange(0, size - 1)
    response: HttpResponseBase
    if request.method == "HEAD":
        # Not opening the file saves a file handle that nobody would read from.
        response = HttpResponse(status=status, content_type=content_type)
    else:
        file = _open(storage, name)
        try:
            chunks = _FileRangeIterator(file, start=served.start, length=served.length)
        except BaseException:
            file.close()
            raise
        response = StreamingHttpResponse(chunks, status=status, content_type=content_type)

    # Set explicitly, also for HEAD, whose empty body CommonMiddleware would otherwise measure.
    response.headers["Content-Length"] = str(served.length)
    if byte_range is not None:
        response.headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = CACHE_CONTROL
    if filename:
        response.headers["Content-Disposition"] = _inline_disposition(filename)
    if quoted_etag is not None:
        response.headers["ETag"] = quoted_etag
    return response


class _FileRangeIterator:
    """Yields ``length`` bytes of ``file`` from ``start`` on, in ``CHUNK_SIZE`` pieces.

    A class rather than a generator: StreamingHttpResponse calls ``close()`` when the response is closed, and
    closing a generator that never started (the client went away before the first chunk) would skip its
    ``finally`` and leak the file handle.
    """

    def __init__(self, file: File[Any], *, start: int, length: int) -> None:
        self._file = file
        self._remaining = length
        if start:
            file.seek(start)

    def __iter__(self) -> _FileRangeIterator:
        return self

    def __next__(self) -> bytes:
        if self._remaining <= 0:
            self.close()
            raise StopIteration
        chunk: bytes = self._file.read(min(CHUNK_SIZE, self._remaining))
        if not chunk:
            # The file shrank since its size was taken; the client sees a short body and retries.
            self.close()
            raise StopIteration
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self._file.close()


def _open(storage: Storage, name: str) -> File[Any]:
    try:
        return storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise RecordingFileMissing(name) from exc


def _size(storage: Storage, name: str) -> int:
    try:
        return storage.size(name)
    except FileNotFoundError as exc:
        raise RecordingFileMissing(name) from exc


def _requested_range(request: HttpRequest, *, size: int, etag: str | None) -> _ByteRange | _Unsatisfiable | None:
    """The one range to serve, ``_UNSATISFIABLE`` for a 416, or None to serve the whole file."""
    ranges = _applicable_ranges(request, etag=etag)
    if ranges is None:
        return None
    satisfiable: list[_ByteRange] = []
    for first, last in ranges:
        if first is not None:
            if first < size:
                satisfiable.append(_ByteRange(first, size - 1 if last is None else min(last, size - 1)))
        elif last:
            # Suffix range "-n", the last n bytes ("-0" asks for nothing, so it is never satisfiable).
            if size == 0:
                # Satisfiable per RFC 9110 ("the entire representation is used"), but an empty range has no
                # Content-Range notation, so the whole (empty) file goes out as a 200.
                return None
            satisfiable.append(_ByteRange(max(size - last, 0), size - 1))
    if not satisfiable:
        return _UNSATISFIABLE
    if len(satisfiable) > 1:
        # Several ranges would need a multipart/byteranges body. Browsers never ask for several ranges of
        # media, and RFC 9110 lets a server ignore Range, so such a client simply gets the whole file.
        return None
    return satisfiable[0]


def _applicable_ranges(request: HttpRequest, *, etag: str | None) -> list[tuple[int | None, int | None]] | None:
    """The ranges of the request's Range header, or None when the header is absent or has to be ignored."""
    header = request.headers.get("Range")
    # RFC 9110 defines ranges for GET only; HEAD has to answer with the headers GET would get.
    if header is None or request.method not in ("GET", "HEAD"):
        return None
    # An unknown unit or broken syntax is ignored rather than refused: the client still gets the file.
    ranges = _parse_range_header(header)
    if_range = request.headers.get("If-Range")
    if ranges is not None and if_range is not None and not _if_range_holds(if_range, etag):
        # The client's partial copy is of another version: splicing our bytes into it would corrupt it.
        return None
    return ranges


def _parse_range_header(header: str) -> list[tuple[int | None, int | None]] | None:
    """``(first, last)`` pairs of a ``bytes=`` header (``first`` None for a suffix range); None if invalid."""
    unit, sep, range_set = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int | None, int | None]] = []
    # Empty list elements ("0-1,,5-6") are legal list syntax (RFC 9110, section 5.6.1).
    for spec in filter(None, (part.strip() for part in range_set.split(","))):
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return None
        first = int(match[1]) if match[1] else None
        last = int(match[2]) if match[2] else None
        if first is None and last is None:
            return None
        if first is not None and last is not None and last < first:
            return None
        ranges.append((first, last))
    return ranges or None


def _if_range_holds(if_range: str, etag: str | None) -> bool:
    # If-Range needs a strong match (RFC 9110, section 13.1.5): a weak ETag never matches. A date never
    # matches either, since no Last-Modified is sent that it could be equal to.
    return etag is not None and not etag.startswith("W/") and if_range.strip() == etag


def _range_not_satisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416, content_type="text/plain; charset=utf-8")
    response.headers["Content-Range"] = f"bytes */{size}"
    response.headers["Content-Length"] = "0"
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _inline_disposition(filename: str) -> str:
    # Quotes the name, or switches to RFC 5987's filename* for names that are not plain ASCII.
    disposition = content_disposition_header(as_attachment=False, filename=filename)
    return disposition or "inline"


def _is_s3(storage: Storage) -> bool:
    # An S3Storage instance can only exist once its module is imported, so looking in sys.modules avoids
    # importing boto3 (slow, and optional) just to find out that the storage is something else.
    s3 = sys.modules.get("storages.backends.s3")
    return s3 is not None and isinstance(storage, s3.S3Storage)


def _signed_url_redirect(storage: Storage, *, name: str, content_type: str, filename: str | None) -> HttpResponse:
    # S3 answers with the headers named in these parameters, so the browser sees the same type and file name
    # as it would from this server.
    parameters = {"ResponseContentType": content_type, "ResponseCacheControl": CACHE_CONTROL}
    if filename:
        parameters["ResponseContentDisposition"] = _inline_disposition(filename)
    s3_storage: Any = storage  # django-stubs only knows Storage.url(name), not S3Storage's extra arguments
    url: str = s3_storage.url(name, parameters=parameters)
    response = HttpResponseRedirect(url)
    response.headers["Cache-Control"] = _REDIRECT_CACHE_CONTROL
    return response
