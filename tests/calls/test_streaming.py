"""storage_file_response: whole files, byte ranges (RFC 9110), HEAD, missing files, and S3's signed URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import RequestFactory

from calls.streaming import CHUNK_SIZE, RecordingFileMissing, storage_file_response

SIZE = 200 * 1024
NAME = "calls/recording.mp3"
CACHE_CONTROL = "private, max-age=0, must-revalidate"

# Closing a response sends request_finished, whose handler checks the database connection.
pytestmark = pytest.mark.django_db


class RecordingStorage(FileSystemStorage):
    """Remembers every file it opens, so tests can check that each one gets closed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.opened: list[File[Any]] = []

    def open(self, name: str, mode: str = "rb") -> File[Any]:
        file = super().open(name, mode)
        self.opened.append(file)
        return file


@pytest.fixture
def storage(tmp_path: Path) -> RecordingStorage:
    return RecordingStorage(location=tmp_path / "store")


@pytest.fixture
def data(storage: RecordingStorage) -> bytes:
    content = os.urandom(SIZE)
    path = Path(storage.path(NAME))
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return content


def serve(storage: Any, method: str = "GET", name: str = NAME, **kwargs: Any) -> HttpResponseBase:
    """Calls storage_file_response; request headers go in as ``headers={...}``, the rest as its arguments."""
    headers = kwargs.pop("headers", {})
    request = RequestFactory().generic(method, "/recording", headers=headers)
    arguments = {"content_type": "audio/mpeg", **kwargs}
    return storage_file_response(request=request, storage=storage, name=name, **arguments)


def chunks(response: HttpResponseBase) -> Iterator[bytes]:
    assert isinstance(response, StreamingHttpResponse)
    content = response.streaming_content
    assert isinstance(content, Iterator)
    return content


def body(response: HttpResponseBase) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        content = b"".join(chunks(response))
        response.close()
        return content
    assert isinstance(response, HttpResponse)
    return response.content


def assert_partial(response: HttpResponseBase, data: bytes, start: int, end: int) -> None:
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert body(response) == data[start : end + 1]


def assert_whole(response: HttpResponseBase, data: bytes) -> None:
    assert response.status_code == 200
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(len(data))
    assert body(response) == data


# --- whole file ----------------------------------------------------------------------------------------------


def test_it_serves_the_whole_file_with_its_headers(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, filename="call 42.mp3", etag="v1")

    assert isinstance(response, StreamingHttpResponse)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert response.headers["Content-Disposition"] == 'inline; filename="call 42.mp3"'
    assert response.headers["Cache-Control"] == CACHE_CONTROL
    assert response.headers["ETag"] == '"v1"'
    assert "Content-Range" not in response.headers
    assert body(response) == data


def test_it_streams_in_chunks_of_64_kib(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage)

    pieces = list(chunks(response))
    assert [len(piece) for piece in pieces] == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, SIZE - 3 * CHUNK_SIZE]
    assert b"".join(pieces) == data


def test_it_leaves_out_the_optional_headers_when_not_given(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage)

    assert "Content-Disposition" not in response.headers
    assert "ETag" not in response.headers
    assert_whole(response, data)


def test_it_encodes_a_file_name_that_is_not_ascii(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, filename='Zoë "VIP".mp3')

    assert response.headers["Content-Disposition"] == "inline; filename*=utf-8''Zo%C3%AB%20%22VIP%22.mp3"
    assert_whole(response, data)


def test_it_keeps_an_etag_that_is_already_quoted(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, etag='"abc"')

    assert response.headers["ETag"] == '"abc"'
    assert_whole(response, data)


# --- ranges --------------------------------------------------------------------------------------------------


