"""Objects addressed by URI: ``s3://bucket/key`` on S3, ``file:///abs/path`` on this disk.

The local profile keeps its "S3" on the local disk, so everything that moves artifacts
(staging, output promotion, the local backend's channels and state) talks to one small
interface and never cares which it has. Listing is by literal key prefix in key order,
as S3's ListObjectsV2 does; a ``file://`` prefix is matched the same way on the path string.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from snakemake_interface_common.exceptions import WorkflowError


class ObjectURIError(ValueError):
    pass


class ObjectStoreError(WorkflowError):
    """An S3 call failed for good: botocore's bounded retries (throttling, 5xx, connection
    errors) are spent, or S3 refused it. Names the operation and the object; cause kept."""


@dataclass(frozen=True)
class ObjectURI:
    scheme: str  # "s3" | "file"
    bucket: str  # "" for file
    key: str  # for file: the absolute path

    @classmethod
    def parse(cls, uri: str) -> ObjectURI:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ObjectURIError(f"S3 URI {uri!r} has no bucket: write s3://<bucket>/<key>")
            return cls("s3", parsed.netloc, parsed.path.lstrip("/"))
        if parsed.scheme == "file":
            return cls("file", "", unquote(parsed.path))
        raise ObjectURIError(
            f"{uri!r} is not an s3:// or file:// URI: write s3://<bucket>/<key> "
            "(or an absolute local path on the local profile)"
        )

    def __str__(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.key}"
        return Path(self.key).as_uri() + ("/" if self.key.endswith("/") else "")

    def join(self, *parts: str) -> ObjectURI:
        key = self.key
        for part in parts:
            key = (key.rstrip("/") + "/" if key else "") + part.lstrip("/")
        return ObjectURI(self.scheme, self.bucket, key)


def file_uri(path: str | os.PathLike[str], directory: bool = False) -> str:
    uri = Path(os.path.abspath(path)).as_uri()
    return uri + "/" if directory and not uri.endswith("/") else uri


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    key: str
    size: int
    version: str = ""  # changes when the content does: S3 ETag, or size+mtime of a file


class ObjectStore(Protocol):
    def list(self, prefix: str) -> list[ObjectInfo]: ...
    def exists(self, uri: str) -> bool: ...
    def read_bytes(self, uri: str) -> bytes | None: ...  # None: no such object
    def download(self, uri: str, path: Path) -> None: ...
    def upload(self, path: Path, uri: str) -> None: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, uri: str) -> None: ...
    # Many at once, as fast as the store allows. The pairs are consumed as they come, so a
    # caller that decides lazily (staging hashes each file first) overlaps with the transfers.
    # Each returns how many; the first failure raises (and the transfers not done are dropped).
    def upload_many(self, pairs: Iterable[tuple[Path, str]]) -> int: ...
    def copy_many(self, pairs: Iterable[tuple[str, str]]) -> int: ...
    def delete_many(self, uris: Iterable[str]) -> int: ...


def relative_key(prefix_key: str, key: str) -> str:
    """Where an object lands under a channel directory.

    SageMaker strips the prefix up to its last ``/``: prefix ``data/`` puts ``data/a.txt``
    at ``a.txt``; prefix ``x/persons.json`` puts the object at ``persons.json``.
    """
    return key[prefix_key.rfind("/") + 1 :]


class LocalObjects:
    """``file://`` URIs. Writes are atomic (temp file + rename)."""

    def list(self, prefix: str) -> list[ObjectInfo]:
        p = ObjectURI.parse(prefix).key
        parent, _, stem = p.rpartition("/")
        if not os.path.isdir(parent or "/"):
            return []
        found = []
        # only the parent's entries that start with the last segment can match: never walk
        # siblings (a prefix "wf/x.txt" must not walk the whole workflow directory)
        for entry in os.scandir(parent or "/"):
            if not entry.name.startswith(stem):
                continue
            if entry.is_dir(follow_symlinks=False):
                for dirpath, _dirs, files in os.walk(entry.path):
                    found.extend(
                        _info(os.path.join(dirpath, n))
                        for n in files
                        if not n.startswith(".ssm-tmp-")
                    )
            elif entry.is_file() and not entry.name.startswith(".ssm-tmp-"):
                found.append(_info(entry.path))
        return sorted((o for o in found if o.key.startswith(p)), key=lambda o: o.key)

    def exists(self, uri: str) -> bool:
        return os.path.isfile(ObjectURI.parse(uri).key)

    def read_bytes(self, uri: str) -> bytes | None:
        try:
            return Path(ObjectURI.parse(uri).key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def download(self, uri: str, path: Path) -> None:
        _atomic_copy(Path(ObjectURI.parse(uri).key), Path(path))

    def upload(self, path: Path, uri: str) -> None:
        _atomic_copy(Path(path), Path(ObjectURI.parse(uri).key))

    def copy(self, src: str, dst: str) -> None:
        _atomic_copy(Path(ObjectURI.parse(src).key), Path(ObjectURI.parse(dst).key))

    def delete(self, uri: str) -> None:
        Path(ObjectURI.parse(uri).key).unlink(missing_ok=True)

    # One after another: a local copy is one copy_file_range call, the kernel's work.
    def upload_many(self, pairs: Iterable[tuple[Path, str]]) -> int:
        return _each(self.upload, pairs)

    def copy_many(self, pairs: Iterable[tuple[str, str]]) -> int:
        return _each(self.copy, pairs)

    def delete_many(self, uris: Iterable[str]) -> int:
        return _each(self.delete, ((uri,) for uri in uris))


def _each(operation: Callable[..., None], calls: Iterable[tuple[Any, ...]]) -> int:
    done = 0
    for args in calls:
        operation(*args)
        done += 1
    return done


def _info(path: str) -> ObjectInfo:
    st = os.stat(path)
    return ObjectInfo(file_uri(path), path, st.st_size, f"{st.st_size}-{st.st_mtime_ns}")


def temp_sibling(path: Path) -> Path:
    """A new empty file beside ``path``, to be renamed onto it, made with the user's umask.

    ``tempfile.mkstemp`` creates files 0600 and ``os.replace`` keeps the mode, so every
    artifact, log and manifest written through it would be private to its owner. Created
    here with ``O_CREAT | O_EXCL`` and mode 0666, the kernel applies the umask, as for any
    file a program writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".ssm-tmp-{secrets.token_hex(8)}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


def write_text_atomic(path: Path, text: str) -> None:
    """``path`` holds ``text`` or what it held before, never half of it (runs side by side)."""
    tmp = temp_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = temp_sibling(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Multipart above 8 MB in 8 MB parts: s3transfer's and awscli's defaults, written out because
# the part size is in a multipart object's ETag (the MD5 of the parts' MD5s, "-<parts>"), and an
# ETag is the version of an input in a job's identity (identity.input_version): the same file
# uploaded with other parts would look new.
MULTIPART_BYTES = 8 * 1024 * 1024
# Requests in flight at once: twice awscli's default max_concurrent_requests (10). A small
# object's PUT is mostly waiting (the 100-continue round trip, the reply), so more in flight
# is more objects per second: measured on one moto server, 1,000 files go in 0.66 of the time
# at 20 than at 10. S3 serves 3,500 PUTs per second per prefix; parts held in memory stay
# bounded by s3transfer (max_in_memory_upload_chunks). Never more than the client has pooled
# connections (aws_clients.S3_CONNECTIONS), or urllib3 would open and discard extra ones.
TRANSFER_CONCURRENCY = 20
# DeleteObjects takes at most 1,000 keys per request (S3 API reference).
DELETE_BATCH = 1000


@functools.cache
def transfer_config(concurrency: int = TRANSFER_CONCURRENCY) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        max_concurrency=concurrency,
        multipart_threshold=MULTIPART_BYTES,
        multipart_chunksize=MULTIPART_BYTES,
    )


class S3Objects:
    """``s3://`` URIs through one boto3 client (created lazily; boto3 is heavy).

    With ``expected_owner``, every call on one of ``owned_buckets`` (the staging bucket; all
    buckets when not given) carries ExpectedBucketOwner: S3 refuses it with 403 when the
    bucket belongs to another account, so a bucket name taken over elsewhere never receives
    (or serves) our objects. Calls on other buckets (a public dataset, the user's storage in
    another account) go without it: there it would wrongly refuse them.
    """

    def __init__(
        self,
        client: Any | None = None,
        expected_owner: str | None = None,
        owned_buckets: frozenset[str] | None = None,
    ) -> None:
        self._client = client
        self._expected_owner = expected_owner
        self._owned = owned_buckets

    def _owner(self, bucket: str) -> dict[str, str]:
        if not self._expected_owner or (self._owned is not None and bucket not in self._owned):
            return {}
        return {"ExpectedBucketOwner": self._expected_owner}

    def _transfer_config(self) -> Any:
        pool = getattr(self.client.meta.config, "max_pool_connections", None) or 10
        return transfer_config(min(TRANSFER_CONCURRENCY, pool))

    @property
    def client(self) -> Any:
        if self._client is None:
            from ssm_rules.aws_clients import client

            self._client = client("s3")
        return self._client

    def list(self, prefix: str) -> list[ObjectInfo]:
        u = ObjectURI.parse(prefix)
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        with _failing_as(f"listing {prefix} (S3 ListObjectsV2)"):
            for page in paginator.paginate(Bucket=u.bucket, Prefix=u.key, **self._owner(u.bucket)):
                for obj in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            f"s3://{u.bucket}/{obj['Key']}",
                            obj["Key"],
                            obj["Size"],
                            f"{obj['Size']}-{obj.get('ETag', '')}",
                        )
                    )
        return sorted(found, key=lambda o: o.key)

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        u = ObjectURI.parse(uri)
        with _failing_as(f"checking {uri} (S3 HeadObject)"):
            try:
                self.client.head_object(Bucket=u.bucket, Key=u.key, **self._owner(u.bucket))
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def read_bytes(self, uri: str) -> bytes | None:
        """One GetObject (not HeadObject, then a managed download's HeadObject and GetObject),
        for the small objects read whole: sidecars."""
        from botocore.exceptions import ClientError

        u = ObjectURI.parse(uri)
        with _failing_as(f"reading {uri} (S3 GetObject)"):
            try:
                reply = self.client.get_object(Bucket=u.bucket, Key=u.key, **self._owner(u.bucket))
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return bytes(reply["Body"].read())

    def download(self, uri: str, path: Path) -> None:
        u = ObjectURI.parse(uri)
        path = Path(path)
        tmp = temp_sibling(path)
        try:
            with _failing_as(f"downloading {uri} (S3 GetObject)"):
                self.client.download_file(
                    u.bucket,
                    u.key,
                    str(tmp),
                    ExtraArgs=self._owner(u.bucket) or None,
                    Config=self._transfer_config(),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def upload(self, path: Path, uri: str) -> None:
        u = ObjectURI.parse(uri)
        with _failing_as(f"uploading {path} to {uri} (S3 PutObject)"):
            self.client.upload_file(
                str(path),
                u.bucket,
                u.key,
                ExtraArgs=self._owner(u.bucket) or None,
                Config=self._transfer_config(),
            )

    def copy(self, src: str, dst: str) -> None:
        s, d = ObjectURI.parse(src), ObjectURI.parse(dst)
        # Managed copy: server-side, multipart above CopyObject's 5 GB limit. ExpectedBucketOwner
        # goes on CopyObject / UploadPartCopy (the destination) and on the HeadObject s3transfer
        # sends to the source first (it does not accept ExpectedSourceBucketOwner).
        extra = self._owner(d.bucket) or None
        with _failing_as(f"copying {src} to {dst} (S3 CopyObject)"):
            self.client.copy(
                {"Bucket": s.bucket, "Key": s.key},
                d.bucket,
                d.key,
                ExtraArgs=extra,
                Config=self._transfer_config(),
            )

    def delete(self, uri: str) -> None:
        u = ObjectURI.parse(uri)
        with _failing_as(f"deleting {uri} (S3 DeleteObject)"):
            self.client.delete_object(Bucket=u.bucket, Key=u.key, **self._owner(u.bucket))

    def upload_many(self, pairs: Iterable[tuple[Path, str]]) -> int:
        """Through one s3transfer TransferManager, the pool ``upload_file`` makes per call and
        ``aws s3 sync`` shares across files: small files' PutObjects and large files' parts
        all go TRANSFER_CONCURRENCY at a time."""

        def start(manager: Any, pair: tuple[Path, str]) -> tuple[str, Any]:
            path, uri = pair
            u = ObjectURI.parse(uri)
            extra = self._owner(u.bucket) or None
            future = manager.upload(str(path), u.bucket, u.key, extra_args=extra)
            return f"uploading {path} to {uri} (S3 PutObject)", future

        return self._transfer(start, pairs)

    def copy_many(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Server-side copies, TRANSFER_CONCURRENCY at a time (ExpectedBucketOwner as in copy)."""

        def start(manager: Any, pair: tuple[str, str]) -> tuple[str, Any]:
            src, dst = pair
            s, d = ObjectURI.parse(src), ObjectURI.parse(dst)
            source = {"Bucket": s.bucket, "Key": s.key}
            future = manager.copy(source, d.bucket, d.key, extra_args=self._owner(d.bucket) or None)
            return f"copying {src} to {dst} (S3 CopyObject)", future

        return self._transfer(start, pairs)

    def _transfer(self, start: Callable[[Any, Any], tuple[str, Any]], items: Iterable[Any]) -> int:
        from boto3.s3.transfer import create_transfer_manager

        with create_transfer_manager(self.client, self._transfer_config()) as manager:
            started = [start(manager, item) for item in items]
            for what, future in started:  # leaving the block on an error cancels the rest
                with _failing_as(what):
                    future.result()
        return len(started)

    def delete_many(self, uris: Iterable[str]) -> int:
        """One DeleteObjects per bucket and 1,000 keys (not one DeleteObject per key); a key
        S3 could not delete is an error, as DeleteObject's would be."""
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            u = ObjectURI.parse(uri)
            by_bucket.setdefault(u.bucket, []).append(u.key)
        for bucket, keys in by_bucket.items():
            for i in range(0, len(keys), DELETE_BATCH):
                batch = keys[i : i + DELETE_BATCH]
                what = f"deleting {len(batch)} objects from s3://{bucket}/ (S3 DeleteObjects)"
                with _failing_as(what):
                    reply = self.client.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                        **self._owner(bucket),
                    )
                errors = reply.get("Errors", [])
                if errors:
                    e = errors[0]
                    raise ObjectStoreError(
                        f"{what} failed: s3://{bucket}/{e.get('Key')}: {e.get('Code')} "
                        f"{e.get('Message', '')}".rstrip()
                        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
                    )
        return sum(len(keys) for keys in by_bucket.values())


@contextmanager
def _failing_as(what: str) -> Iterator[None]:
    """botocore / boto3 errors (what is left after the client's retries) → ObjectStoreError."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as e:
        raise ObjectStoreError(f"{what} failed: {e}") from e


_LOCAL = LocalObjects()


def store_for(uri: str, s3: S3Objects | None = None) -> ObjectStore:
    scheme = ObjectURI.parse(uri).scheme
    if scheme == "file":
        return _LOCAL
    return s3 if s3 is not None else S3Objects()


def iter_prefix(prefix: str, s3: S3Objects | None = None) -> Iterator[ObjectInfo]:
    yield from store_for(prefix, s3).list(prefix)
