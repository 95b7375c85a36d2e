"""The recordings storage's S3 configuration, in one place: settings use it, and so do the tests that run the
S3 code path against a local S3-compatible server, so what is tested is what is deployed."""

from __future__ import annotations

from typing import Any

# Reading a recording spools it to disk past this size; django-storages' default (0) keeps whole files in memory.
S3_MAX_MEMORY_SIZE = 1024 * 1024


def s3_recordings_storage(
    *,
    bucket: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    prefix: str = "",
    signed_url_ttl: int = 300,
) -> dict[str, Any]:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "location": prefix,
            "default_acl": None,
            # Recordings are private: the app streams them after a permission check or hands out a signed URL
            # that expires quickly.
            "querystring_auth": True,
            "querystring_expire": signed_url_ttl,
            "file_overwrite": False,
            # SigV4: buckets created since 2020 refuse the older signatures botocore picks for some regions.
            "signature_version": "s3v4",
            "max_memory_size": S3_MAX_MEMORY_SIZE,
        },
    }