def test_it_serves_a_closed_range(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": "bytes=0-99"}), data, 0, 99)


def test_it_serves_an_open_ended_range(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": "bytes=1000-"}), data, 1000, SIZE - 1)


def test_it_serves_a_suffix_range(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": "bytes=-500"}), data, SIZE - 500, SIZE - 1)


def test_it_serves_the_whole_file_as_206_for_a_suffix_longer_than_the_file(
    storage: RecordingStorage, data: bytes
) -> None:
    assert_partial(serve(storage, headers={"range": f"bytes=-{SIZE * 10}"}), data, 0, SIZE - 1)


def test_it_clamps_a_range_that_ends_past_the_end(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": f"bytes={SIZE - 10}-{SIZE * 2}"}), data, SIZE - 10, SIZE - 1)


def test_it_serves_the_last_byte(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": f"bytes={SIZE - 1}-{SIZE - 1}"}), data, SIZE - 1, SIZE - 1)


def test_it_serves_a_range_spanning_several_chunks(storage: RecordingStorage, data: bytes) -> None:
    start, end = 100, CHUNK_SIZE * 2 + 5
    response = serve(storage, headers={"range": f"bytes={start}-{end}"})

    pieces = list(chunks(response))
    assert [len(piece) for piece in pieces] == [CHUNK_SIZE, end + 1 - start - CHUNK_SIZE]
    assert b"".join(pieces) == data[start : end + 1]


def test_it_accepts_the_unit_in_any_case_and_spaces_around_the_ranges(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": "Bytes= 10-19 "}), data, 10, 19)


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 1000}-{SIZE + 2000}", "bytes=-0"])
def test_it_answers_416_for_a_range_the_file_cannot_satisfy(
    storage: RecordingStorage, data: bytes, header: str
) -> None:
    response = serve(storage, headers={"range": header})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert body(response) == b""
    assert storage.opened == []


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=5-2",  # RFC 9110: an int-range whose last-pos is below its first-pos is invalid, not unsatisfiable
        "bytes=-",
        "bytes=",
        "bytes=1-2-3",
        "bytes=0x10-",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are digits to Python's int(), not to HTTP
        "bytes 0-99",
        "items=0-99",
        "bytes=0-99,abc",  # one invalid range makes the whole header invalid
    ],
)
def test_it_ignores_a_malformed_range_header(storage: RecordingStorage, data: bytes, header: str) -> None:
    assert_whole(serve(storage, headers={"range": header}), data)


def test_it_serves_the_whole_file_for_several_satisfiable_ranges(storage: RecordingStorage, data: bytes) -> None:
    assert_whole(serve(storage, headers={"range": "bytes=0-1,5-6"}), data)


def test_it_serves_the_only_satisfiable_one_of_several_ranges(storage: RecordingStorage, data: bytes) -> None:
    assert_partial(serve(storage, headers={"range": f"bytes={SIZE + 5}-,10-19,,"}), data, 10, 19)


def test_it_answers_416_when_none_of_several_ranges_is_satisfiable(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, headers={"range": f"bytes={SIZE}-,{SIZE + 10}-{SIZE + 20},-0"})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"


def test_it_ignores_range_on_methods_other_than_get_and_head(storage: RecordingStorage, data: bytes) -> None:
    assert_whole(serve(storage, "POST", headers={"range": "bytes=0-99"}), data)


# --- If-Range ------------------------------------------------------------------------------------------------


def test_it_honours_range_when_if_range_matches_the_etag(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, etag="v1", headers={"range": "bytes=0-99", "if-range": '"v1"'})

    assert response.headers["ETag"] == '"v1"'
    assert_partial(response, data, 0, 99)


@pytest.mark.parametrize(
    ("etag", "if_range"),
    [
        ("v1", '"v2"'),
        ("v1", 'W/"v1"'),  # If-Range needs a strong match
        ('W/"v1"', 'W/"v1"'),
        ("v1", "v1"),  # an unquoted value is no entity-tag
        ("v1", "Wed, 21 Oct 2015 07:28:00 GMT"),  # no Last-Modified is sent, so no date can match
        (None, '"v1"'),
    ],
)
def test_it_ignores_range_when_if_range_does_not_match(
    storage: RecordingStorage, data: bytes, etag: str | None, if_range: str
) -> None:
    response = serve(storage, etag=etag, headers={"range": "bytes=0-99", "if-range": if_range})

    assert_whole(response, data)


def test_it_ignores_if_range_that_does_not_match_even_for_an_unsatisfiable_range(
    storage: RecordingStorage, data: bytes
) -> None:
    response = serve(storage, etag="v1", headers={"range": f"bytes={SIZE}-", "if-range": '"v0"'})

    assert_whole(response, data)


# --- HEAD ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"range": "bytes=1000-1999"}, {"range": f"bytes={SIZE}-"}])
def test_it_answers_head_with_the_headers_of_get_and_no_body(
    storage: RecordingStorage, data: bytes, headers: dict[str, str]
) -> None:
    get = serve(storage, "GET", filename="a.mp3", etag="v1", headers=headers)
    get_body = body(get)
    storage.opened.clear()

    head = serve(storage, "HEAD", filename="a.mp3", etag="v1", headers=headers)

    assert head.status_code == get.status_code
    assert dict(head.headers) == dict(get.headers)
    assert body(head) == b""
    assert len(get_body) == int(get.headers["Content-Length"])
    assert storage.opened == []


# --- empty and missing files ---------------------------------------------------------------------------------


@pytest.fixture
def empty(storage: RecordingStorage) -> str:
    storage.save("empty.mp3", ContentFile(b""))
    assert storage.size("empty.mp3") == 0
    return "empty.mp3"


def test_it_serves_an_empty_file_with_200(storage: RecordingStorage, empty: str) -> None:
    response = serve(storage, name=empty)

    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert "Content-Range" not in response.headers
    assert body(response) == b""
    assert all(file.closed for file in storage.opened)


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-0"])
def test_it_answers_416_for_a_range_on_an_empty_file(storage: RecordingStorage, empty: str, header: str) -> None:
    response = serve(storage, name=empty, headers={"range": header})

    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */0"


def test_it_serves_an_empty_file_whole_for_a_suffix_range(storage: RecordingStorage, empty: str) -> None:
    # RFC 9110 counts "-n" as satisfiable even on an empty file, but 206 cannot describe zero bytes.
    response = serve(storage, name=empty, headers={"range": "bytes=-500"})

    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert "Content-Range" not in response.headers
    assert body(response) == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_it_raises_recording_file_missing_for_a_missing_file(storage: RecordingStorage, method: str) -> None:
    with pytest.raises(RecordingFileMissing) as excinfo:
        serve(storage, method, name="calls/gone.mp3", headers={"range": "bytes=0-99"})

    assert excinfo.value.name == "calls/gone.mp3"
    assert storage.opened == []


# --- closing the file ----------------------------------------------------------------------------------------


def test_it_closes_the_file_once_the_body_is_read_to_the_end(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage, headers={"range": "bytes=10-"})
    assert len(storage.opened) == 1
    assert not storage.opened[0].closed

    content = b"".join(chunks(response))

    assert content == data[10:]
    assert storage.opened[0].closed


def test_it_closes_the_file_when_the_response_is_closed_half_read(storage: RecordingStorage, data: bytes) -> None:
    response = serve(storage)
    assert next(chunks(response)) == data[:CHUNK_SIZE]
    assert not storage.opened[0].closed

    response.close()

    assert storage.opened[0].closed


def test_it_closes_the_file_when_the_response_is_closed_unread(storage: RecordingStorage, data: bytes) -> None:
    # The client can go away before the first chunk; a generator that never started would not run its cleanup.
    response = serve(storage, headers={"range": "bytes=0-99"})

    response.close()

    assert len(storage.opened) == 1
    assert storage.opened[0].closed


# --- S3 ------------------------------------------------------------------------------------------------------


def test_it_redirects_s3_storages_to_a_signed_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from storages.backends.s3 import S3Storage

    # url() signs locally with botocore: no network. Without signature_version botocore still signs
    # us-east-1 and custom endpoints with the legacy SigV2 (AWSAccessKeyId/Signature/Expires).
    storage = S3Storage(
        bucket_name="b",
        access_key="x",
        secret_key="y",
        region_name="us-east-1",
        querystring_auth=True,
        querystring_expire=300,
        signature_version="s3v4",
    )

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the S3 path must neither open nor measure the file")

    monkeypatch.setattr(storage, "open", no_network)
    monkeypatch.setattr(storage, "size", no_network)

    response = serve(storage, name=NAME, filename="call 42.mp3", headers={"range": "bytes=0-99"})

    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "private, no-store"
    location = urlsplit(response.headers["Location"])
    assert location.scheme == "https"
    assert location.path.endswith(f"/{NAME}")
    query = parse_qs(location.query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Signature"][0]
    assert query["response-content-type"] == ["audio/mpeg"]
    assert query["response-content-disposition"] == ['inline; filename="call 42.mp3"']
    assert query["response-cache-control"] == [CACHE_CONTROL]
    assert body(response) == b""
