"""Files in an S3 bucket (AWS S3, MinIO, SeaweedFS, ...) through boto3, under an optional prefix.

Image URLs are pre-signed GETs that the bucket itself serves and refuses after their TTL (Karlo's
``return_type: url`` lasts 10 minutes); uploads go straight to the bucket through pre-signed PUTs.
``public_endpoint_url`` signs those URLs for the address clients reach (a bucket behind a proxy or
a compose network); pixelserve itself talks to ``endpoint_url``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import BinaryIO

from pixelserve.errors import NotFound, StorageUnavailable
from pixelserve.storage.base import check_object_key

_MISSING = ("NoSuchKey", "404", "NotFound")


@contextmanager
def _writing():
    """The bucket's server away (refused or dropped connections, timeouts) or answering 5xx after
    boto3's retries: the store is unavailable (503, retry later). A 4xx (no such bucket, access
    denied) is a configuration error and stays one."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, S3UploadFailedError) as e:
        raise StorageUnavailable(f"the image store refused a write ({type(e).__name__})") from e
    except ClientError as e:
        if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
            raise
        raise StorageUnavailable(f"the image store refused a write ({e.response['Error'].get('Code')})") from e


class S3Store:
    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 public_endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 create_bucket: bool = False, presigned_urls: bool = True):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.presigned_urls = presigned_urls  # False: image URLs go through pixelserve's signed route
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # Path-style addressing works with every S3 server (SeaweedFS and MinIO have no bucket DNS);
        # SigV4 is what pre-signed URLs with an expiry need.
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                        retries={"max_attempts": 3, "mode": "standard"})
        kwargs = dict(region_name=region or "us-east-1", aws_access_key_id=access_key_id,
                      aws_secret_access_key=secret_access_key, config=config)
        self._client = boto3.client("s3", endpoint_url=endpoint_url, **kwargs)
        self._signer = (boto3.client("s3", endpoint_url=public_endpoint_url, **kwargs)
                        if public_endpoint_url else self._client)
        if create_bucket and not self._bucket_exists():
            self._client.create_bucket(Bucket=bucket)

    @classmethod
    def from_settings(cls, settings) -> "S3Store":
        return cls(settings.s3_bucket, prefix=settings.s3_prefix, endpoint_url=settings.s3_endpoint_url,
                   public_endpoint_url=settings.s3_public_endpoint_url, region=settings.s3_region,
                   access_key_id=settings.s3_access_key_id, secret_access_key=settings.s3_secret_access_key,
                   create_bucket=settings.s3_create_bucket, presigned_urls=settings.s3_presigned_urls)

    def _key(self, key: str) -> str:
        return self.prefix + check_object_key(key)

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # One PUT: S3 makes the object visible whole or not at all.
        with _writing():
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def put_fileobj(self, key: str, fileobj: BinaryIO, content_type: str) -> None:
        # boto3's managed transfer: multipart for large files, each part retried.
        with _writing():
            self._client.upload_fileobj(fileobj, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type})

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                raise NotFound("no such image") from None
            raise

    def get(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def presigned_get(self, key: str, ttl_seconds: int) -> str | None:
        if not self.presigned_urls:
            return None
        return self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=int(ttl_seconds))

    def presigned_put(self, key: str, ttl_seconds: int, content_type: str | None = None) -> str | None:
        """The client must send the same Content-Type header when one is given (it is signed)."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_type:
            params["ContentType"] = content_type
        return self._signer.generate_presigned_url("put_object", Params=params, ExpiresIn=int(ttl_seconds))
