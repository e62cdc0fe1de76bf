"""The upload bucket: presigned PUTs for clients, and reading and deleting the objects they uploaded.

Object keys are ``<org_id>/<document_id>``: the tenant's prefix, so a grant or a listing can be scoped to
one organisation, and the S3 event alone says which document a file belongs to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import get_settings
from .errors import PayloadTooLarge, ServiceUnavailable, StoredObjectMissing

_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


def object_key(org_id: uuid.UUID, document_id: uuid.UUID) -> str:
    """The key of a document's file: under its organisation's prefix."""
    return f"{org_id}/{document_id}"


def parse_object_key(key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(org_id, document_id) of a key made by ``object_key``; None for any other key."""
    parts = key.split("/")
    if len(parts) != 2:
        return None
    try:
        org_id, document_id = uuid.UUID(parts[0]), uuid.UUID(parts[1])
    except ValueError:
        return None
    # Only the canonical spelling: a key that merely parses (upper case, braces) was not made here.
    return (org_id, document_id) if object_key(org_id, document_id) == key else None


@dataclass(frozen=True)
class PresignedPut:
    url: str
    headers: dict[str, str]


class ObjectStore(Protocol):
    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedPut: ...

    def size_of(self, key: str, version_id: str | None = None) -> int | None: ...

    def read(self, key: str, max_bytes: int, version_id: str | None = None) -> bytes: ...

    def delete(self, key: str) -> None: ...


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error") or {}
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(error.get("Code")) in _MISSING_CODES or status == 404


def _s3_client(region: str, endpoint_url: str | None):
    """An S3 client signing with SigV4, which is what binds the signed headers (type, length) into a
    presigned URL.

    In AWS, presigned URLs name the bucket's region (bucket.s3.<region>.amazonaws.com): the global name
    answers a new bucket outside us-east-1 with a 307 redirect, which a browser's CORS preflight cannot
    follow. A local endpoint (moto, LocalStack; also set as AWS_ENDPOINT_URL_S3) keeps path-style URLs.
    """

    def make(addressing_style: str):
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)

    client = make("path")
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    return make("virtual") if host.endswith(".amazonaws.com") else client


class S3ObjectStore:
    """ObjectStore over one S3 bucket (UPLOAD_BUCKET; the endpoint of AWS_ENDPOINT_URL or
    AWS_ENDPOINT_URL_S3 locally)."""

    def __init__(self, bucket: str, client=None):
        if not bucket:
            raise RuntimeError("UPLOAD_BUCKET is not configured")
        self.bucket = bucket
        settings = get_settings()
        self._client = client or _s3_client(settings.aws_region, settings.aws_endpoint_url)

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> PresignedPut:
        """A PUT URL bound to this key, content type and exact length (all three are signed: S3 refuses
        a request whose Content-Type or Content-Length differ, with SignatureDoesNotMatch)."""
        url = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        # Content-Length is sent by every HTTP client on its own (browsers forbid setting it).
        return PresignedPut(url=url, headers={"Content-Type": content_type})

    def size_of(self, key: str, version_id: str | None = None) -> int | None:
        """The object's length in bytes, or None when there is no such object."""
        params = {"Bucket": self.bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        try:
            return int(self._client.head_object(**params)["ContentLength"])
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def read(self, key: str, max_bytes: int, version_id: str | None = None) -> bytes:
        """The object's bytes; PayloadTooLarge before reading any when it is longer than ``max_bytes``,
        StoredObjectMissing when it is not there."""
        params = {"Bucket": self.bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        try:
            response = self._client.get_object(**params)
        except ClientError as exc:
            if _missing(exc):
                raise StoredObjectMissing(f"no object {key}") from exc
            raise
        body = response["Body"]
        try:
            length = int(response["ContentLength"])
            if length > max_bytes:
                raise PayloadTooLarge(f"the file is {length} bytes; the limit is {max_bytes}")
            # Never more than the limit, whatever the header said.
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"the file is over {max_bytes} bytes, the limit")
        return data

    def delete(self, key: str) -> None:
        """Delete the object, every version of it included (the bucket is versioned: a plain delete
        would only hide the bytes behind a delete marker). ServiceUnavailable when S3 refuses."""
        try:
            paginator = self._client.get_paginator("list_object_versions")
            versions: list[dict[str, str]] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if item["Key"] == key:
                        versions.append({"Key": key, "VersionId": item["VersionId"]})
            for start in range(0, len(versions), 1000):
                self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": versions[start : start + 1000], "Quiet": True}
                )
            if not versions:
                self._client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("the file store is unavailable, try again") from exc


@lru_cache(maxsize=1)
def get_object_store() -> ObjectStore:
    """The process-wide store of uploaded files (reused across warm invocations)."""
    return S3ObjectStore(get_settings().upload_bucket)
